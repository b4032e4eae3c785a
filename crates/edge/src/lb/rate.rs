//! Per-client rate limiting with a token bucket.
//!
//! Each client (by IP) has a bucket of `burst` tokens that refills at `rate` tokens a
//! second; a request takes one. An empty bucket means `429 Too Many Requests` with
//! `Retry-After`: the seconds until the next token. A burst is allowed, a sustained rate
//! above `rate` is not — the behaviour of nginx's `limit_req ... burst=N nodelay`.
//!
//! The table of buckets is bounded: past [`MAX_CLIENTS`] entries, the buckets that have
//! refilled completely (indistinguishable from new ones) are dropped, at most once a second
//! (the sweep is O(clients)); if it is still full, a new client is refused until there is
//! room — under a flood from that many addresses, failing closed protects the backends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Most clients tracked at once.
pub const MAX_CLIENTS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The buckets of every client.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: HashMap<IpAddr, Bucket>,
    last_sweep: Option<Instant>,
}

impl RateLimiter {
    /// `rate` requests a second per client, bursts of up to `burst`.
    pub fn new(rate: u32, burst: u32) -> RateLimiter {
        RateLimiter {
            rate: f64::from(rate.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: HashMap::new(),
            last_sweep: None,
        }
    }

    /// Takes a token for `client` at `now`; `Err(wait)` if there is none yet.
    pub fn check(&mut self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.buckets.len() >= MAX_CLIENTS && !self.buckets.contains_key(&client) {
            let due = self
                .last_sweep
                .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
            if due {
                self.last_sweep = Some(now);
                self.forget_full(now);
            }
            if self.buckets.len() >= MAX_CLIENTS {
                return Err(Duration::from_secs(1));
            }
        }
        let (rate, burst) = (self.rate, self.burst);
        let bucket = self.buckets.entry(client).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }

    fn forget_full(&mut self, now: Instant) {
        let (rate, burst) = (self.rate, self.burst);
        self.buckets.retain(|_, b| {
            let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
            b.tokens + elapsed * rate < burst
        });
    }

    /// Clients tracked.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_refill_rate() {
        let mut limiter = RateLimiter::new(2, 3);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check(ip, t0).is_ok());
        }
        let wait = limiter.check(ip, t0).expect_err("bucket empty");
        assert_eq!(wait, Duration::from_millis(500));
        // Another client has its own bucket.
        assert!(limiter.check([10, 0, 0, 2].into(), t0).is_ok());
        // Half a second later: one token.
        let t1 = t0 + Duration::from_millis(500);
        assert!(limiter.check(ip, t1).is_ok());
        assert!(limiter.check(ip, t1).is_err());
    }
}

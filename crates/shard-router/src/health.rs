//! Node health: when to stop sending requests to a node, and when to try it again.
//!
//! The rule is twemproxy's: every failed request or probe (connection refused, connection
//! lost, no reply within `timeout_ms`) counts; after `server_failure_limit` *consecutive*
//! failures the node is **ejected** for `server_retry_timeout`. While ejected, the router
//! does not send it requests: reads go to a replica, writes to its shard fail fast. When
//! the timeout expires the node is tried again (one more failure ejects it again at
//! once), and any success — a request or an active probe, which the router sends to every
//! node every `probe_interval_ms` even while it is ejected — brings it straight back.
//!
//! An error *reply* (`-ERR wrong type`) is not a failure: the node answered.
//!
//! What the router never does by default is twemproxy's `auto_eject_hosts`: remapping an
//! ejected shard's keys onto the other shards. For a cache that is a miss; for a store it
//! is data written where it will not be found once the shard comes back.
//!
//! This module is pure state with the clock passed in, so its rules are tested without
//! sleeping.

use std::time::{Duration, Instant};

/// One node's health.
#[derive(Debug, Clone)]
pub struct Health {
    failure_limit: u32,
    retry_timeout: Duration,
    consecutive_failures: u32,
    ejected_until: Option<Instant>,
}

/// What `ROUTER SHARDS` shows for a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Up,
    /// Out of rotation until the retry timeout.
    Ejected,
    /// The retry timeout passed: requests are allowed again, on probation.
    Retrying,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Up => "up",
            Status::Ejected => "ejected",
            Status::Retrying => "retrying",
        }
    }
}

impl Health {
    pub fn new(failure_limit: u32, retry_timeout: Duration) -> Self {
        Health {
            failure_limit: failure_limit.max(1),
            retry_timeout,
            consecutive_failures: 0,
            ejected_until: None,
        }
    }

    pub fn status(&self, now: Instant) -> Status {
        match self.ejected_until {
            None => Status::Up,
            Some(until) if now < until => Status::Ejected,
            Some(_) => Status::Retrying,
        }
    }

    /// May requests be sent to this node now?
    pub fn available(&self, now: Instant) -> bool {
        self.status(now) != Status::Ejected
    }

    /// A request or probe succeeded: the node is fully back.
    pub fn success(&mut self) {
        self.consecutive_failures = 0;
        self.ejected_until = None;
    }

    /// A request or probe failed. Returns `true` if this failure ejected the node.
    pub fn failure(&mut self, now: Instant) -> bool {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if self.consecutive_failures >= self.failure_limit && self.status(now) != Status::Ejected {
            self.ejected_until = Some(now + self.retry_timeout);
            return true;
        }
        false
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ejected_after_the_limit_and_retried_after_the_timeout() {
        let t0 = Instant::now();
        let mut h = Health::new(2, Duration::from_secs(30));
        assert!(!h.failure(t0));
        assert_eq!(h.status(t0), Status::Up);
        assert!(h.failure(t0));
        assert!(!h.available(t0 + Duration::from_secs(29)));
        assert_eq!(h.status(t0 + Duration::from_secs(30)), Status::Retrying);
        // One failure on probation ejects again at once.
        let t1 = t0 + Duration::from_secs(31);
        assert!(h.failure(t1));
        assert_eq!(h.status(t1), Status::Ejected);
        h.success();
        assert_eq!(h.status(t1), Status::Up);
        assert_eq!(h.consecutive_failures(), 0);
    }

    #[test]
    fn a_success_resets_the_count() {
        let t0 = Instant::now();
        let mut h = Health::new(3, Duration::from_secs(1));
        h.failure(t0);
        h.failure(t0);
        h.success();
        h.failure(t0);
        h.failure(t0);
        assert!(h.available(t0));
    }
}

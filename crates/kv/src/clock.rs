//! Time, injected. The engine never reads the system clock itself: every call that needs
//! the time takes `now` (Unix milliseconds) as an argument, so expiry is deterministic and
//! a test can move time forward by a day in one line. The server asks a [`Clock`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where the server gets "now" from.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;

    /// This clock's reading paired with `at`, a monotonic instant just read, if the clock
    /// moves with real time: then the time at any later instant is the anchor plus the
    /// instants' difference, with no second read (see [`Anchor`]). `None` (the default):
    /// the clock must be read each time, as a test's clock that moves only when told.
    fn anchor(&self, at: Instant) -> Option<Anchor> {
        let _ = at;
        None
    }
}

/// The wall clock read once, beside the monotonic instant it was read at, so that the
/// wall time at a later instant is arithmetic rather than another read of the clock.
///
/// Why: a pipelined command needs two times — "now" for expiry, and an [`Instant`] for
/// the slow log — and each is a read of a clock through the vDSO (`clock_gettime`, ~20
/// ns: a few percent of a pipelined command). The slow log's instant is read anyway
/// (one per command, see `Kv::observe_start`); the wall time then follows from it and
/// an anchor taken once per batch. Both clocks are slewed alike by NTP; only a step of
/// the wall clock (someone setting the date) within one batch would go unseen until the
/// next batch. The sub-millisecond part is kept, so the millisecond is the one a read of
/// the clock would have given.
#[derive(Debug, Clone, Copy)]
pub struct Anchor {
    at: Instant,
    unix: Duration,
}

impl Anchor {
    /// Unix milliseconds at `when` (not before the anchor's own instant).
    pub fn ms_at(&self, when: Instant) -> u64 {
        (self.unix + when.saturating_duration_since(self.at)).as_millis() as u64
    }
}

/// The wall clock. Redis's TTLs are wall-clock deadlines too (`EXPIREAT` takes a Unix
/// time), which is what lets an expiry time survive a restart.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        since_epoch().as_millis() as u64
    }

    fn anchor(&self, at: Instant) -> Option<Anchor> {
        Some(Anchor {
            at,
            unix: since_epoch(),
        })
    }
}

fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// A clock that moves only when told to: for tests.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new(now_ms: u64) -> Self {
        ManualClock(AtomicU64::new(now_ms))
    }

    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    pub fn set(&self, now_ms: u64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_anchor_tells_the_wall_time_of_a_later_instant() {
        let at = Instant::now();
        let anchor = Anchor {
            at,
            unix: Duration::from_micros(1_000_999_600),
        };
        assert_eq!(anchor.ms_at(at), 1_000_999);
        // The sub-millisecond part carries: 400 µs later is the next millisecond.
        assert_eq!(anchor.ms_at(at + Duration::from_micros(400)), 1_001_000);
        assert_eq!(anchor.ms_at(at + Duration::from_secs(2)), 1_002_999);
        // Only a clock that moves by itself can be anchored.
        assert!(ManualClock::new(5).anchor(at).is_none());
        assert!(SystemClock.anchor(at).is_some());
    }
}

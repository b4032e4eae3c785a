//! Time, injected.
//!
//! Every rule in this broker is a rule about time: a message is invisible *until* its
//! visibility timeout, delayed *until* its delay has passed, deleted *after* its retention
//! period. The engine never reads a clock: each operation is handed `now`, so a test can
//! walk time forward one millisecond at a time and every outcome is deterministic.
//!
//! Times are milliseconds since the Unix epoch, not `Instant`s, because they are written
//! to disk: a message received just before a crash must still know, after the restart,
//! when its visibility timeout ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (a point in time) or a duration in milliseconds.
pub type Millis = u64;

/// Where the server gets `now` from.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Millis;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as Millis)
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to: for tests.
#[derive(Debug, Default, Clone)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    pub fn new(start: Millis) -> Self {
        ManualClock(Arc::new(AtomicU64::new(start)))
    }

    pub fn advance(&self, by: Millis) {
        self.0.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

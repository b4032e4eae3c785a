//! Polling: one task per server, each asking its server for stats once per interval over
//! the server's own protocol, and one task that publishes the board as an event.
//!
//! A server that does not answer within [`POLL_TIMEOUT`] is shown down for that poll: one
//! slow server never holds the others' numbers back, since each has its own task.

mod edge;
mod resp;
mod sql;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use resp::MAX_NAMES;

use crate::board::Shared;
use crate::sample::Sample;
use crate::topology::{Kind, Target};

/// How long one poll of one server may take.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(2);

/// Starts and keeps the pollers: one per server, and the publisher.
pub struct Poller {
    shared: Arc<Shared>,
    interval: Duration,
    password: Option<String>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Poller {
    /// Starts a poller per server already on the board, and the publisher; all stop with
    /// `shutdown`.
    pub fn start(
        shared: Arc<Shared>,
        interval: Duration,
        password: Option<String>,
        shutdown: CancellationToken,
    ) -> Self {
        let poller = Poller {
            shared: shared.clone(),
            interval,
            password,
            shutdown: shutdown.clone(),
            tasks: TaskTracker::new(),
        };
        for (index, target) in shared.targets().into_iter().enumerate() {
            poller.spawn(index, target);
        }
        poller.tasks.spawn(publish(shared, interval, shutdown));
        poller
    }

    /// Watches one more server from now on.
    pub fn watch(&self, kind: Kind, addr: &str) {
        let (index, target) = self.shared.add(kind, addr);
        self.spawn(index, target);
    }

    fn spawn(&self, index: usize, target: Target) {
        self.tasks.spawn(watch(
            self.shared.clone(),
            index,
            target,
            self.interval,
            self.password.clone(),
            self.shutdown.clone(),
        ));
    }

    /// Waits for every poller to stop (after shutdown).
    pub async fn stopped(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// The milliseconds since 1970 a sample is stamped with (the page's time axis).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Polls one server every `interval` until shutdown.
async fn watch(
    shared: Arc<Shared>,
    index: usize,
    target: Target,
    interval: Duration,
    password: Option<String>,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut resp = resp::RespProbe::default();
    let mut sql = sql::SqlProbe::default();
    let password = password.as_deref();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let poll = async {
            match target.kind {
                Kind::Edge => edge::poll(&target.addr).await,
                Kind::Sql => sql.poll(&target.addr, password).await,
                kind => resp.poll(kind, &target.addr, password).await,
            }
        };
        let sample = match tokio::time::timeout(POLL_TIMEOUT, poll).await {
            Ok(sample) => sample,
            Err(_) => {
                // The half-read reply would confuse the next poll: start over.
                resp = resp::RespProbe::default();
                sql = sql::SqlProbe::default();
                Sample::down(format!("no answer within {POLL_TIMEOUT:?}"))
            }
        };
        shared.record(index, now_ms(), sample);
    }
}

/// Once per `interval`, the board's latest numbers as one Server-Sent Event.
async fn publish(shared: Arc<Shared>, interval: Duration, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        shared.publish(now_ms());
    }
}

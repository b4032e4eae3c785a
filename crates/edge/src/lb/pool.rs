//! The backends and what the balancer knows about each: healthy or not, requests in
//! flight, consecutive failures.
//!
//! Two ways a backend leaves the rotation:
//! - **passive ejection**: `--eject-after` requests in a row fail to reach it (refused,
//!   reset, timed out) — noticed by real traffic, at once;
//! - **active health checks**: every `--health-interval-ms`, `GET --health-path`; anything
//!   but a 2xx marks it down.
//!
//! A health check that succeeds re-admits it: that is the only way back, so an ejected
//! backend gets no traffic until it has shown it can answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hyper::{HeaderMap, Method};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::http::Upstream;

/// One backend.
#[derive(Debug)]
pub struct Backend {
    pub upstream: Upstream,
    /// `host:port`, as configured.
    pub name: String,
    /// The value of the sticky cookie that names it: a hash of its name, so the cookie
    /// stays valid if the list is reordered.
    pub id: String,
    healthy: AtomicBool,
    active: AtomicUsize,
    failures: AtomicU32,
    pub requests: AtomicU64,
}

impl Backend {
    pub fn new(name: &str, timeout: Duration) -> Backend {
        Backend {
            upstream: Upstream::new(name, timeout, 64 << 20),
            name: name.to_owned(),
            id: format!("{:016x}", xxhash_rust::xxh3::xxh3_64(name.as_bytes())),
            healthy: AtomicBool::new(true),
            active: AtomicUsize::new(0),
            failures: AtomicU32::new(0),
            requests: AtomicU64::new(0),
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Requests in flight.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Counts a request in flight until the guard drops.
    pub fn begin(&self) -> InFlight<'_> {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    /// A request reached it.
    pub fn succeeded(&self) {
        self.failures.store(0, Ordering::Relaxed);
    }

    /// A request could not reach it; ejects it after `threshold` in a row.
    pub fn failed(&self, threshold: u32) {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= threshold && self.healthy.swap(false, Ordering::Relaxed) {
            warn!("lb: ejected {} after {n} failures in a row", self.name);
        }
    }

    fn set_health(&self, up: bool) {
        let was = self.healthy.swap(up, Ordering::Relaxed);
        if up {
            self.failures.store(0, Ordering::Relaxed);
        }
        if was != up {
            info!("lb: {} is {}", self.name, if up { "up" } else { "down" });
        }
    }
}

/// Decrements the in-flight count when dropped (also when the client goes away).
pub struct InFlight<'a>(&'a Backend);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Checks every backend's health every `interval` until `shutdown`.
pub async fn health_checks(
    backends: Arc<Vec<Backend>>,
    path: String,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let timeout = interval.max(Duration::from_millis(200));
    let probes: Vec<Upstream> = backends
        .iter()
        .map(|b| Upstream::new(&b.name, timeout, 4096))
        .collect();
    loop {
        for (backend, probe) in backends.iter().zip(&probes) {
            let up = matches!(
                probe.send(Method::GET, &path, HeaderMap::new(), Bytes::new()).await,
                Ok(r) if r.status().is_success()
            );
            backend.set_health(up);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

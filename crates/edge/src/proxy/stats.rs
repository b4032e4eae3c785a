//! What the edge counts, shown at `GET /_edge/stats`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters, updated with relaxed atomics (each is independent).
#[derive(Debug, Default)]
pub struct Stats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub stale: AtomicU64,
    pub revalidated: AtomicU64,
    pub origin_requests: AtomicU64,
    pub bytes_from_cache: AtomicU64,
    pub purges: AtomicU64,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Hits (fresh, stale and revalidated: all served the stored body) over all lookups.
    pub fn hit_ratio(&self) -> f64 {
        let served = Self::get(&self.hits) + Self::get(&self.stale) + Self::get(&self.revalidated);
        let all = served + Self::get(&self.misses);
        if all == 0 {
            0.0
        } else {
            served as f64 / all as f64
        }
    }
}

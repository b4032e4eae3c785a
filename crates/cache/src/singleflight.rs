//! # Singleflight: one origin request per key, however many clients miss at once
//!
//! A popular key expires; a thousand clients miss it in the same millisecond; without
//! coordination each asks the origin — a *cache stampede* (thundering herd) that can take
//! the origin down precisely when the cache stops shielding it. Singleflight (the name
//! comes from Go's `golang.org/x/sync/singleflight`) coalesces them: the first miss starts
//! the fetch and registers it under the key; every later miss for that key while it is in
//! flight waits for the same result instead of starting its own.
//!
//! The flight is a `tokio::sync::OnceCell`: `get_or_init` runs the fetch in exactly one
//! caller and parks the others until it is set. If the leading client disconnects and its
//! future is dropped mid-fetch, one of the waiters runs the fetch instead — a cancelled
//! leader cannot strand the followers. The leader removes the flight when done; by then
//! the value is in the cache, so later misses are hits.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::OnceCell;

type Flight<T> = Arc<OnceCell<T>>;

pub struct SingleFlight<T> {
    flights: Mutex<HashMap<Bytes, Flight<T>>>,
    /// Callers that joined a flight already in progress (counted as they join).
    coalesced: AtomicU64,
}

impl<T> Default for SingleFlight<T> {
    fn default() -> Self {
        SingleFlight {
            flights: Mutex::new(HashMap::new()),
            coalesced: AtomicU64::new(0),
        }
    }
}

/// Whether this caller started the flight or joined one in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower,
}

impl<T: Clone> SingleFlight<T> {
    fn flights(&self) -> std::sync::MutexGuard<'_, HashMap<Bytes, Flight<T>>> {
        match self.flights.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Runs `work` for `key` unless a run for `key` is already in flight, in which case
    /// waits for that one's result.
    pub async fn run<F, Fut>(&self, key: &Bytes, work: F) -> (T, Role)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let (flight, role) = {
            let mut flights = self.flights();
            match flights.get(key) {
                Some(flight) => {
                    self.coalesced.fetch_add(1, Ordering::Relaxed);
                    (flight.clone(), Role::Follower)
                }
                None => {
                    let flight = Flight::default();
                    flights.insert(key.clone(), flight.clone());
                    (flight, Role::Leader)
                }
            }
        };
        // Normally only the leader's `work` runs; a follower's runs only if the leader
        // was cancelled before finishing.
        let result = flight.get_or_init(work).await.clone();
        // Done: retire the flight (whoever gets here first; the leader may be gone).
        let mut flights = self.flights();
        if flights.get(key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            flights.remove(key);
        }
        (result, role)
    }

    /// Keys with a fetch in flight (for INFO).
    pub fn in_flight(&self) -> usize {
        self.flights().len()
    }

    /// How many callers have joined a flight instead of starting their own.
    pub fn coalesced(&self) -> u64 {
        self.coalesced.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn concurrent_callers_share_one_run() {
        let flights = Arc::new(SingleFlight::<u64>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let key = Bytes::from_static(b"k");
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (flights, runs, gate, key) =
                (flights.clone(), runs.clone(), gate.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                flights
                    .run(&key, || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        gate.notified().await;
                        42
                    })
                    .await
            }));
        }
        // Wait until all 50 are parked on the one flight, then let it finish.
        while runs.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        gate.notify_one();
        let mut leaders = 0;
        for t in tasks {
            let (value, role) = t.await.unwrap();
            assert_eq!(value, 42);
            leaders += usize::from(role == Role::Leader);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(leaders, 1);
        assert_eq!(flights.in_flight(), 0);
        assert_eq!(flights.coalesced(), 49);
    }
}

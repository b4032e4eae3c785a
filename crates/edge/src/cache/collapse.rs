//! Request collapsing: N concurrent misses for one URL make one origin request.
//!
//! This is the cache crate's *singleflight* (`crates/cache/src/singleflight.rs`) as an
//! HTTP concept — Varnish calls it request coalescing, nginx `proxy_cache_lock`. Without
//! it, a popular object that expires (or a cold cache after a deploy) sends every
//! concurrent client to the origin at once: a *cache stampede*. With it, the first miss
//! becomes the **leader** and fetches; the others become **followers** and wait for the
//! leader's result.
//!
//! The leader's fetch runs in a task of its own, so a leader whose client disconnects
//! (hyper drops its request future) still finishes the fetch for the followers. If it
//! fails to report at all, the followers see the channel close and try again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// The fetches in flight, by key.
pub struct Collapser<T> {
    inflight: Mutex<HashMap<String, watch::Receiver<Option<T>>>>,
}

impl<T> Default for Collapser<T> {
    fn default() -> Self {
        Collapser {
            inflight: Mutex::new(HashMap::new()),
        }
    }
}

/// What [`Collapser::join`] made of the caller.
pub enum Role<T> {
    /// Fetch, then [`Leader::finish`].
    Leader(Leader<T>),
    /// Wait with [`follow`].
    Follower(watch::Receiver<Option<T>>),
}

/// The one caller that fetches. Dropping it without finishing releases the key.
pub struct Leader<T> {
    key: String,
    tx: watch::Sender<Option<T>>,
    collapser: Arc<Collapser<T>>,
}

impl<T> Collapser<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Receiver<Option<T>>>> {
        self.inflight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Requests in flight right now (for stats and tests).
    pub fn in_flight(&self) -> usize {
        self.lock().len()
    }
}

/// Becomes the leader for `key`, or a follower of the fetch already in flight.
pub fn join<T>(collapser: &Arc<Collapser<T>>, key: &str) -> Role<T> {
    let mut inflight = collapser.lock();
    if let Some(rx) = inflight.get(key) {
        return Role::Follower(rx.clone());
    }
    let (tx, rx) = watch::channel(None);
    inflight.insert(key.to_owned(), rx);
    Role::Leader(Leader {
        key: key.to_owned(),
        tx,
        collapser: collapser.clone(),
    })
}

impl<T> Leader<T> {
    /// Hands the result to every follower and releases the key.
    pub fn finish(self, value: T) {
        // Release first: a request arriving from now on finds the result in the store.
        self.collapser.lock().remove(&self.key);
        let _ = self.tx.send(Some(value));
    }
}

impl<T> Drop for Leader<T> {
    fn drop(&mut self) {
        let mut inflight = self.collapser.lock();
        // Only our own entry: `finish` may have removed it and a new leader taken the key.
        if inflight
            .get(&self.key)
            .is_some_and(|rx| rx.same_channel(&self.tx.subscribe()))
        {
            inflight.remove(&self.key);
        }
    }
}

/// Waits for the leader's result; `None` if the leader went away without one.
pub async fn follow<T: Clone>(mut rx: watch::Receiver<Option<T>>) -> Option<T> {
    let value = rx.wait_for(Option::is_some).await.ok()?;
    value.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_leader_many_followers() {
        let c = Arc::new(Collapser::<u32>::default());
        let Role::Leader(leader) = join(&c, "k") else {
            panic!("first caller leads")
        };
        let followers: Vec<_> = (0..5)
            .map(|_| match join(&c, "k") {
                Role::Follower(rx) => tokio::spawn(follow(rx)),
                Role::Leader(_) => panic!("only one leader"),
            })
            .collect();
        assert!(matches!(join(&c, "other"), Role::Leader(_)));
        leader.finish(7);
        for f in followers {
            assert_eq!(f.await.expect("task"), Some(7));
        }
        assert_eq!(c.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_leader_that_gives_up_releases_the_key() {
        let c = Arc::new(Collapser::<u32>::default());
        let Role::Leader(leader) = join(&c, "k") else {
            panic!("leader")
        };
        let Role::Follower(rx) = join(&c, "k") else {
            panic!("follower")
        };
        drop(leader);
        assert_eq!(follow(rx).await, None);
        assert!(matches!(join(&c, "k"), Role::Leader(_)));
    }
}

//! Which backend gets the next request.
//!
//! - **round robin**: each healthy backend in turn. Fair when requests cost the same.
//! - **least connections**: the healthy backend with the fewest requests in flight. Adapts
//!   when some requests are slow (a slow backend accumulates connections and gets fewer).
//! - **consistent hashing** on the path or a header: the same key goes to the same
//!   backend (its cache stays warm), and when a backend leaves only *its* keys move — to
//!   the next point clockwise on the ring — instead of almost all of them as with
//!   `hash % n`. Each backend has [`VNODES`] points so the load evens out.

use std::sync::atomic::{AtomicUsize, Ordering};

use xxhash_rust::xxh3::xxh3_64;

/// Points per backend on the ring (as ketama's 160).
pub const VNODES: usize = 160;

/// The balancing policy (`--policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Policy {
    RoundRobin,
    LeastConnections,
    /// Consistent hashing on `--hash-on`.
    Hash,
}

/// A hash ring over backend indices.
#[derive(Debug)]
pub struct Ring {
    points: Vec<(u64, usize)>,
}

impl Ring {
    /// The ring of `names` (one per backend, in index order).
    pub fn new(names: &[String]) -> Ring {
        let mut points: Vec<(u64, usize)> = names
            .iter()
            .enumerate()
            .flat_map(|(i, name)| {
                (0..VNODES).map(move |v| (xxh3_64(format!("{name}-{v}").as_bytes()), i))
            })
            .collect();
        points.sort_unstable();
        Ring { points }
    }

    /// The first backend clockwise from `key`'s point that `usable` accepts.
    pub fn pick(&self, key: &[u8], usable: impl Fn(usize) -> bool) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let h = xxh3_64(key);
        let start = self.points.partition_point(|&(p, _)| p < h);
        (0..self.points.len())
            .map(|i| self.points[(start + i) % self.points.len()].1)
            .find(|&b| usable(b))
    }
}

/// Round robin over the backends `usable` accepts.
pub fn round_robin(next: &AtomicUsize, n: usize, usable: impl Fn(usize) -> bool) -> Option<usize> {
    if n == 0 {
        return None;
    }
    let start = next.fetch_add(1, Ordering::Relaxed);
    (0..n).map(|i| (start + i) % n).find(|&b| usable(b))
}

/// The usable backend with the fewest requests in flight (`active(b)`); ties go round
/// robin, so equal backends share the load.
pub fn least_connections(
    next: &AtomicUsize,
    n: usize,
    usable: impl Fn(usize) -> bool,
    active: impl Fn(usize) -> usize,
) -> Option<usize> {
    if n == 0 {
        return None;
    }
    let start = next.fetch_add(1, Ordering::Relaxed);
    (0..n)
        .map(|i| (start + i) % n)
        .filter(|&b| usable(b))
        .min_by_key(|&b| active(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{i}:8000")).collect()
    }

    #[test]
    fn round_robin_skips_the_unusable() {
        let next = AtomicUsize::new(0);
        let picks: Vec<_> = (0..4).map(|_| round_robin(&next, 3, |b| b != 1)).collect();
        assert_eq!(picks, [Some(0), Some(2), Some(2), Some(0)]);
        assert_eq!(round_robin(&next, 3, |_| false), None);
    }

    #[test]
    fn least_connections_picks_the_idlest() {
        let next = AtomicUsize::new(0);
        let active = [5, 1, 3];
        assert_eq!(
            least_connections(&next, 3, |_| true, |b| active[b]),
            Some(1)
        );
        assert_eq!(
            least_connections(&next, 3, |b| b != 1, |b| active[b]),
            Some(2)
        );
    }

    #[test]
    fn consistent_hashing_moves_only_the_keys_of_a_backend_that_leaves() {
        let ring = Ring::new(&names(4));
        let keys: Vec<String> = (0..10_000).map(|i| format!("/posts/{i}")).collect();
        let before: Vec<usize> = keys
            .iter()
            .map(|k| ring.pick(k.as_bytes(), |_| true).expect("a backend"))
            .collect();
        // Balanced within 25% of the mean.
        for b in 0..4 {
            let n = before.iter().filter(|&&x| x == b).count();
            assert!((1875..=3125).contains(&n), "backend {b}: {n}");
        }
        let after: Vec<usize> = keys
            .iter()
            .map(|k| ring.pick(k.as_bytes(), |b| b != 2).expect("a backend"))
            .collect();
        for (was, now) in before.iter().zip(&after) {
            if *was != 2 {
                assert_eq!(was, now, "a key not on the removed backend stays");
            } else {
                assert_ne!(*now, 2);
            }
        }
    }
}

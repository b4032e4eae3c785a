//! Ketama: consistent hashing on a ring, with virtual nodes and weights.
//!
//! Picture the 64-bit hash space as a circle. Each shard places many points on it — its
//! *virtual nodes* — at `hash("<shard name>-<i>")` for `i` in `0..vnodes × weight`. A key
//! belongs to the first point found walking clockwise from `hash(key)`. Adding a shard
//! adds its points; only keys that now fall just before one of the new points change
//! owner, all of them moving *to* the new shard: about `1/(N+1)` of the keys, not the
//! `N/(N+1)` of modulo. Removing a shard hands each of its arcs to the next point.
//!
//! Why virtual nodes: with one point per shard the arcs have wildly different lengths
//! (some shard would own 3× the average). With `v` points per shard each shard's share is
//! a sum of `v` arcs and its deviation from the mean shrinks like `1/√v`; 160 points (what
//! libketama and twemproxy use) give a standard deviation of a few percent. A shard of
//! weight 2 gets twice the points, hence about twice the keys.
//!
//! The ring is keyed by the shard's **name**, not its address: a shard can move to another
//! host (a new primary after a failover) without a single key changing shard.
//!
//! Hash function: xxh3, both for the points and the keys. twemproxy uses md5 for the points
//! and (by default) fnv1a_64 for keys, so the two do *not* place keys identically; infralab
//! does not try to be a drop-in for an existing twemproxy data set, and xxh3 is an order of
//! magnitude faster than md5 with distribution as good (the point placement only needs a
//! well-mixed hash, not a cryptographic one).

use xxhash_rust::xxh3::xxh3_64;

/// The ring: points sorted by position, each naming its shard.
#[derive(Debug, Clone)]
pub struct Ketama {
    ring: Vec<(u64, usize)>,
}

impl Ketama {
    /// Points per unit of weight, as libketama and twemproxy.
    pub const DEFAULT_VNODES: u32 = 160;

    /// Builds the ring from `(name, weight)` pairs; the index in the slice is the shard.
    pub fn new<'a>(shards: impl IntoIterator<Item = (&'a str, u32)>, vnodes: u32) -> Self {
        let mut ring = Vec::new();
        for (shard, (name, weight)) in shards.into_iter().enumerate() {
            for i in 0..vnodes.max(1) * weight.max(1) {
                ring.push((xxh3_64(format!("{name}-{i}").as_bytes()), shard));
            }
        }
        ring.sort_unstable();
        Ketama { ring }
    }

    /// The shard owning `hash`: the first point at or after it, wrapping around.
    pub fn shard_of(&self, hash: u64) -> usize {
        let i = self.ring.partition_point(|&(point, _)| point < hash);
        let (_, shard) = self
            .ring
            .get(i)
            .or(self.ring.first())
            .copied()
            .unwrap_or((0, 0));
        shard
    }

    /// The shard of the first point at or after `hash` whose shard is `usable`: the
    /// owner once every unusable shard's points are taken off the ring. `None` if no
    /// shard is usable.
    pub fn first_usable(&self, hash: u64, usable: impl Fn(usize) -> bool) -> Option<usize> {
        let i = self.ring.partition_point(|&(point, _)| point < hash);
        let (after, before) = self.ring.split_at(i);
        before
            .iter()
            .chain(after)
            .map(|&(_, shard)| shard)
            .find(|&shard| usable(shard))
    }

    pub fn points(&self) -> usize {
        self.ring.len()
    }
}

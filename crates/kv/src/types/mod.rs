//! Redis's collection types: hashes, lists, sets and sorted sets.
//!
//! Each type is a plain data structure in its own module, with no knowledge of keys,
//! TTLs or the journal; [`ops`] applies the write commands to them through the keyspace's
//! one write path ([`crate::keyspace::Keyspace::apply`]), which journals the result for
//! persistence and replication exactly as it does for strings.
//!
//! | type | structure | why |
//! |---|---|---|
//! | hash | up to 128 short fields: one packed buffer ([`packed`], Redis's listpack); then a `BTreeMap` ordered by (hash of field, field) | a small hash costs its bytes; a large one O(log n) field access, an `HSCAN` cursor that never misses a field, O(log n) random picks |
//! | list | `VecDeque` of packed chunks of up to 8 KiB (Redis's quicklist of listpacks) | O(1) push and pop at both ends; a small element costs its bytes plus two, in a shared buffer, not an allocation of its own |
//! | set | as hashes: packed while small, then a `BTreeMap` ordered by (hash of member, member) | as hashes: `SSCAN`, and `SPOP`/`SRANDMEMBER` in O(log n) |
//! | sorted set | member → score map plus a treap ordered by (score, member) | O(log n) rank, select and range start |
//!
//! Hashes and sets are ordered by the hash of their elements for the same reason the
//! keyspace is (see [`crate::keyspace`]): the `*SCAN` cursor is a hash position, so an
//! element present for a whole iteration is returned, and a random position picks a
//! random element without an index. Redis answers `HGETALL`/`SMEMBERS` in no promised
//! order; neither do we.
//!
//! Bitmaps ([`bitmap`], [`bitfield`]) and HyperLogLog ([`hyperloglog`]) are not types of
//! their own: they are strings read bit by bit, as in Redis, and [`bitwrite`] applies their
//! writes through the same write path.
//!
//! Every structure keeps a running count of its payload bytes, so the memory estimate
//! (`used_memory`, `--maxmemory`) is O(1) to update after a write.

pub mod bitfield;
pub mod bitmap;
pub mod bitwrite;
pub mod edit;
pub mod geo;
pub mod geohash;
pub mod hash;
pub mod hyperloglog;
pub mod lcs;
pub mod list;
pub mod ops;
pub mod packed;
pub mod set;
pub mod zset;
pub mod zstore;

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use proto::glob::glob_match;
use rand::Rng;
use rand::seq::index;

use crate::keyspace::Slot;

/// Bytes an element costs beyond its payload (tree node share, `Bytes` header): an
/// estimate, as for keys. Lists count their chunks' buffers instead (see [`list`]).
pub const ELEMENT_OVERHEAD: usize = 48;

/// One page of an `HSCAN`/`SSCAN`/`ZSCAN` over a map ordered by [`Slot`]: visits about
/// `count` elements from `cursor` and calls `emit` for those matching `pattern`. Returns
/// the next cursor (0: done). Elements sharing a hash are never split across pages.
pub fn scan_slots<V>(
    map: &BTreeMap<Slot, V>,
    cursor: u64,
    count: usize,
    pattern: Option<&[u8]>,
    mut emit: impl FnMut(&Bytes, &V),
) -> u64 {
    let mut last_hash = None;
    for (visited, (slot, value)) in map.range(Slot::at(cursor)..).enumerate() {
        if visited >= count && last_hash != Some(slot.hash()) {
            return slot.hash();
        }
        last_hash = Some(slot.hash());
        if pattern.is_none_or(|p| glob_match(p, slot.key())) {
            emit(slot.key(), value);
        }
    }
    0
}

/// The element at or after a random position (`random`: any u64), wrapping around.
pub fn pick<V>(map: &BTreeMap<Slot, V>, random: u64) -> Option<(&Slot, &V)> {
    map.range(Slot::at(random)..)
        .next()
        .or_else(|| map.iter().next())
}

/// `SRANDMEMBER`/`HRANDFIELD`/`ZRANDMEMBER key count`: a positive count gives distinct
/// elements (all of them if it is not smaller than the collection), a negative one
/// `|count|` independent picks that may repeat. Small requests pick random positions in
/// the hash order (O(log n) each); large ones sample the whole collection.
pub fn random_entries<'a, V>(map: &'a BTreeMap<Slot, V>, count: i64) -> Vec<(&'a Bytes, &'a V)> {
    let mut rng = rand::thread_rng();
    let entry = |(slot, v): (&'a Slot, &'a V)| (slot.key(), v);
    if map.is_empty() {
        return Vec::new();
    }
    if count < 0 {
        return (0..count.unsigned_abs())
            .filter_map(|_| pick(map, rng.r#gen()).map(entry))
            .collect();
    }
    let n = (count as usize).min(map.len());
    if n == map.len() {
        return map.iter().map(entry).collect();
    }
    if n * 3 < map.len() {
        let mut seen = HashSet::with_capacity(n);
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            if let Some((slot, v)) = pick(map, rng.r#gen())
                && seen.insert(slot.hash())
            {
                out.push((slot.key(), v));
            }
        }
        return out;
    }
    let all: Vec<_> = map.iter().map(entry).collect();
    index::sample(&mut rng, all.len(), n)
        .into_iter()
        .map(|i| all[i])
        .collect()
}

/// [`random_entries`] over a packed collection's elements (a few dozen at most), each
/// `T` one element or one pair.
pub fn random_items<T: Copy>(all: &[T], count: i64) -> Vec<T> {
    let mut rng = rand::thread_rng();
    if all.is_empty() {
        return Vec::new();
    }
    if count < 0 {
        return (0..count.unsigned_abs())
            .map(|_| all[rng.gen_range(0..all.len())])
            .collect();
    }
    let n = (count as usize).min(all.len());
    index::sample(&mut rng, all.len(), n)
        .into_iter()
        .map(|i| all[i])
        .collect()
}

/// An element serialized as a `Bytes` is (a length and the bytes), without copying it
/// into one: how packed collections write themselves to disk and to replicas.
pub struct ElementBytes<'a>(pub &'a [u8]);

impl serde::Serialize for ElementBytes<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// Copies request bytes into an allocation of their own (see `keyspace::own`).
pub fn own(b: &Bytes) -> Bytes {
    Bytes::copy_from_slice(b)
}

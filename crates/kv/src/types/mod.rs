//! Redis's collection types: hashes, lists, sets and sorted sets.
//!
//! Each type is a plain data structure in its own module, with no knowledge of keys,
//! TTLs or the journal; [`ops`] applies the write commands to them through the keyspace's
//! one write path ([`crate::keyspace::Keyspace::apply`]), which journals the result for
//! persistence and replication exactly as it does for strings.
//!
//! | type | structure | why |
//! |---|---|---|
//! | hash | `BTreeMap` ordered by (hash of field, field) | O(log n) field access, an `HSCAN` cursor that never misses a field, O(log n) random picks |
//! | list | `VecDeque` of packed chunks of up to 8 KiB (Redis's quicklist of listpacks) | O(1) push and pop at both ends; a small element costs its bytes plus two, in a shared buffer, not an allocation of its own |
//! | set | `BTreeMap` ordered by (hash of member, member) | as hashes: `SSCAN`, and `SPOP`/`SRANDMEMBER` in O(log n) |
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
pub mod set;
pub mod zset;
pub mod zstore;

use std::collections::BTreeMap;

use bytes::Bytes;
use proto::glob::glob_match;

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

/// Copies request bytes into an allocation of their own (see `keyspace::own`).
pub fn own(b: &Bytes) -> Bytes {
    Bytes::copy_from_slice(b)
}

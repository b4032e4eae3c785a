//! What a key holds.
//!
//! [`Value`] is an enum: a string, or one of Redis's collections (hash, list, set,
//! sorted set; see [`crate::types`]). Every command that expects one type
//! matches on it and answers `WRONGTYPE` for the others, as Redis does.
//!
//! # What a key costs
//!
//! Each database is a hash table with chaining (see [`crate::keyspace`]'s `table.rs`): a
//! bucket array of pointers, and one node per key holding the key, its entry and the link
//! to the next node of its bucket. Per key, for a 16-byte key holding a 16-byte string
//! (`redis-benchmark -d 16`):
//!
//! | part | first version | B-tree, compact | now, hash table |
//! |---|---|---|---|
//! | hash of the key | 8 | 8 | 8 (in the node) |
//! | the key | `Bytes`, 32 | [`SmallBytes`], 24, the key inside it | the same |
//! | the value | 104: the enum was as large as its largest variant, a sorted set's two maps | 24: strings inline, a small hash or set as its packed buffer's handle, lists and sorted sets boxed | the same |
//! | the deadline | 16 | 16 | 16 |
//! | where the map keeps it | a slot of 160 in a B-tree leaf of 11, leaves about two-thirds full: ~230 | a slot of 72: ~115 | a node of 80 (the above and an 8-byte link; mimalloc's 80-byte class, no slack) and a bucket of 8 (one bucket per key at most, the table doubling when full) |
//! | the key's and the value's own allocations | 16 + 16, and a 32-byte shared header after the first `GET` or `SCAN` clones them | none up to 22 bytes each | none up to 22 bytes each |
//! | measured RSS per key, `bench/memory.sh`, 1M keys | 282 (Redis 7.0: 130) | 123 (Redis 7.0: 129) | 104 (Redis 7.0: 129) |
//!
//! Redis pays for a key a hash-table bucket (8 bytes, at a load factor of 0.5 to 1), a
//! 24-byte `dictEntry`, the key as an `sds` string and a 16-byte object header with the
//! value in it (`embstr`). kv's node is the `dictEntry`, the key and the object header in
//! one allocation. What it does not keep per key: no idle clock or access
//! frequency (`OBJECT IDLETIME` answers 0, kv never evicts), no `WATCH` version (only
//! watched keys have a counter, in [`crate::keyspace::Watches`]), and no second index
//! unless the key has a TTL (then it is also in the database's expiry map: one more slot
//! of 40 bytes, the key copied again when longer than 22 bytes).
//!
//! Small hashes and sets are packed into one buffer (see [`crate::types::packed`]) held
//! by the value itself: a hash of five short fields costs its slot and a buffer of its
//! bytes plus one per element, where it cost a box, a map node sized for eleven fields, and
//! an allocation and a `Bytes` header per field and per value. The hash and the set keep
//! no count (a packed one is counted by walking it) so that the value stays 24 bytes: with
//! a count, 32-byte values cost every string key 13 bytes more (`bench/memory.sh`).

use proto::CommandError;
use serde::{Deserialize, Serialize};

use crate::types::{hash::Hash, list::List, set::Set, zset::ZSet};

mod small;

pub use small::SmallBytes;

/// A value stored under a key: 24 bytes (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// A binary-safe string (Redis's only scalar type; numbers are strings that parse).
    String(SmallBytes),
    // The collections (see `crate::types`). Lists and sorted sets are boxed: a sorted
    // set's maps are 96 bytes, and an unboxed variant would make every string key pay for
    // them. Hashes and sets are 16 bytes (a packed buffer's handle, or a boxed map) and
    // sit here unboxed. New variants go at the end: the variant's position is its tag in
    // the byte format.
    Hash(Hash),
    List(Box<List>),
    Set(Set),
    ZSet(Box<ZSet>),
}

impl Value {
    /// The name `TYPE` reports and `SCAN ... TYPE` filters on.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
            Value::Hash(_) => "hash",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
        }
    }

    /// The string, or `WRONGTYPE` if the key holds another type.
    pub fn as_string(&self) -> Result<&SmallBytes, CommandError> {
        match self {
            Value::String(b) => Ok(b),
            _ => Err(CommandError::WrongType),
        }
    }

    /// Approximate heap bytes, for `used_memory` and `--maxmemory`.
    pub fn memory(&self) -> usize {
        match self {
            Value::String(b) => b.len(),
            Value::Hash(h) => h.memory(),
            Value::List(l) => l.memory(),
            Value::Set(s) => s.memory(),
            Value::ZSet(z) => z.memory(),
        }
    }

    /// Is this an empty collection? Redis never keeps one: the key is deleted instead.
    pub fn is_empty_collection(&self) -> bool {
        match self {
            Value::String(_) => false,
            Value::Hash(h) => h.is_empty(),
            Value::List(l) => l.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::ZSet(z) => z.is_empty(),
        }
    }
}

/// `as_hash`, `as_hash_mut`, ...: the collection, or `WRONGTYPE`.
macro_rules! accessors {
    ($($variant:ident, $ty:ty, $get:ident, $get_mut:ident;)*) => {
        impl Value {
            $(
                pub fn $get(&self) -> Result<&$ty, CommandError> {
                    match self {
                        Value::$variant(v) => Ok(v),
                        _ => Err(CommandError::WrongType),
                    }
                }

                pub fn $get_mut(&mut self) -> Result<&mut $ty, CommandError> {
                    match self {
                        Value::$variant(v) => Ok(v),
                        _ => Err(CommandError::WrongType),
                    }
                }
            )*
        }
    };
}

accessors! {
    Hash, Hash, as_hash, as_hash_mut;
    List, List, as_list, as_list_mut;
    Set, Set, as_set, as_set_mut;
    ZSet, ZSet, as_zset, as_zset_mut;
}

/// A value with its absolute expiry time, if it has one. This pair is also the durable
/// record: storing the *absolute* deadline (not "10 seconds left") is what makes a TTL
/// mean the same thing after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub value: Value,
    /// Unix milliseconds after which the key no longer exists.
    pub expires_at: Option<u64>,
}

impl Entry {
    pub fn new(value: Value, expires_at: Option<u64>) -> Self {
        Entry { value, expires_at }
    }

    /// A key whose deadline is `now` or earlier is gone (Redis: `when <= now`).
    pub fn is_expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sizes the module docs count with: a string key's value and deadline in 40
    /// bytes, a map slot (hash, key, entry) in 72.
    #[test]
    fn a_value_is_24_bytes_and_an_entry_40() {
        assert_eq!(std::mem::size_of::<Value>(), 24);
        assert_eq!(std::mem::size_of::<Entry>(), 40);
        let slot = std::mem::size_of::<crate::keyspace::Slot<SmallBytes>>();
        assert_eq!(slot + std::mem::size_of::<Entry>(), 72);
        // A small hash or set: its packed buffer's handle, in the value.
        assert_eq!(std::mem::size_of::<Hash>(), 16);
        assert_eq!(std::mem::size_of::<Set>(), 16);
    }
}

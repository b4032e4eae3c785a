//! What a key holds.
//!
//! [`Value`] is an enum: a string, or one of Redis's collections (hash, list, set,
//! sorted set; see [`crate::types`]). Every command that expects one type
//! matches on it and answers `WRONGTYPE` for the others, as Redis does.
//!
//! MEMORY_DOC

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
    // The collections (see `crate::types`), boxed: a sorted set's maps are 96 bytes, and
    // an unboxed variant would make every string key pay for them. New variants go at the
    // end: the variant's position is its tag in the byte format.
    Hash(Box<Hash>),
    List(Box<List>),
    Set(Box<Set>),
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
                        Value::$variant(v) => Ok(&**v),
                        _ => Err(CommandError::WrongType),
                    }
                }

                pub fn $get_mut(&mut self) -> Result<&mut $ty, CommandError> {
                    match self {
                        Value::$variant(v) => Ok(&mut **v),
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

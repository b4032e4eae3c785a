//! What a key holds.
//!
//! [`Value`] is an enum from the start: today every value is a string, tomorrow hashes,
//! lists, sets and sorted sets join as variants. Every command that expects one type
//! matches on it and answers `WRONGTYPE` for the others, as Redis does.

use bytes::Bytes;
use proto::CommandError;
use serde::{Deserialize, Serialize};

/// A value stored under a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// A binary-safe string (Redis's only scalar type; numbers are strings that parse).
    String(Bytes),
}

impl Value {
    /// The name `TYPE` reports and `SCAN ... TYPE` filters on.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
        }
    }

    /// The string, or `WRONGTYPE` if the key holds another type.
    pub fn as_string(&self) -> Result<&Bytes, CommandError> {
        match self {
            Value::String(b) => Ok(b),
        }
    }

    /// Approximate heap bytes, for `used_memory` and `--maxmemory`.
    pub fn memory(&self) -> usize {
        match self {
            Value::String(b) => b.len(),
        }
    }
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

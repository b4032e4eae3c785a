//! The writes to collections: one [`Op`] per kind of change, applied through the
//! keyspace's single write path ([`Keyspace::apply`] → [`apply()`] →
//! [`Keyspace::update`]), so persistence and replication see them like any other write.
//!
//! Every `Op` is deterministic given the keyspace and `now`: random choices (`SPOP`) carry
//! their seed in the op.
//!
//! - this module: the vocabulary, [`Op`] and its options, and Redis's index arithmetic.
//! - `apply`: how each `Op` changes its collection and what it journals.
//! - `algebra`: combining sets (`SINTER`, `SUNION`, `SDIFF`).
//!
//! [`Keyspace::apply`]: crate::keyspace::Keyspace::apply
//! [`Keyspace::update`]: crate::keyspace::Keyspace::update

mod algebra;
mod apply;
#[cfg(test)]
mod tests;

use bytes::Bytes;

use super::zset::ScoreBound;

pub use algebra::{Algebra, combine};
pub use apply::{apply, remove_range};

/// `ZADD`'s options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ZAddFlags {
    pub nx: bool,
    pub xx: bool,
    pub gt: bool,
    pub lt: bool,
    /// Count changed members, not only added ones.
    pub ch: bool,
    /// Increment one member's score and reply with it (`ZINCRBY` is `ZADD INCR`).
    pub incr: bool,
}

/// One write to a collection.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    // hashes
    HSet {
        key: Bytes,
        pairs: Vec<(Bytes, Bytes)>,
        only_if_new: bool,
    },
    HDel {
        key: Bytes,
        fields: Vec<Bytes>,
    },
    HIncrBy {
        key: Bytes,
        field: Bytes,
        delta: i64,
    },
    HIncrByFloat {
        key: Bytes,
        field: Bytes,
        delta: f64,
    },
    // lists
    Push {
        key: Bytes,
        values: Vec<Bytes>,
        left: bool,
        only_if_exists: bool,
    },
    /// `count: None` pops one and answers a bulk; `Some(n)` answers an array.
    Pop {
        key: Bytes,
        left: bool,
        count: Option<usize>,
    },
    LSet {
        key: Bytes,
        index: i64,
        value: Bytes,
    },
    LInsert {
        key: Bytes,
        before: bool,
        pivot: Bytes,
        value: Bytes,
    },
    LRem {
        key: Bytes,
        count: i64,
        value: Bytes,
    },
    LTrim {
        key: Bytes,
        start: i64,
        stop: i64,
    },
    /// `LMOVE`/`RPOPLPUSH`: pop from one end of `from`, push to one end of `to`.
    LMove {
        from: Bytes,
        to: Bytes,
        from_left: bool,
        to_left: bool,
    },
    /// `SORT ... STORE`: `dest` becomes a list of `values` (deleted if there are none).
    ListStore {
        dest: Bytes,
        values: Vec<Bytes>,
    },
    // sets
    SAdd {
        key: Bytes,
        members: Vec<Bytes>,
    },
    SRem {
        key: Bytes,
        members: Vec<Bytes>,
    },
    SPop {
        key: Bytes,
        count: Option<usize>,
        seed: u64,
    },
    SMove {
        from: Bytes,
        to: Bytes,
        member: Bytes,
    },
    /// `SINTERSTORE`/`SUNIONSTORE`/`SDIFFSTORE`.
    SStore {
        dest: Bytes,
        keys: Vec<Bytes>,
        algebra: Algebra,
    },
    // sorted sets
    ZAdd {
        key: Bytes,
        flags: ZAddFlags,
        pairs: Vec<(f64, Bytes)>,
    },
    ZRem {
        key: Bytes,
        members: Vec<Bytes>,
    },
    ZRemRangeByRank {
        key: Bytes,
        start: i64,
        stop: i64,
    },
    ZRemRangeByScore {
        key: Bytes,
        min: ScoreBound,
        max: ScoreBound,
    },
    ZPop {
        key: Bytes,
        max: bool,
        count: Option<usize>,
    },
}

impl Op {
    /// Can this write grow memory (refused over `--maxmemory`)?
    pub fn may_grow(&self) -> bool {
        matches!(
            self,
            Op::HSet { .. }
                | Op::HIncrBy { .. }
                | Op::HIncrByFloat { .. }
                | Op::Push { .. }
                | Op::LSet { .. }
                | Op::LInsert { .. }
                | Op::LMove { .. }
                | Op::SAdd { .. }
                | Op::SMove { .. }
                | Op::SStore { .. }
                | Op::ListStore { .. }
                | Op::ZAdd { .. }
        )
    }
}

/// Resolves Redis's `start`/`stop` indexes (negative from the end, inclusive) against a
/// length: the half-open range, empty if nothing is selected.
pub fn index_range(start: i64, stop: i64, len: usize) -> (usize, usize) {
    let len = len as i64;
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let stop = if stop < 0 {
        len + stop
    } else {
        stop.min(len - 1)
    };
    if start > stop || start >= len {
        (0, 0)
    } else {
        (start as usize, stop as usize + 1)
    }
}

/// A splitmix64 step: the deterministic random sequence of `SPOP`'s seed.
pub fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

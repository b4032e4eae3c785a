//! The journal: every change the keyspace makes, in order, for persistence, replication,
//! `WATCH` and the observers.

use bytes::Bytes;

use super::{Touches, Watches};
use crate::types::edit::Edit;
use crate::value::Entry;

/// One change to the durable state, in the order it happened. Serializable: the
/// replication stream ships changes as they are (see `crate::replication`), so a new
/// variant replicates with no further code.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Change {
    /// The key now holds this record (value and absolute deadline).
    Put {
        db: usize,
        key: Bytes,
        entry: Entry,
    },
    Remove {
        db: usize,
        key: Bytes,
    },
    /// A write to the collection at `key`, as its effect on the elements it touched (see
    /// [`Edit`]): O(elements touched) to journal, store and replicate. A key missing where
    /// it is replayed is created empty first (the write created it; no TTL).
    Edit {
        db: usize,
        key: Bytes,
        edit: Edit,
    },
    /// The key's deadline changed (`EXPIRE`, `PERSIST`, `GETEX`), for any type: only the
    /// deadline travels, not the value.
    Expire {
        db: usize,
        key: Bytes,
        at: Option<u64>,
    },
    FlushDb {
        db: usize,
    },
    FlushAll,
    SwapDb {
        a: usize,
        b: usize,
    },
    /// The changes of one `EXEC`, in order: applied all or none. The replication stream
    /// carries it as one message, which a replica applies under one lock; a journal file
    /// holds it as a [`Change::TransactionStart`] and then each change as a record of its
    /// own (see `crate::storage::journal`).
    Transaction(Vec<Change>),
    /// In a journal file only: the next `changes` records are one transaction's. Recovery
    /// applies none of them unless all are there.
    TransactionStart {
        changes: u64,
    },
}

/// The changes made since the journal was last drained. Off when nobody consumes it
/// (no `--dir`), so a pure in-memory server pays nothing for it.
#[derive(Debug, Default)]
pub struct Journal {
    pub(super) enabled: bool,
    pub(super) pending: Vec<Change>,
    /// Number of changes ever journaled: the position of the last one.
    pub(super) seq: u64,
    /// On a replica the data changes only by the primary's stream: a lookup hides a key
    /// past its deadline but does not delete it (see `crate::replication`).
    pub(super) follower: bool,
    /// Watched keys, whose counters every change bumps (see [`watch`]).
    pub(super) watches: Watches,
    /// While an `EXEC` runs: where its changes start in `pending` (see [`watch`]).
    pub(super) open: Option<usize>,
    /// What changes touched, for notifications and client-side caching (see [`touched`]).
    pub(super) touches: Touches,
}

impl Journal {
    /// Records a change, and tells the clients watching its key.
    pub(super) fn push(&mut self, change: Change) {
        if self.watches.is_active() {
            self.watches.touch(&change);
        }
        self.touches.note(&change, false);
        self.record(change);
    }

    /// Records the removal of a key whose deadline passed: no watcher hears of it (see
    /// [`Self::record`]), but observers do, as an expiry.
    pub(super) fn expired(&mut self, change: Change) {
        self.touches.note(&change, true);
        self.record(change);
    }

    /// Records a change no watcher needs to hear of: a key deleted because its deadline
    /// passed was already gone for them (see [`watch`]).
    pub(super) fn record(&mut self, change: Change) {
        if self.enabled {
            self.seq += 1;
            self.pending.push(change);
        }
    }

    /// Must writes describe their changes? Yes while something consumes them (the disk,
    /// replicas), some client watches keys, or an observer reads what they touch.
    pub(super) fn recording(&self) -> bool {
        self.enabled || self.watches.is_active() || self.touches.is_observed()
    }

    /// Position of the last change journaled.
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::testing::{b, set};
    use crate::keyspace::*;
    use crate::value::{SmallBytes, Value};

    #[test]
    fn every_write_is_journaled_in_order() {
        let mut ks = Keyspace::new(true);
        set(&mut ks, "a", "1", Ttl::At(50), 0);
        ks.apply(
            0,
            Mutation::IncrBy {
                key: b("a"),
                delta: 2,
            },
            1,
        )
        .unwrap();
        ks.apply(
            0,
            Mutation::Rename {
                from: b("a"),
                to: b("b"),
                only_if_absent: false,
            },
            2,
        )
        .unwrap();
        ks.apply(0, Mutation::SwapDb { a: 0, b: 3 }, 3).unwrap();
        let (changes, seq) = ks.drain_changes();
        let put = |key: &str, v: &str| Change::Put {
            db: 0,
            key: b(key),
            entry: Entry::new(Value::String(SmallBytes::copy(v.as_bytes())), Some(50)),
        };
        assert_eq!(
            changes,
            vec![
                put("a", "1"),
                put("a", "3"),
                Change::Remove { db: 0, key: b("a") },
                put("b", "3"),
                Change::SwapDb { a: 0, b: 3 },
            ]
        );
        assert_eq!(seq, 5);
        assert_eq!(ks.get(3, &b("b"), 3), Ok(Some(b("3"))));
    }
}

//! What replication needs from the engine: the dataset as a list of changes (the
//! snapshot), and a way to apply the primary's changes as they are.
//!
//! A replica does not re-run the primary's commands: it applies their *effects*, the
//! [`Change`]s the primary's [`Keyspace::apply`] journaled. An effect is the same on every
//! machine — `INCRBYFLOAT`'s result, `SET ... EX 10`'s absolute deadline, a key expired
//! at the primary's moment — so a replica cannot drift from its primary the way it could
//! re-evaluating commands against its own clock.

use super::{Change, Db, Entry, Keyspace, key_slot};
use crate::types::edit::Edit;

impl Keyspace {
    /// Starts journaling if it was off (an in-memory server gets its first replica):
    /// every change from now on is drained by [`Keyspace::drain_changes`].
    pub fn start_journal(&mut self) {
        self.journal.enabled = true;
    }

    /// Makes this keyspace a replica's (`true`) or a primary's (`false`). A replica's
    /// lookups treat a key past its deadline as missing without deleting it: the delete
    /// comes from the primary's stream, so both copies stay identical.
    pub fn set_follower(&mut self, follower: bool) {
        self.journal.follower = follower;
    }

    pub fn is_follower(&self) -> bool {
        self.journal.follower
    }

    /// Every key of every database as a [`Change::Put`], preceded by a
    /// [`Change::FlushAll`]: replaying the list rebuilds this dataset anywhere. Keys
    /// already past their deadline are left out. Short keys and values are copied, long
    /// values shared (see [`crate::value::SmallBytes`]); the caller encodes it after
    /// releasing the lock.
    pub fn snapshot(&self, now: u64) -> Vec<Change> {
        let mut changes = vec![Change::FlushAll];
        for (db, d) in self.dbs.iter().enumerate() {
            for (slot, entry) in d.entries.iter() {
                if !entry.is_expired(now) {
                    changes.push(Change::Put {
                        db,
                        key: slot.key().to_bytes(),
                        entry: entry.clone(),
                    });
                }
            }
        }
        changes
    }

    /// [`Self::snapshot`] sorted by database and key: the same list for two keyspaces
    /// holding the same data, whatever order their keys arrived in and however large
    /// their tables grew (a table's order depends on both; see [`super::table`]). What
    /// tests of recovery and replication compare.
    pub fn dataset(&self, now: u64) -> Vec<Change> {
        let mut changes = self.snapshot(now);
        changes.sort_by(|a, b| match (a, b) {
            (
                Change::Put { db, key, .. },
                Change::Put {
                    db: db2, key: key2, ..
                },
            ) => (db, key).cmp(&(db2, key2)),
            // The leading `FlushAll` stays first.
            (Change::Put { .. }, _) => std::cmp::Ordering::Greater,
            (_, Change::Put { .. }) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Equal,
        });
        changes
    }

    /// Applies one change from a primary, journaling it (so a replica with `--dir`
    /// persists it too).
    pub fn replay(&mut self, change: Change) {
        match change {
            Change::Put { db, key, entry } if db < self.dbs.len() => self.store(db, key, entry),
            Change::Remove { db, key } if db < self.dbs.len() => {
                self.remove(db, &key);
            }
            Change::Edit { db, key, edit } if db < self.dbs.len() => {
                self.replay_edit(db, key, edit)
            }
            Change::Expire { db, key, at } if db < self.dbs.len() && self.holds(db, &key) => {
                self.dbs[db].set_deadline(&key, at);
                self.journal.push(Change::Expire { db, key, at });
            }
            Change::FlushDb { db } if db < self.dbs.len() => {
                self.touch_databases(db, None, 0);
                self.dbs[db] = Db::default();
                self.journal.push(Change::FlushDb { db });
            }
            Change::FlushAll => {
                (0..self.dbs.len()).for_each(|d| self.touch_databases(d, None, 0));
                self.dbs.iter_mut().for_each(|d| *d = Db::default());
                self.journal.push(Change::FlushAll);
            }
            Change::SwapDb { a, b } if a < self.dbs.len() && b < self.dbs.len() => {
                self.touch_databases(a, Some(b), 0);
                self.touch_databases(b, Some(a), 0);
                self.dbs.swap(a, b);
                self.journal.push(Change::SwapDb { a, b });
            }
            // One primary `EXEC`: applied here in one call (under the server's one lock),
            // and journaled again as one transaction.
            Change::Transaction(changes) => {
                self.begin();
                changes.into_iter().for_each(|c| self.replay(c));
                self.commit();
            }
            // A database number this build does not have, or a journal file's
            // transaction marker (the reader consumes those): nothing to apply.
            _ => {}
        }
    }

    /// Applies a collection edit: to the key's collection, or to a new empty one if the
    /// key is missing (the edit created it). A collection the edit empties is removed.
    fn replay_edit(&mut self, db: usize, key: bytes::Bytes, edit: Edit) {
        let d = &mut self.dbs[db];
        let slot = key_slot(&key);
        if !d.entries.contains_key(&slot) {
            d.put(slot.clone(), Entry::new(edit.empty_value(), None));
        }
        let Some(entry) = d.entries.get_mut(&slot) else {
            return;
        };
        let before = entry.value.memory();
        if let Err(e) = edit.apply(&mut entry.value) {
            tracing::warn!("db{db}: cannot apply {edit:?}: {e:?}");
            if entry.value.is_empty_collection() {
                d.take(&slot);
            }
            return;
        }
        d.used = (d.used + entry.value.memory()).saturating_sub(before);
        if entry.value.is_empty_collection() {
            self.remove(db, &key);
        } else {
            if self.track_ready && matches!(entry.value, crate::value::Value::List(_)) {
                self.ready.push((db, key.clone()));
            }
            self.journal.push(Change::Edit { db, key, edit });
        }
    }

    /// Is `key` present in `db`, expired or not? (Tests of replica expiry: the key is
    /// hidden from reads but still held until the primary's delete arrives.)
    pub fn holds(&self, db: usize, key: &[u8]) -> bool {
        self.dbs
            .get(db)
            .is_some_and(|d| d.entries.contains_key(&key_slot(key)))
    }
}

//! One database: the ordered map of keys, the index of keys with a TTL, and the memory
//! estimate, kept in step by every insert and removal.

use std::collections::BTreeMap;

use super::table::Table;
use super::{Key, key_slot};
use crate::value::Entry;

/// Bookkeeping bytes per key beyond its key and value (map node share, headers): an
/// estimate, so `used_memory` grows with the number of keys, not only their sizes.
const KEY_OVERHEAD: usize = 80;

#[derive(Debug, Default)]
pub struct Db {
    /// Every key, probed by hash (see [`Table`]).
    pub(super) entries: Table,
    /// Keys that have a TTL, with their deadline: what the expiry sweep samples.
    pub(super) expires: BTreeMap<Key, u64>,
    /// Where the next sweep round starts.
    pub(super) sweep_cursor: Option<Key>,
    /// Estimated bytes held.
    pub(super) used: usize,
}

pub(super) fn footprint(slot: &Key, entry: &Entry) -> usize {
    slot.key().len() + entry.value.memory() + KEY_OVERHEAD
}

impl Db {
    /// Inserts or replaces, keeping the TTL index and memory estimate in step.
    ///
    /// Overwriting a present key (every `SET` of a hot key) replaces the entry in place:
    /// the map keeps the key it holds, and the TTL index is touched only if a deadline
    /// comes or goes.
    pub(super) fn put(&mut self, slot: Key, entry: Entry) {
        self.used += footprint(&slot, &entry);
        let deadline = entry.expires_at;
        let had_deadline = match self.entries.get_mut(&slot) {
            Some(old) => {
                self.used = self.used.saturating_sub(footprint(&slot, old));
                std::mem::replace(old, entry).expires_at.is_some()
            }
            None => {
                if let Some(at) = deadline {
                    self.expires.insert(slot.clone(), at);
                }
                self.entries.insert(slot, entry);
                return;
            }
        };
        match deadline {
            Some(at) => match self.expires.get_mut(&slot) {
                Some(old) => *old = at,
                None => {
                    self.expires.insert(slot, at);
                }
            },
            None if had_deadline => {
                self.expires.remove(&slot);
            }
            None => {}
        }
    }

    pub(super) fn take(&mut self, slot: &Key) -> Option<Entry> {
        let old = self.entries.remove(slot)?;
        if old.expires_at.is_some() {
            self.expires.remove(slot);
        }
        self.used = self.used.saturating_sub(footprint(slot, &old));
        Some(old)
    }

    /// Changes a present key's deadline in place, keeping the TTL index in step.
    pub(super) fn set_deadline(&mut self, key: &[u8], deadline: Option<u64>) {
        let slot = key_slot(key);
        let Some(entry) = self.entries.get_mut(&slot) else {
            return;
        };
        entry.expires_at = deadline;
        match (deadline, self.expires.get_mut(&slot)) {
            (Some(at), Some(old)) => *old = at,
            (Some(at), None) => {
                self.expires.insert(slot, at);
            }
            (None, _) => {
                self.expires.remove(&slot);
            }
        }
    }

    /// Keys, counting only live ones: O(keys with a TTL).
    pub(super) fn live_len(&self, now: u64) -> usize {
        self.entries.len() - self.expired_count(now)
    }

    pub(super) fn live_volatile(&self, now: u64) -> usize {
        self.expires.len() - self.expired_count(now)
    }

    pub(super) fn expired_count(&self, now: u64) -> usize {
        self.expires.values().filter(|&&at| at <= now).count()
    }
}

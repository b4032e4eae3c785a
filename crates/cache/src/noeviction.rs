//! # noeviction: a cache that refuses instead of forgetting
//!
//! With `noeviction` nothing is ever evicted: a write that would take used memory over
//! `maxmemory` fails with Redis's error, `OOM command not allowed when used memory >
//! 'maxmemory'.`, while reads and deletes keep working. Use it when losing an entry
//! silently is worse than failing a write — i.e. when the "cache" is really a store.
//! The refusal itself happens in [`crate::store::Cache`], before the write; this policy
//! only answers "no victim".

use crate::policy::{EntryMeta, Policy, Slot};

#[derive(Debug, Default)]
pub struct NoEviction;

impl Policy for NoEviction {
    fn insert(&mut self, _slot: Slot, _meta: EntryMeta) {}
    fn access(&mut self, _slot: Slot) {}
    fn update(&mut self, _slot: Slot, _meta: EntryMeta) {}
    fn remove(&mut self, _slot: Slot) {}
    fn victim(&mut self) -> Option<Slot> {
        None
    }
    fn clear(&mut self) {}
}

//! # ttl: evict the entry that expires soonest
//!
//! Every cache entry should carry a TTL; under memory pressure, the entry closest to its
//! expiry is the cheapest to lose — it was about to leave anyway. This is Redis's
//! `volatile-ttl`, made exact: an ordered index `(expires_at, seq) → slot` (a `BTreeSet`,
//! O(log n) per change) whose first element is the victim.
//!
//! Entries without a TTL sort after every entry that has one (as if they expired at the
//! end of time), oldest write first. Redis's `volatile-ttl` would refuse to evict them at
//! all; with `--default-ttl` every entry has a TTL and the difference disappears.

use std::collections::BTreeSet;

use crate::policy::{EntryMeta, Policy, Slot, ensure_slot};

type Key = (u64, u64, Slot);

#[derive(Debug, Default)]
pub struct SoonestExpiry {
    order: BTreeSet<Key>,
    keys: Vec<Option<Key>>,
    seq: u64,
}

impl Policy for SoonestExpiry {
    fn insert(&mut self, slot: Slot, meta: EntryMeta) {
        self.seq += 1;
        let key = (meta.expires_at.unwrap_or(u64::MAX), self.seq, slot);
        ensure_slot(&mut self.keys, slot, None);
        self.keys[slot as usize] = Some(key);
        self.order.insert(key);
    }

    fn access(&mut self, _slot: Slot) {}

    fn update(&mut self, slot: Slot, meta: EntryMeta) {
        self.remove(slot);
        self.insert(slot, meta);
    }

    fn remove(&mut self, slot: Slot) {
        if let Some(key) = self.keys.get_mut(slot as usize).and_then(Option::take) {
            self.order.remove(&key);
        }
    }

    fn victim(&mut self) -> Option<Slot> {
        self.order.first().map(|&(_, _, slot)| slot)
    }

    fn clear(&mut self) {
        self.order.clear();
        self.keys.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soonest_first_then_no_ttl_oldest_first() {
        let mut p = SoonestExpiry::default();
        let meta = |expires_at| EntryMeta {
            hash: 0,
            size: 1,
            expires_at,
        };
        p.insert(0, meta(None));
        p.insert(1, meta(Some(500)));
        p.insert(2, meta(Some(100)));
        p.insert(3, meta(None));
        let mut order = Vec::new();
        while let Some(v) = p.victim() {
            order.push(v);
            p.remove(v);
        }
        assert_eq!(order, vec![2, 1, 0, 3]);
    }
}

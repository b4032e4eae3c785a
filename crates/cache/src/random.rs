//! # Random eviction
//!
//! Evict an entry chosen uniformly at random. It keeps no recency or frequency
//! information at all, which makes it the baseline: a policy that cannot beat random on a
//! skewed workload is not using what it knows. (On a uniform workload nothing beats it.)
//!
//! Picking uniformly needs the live slots in a dense array: `members` holds them and
//! `position[slot]` says where, so removal swaps the last member into the hole — O(1).
//! The generator is SplitMix64 with a fixed seed, so eviction is reproducible in tests.

use crate::policy::{EntryMeta, Policy, Slot, ensure_slot};

const ABSENT: u32 = u32::MAX;

#[derive(Debug)]
pub struct Random {
    members: Vec<Slot>,
    position: Vec<u32>,
    state: u64,
}

impl Default for Random {
    fn default() -> Self {
        Random::with_seed(0x5EED)
    }
}

impl Random {
    pub fn with_seed(seed: u64) -> Self {
        Random {
            members: Vec::new(),
            position: Vec::new(),
            state: seed,
        }
    }

    /// SplitMix64: tiny, fast, good enough to pick victims.
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Policy for Random {
    fn insert(&mut self, slot: Slot, _meta: EntryMeta) {
        ensure_slot(&mut self.position, slot, ABSENT);
        self.position[slot as usize] = self.members.len() as u32;
        self.members.push(slot);
    }

    fn access(&mut self, _slot: Slot) {}

    fn update(&mut self, _slot: Slot, _meta: EntryMeta) {}

    fn remove(&mut self, slot: Slot) {
        let Some(&at) = self.position.get(slot as usize) else {
            return;
        };
        if at == ABSENT {
            return;
        }
        self.members.swap_remove(at as usize);
        if let Some(&moved) = self.members.get(at as usize) {
            self.position[moved as usize] = at;
        }
        self.position[slot as usize] = ABSENT;
    }

    fn victim(&mut self) -> Option<Slot> {
        if self.members.is_empty() {
            return None;
        }
        let at = (self.next_u64() % self.members.len() as u64) as usize;
        Some(self.members[at])
    }

    fn clear(&mut self) {
        self.members.clear();
        self.position.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn victims_are_members_and_removal_is_consistent() {
        let mut r = Random::with_seed(1);
        let meta = EntryMeta {
            hash: 0,
            size: 1,
            expires_at: None,
        };
        for slot in 0..100 {
            r.insert(slot, meta);
        }
        let mut seen = std::collections::HashSet::new();
        while let Some(v) = r.victim() {
            assert!(seen.insert(v), "slot {v} evicted twice");
            r.remove(v);
        }
        assert_eq!(seen.len(), 100);
    }
}

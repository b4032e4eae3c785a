//! # Exact LRU: an intrusive doubly-linked list over slot indices
//!
//! *Least recently used*: evict the entry whose last access is the oldest. Doing it
//! exactly needs an order over all entries that every access can update in O(1). The
//! classic answer is a doubly-linked list: an access unlinks the entry and pushes it on the
//! front, so the back is always the least recently used.
//!
//! The list here is *intrusive* and *index-based*: the cache stores entries in a slab (a
//! `Vec` whose positions, "slots", stay put while an entry lives), and the links are two
//! `u32` slot numbers per entry kept in a parallel `Vec`. No pointers, no `unsafe`, no
//! allocation per entry, and moving an entry to the front is four index writes.
//!
//! Redis's `allkeys-lru` is *approximate*: it samples five keys and evicts the oldest of
//! those (see `maxmemory-samples`). That saves the 16 bytes of links per key, and costs
//! hit ratio: the sample may not contain the true LRU entry. This module is the exact one.
//!
//! [`Lists`] holds the links; several [`List`]s can share it as long as each slot is in at
//! most one of them — W-TinyLFU ([`crate::tinylfu`]) keeps three lists over one `Lists`.

use crate::policy::{EntryMeta, Policy, Slot};

/// "No slot": the end of a list.
pub const NIL: Slot = Slot::MAX;

#[derive(Debug, Clone, Copy)]
struct Link {
    prev: Slot,
    next: Slot,
}

/// The links of every slot (`prev`, `next`), indexed by slot number.
#[derive(Debug, Default)]
pub struct Lists {
    links: Vec<Link>,
}

impl Lists {
    fn ensure(&mut self, slot: Slot) {
        let needed = slot as usize + 1;
        if self.links.len() < needed {
            self.links.resize(
                needed,
                Link {
                    prev: NIL,
                    next: NIL,
                },
            );
        }
    }

    /// The slot after `slot` (towards the back), or [`NIL`].
    pub fn next(&self, slot: Slot) -> Slot {
        self.links.get(slot as usize).map_or(NIL, |l| l.next)
    }
}

/// One list: front = most recently used, back = least recently used.
#[derive(Debug, Clone, Copy)]
pub struct List {
    head: Slot,
    tail: Slot,
    len: usize,
    /// Sum of the sizes of the entries on this list (W-TinyLFU budgets segments in bytes).
    pub bytes: u64,
}

impl Default for List {
    fn default() -> Self {
        List {
            head: NIL,
            tail: NIL,
            len: 0,
            bytes: 0,
        }
    }
}

impl List {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The least recently used slot.
    pub fn back(&self) -> Option<Slot> {
        (self.tail != NIL).then_some(self.tail)
    }

    /// The most recently used slot.
    pub fn front(&self) -> Option<Slot> {
        (self.head != NIL).then_some(self.head)
    }

    /// Links `slot` (not on any list) in at the front.
    pub fn push_front(&mut self, lists: &mut Lists, slot: Slot, size: u64) {
        lists.ensure(slot);
        let old_head = self.head;
        lists.links[slot as usize] = Link {
            prev: NIL,
            next: old_head,
        };
        if old_head == NIL {
            self.tail = slot;
        } else {
            lists.links[old_head as usize].prev = slot;
        }
        self.head = slot;
        self.len += 1;
        self.bytes += size;
    }

    /// Unlinks `slot`, which must be on this list.
    pub fn unlink(&mut self, lists: &mut Lists, slot: Slot, size: u64) {
        let Link { prev, next } = lists.links[slot as usize];
        if prev == NIL {
            self.head = next;
        } else {
            lists.links[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            lists.links[next as usize].prev = prev;
        }
        lists.links[slot as usize] = Link {
            prev: NIL,
            next: NIL,
        };
        self.len -= 1;
        self.bytes -= size;
    }

    /// An access: unlink and push on the front. O(1).
    pub fn move_to_front(&mut self, lists: &mut Lists, slot: Slot, size: u64) {
        if self.head != slot {
            self.unlink(lists, slot, size);
            self.push_front(lists, slot, size);
        }
    }

    pub fn clear(&mut self) {
        *self = List::default();
    }
}

/// The `lru` policy: one list, evict from the back.
#[derive(Debug, Default)]
pub struct Lru {
    lists: Lists,
    list: List,
    /// Each slot's size, to keep `List::bytes` right (not needed by LRU itself).
    sizes: Vec<u64>,
}

impl Lru {
    fn size(&self, slot: Slot) -> u64 {
        self.sizes.get(slot as usize).copied().unwrap_or(0)
    }

    /// Slots from most to least recently used (for tests and `DEBUG`-style inspection).
    pub fn order(&self) -> Vec<Slot> {
        let mut out = Vec::with_capacity(self.list.len());
        let mut at = self.list.front().unwrap_or(NIL);
        while at != NIL {
            out.push(at);
            at = self.lists.next(at);
        }
        out
    }
}

impl Policy for Lru {
    fn insert(&mut self, slot: Slot, meta: EntryMeta) {
        if self.sizes.len() <= slot as usize {
            self.sizes.resize(slot as usize + 1, 0);
        }
        self.sizes[slot as usize] = meta.size;
        self.list.push_front(&mut self.lists, slot, meta.size);
    }

    fn access(&mut self, slot: Slot) {
        let size = self.size(slot);
        self.list.move_to_front(&mut self.lists, slot, size);
    }

    fn update(&mut self, slot: Slot, meta: EntryMeta) {
        // A write is an access; the size may have changed.
        let size = self.size(slot);
        self.list.unlink(&mut self.lists, slot, size);
        self.insert(slot, meta);
    }

    fn remove(&mut self, slot: Slot) {
        let size = self.size(slot);
        self.list.unlink(&mut self.lists, slot, size);
    }

    fn victim(&mut self) -> Option<Slot> {
        self.list.back()
    }

    fn clear(&mut self) {
        self.list.clear();
        self.lists = Lists::default();
        self.sizes.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(size: u64) -> EntryMeta {
        EntryMeta {
            hash: 0,
            size,
            expires_at: None,
        }
    }

    #[test]
    fn back_is_least_recently_used() {
        let mut lru = Lru::default();
        for slot in 0..4 {
            lru.insert(slot, meta(10));
        }
        assert_eq!(lru.order(), vec![3, 2, 1, 0]);
        lru.access(0);
        lru.access(2);
        assert_eq!(lru.order(), vec![2, 0, 3, 1]);
        assert_eq!(lru.victim(), Some(1));
        lru.remove(1);
        assert_eq!(lru.victim(), Some(3));
        lru.remove(2);
        assert_eq!(lru.order(), vec![0, 3]);
        assert_eq!(lru.list.bytes, 20);
        lru.remove(0);
        lru.remove(3);
        assert_eq!(lru.victim(), None);
        assert_eq!(lru.list.bytes, 0);
    }
}

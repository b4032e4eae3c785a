//! A database's keys: a hash table with chaining, scanned with Redis's reverse-binary
//! cursor.
//!
//! ## Why a hash table, and why this one
//!
//! A command finds its key in one probe: the key's hash picks a bucket (its low bits, the
//! table being a power of two long), and the bucket holds a short chain of nodes, one key
//! each — usually one node, as the table doubles when it holds as many keys as buckets.
//! That is two or three cache lines touched per lookup however many keys there are. An
//! ordered map (kv's keyspace was a `BTreeMap` ordered by hash) descends one node per
//! level, comparing against a handful of keys in each: with 40,000 keys, five levels and
//! a dozen cache lines, which was a quarter of a `SET`'s time. Redis's keyspace is this
//! same structure (`dict.c`). The hash is seeded per process (see `key_slot`), so that no
//! client can choose keys that pile up in one bucket.
//!
//! ## SCAN's promise, kept by the order of the buckets
//!
//! `SCAN` promises that a key present for the whole iteration is returned, and kv also
//! that no key is returned twice, while other clients add and remove keys between pages
//! and the table doubles under them. A cursor that counted buckets 0, 1, 2... would break
//! that on a doubling: the keys of bucket `b` move to `b` and `b + size`, and those in
//! `b + size` would be visited twice, or keys from unvisited buckets skipped after a
//! shrink. Redis's answer ([`next_cursor`]) is to count with the bits *reversed*: the
//! cursor walks buckets in order of their reversed index, incrementing the highest bit of
//! the index first. The buckets a key can move to on a doubling (`b` and `b + size`)
//! differ only in the new highest bit, which the reversed count treats as its lowest:
//! both come right after each other, both before or both after the cursor, so a key is
//! visited exactly once whatever the table does between pages. The cursor is the bucket
//! index to visit next, a plain number clients pass back; 0 ends the iteration.
//!
//! The table never shrinks (Redis's shrinks below 10% full, and then its `SCAN` may
//! return a key twice): deleting keys leaves the bucket array, 8 bytes per bucket, at its
//! largest size until `FLUSHDB`/`FLUSHALL` replace the database.
//!
//! ## What a doubling costs
//!
//! Growing moves every node to the new bucket array at once: amortised O(1) per insert,
//! but one insert in a while pays O(keys) (pointer moves only: keys are not hashed
//! again, each node keeps its hash). Redis spreads the same work
//! over the following commands (incremental rehashing, two tables live at once) to bound
//! the latency of that one insert; kv accepts the pause for a simpler table.

use super::Key;
use crate::value::Entry;

/// The bucket array's first size, when the first key arrives.
const FIRST_SIZE: usize = 4;

/// One bucket: a chain of nodes, newest first.
type Chain = Option<Box<Node>>;

#[derive(Debug)]
struct Node {
    key: Key,
    entry: Entry,
    next: Chain,
}

/// Where a key is in the table: its bucket and how far down the chain.
#[derive(Debug, Clone, Copy)]
pub struct Place {
    bucket: usize,
    depth: usize,
}

/// The keys of one database and their entries (see the module docs).
#[derive(Debug, Default)]
pub struct Table {
    /// A power of two long, or empty until the first insert.
    buckets: Vec<Chain>,
    len: usize,
}

/// The cursor after `cursor` for a table of `mask + 1` buckets: the bucket index with its
/// bits reversed, plus one, reversed back (Redis's `dictScan`). The bits above the mask
/// are set first so that the increment carries straight into the masked ones.
fn next_cursor(cursor: u64, mask: u64) -> u64 {
    (cursor | !mask)
        .reverse_bits()
        .wrapping_add(1)
        .reverse_bits()
}

impl Table {
    pub fn len(&self) -> usize {
        self.len
    }

    /// The mask that turns a hash into a bucket index (the table must have buckets).
    fn mask(&self) -> u64 {
        self.buckets.len().saturating_sub(1) as u64
    }

    /// The nodes of the bucket at `index` (masked), newest first.
    fn chain(&self, index: u64) -> impl Iterator<Item = &Node> {
        let first = self
            .buckets
            .get((index & self.mask()) as usize)
            .and_then(|chain| chain.as_deref());
        std::iter::successors(first, |node| node.next.as_deref())
    }

    pub fn get(&self, key: &Key) -> Option<&Entry> {
        self.chain(key.hash())
            .find(|node| node.key == *key)
            .map(|node| &node.entry)
    }

    pub fn get_mut(&mut self, key: &Key) -> Option<&mut Entry> {
        let (place, _) = self.find(key)?;
        self.at_mut(place)
    }

    /// Where `key` is, and its entry: for a caller that looks at the entry before it
    /// decides to change it ([`Self::at_mut`]) or remove it, without comparing keys twice.
    pub fn find(&self, key: &Key) -> Option<(Place, &Entry)> {
        self.chain(key.hash())
            .enumerate()
            .find(|(_, node)| node.key == *key)
            .map(|(depth, node)| {
                let bucket = (key.hash() & self.mask()) as usize;
                (Place { bucket, depth }, &node.entry)
            })
    }

    /// The entry at a place [`Self::find`] returned (nothing changed in between).
    pub fn at_mut(&mut self, place: Place) -> Option<&mut Entry> {
        let mut node = self.buckets.get_mut(place.bucket)?.as_deref_mut()?;
        for _ in 0..place.depth {
            node = node.next.as_deref_mut()?;
        }
        Some(&mut node.entry)
    }

    pub fn contains_key(&self, key: &Key) -> bool {
        self.get(key).is_some()
    }

    /// Stores `entry` under `key`, returning the entry it replaces. A present key keeps
    /// its node (and the `Key` it was stored with); a new one gets a node at the head of
    /// its bucket's chain.
    pub fn insert(&mut self, key: Key, entry: Entry) -> Option<Entry> {
        if let Some(old) = self.get_mut(&key) {
            return Some(std::mem::replace(old, entry));
        }
        if self.len >= self.buckets.len() {
            self.grow();
        }
        let index = (key.hash() & self.mask()) as usize;
        if let Some(chain) = self.buckets.get_mut(index) {
            let next = chain.take();
            *chain = Some(Box::new(Node { key, entry, next }));
            self.len += 1;
        }
        None
    }

    /// Removes `key`, returning the key as it was stored and its entry.
    pub fn remove_entry(&mut self, key: &Key) -> Option<(Key, Entry)> {
        let index = (key.hash() & self.mask()) as usize;
        // Where in the chain the node is, found without holding a mutable borrow, then
        // the link that points at it, reached by walking that many steps.
        let depth = self.chain(key.hash()).position(|node| node.key == *key)?;
        let mut link = self.buckets.get_mut(index)?;
        for _ in 0..depth {
            link = &mut link.as_mut()?.next;
        }
        let node = link.take()?;
        let Node { key, entry, next } = *node;
        *link = next;
        self.len -= 1;
        Some((key, entry))
    }

    pub fn remove(&mut self, key: &Key) -> Option<Entry> {
        self.remove_entry(key).map(|(_, entry)| entry)
    }

    /// Every key and entry, in bucket order.
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &Entry)> {
        (0..self.buckets.len() as u64)
            .flat_map(|index| self.chain(index))
            .map(|node| (&node.key, &node.entry))
    }

    /// Doubles the bucket array and moves every node to its bucket there (see the
    /// module docs): the stored hash says where, no key is hashed again.
    fn grow(&mut self) {
        let size = (self.buckets.len() * 2).max(FIRST_SIZE);
        let old = std::mem::replace(&mut self.buckets, (0..size).map(|_| None).collect());
        let mask = self.mask();
        for mut chain in old {
            while let Some(mut node) = chain {
                chain = node.next.take();
                if let Some(bucket) = self.buckets.get_mut((node.key.hash() & mask) as usize) {
                    node.next = bucket.take();
                    *bucket = Some(node);
                }
            }
        }
    }

    /// One step of `SCAN` from `cursor`: hands every key of the buckets visited to
    /// `visit`, going on until `count` keys were visited (or `10 * count` buckets, so that
    /// a table emptied by deletes answers quickly, as Redis bounds its empty visits), and
    /// returns the cursor to pass back; 0 when the iteration is complete. A bucket is
    /// never split between two steps.
    pub fn scan(&self, mut cursor: u64, count: usize, mut visit: impl FnMut(&Key, &Entry)) -> u64 {
        if self.buckets.is_empty() {
            return 0;
        }
        let mask = self.mask();
        let (mut keys, mut buckets) = (0, 0);
        loop {
            for node in self.chain(cursor) {
                visit(&node.key, &node.entry);
                keys += 1;
            }
            buckets += 1;
            cursor = next_cursor(cursor, mask);
            if cursor == 0 || keys >= count || buckets >= count.saturating_mul(10) {
                return cursor;
            }
        }
    }

    /// The first key in bucket order at or after the bucket that `position` picks,
    /// wrapping around: `RANDOMKEY`'s pick (as Redis's, biased towards keys that share
    /// their bucket with few others, and towards keys after empty buckets).
    pub fn first_from(&self, position: u64) -> Option<(&Key, &Entry)> {
        if self.len == 0 {
            return None;
        }
        let size = self.buckets.len() as u64;
        let start = position & self.mask();
        (start..size)
            .chain(0..start)
            .find_map(|index| self.chain(index).next())
            .map(|node| (&node.key, &node.entry))
    }
}

/// Drops the chains one node at a time: the default drop of a chain recurses once per
/// node, and a long chain must not exhaust the stack.
impl Drop for Table {
    fn drop(&mut self) {
        for chain in &mut self.buckets {
            let mut next = chain.take();
            while let Some(mut node) = next {
                next = node.next.take();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::key_slot;
    use crate::value::{SmallBytes, Value};

    fn entry(v: &str) -> Entry {
        Entry::new(Value::String(SmallBytes::copy(v.as_bytes())), None)
    }

    fn value(e: Option<&Entry>) -> Option<Vec<u8>> {
        match e.map(|e| &e.value) {
            Some(Value::String(s)) => Some(s.to_vec()),
            _ => None,
        }
    }

    /// Every key inserted can be found, replaced and removed, through doublings, and the
    /// count follows.
    #[test]
    fn keys_are_found_replaced_and_removed_through_growth() {
        let mut t = Table::default();
        for i in 0..1_000 {
            assert_eq!(
                t.insert(key_slot(format!("k{i}").as_bytes()), entry("a")),
                None
            );
        }
        assert_eq!(t.len(), 1_000);
        for i in 0..1_000 {
            let k = key_slot(format!("k{i}").as_bytes());
            assert_eq!(value(t.get(&k)), Some(b"a".to_vec()));
            assert!(t.insert(k, entry("b")).is_some());
        }
        assert_eq!(t.len(), 1_000);
        for i in (0..1_000).step_by(2) {
            let k = key_slot(format!("k{i}").as_bytes());
            assert_eq!(value(t.remove(&k).as_ref()), Some(b"b".to_vec()));
            assert_eq!(t.remove(&k), None);
        }
        assert_eq!(t.len(), 500);
        assert_eq!(t.iter().count(), 500);
        for i in 0..1_000 {
            let k = key_slot(format!("k{i}").as_bytes());
            assert_eq!(t.contains_key(&k), i % 2 == 1, "k{i}");
        }
    }

    /// The node is what a key costs in the table (see `value.rs`, "What a key costs"):
    /// the hash, the key, the entry and the link, 80 bytes, one of mimalloc's size classes.
    #[test]
    fn a_node_is_eighty_bytes() {
        assert_eq!(std::mem::size_of::<Node>(), 80);
    }

    /// Where a key lands cannot be computed from the key alone (see `key_slot`): the
    /// process's seed is mixed in.
    #[test]
    fn the_hash_is_seeded() {
        let k = key_slot(b"k");
        assert_ne!(k.hash(), xxhash_rust::xxh3::xxh3_64(b"k"));
    }

    /// For a fixed size, the reversed count visits every bucket exactly once and ends at 0.
    #[test]
    fn the_reverse_binary_cursor_visits_every_bucket_once() {
        for bits in 0..8 {
            let mask = (1u64 << bits) - 1;
            let mut seen = vec![0; 1 << bits];
            let mut cursor = 0;
            loop {
                seen[(cursor & mask) as usize] += 1;
                cursor = next_cursor(cursor, mask);
                if cursor == 0 {
                    break;
                }
            }
            assert!(seen.iter().all(|&n| n == 1), "{bits} bits: {seen:?}");
        }
    }

    /// A scan during which the table doubles several times returns each key present
    /// throughout exactly once.
    #[test]
    fn a_scan_across_doublings_returns_each_key_once() {
        let mut t = Table::default();
        for i in 0..100 {
            t.insert(key_slot(format!("old{i}").as_bytes()), entry("v"));
        }
        let mut seen = std::collections::HashMap::new();
        let (mut cursor, mut added) = (0, 0);
        loop {
            cursor = t.scan(cursor, 5, |key, _| {
                *seen.entry(key.key().to_vec()).or_insert(0) += 1;
            });
            for _ in 0..40 {
                t.insert(key_slot(format!("new{added}").as_bytes()), entry("v"));
                added += 1;
            }
            if cursor == 0 {
                break;
            }
        }
        assert!(
            t.buckets.len() >= 1_024,
            "the table grew: {}",
            t.buckets.len()
        );
        for i in 0..100 {
            assert_eq!(seen.get(format!("old{i}").as_bytes()), Some(&1), "old{i}");
        }
        assert!(seen.values().all(|&n| n == 1));
    }
}

//! # The store: a bounded map with TTLs and a pluggable eviction policy
//!
//! The engine a learner reads first. It is synchronous and knows nothing of sockets:
//! every method takes `now` (unix milliseconds), so tests drive time by hand.
//!
//! Layout:
//!
//! ```text
//! index: HashMap<key, Slot> ──▶ slots: Vec<Option<Entry>>   (a slab; freed slots are reused)
//!                                  ▲
//! expiries: BTreeSet<(expires_at, Slot)>   policy: Box<dyn Policy>  (both speak in slots)
//! ```
//!
//! - **Bounded memory**: every write adds the entry's accounted size
//!   ([`crate::memory`]) to `used`; while `used > maxmemory` the policy names a victim and
//!   it is removed. A write therefore never leaves the store over its limit, except by the
//!   one entry that is larger than the whole limit. Under `noeviction` the write is
//!   refused up front instead ([`Oom`]).
//! - **Expiry**, two ways, as in Redis: *lazily* — a key found expired on access is
//!   deleted then and reported absent — and *actively* — [`Cache::sweep_expired`] (called
//!   by a background task) pops everything due from the `expiries` index, so memory held
//!   by keys nobody reads again is given back too.
//! - **The index** uses the standard library's SipHash with a per-process random key: a
//!   cache stores keys chosen by its clients, and a fast unkeyed hash would let a client
//!   pick keys that all collide (hash flooding). Lookups are memory-bound anyway — the
//!   bucket, the key bytes and the slab entry are three cache misses on a large cache,
//!   much like Redis's dict → entry → object chain.
//! - **Negative entries**: a value of `None` records "the origin has no such key" for a
//!   short TTL, so repeated misses for absent keys do not all reach the origin. They are
//!   invisible to EXISTS, KEYS, SCAN and DBSIZE.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use proto::glob::glob_match;
use xxhash_rust::xxh3::xxh3_64;

use crate::memory::entry_size;
use crate::policy::{EntryMeta, Policy, PolicyKind, Slot};

/// One cached key.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: Bytes,
    /// `None`: a negative entry (the origin has no such key).
    pub value: Option<Bytes>,
    /// Absolute expiry in unix milliseconds.
    pub expires_at: Option<u64>,
    hash: u64,
    size: u64,
}

impl Entry {
    fn meta(&self) -> EntryMeta {
        EntryMeta {
            hash: self.hash,
            size: self.size,
            expires_at: self.expires_at,
        }
    }

    fn expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// The result of a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Hit(Bytes),
    /// A negative entry: the origin was asked recently and has no such key.
    NegativeHit,
    Miss,
}

/// A write refused under `noeviction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oom;

impl std::fmt::Display for Oom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OOM command not allowed when used memory > 'maxmemory'.")
    }
}

impl From<Oom> for proto::CommandError {
    fn from(oom: Oom) -> Self {
        proto::CommandError::Reply(oom.to_string())
    }
}

/// Counters for `INFO stats`.
#[derive(Debug, Default, Clone, Copy)]
pub struct StoreStats {
    pub hits: u64,
    pub misses: u64,
    pub evicted: u64,
    pub expired: u64,
}

pub struct Cache {
    index: HashMap<Bytes, Slot>,
    slots: Vec<Option<Entry>>,
    free: Vec<Slot>,
    expiries: BTreeSet<(u64, Slot)>,
    used: u64,
    maxmemory: u64,
    kind: PolicyKind,
    policy: Box<dyn Policy>,
    negatives: usize,
    pub stats: StoreStats,
}

impl Cache {
    /// A cache bounded to `maxmemory` accounted bytes (0: unbounded).
    pub fn new(maxmemory: u64, kind: PolicyKind) -> Self {
        Cache {
            index: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            expiries: BTreeSet::new(),
            used: 0,
            maxmemory,
            kind,
            policy: kind.build(maxmemory),
            negatives: 0,
            stats: StoreStats::default(),
        }
    }

    pub fn used_memory(&self) -> u64 {
        self.used
    }

    pub fn maxmemory(&self) -> u64 {
        self.maxmemory
    }

    pub fn policy(&self) -> PolicyKind {
        self.kind
    }

    /// Keys that exist (negative entries excluded): `DBSIZE`.
    pub fn len(&self) -> usize {
        self.index.len() - self.negatives
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys with a TTL (negative entries excluded): `INFO keyspace`'s `expires`.
    pub fn expires_count(&self) -> usize {
        self.expiries.len() - self.negatives
    }

    /// The live slot of `key`, deleting it first if it has expired (lazy expiry).
    fn live_slot(&mut self, key: &[u8], now: u64) -> Option<Slot> {
        let slot = *self.index.get(key)?;
        if self.entry(slot)?.expired(now) {
            self.remove_slot(slot);
            self.stats.expired += 1;
            return None;
        }
        Some(slot)
    }

    fn entry(&self, slot: Slot) -> Option<&Entry> {
        self.slots.get(slot as usize)?.as_ref()
    }

    /// A read: counts a hit or a miss and tells the policy.
    pub fn get(&mut self, key: &[u8], now: u64) -> Lookup {
        let Some(slot) = self.live_slot(key, now) else {
            self.stats.misses += 1;
            self.policy.record_miss(xxh3_64(key));
            return Lookup::Miss;
        };
        self.stats.hits += 1;
        self.policy.access(slot);
        match self.entry(slot).and_then(|e| e.value.clone()) {
            Some(value) => Lookup::Hit(value),
            None => Lookup::NegativeHit,
        }
    }

    /// The entry for `key`, if it exists, without counting a read or touching recency
    /// (EXISTS, TTL, the NX/XX checks). Negative entries are included.
    pub fn peek(&mut self, key: &[u8], now: u64) -> Option<&Entry> {
        let slot = self.live_slot(key, now)?;
        self.entry(slot)
    }

    /// The value of an existing (non-negative) key, as [`Cache::peek`].
    pub fn peek_value(&mut self, key: &[u8], now: u64) -> Option<&Entry> {
        self.peek(key, now).filter(|e| e.value.is_some())
    }

    /// Writes `key` (a value, or a negative entry if `value` is `None`), then evicts until
    /// within `maxmemory`. The new entry itself may be the victim (W-TinyLFU can refuse
    /// to admit it).
    pub fn put(
        &mut self,
        key: Bytes,
        value: Option<Bytes>,
        expires_at: Option<u64>,
        now: u64,
    ) -> Result<(), Oom> {
        let size = entry_size(key.len(), value.as_ref().map_or(0, Bytes::len));
        let existing = self.live_slot(&key, now);
        let old_size = existing.and_then(|s| self.entry(s)).map_or(0, |e| e.size);
        if self.kind == PolicyKind::NoEviction
            && self.maxmemory > 0
            && size > old_size
            && self.used - old_size + size > self.maxmemory
        {
            return Err(Oom);
        }
        match existing {
            Some(slot) => {
                let Some(Some(entry)) = self.slots.get_mut(slot as usize) else {
                    return Ok(());
                };
                if entry.value.is_none() {
                    self.negatives -= 1;
                }
                if let Some(at) = entry.expires_at {
                    self.expiries.remove(&(at, slot));
                }
                entry.value = value;
                entry.expires_at = expires_at;
                entry.size = size;
                let meta = entry.meta();
                let negative = entry.value.is_none();
                self.after_write(slot, negative, expires_at);
                self.used = self.used - old_size + size;
                self.policy.update(slot, meta);
            }
            None => {
                let entry = Entry {
                    hash: xxh3_64(&key),
                    key: key.clone(),
                    value,
                    expires_at,
                    size,
                };
                let meta = entry.meta();
                let negative = entry.value.is_none();
                let slot = match self.free.pop() {
                    Some(slot) => {
                        self.slots[slot as usize] = Some(entry);
                        slot
                    }
                    None => {
                        self.slots.push(Some(entry));
                        (self.slots.len() - 1) as Slot
                    }
                };
                self.index.insert(key, slot);
                self.after_write(slot, negative, expires_at);
                self.used += size;
                self.policy.insert(slot, meta);
            }
        }
        self.evict_to_limit();
        Ok(())
    }

    fn after_write(&mut self, slot: Slot, negative: bool, expires_at: Option<u64>) {
        if negative {
            self.negatives += 1;
        }
        if let Some(at) = expires_at {
            self.expiries.insert((at, slot));
        }
    }

    /// Deletes `key`. Returns whether a (non-negative) key existed.
    pub fn remove(&mut self, key: &[u8], now: u64) -> bool {
        match self.live_slot(key, now) {
            Some(slot) => self.remove_slot(slot).is_some_and(|e| e.value.is_some()),
            None => false,
        }
    }

    /// Sets or clears the expiry of an existing key. Returns whether the key existed.
    pub fn set_expiry(&mut self, key: &[u8], expires_at: Option<u64>, now: u64) -> bool {
        let Some(slot) = self.live_slot(key, now) else {
            return false;
        };
        let Some(Some(entry)) = self.slots.get_mut(slot as usize) else {
            return false;
        };
        if entry.value.is_none() {
            return false;
        }
        if let Some(at) = entry.expires_at {
            self.expiries.remove(&(at, slot));
        }
        entry.expires_at = expires_at;
        let meta = entry.meta();
        if let Some(at) = expires_at {
            self.expiries.insert((at, slot));
        }
        self.policy.update(slot, meta);
        true
    }

    fn remove_slot(&mut self, slot: Slot) -> Option<Entry> {
        let entry = self.slots.get_mut(slot as usize)?.take()?;
        self.index.remove(&entry.key);
        if let Some(at) = entry.expires_at {
            self.expiries.remove(&(at, slot));
        }
        if entry.value.is_none() {
            self.negatives -= 1;
        }
        self.used -= entry.size;
        self.policy.remove(slot);
        self.free.push(slot);
        Some(entry)
    }

    /// Evicts until `used <= maxmemory` or the policy refuses.
    fn evict_to_limit(&mut self) {
        while self.maxmemory > 0 && self.used > self.maxmemory {
            let Some(victim) = self.policy.victim() else {
                break;
            };
            if self.remove_slot(victim).is_none() {
                break; // a policy naming a free slot would be a bug; never loop on it
            }
            self.stats.evicted += 1;
        }
    }

    /// Active expiry: deletes up to `limit` entries whose time has come. Returns how many.
    pub fn sweep_expired(&mut self, now: u64, limit: usize) -> usize {
        let mut removed = 0;
        while removed < limit {
            match self.expiries.first() {
                Some(&(at, slot)) if at <= now => {
                    self.remove_slot(slot);
                    self.stats.expired += 1;
                    removed += 1;
                }
                _ => break,
            }
        }
        removed
    }

    /// Changes the limit and evicts down to it.
    pub fn set_maxmemory(&mut self, bytes: u64) {
        self.maxmemory = bytes;
        self.policy.set_capacity(bytes);
        self.evict_to_limit();
    }

    /// Switches policy. The new policy starts without history: it learns every live
    /// entry in slab order, as if each had just been written.
    pub fn set_policy(&mut self, kind: PolicyKind) {
        if kind == self.kind {
            return;
        }
        self.kind = kind;
        self.policy = kind.build(self.maxmemory);
        for (slot, entry) in self.slots.iter().enumerate() {
            if let Some(entry) = entry {
                self.policy.insert(slot as Slot, entry.meta());
            }
        }
        self.evict_to_limit();
    }

    /// FLUSHALL.
    pub fn clear(&mut self) {
        self.index.clear();
        self.slots.clear();
        self.free.clear();
        self.expiries.clear();
        self.used = 0;
        self.negatives = 0;
        self.policy.clear();
    }

    fn visible(entry: &Entry, pattern: Option<&[u8]>, now: u64) -> bool {
        entry.value.is_some()
            && !entry.expired(now)
            && pattern.is_none_or(|p| glob_match(p, &entry.key))
    }

    /// KEYS.
    pub fn keys(&self, pattern: &[u8], now: u64) -> Vec<Bytes> {
        self.slots
            .iter()
            .flatten()
            .filter(|e| Self::visible(e, Some(pattern), now))
            .map(|e| e.key.clone())
            .collect()
    }

    /// SCAN: the cursor is a slab position. An entry keeps its slot for its whole life,
    /// so every key present from the first call to the last is returned (at least once),
    /// however the table changes in between — Redis's SCAN guarantee, without its
    /// reverse-binary cursor trick, because a slab never rehashes.
    pub fn scan(
        &self,
        cursor: u64,
        count: usize,
        pattern: Option<&[u8]>,
        now: u64,
    ) -> (u64, Vec<Bytes>) {
        let start = usize::try_from(cursor).unwrap_or(usize::MAX);
        let mut keys = Vec::new();
        let mut at = start;
        while at < self.slots.len() && at - start < count.max(1) {
            if let Some(e) = &self.slots[at]
                && Self::visible(e, pattern, now)
            {
                keys.push(e.key.clone());
            }
            at += 1;
        }
        let next = if at >= self.slots.len() { 0 } else { at as u64 };
        (next, keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// Room for exactly `n` entries with 2-byte keys and 8-byte values.
    fn room_for(n: u64) -> u64 {
        n * entry_size(2, 8)
    }

    fn fill(c: &mut Cache, keys: &[&str]) {
        for k in keys {
            c.put(b(k), Some(b("vvvvvvvv")), None, 0).unwrap();
        }
    }

    fn present(c: &mut Cache, keys: &[&str]) -> Vec<String> {
        keys.iter()
            .filter(|k| c.peek(k.as_bytes(), 0).is_some())
            .map(|k| k.to_string())
            .collect()
    }

    #[test]
    fn lru_evicts_in_exact_recency_order() {
        let mut c = Cache::new(room_for(4), PolicyKind::Lru);
        fill(&mut c, &["k1", "k2", "k3", "k4"]);
        // Recency now, oldest first: k1 k2 k3 k4. Touch k1 and k3.
        assert!(matches!(c.get(b"k1", 0), Lookup::Hit(_)));
        assert!(matches!(c.get(b"k3", 0), Lookup::Hit(_)));
        // Oldest first: k2 k4 k1 k3. Each new key evicts exactly the next one.
        let all = ["k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8"];
        fill(&mut c, &["k5"]);
        assert_eq!(present(&mut c, &all), ["k1", "k3", "k4", "k5"]);
        fill(&mut c, &["k6"]);
        assert_eq!(present(&mut c, &all), ["k1", "k3", "k5", "k6"]);
        fill(&mut c, &["k7"]);
        assert_eq!(present(&mut c, &all), ["k3", "k5", "k6", "k7"]);
        // Overwriting is a use: k3 is now the most recent, k5 the oldest.
        fill(&mut c, &["k3", "k8"]);
        assert_eq!(present(&mut c, &all), ["k3", "k6", "k7", "k8"]);
        assert_eq!(c.stats.evicted, 4);
        assert_eq!(c.used_memory(), room_for(4));
    }

    #[test]
    fn lfu_keeps_a_frequent_key_that_lru_loses_to_a_scan() {
        for (kind, survives) in [(PolicyKind::Lru, false), (PolicyKind::Lfu, true)] {
            let mut c = Cache::new(room_for(100), kind);
            for _ in 0..10 {
                if c.get(b"hot", 0) == Lookup::Miss {
                    c.put(b("hot"), Some(b("vvvvvvvvv")), None, 0).unwrap();
                }
            }
            // A scan: 1000 distinct keys, each read once (miss, then populate).
            for i in 0..1000 {
                let key = format!("s{i:03}");
                assert_eq!(c.get(key.as_bytes(), 0), Lookup::Miss);
                c.put(b(&key), Some(b("vvvvvvv")), None, 0).unwrap();
            }
            assert_eq!(c.peek(b"hot", 0).is_some(), survives, "{kind}");
            assert!(c.used_memory() <= room_for(100));
        }
    }

    #[test]
    fn ttl_evicts_soonest_expiry_first() {
        let mut c = Cache::new(room_for(3), PolicyKind::Ttl);
        c.put(b("k1"), Some(b("vvvvvvvv")), Some(9_000), 0).unwrap();
        c.put(b("k2"), Some(b("vvvvvvvv")), Some(3_000), 0).unwrap();
        c.put(b("k3"), Some(b("vvvvvvvv")), None, 0).unwrap();
        c.put(b("k4"), Some(b("vvvvvvvv")), Some(5_000), 0).unwrap();
        assert_eq!(
            present(&mut c, &["k1", "k2", "k3", "k4"]),
            ["k1", "k3", "k4"]
        );
        c.put(b("k5"), Some(b("vvvvvvvv")), Some(20_000), 0)
            .unwrap();
        assert_eq!(
            present(&mut c, &["k1", "k3", "k4", "k5"]),
            ["k1", "k3", "k5"]
        );
    }

    #[test]
    fn noeviction_refuses_writes_but_allows_shrinking_and_deletes() {
        let mut c = Cache::new(room_for(2), PolicyKind::NoEviction);
        fill(&mut c, &["k1", "k2"]);
        assert_eq!(c.put(b("k3"), Some(b("vvvvvvvv")), None, 0), Err(Oom));
        assert_eq!(c.put(b("k1"), Some(b("v")), None, 0), Ok(()));
        assert!(c.remove(b"k2", 0));
        fill(&mut c, &["k3"]);
        assert_eq!(c.len(), 2);
        assert_eq!(c.stats.evicted, 0);
    }

    #[test]
    fn random_stays_within_limit() {
        let mut c = Cache::new(room_for(10), PolicyKind::Random);
        for i in 0..100 {
            c.put(b(&format!("{i:02}")), Some(b("vvvvvvvv")), None, 0)
                .unwrap();
            assert!(c.used_memory() <= room_for(10));
        }
        assert_eq!(c.len(), 10);
        assert_eq!(c.stats.evicted, 90);
    }

    #[test]
    fn expiry_is_lazy_and_active() {
        let mut c = Cache::new(0, PolicyKind::Lru);
        c.put(b("a"), Some(b("1")), Some(1_000), 0).unwrap();
        c.put(b("b"), Some(b("2")), Some(2_000), 0).unwrap();
        c.put(b("c"), Some(b("3")), None, 0).unwrap();
        assert_eq!(c.expires_count(), 2);
        assert_eq!(c.get(b"a", 999), Lookup::Hit(b("1")));
        assert_eq!(c.get(b"a", 1_000), Lookup::Miss, "lazy: expired on access");
        assert_eq!(
            c.sweep_expired(5_000, 100),
            1,
            "active: b was never read again"
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c.stats.expired, 2);
        assert_eq!(c.used_memory(), entry_size(1, 1));
        assert!(c.set_expiry(b"c", Some(6_000), 5_000));
        assert_eq!(c.peek(b"c", 5_000).and_then(|e| e.expires_at), Some(6_000));
        assert!(c.set_expiry(b"c", None, 5_000));
        assert_eq!(c.expires_count(), 0);
    }

    #[test]
    fn negative_entries_are_hits_but_not_keys() {
        let mut c = Cache::new(0, PolicyKind::Lru);
        c.put(b("gone"), None, Some(100), 0).unwrap();
        assert_eq!(c.get(b"gone", 50), Lookup::NegativeHit);
        assert_eq!(c.len(), 0);
        assert!(c.keys(b"*", 50).is_empty());
        assert!(!c.remove(b"gone", 50));
        c.put(b("gone"), None, Some(100), 0).unwrap();
        assert_eq!(c.get(b"gone", 100), Lookup::Miss);
        assert_eq!(c.used_memory(), 0);
    }

    #[test]
    fn shrinking_maxmemory_and_switching_policy_evict() {
        let mut c = Cache::new(0, PolicyKind::Lru);
        fill(&mut c, &["k1", "k2", "k3", "k4"]);
        c.set_maxmemory(room_for(2));
        assert_eq!(present(&mut c, &["k1", "k2", "k3", "k4"]), ["k3", "k4"]);
        for kind in PolicyKind::ALL {
            c.set_policy(kind);
            fill(&mut c, &["k5"]);
            assert!(c.used_memory() <= room_for(2), "{kind}");
        }
    }

    #[test]
    fn scan_visits_every_key_exactly_once_when_stable() {
        let mut c = Cache::new(0, PolicyKind::Lru);
        for i in 0..50 {
            c.put(b(&format!("k{i}")), Some(b("v")), None, 0).unwrap();
        }
        c.remove(b"k7", 0);
        let mut seen = Vec::new();
        let mut cursor = 0;
        loop {
            let (next, keys) = c.scan(cursor, 7, Some(b"k*"), 0);
            seen.extend(keys);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 49);
    }
}

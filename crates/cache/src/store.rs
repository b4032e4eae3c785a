//! # The store: a bounded map with TTLs and a pluggable eviction policy
//!
//! The engine a learner reads first. It is synchronous and knows nothing of sockets:
//! every method takes `now` (unix milliseconds), so tests drive time by hand.
//!
//! Layout:
//!
//! ```text
//! index: HashTable<Slot> ──▶ slots: Vec<Option<Entry>>   (a slab; freed slots are reused)
//!                                  │
//!                                  └─▶ key ++ value   (inside the entry if small, else one allocation)
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
//! - **The index** is a table of bare slot numbers (4 bytes a bucket, so it stays in the
//!   CPU cache far longer than a table of keys would); a probe compares against the key in
//!   the slab. A key is hashed once per store call with XXH3 under a *secret drawn at random
//!   when the cache is created*: a cache stores keys chosen by its clients, and a fixed,
//!   public hash would let a client pick keys that all collide (hash flooding). The same
//!   hash feeds the policy's frequency sketch, so it is computed once, not twice.
//! - **One cache line per entry** ([`crate::entry`]): the slab record is 64 bytes, and
//!   small keys and values live inside it; larger ones share one allocation
//!   (`key ++ value`). Lookups are memory-bound: on a large cache every pointer followed
//!   is a cache miss, as in Redis's dict → entry → key → object chain. Here it is index →
//!   slab record, and for a small entry that line holds the key and the value too.
//! - **Negative entries**: a value of `None` records "the origin has no such key" for a
//!   short TTL, so repeated misses for absent keys do not all reach the origin. They are
//!   invisible to EXISTS, KEYS, SCAN and DBSIZE.

use std::collections::BTreeSet;
use std::hash::BuildHasher;

use bytes::Bytes;
use hashbrown::HashTable;
use proto::glob::glob_match;
use xxhash_rust::xxh3::{SecretInput, xxh3_64_with_secret_input};

use crate::changes::Changes;
pub use crate::entry::Entry;
use crate::memory::entry_size;
use crate::policy::{Policy, PolicyKind, Slot};

/// The size of the random XXH3 secret (the library's default secret size).
const SECRET_SIZE: usize = 192;

/// Hashes keys with XXH3 under a secret drawn at random per cache (see the module docs).
struct KeyHasher(SecretInput<[u8; SECRET_SIZE]>);

impl KeyHasher {
    /// A fresh random secret, from the standard library's randomly keyed SipHash state
    /// (seeded from the operating system).
    fn random() -> Self {
        let state = std::collections::hash_map::RandomState::new();
        let mut secret = [0u8; SECRET_SIZE];
        for (i, chunk) in secret.chunks_exact_mut(8).enumerate() {
            chunk.copy_from_slice(&state.hash_one(i).to_le_bytes());
        }
        KeyHasher(SecretInput::new(secret))
    }

    /// A secret derived from `seed`: the same keys hash the same way in every run
    /// (simulations and tests that must be reproducible; never a server's).
    fn seeded(seed: u64) -> Self {
        let mut secret = [0u8; SECRET_SIZE];
        for (i, chunk) in secret.chunks_exact_mut(8).enumerate() {
            let word = xxhash_rust::xxh3::xxh3_64_with_seed(&(i as u64).to_le_bytes(), seed);
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        KeyHasher(SecretInput::new(secret))
    }

    fn hash(&self, key: &[u8]) -> u64 {
        xxh3_64_with_secret_input(key, &self.0)
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
    index: HashTable<Slot>,
    hasher: KeyHasher,
    slots: Vec<Option<Entry>>,
    free: Vec<Slot>,
    expiries: BTreeSet<(u64, Slot)>,
    used: u64,
    maxmemory: u64,
    kind: PolicyKind,
    policy: Box<dyn Policy>,
    negatives: usize,
    pub stats: StoreStats,
    /// Keys changed, for `CLIENT TRACKING` (see [`crate::changes`]).
    pub changes: Changes,
}

impl Cache {
    /// A cache bounded to `maxmemory` accounted bytes (0: unbounded).
    pub fn new(maxmemory: u64, kind: PolicyKind) -> Self {
        Self::with_hasher(maxmemory, kind, KeyHasher::random())
    }

    /// [`Cache::new`] with a key hash fixed by `seed` instead of a random one, so that a
    /// replayed trace gives the same result every time (`crate::workload::simulate`).
    /// A server never uses it: a fixed hash invites hash flooding.
    pub fn with_hash_seed(maxmemory: u64, kind: PolicyKind, seed: u64) -> Self {
        Self::with_hasher(maxmemory, kind, KeyHasher::seeded(seed))
    }

    fn with_hasher(maxmemory: u64, kind: PolicyKind, hasher: KeyHasher) -> Self {
        Cache {
            index: HashTable::new(),
            hasher,
            slots: Vec::new(),
            free: Vec::new(),
            expiries: BTreeSet::new(),
            used: 0,
            maxmemory,
            kind,
            policy: kind.build(maxmemory),
            negatives: 0,
            stats: StoreStats::default(),
            changes: Changes::default(),
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

    /// The slot holding `key` (whose hash is `hash`), expired or not.
    fn find(&self, key: &[u8], hash: u64) -> Option<Slot> {
        let slots = &self.slots;
        self.index
            .find(hash, |&slot| {
                slots
                    .get(slot as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|e| e.hash() == hash && e.key() == key)
            })
            .copied()
    }

    /// The live slot of `key`, deleting it first if it has expired (lazy expiry).
    fn live_slot(&mut self, key: &[u8], hash: u64, now: u64) -> Option<Slot> {
        let slot = self.find(key, hash)?;
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
        let hash = self.hasher.hash(key);
        let Some(slot) = self.live_slot(key, hash, now) else {
            self.stats.misses += 1;
            self.policy.record_miss(hash);
            return Lookup::Miss;
        };
        self.stats.hits += 1;
        self.policy.access(slot);
        match self.entry(slot).and_then(Entry::value) {
            Some(value) => Lookup::Hit(value),
            None => Lookup::NegativeHit,
        }
    }

    /// The entry for `key`, if it exists, without counting a read or touching recency
    /// (EXISTS, TTL, the NX/XX checks). Negative entries are included.
    pub fn peek(&mut self, key: &[u8], now: u64) -> Option<&Entry> {
        let hash = self.hasher.hash(key);
        let slot = self.live_slot(key, hash, now)?;
        self.entry(slot)
    }

    /// The value of an existing (non-negative) key, as [`Cache::peek`].
    pub fn peek_value(&mut self, key: &[u8], now: u64) -> Option<&Entry> {
        self.peek(key, now).filter(|e| e.has_value())
    }

    /// Writes `key` (a value, or a negative entry if `value` is `None`), then evicts until
    /// within `maxmemory`. The new entry itself may be the victim (W-TinyLFU can refuse
    /// to admit it).
    pub fn put(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        expires_at: Option<u64>,
        now: u64,
    ) -> Result<(), Oom> {
        let size = entry_size(key.len(), value.map_or(0, <[u8]>::len));
        let hash = self.hasher.hash(key);
        let existing = self.live_slot(key, hash, now);
        let old_size = existing.and_then(|s| self.entry(s)).map_or(0, Entry::size);
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
                if !entry.has_value() {
                    self.negatives -= 1;
                }
                if let Some(at) = entry.expires_at() {
                    self.expiries.remove(&(at, slot));
                }
                *entry = Entry::new(key, value, expires_at, hash);
                let meta = entry.meta();
                let negative = !entry.has_value();
                self.after_write(slot, negative, expires_at);
                self.used = self.used - old_size + size;
                self.policy.update(slot, meta);
            }
            None => {
                let entry = Entry::new(key, value, expires_at, hash);
                let meta = entry.meta();
                let negative = !entry.has_value();
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
                let slots = &self.slots;
                self.index.insert_unique(hash, slot, |&s| {
                    slots
                        .get(s as usize)
                        .and_then(Option::as_ref)
                        .map_or(0, Entry::hash)
                });
                self.after_write(slot, negative, expires_at);
                self.used += size;
                self.policy.insert(slot, meta);
            }
        }
        self.changes.note(key);
        self.evict_to_limit();
        Ok(())
    }

    /// [`Self::put`] of a value read through from the origin: not a change of the key
    /// (see [`crate::changes`]).
    pub fn fill(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        expires_at: Option<u64>,
        now: u64,
    ) -> Result<(), Oom> {
        let was_on = self.changes.pause();
        let result = self.put(key, value, expires_at, now);
        self.changes.resume(was_on);
        result
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
        let hash = self.hasher.hash(key);
        match self.live_slot(key, hash, now) {
            Some(slot) => self.remove_slot(slot).is_some_and(|e| e.has_value()),
            None => false,
        }
    }

    /// Sets or clears the expiry of an existing key. Returns whether the key existed.
    pub fn set_expiry(&mut self, key: &[u8], expires_at: Option<u64>, now: u64) -> bool {
        let hash = self.hasher.hash(key);
        let Some(slot) = self.live_slot(key, hash, now) else {
            return false;
        };
        let Some(Some(entry)) = self.slots.get_mut(slot as usize) else {
            return false;
        };
        if !entry.has_value() {
            return false;
        }
        if let Some(at) = entry.expires_at() {
            self.expiries.remove(&(at, slot));
        }
        entry.set_expires_at(expires_at);
        self.changes.note(key);
        let meta = entry.meta();
        if let Some(at) = expires_at {
            self.expiries.insert((at, slot));
        }
        self.policy.update(slot, meta);
        true
    }

    fn remove_slot(&mut self, slot: Slot) -> Option<Entry> {
        let entry = self.slots.get_mut(slot as usize)?.take()?;
        if let Ok(found) = self.index.find_entry(entry.hash(), |&s| s == slot) {
            found.remove();
        }
        if let Some(at) = entry.expires_at() {
            self.expiries.remove(&(at, slot));
        }
        if !entry.has_value() {
            self.negatives -= 1;
        }
        self.used -= entry.size();
        self.policy.remove(slot);
        self.free.push(slot);
        self.changes.note(entry.key());
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
        self.changes.flush();
    }

    fn visible(entry: &Entry, pattern: Option<&[u8]>, now: u64) -> bool {
        entry.has_value()
            && !entry.expired(now)
            && pattern.is_none_or(|p| glob_match(p, entry.key()))
    }

    /// KEYS.
    pub fn keys(&self, pattern: &[u8], now: u64) -> Vec<Bytes> {
        self.slots
            .iter()
            .flatten()
            .filter(|e| Self::visible(e, Some(pattern), now))
            .map(|e| Bytes::copy_from_slice(e.key()))
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
                keys.push(Bytes::copy_from_slice(e.key()));
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
    use crate::entry::COPY_OUT_LIMIT;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// Room for exactly `n` entries with 2-byte keys and 8-byte values.
    fn room_for(n: u64) -> u64 {
        n * entry_size(2, 8)
    }

    fn fill(c: &mut Cache, keys: &[&str]) {
        for k in keys {
            c.put(&b(k), Some(&b("vvvvvvvv")[..]), None, 0).unwrap();
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
            // Half full first: W-TinyLFU records reads from then on (`crate::tinylfu`).
            for i in 0..50 {
                let key = format!("w{i:03}");
                c.put(&b(&key), Some(&b("vvvvvvv")[..]), None, 0).unwrap();
            }
            for _ in 0..10 {
                if c.get(b"hot", 0) == Lookup::Miss {
                    c.put(&b("hot"), Some(&b("vvvvvvvvv")[..]), None, 0)
                        .unwrap();
                }
            }
            // A scan: 1000 distinct keys, each read once (miss, then populate).
            for i in 0..1000 {
                let key = format!("s{i:03}");
                assert_eq!(c.get(key.as_bytes(), 0), Lookup::Miss);
                c.put(&b(&key), Some(&b("vvvvvvv")[..]), None, 0).unwrap();
            }
            assert_eq!(c.peek(b"hot", 0).is_some(), survives, "{kind}");
            assert!(c.used_memory() <= room_for(100));
        }
    }

    #[test]
    fn ttl_evicts_soonest_expiry_first() {
        let mut c = Cache::new(room_for(3), PolicyKind::Ttl);
        c.put(&b("k1"), Some(&b("vvvvvvvv")[..]), Some(9_000), 0)
            .unwrap();
        c.put(&b("k2"), Some(&b("vvvvvvvv")[..]), Some(3_000), 0)
            .unwrap();
        c.put(&b("k3"), Some(&b("vvvvvvvv")[..]), None, 0).unwrap();
        c.put(&b("k4"), Some(&b("vvvvvvvv")[..]), Some(5_000), 0)
            .unwrap();
        assert_eq!(
            present(&mut c, &["k1", "k2", "k3", "k4"]),
            ["k1", "k3", "k4"]
        );
        c.put(&b("k5"), Some(&b("vvvvvvvv")[..]), Some(20_000), 0)
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
        assert_eq!(c.put(&b("k3"), Some(&b("vvvvvvvv")[..]), None, 0), Err(Oom));
        assert_eq!(c.put(&b("k1"), Some(&b("v")[..]), None, 0), Ok(()));
        assert!(c.remove(b"k2", 0));
        fill(&mut c, &["k3"]);
        assert_eq!(c.len(), 2);
        assert_eq!(c.stats.evicted, 0);
    }

    #[test]
    fn random_stays_within_limit() {
        let mut c = Cache::new(room_for(10), PolicyKind::Random);
        for i in 0..100 {
            c.put(&b(&format!("{i:02}")), Some(&b("vvvvvvvv")[..]), None, 0)
                .unwrap();
            assert!(c.used_memory() <= room_for(10));
        }
        assert_eq!(c.len(), 10);
        assert_eq!(c.stats.evicted, 90);
    }

    #[test]
    fn expiry_is_lazy_and_active() {
        let mut c = Cache::new(0, PolicyKind::Lru);
        c.put(&b("a"), Some(&b("1")[..]), Some(1_000), 0).unwrap();
        c.put(&b("b"), Some(&b("2")[..]), Some(2_000), 0).unwrap();
        c.put(&b("c"), Some(&b("3")[..]), None, 0).unwrap();
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
        assert_eq!(c.peek(b"c", 5_000).and_then(Entry::expires_at), Some(6_000));
        assert!(c.set_expiry(b"c", None, 5_000));
        assert_eq!(c.expires_count(), 0);
    }

    #[test]
    fn negative_entries_are_hits_but_not_keys() {
        let mut c = Cache::new(0, PolicyKind::Lru);
        c.put(&b("gone"), None, Some(100), 0).unwrap();
        assert_eq!(c.get(b"gone", 50), Lookup::NegativeHit);
        assert_eq!(c.len(), 0);
        assert!(c.keys(b"*", 50).is_empty());
        assert!(!c.remove(b"gone", 50));
        c.put(&b("gone"), None, Some(100), 0).unwrap();
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
    fn small_and_large_values_read_back_whole() {
        let mut c = Cache::new(0, PolicyKind::Lru);
        for len in [0, 1, COPY_OUT_LIMIT, COPY_OUT_LIMIT + 1, 100_000] {
            let value = vec![b'x'; len];
            c.put(b"key", Some(&value), None, 0).unwrap();
            assert_eq!(c.get(b"key", 0), Lookup::Hit(Bytes::from(value)), "{len}");
            assert_eq!(c.peek(b"key", 0).map(Entry::key), Some(&b"key"[..]));
        }
        assert_eq!(c.used_memory(), entry_size(3, 100_000));
    }

    #[test]
    fn key_hashes_are_keyed_per_cache() {
        let (a, b) = (KeyHasher::random(), KeyHasher::random());
        assert_ne!(a.hash(b"key"), b.hash(b"key"));
        assert_eq!(a.hash(b"key"), a.hash(b"key"));
    }

    #[test]
    fn scan_visits_every_key_exactly_once_when_stable() {
        let mut c = Cache::new(0, PolicyKind::Lru);
        for i in 0..50 {
            c.put(&b(&format!("k{i}")), Some(&b("v")[..]), None, 0)
                .unwrap();
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

//! # Eviction policies: who leaves when the cache is full
//!
//! A bounded cache must pick a victim whenever a write would take it over `maxmemory`.
//! The policy only decides *which* entry; the store ([`crate::store`]) does the removing
//! and the memory accounting. Every policy sees the same events, by slot number (the
//! entry's position in the store's slab):
//!
//! | event | when |
//! |---|---|
//! | `insert` | a new key was written |
//! | `access` | a read hit |
//! | `update` | an existing key was overwritten or its TTL changed |
//! | `remove` | a key left (deleted, expired or evicted) |
//! | `record_miss` | a read missed (frequency-based policies count it) |
//! | `victim` | the store is over its limit: which slot should go? |
//!
//! The policies, each in its own module:
//!
//! - [`lru`](crate::lru): exact least-recently-used, an intrusive linked list.
//! - [`lfu`](crate::tinylfu): W-TinyLFU — a small LRU window, a frequency sketch that
//!   decides admission to a segmented-LRU main space. Scan- and burst-resistant.
//! - [`random`](crate::random): any entry, uniformly. The baseline every other policy
//!   must beat.
//! - [`ttl`](crate::ttl): the entry that expires soonest (it was going to leave anyway).
//! - [`noeviction`](crate::noeviction): never evict; writes over the limit fail with `OOM`.

use std::fmt;

/// An entry's position in the store's slab. Stable while the entry lives.
pub type Slot = u32;

/// What a policy may want to know about an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryMeta {
    /// A 64-bit hash of the key (frequency sketches index by it).
    pub hash: u64,
    /// The entry's accounted size in bytes (see [`crate::memory`]).
    pub size: u64,
    /// Absolute expiry time in unix milliseconds, if any.
    pub expires_at: Option<u64>,
}

/// One eviction policy. Implementations keep their own per-slot bookkeeping.
pub trait Policy: Send {
    fn insert(&mut self, slot: Slot, meta: EntryMeta);
    fn access(&mut self, slot: Slot);
    fn update(&mut self, slot: Slot, meta: EntryMeta);
    fn remove(&mut self, slot: Slot);
    /// The entry to evict next, or `None` to refuse. The store removes it (calling
    /// [`Policy::remove`]) and asks again while it is still over the limit.
    fn victim(&mut self) -> Option<Slot>;
    /// A read of a key that is not in the cache.
    fn record_miss(&mut self, _hash: u64) {}
    /// The memory limit changed (policies with segments budget them from it).
    fn set_capacity(&mut self, _bytes: u64) {}
    /// Forget everything (FLUSHALL).
    fn clear(&mut self);
}

/// The `--maxmemory-policy` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    Lru,
    Lfu,
    Random,
    Ttl,
    NoEviction,
}

impl PolicyKind {
    pub const ALL: [PolicyKind; 5] = [
        PolicyKind::Lru,
        PolicyKind::Lfu,
        PolicyKind::Random,
        PolicyKind::Ttl,
        PolicyKind::NoEviction,
    ];

    /// Our names, plus Redis's names for the same behaviour so that a configuration
    /// written for Redis works (`allkeys-lru` → `lru`, `volatile-ttl` → `ttl`).
    pub fn parse(name: &str) -> Option<PolicyKind> {
        Some(match name.to_ascii_lowercase().as_str() {
            "lru" | "allkeys-lru" => PolicyKind::Lru,
            "lfu" | "allkeys-lfu" | "w-tinylfu" | "tinylfu" => PolicyKind::Lfu,
            "random" | "allkeys-random" => PolicyKind::Random,
            "ttl" | "volatile-ttl" => PolicyKind::Ttl,
            "noeviction" => PolicyKind::NoEviction,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Lru => "lru",
            PolicyKind::Lfu => "lfu",
            PolicyKind::Random => "random",
            PolicyKind::Ttl => "ttl",
            PolicyKind::NoEviction => "noeviction",
        }
    }

    /// A fresh, empty policy of this kind.
    pub fn build(self, capacity: u64) -> Box<dyn Policy> {
        let mut policy: Box<dyn Policy> = match self {
            PolicyKind::Lru => Box::<crate::lru::Lru>::default(),
            PolicyKind::Lfu => Box::<crate::tinylfu::WTinyLfu>::default(),
            PolicyKind::Random => Box::<crate::random::Random>::default(),
            PolicyKind::Ttl => Box::<crate::ttl::SoonestExpiry>::default(),
            PolicyKind::NoEviction => Box::new(crate::noeviction::NoEviction),
        };
        policy.set_capacity(capacity);
        policy
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Grows a per-slot vector so that `slot` is a valid index.
pub(crate) fn ensure_slot<T: Clone>(v: &mut Vec<T>, slot: Slot, fill: T) {
    let needed = slot as usize + 1;
    if v.len() < needed {
        v.resize(needed, fill);
    }
}

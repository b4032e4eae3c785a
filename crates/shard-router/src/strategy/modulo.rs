//! Modulo hashing: `shard = hash(key) mod N`.
//!
//! The first idea everyone has, and a fine one while N never changes: it is one division,
//! needs no state, and spreads keys exactly as evenly as the hash does.
//!
//! Its flaw shows the day N changes. A key stays put only if `h mod N == h mod (N+1)`,
//! which holds for about 1 key in N+1. Going from 10 to 11 shards therefore moves about
//! **10/11 of all keys** — nearly a full reload of the data set, and for a cache, a
//! near-total miss storm. Every other hash strategy here exists to fix that.

/// `hash mod shards`. `shards` must be at least 1.
pub fn shard_of(hash: u64, shards: usize) -> usize {
    (hash % shards.max(1) as u64) as usize
}

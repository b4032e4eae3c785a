//! Rendezvous hashing, or highest random weight (Thaler and Ravishankar, 1996).
//!
//! Every shard "bids" for every key: `score = f(hash(key), shard)`, a pseudo-random number
//! per (key, shard) pair, and the highest bid wins. No ring, no table: just N hashes per key.
//!
//! Consistency follows from the definition: adding a shard changes a key's owner only if
//! the newcomer's bid beats the old winner — for exactly `1/(N+1)` of the keys — and removing
//! a shard only re-homes the keys that shard had won (each goes to its runner-up, so the
//! load of the leaver spreads evenly over all the others, which a ring with few points
//! does not do). The cost is O(N) per lookup, fine for tens of shards.
//!
//! Weights: with `u` the bid mapped to (0, 1), a shard of weight `w` scores `w / -ln(u)`
//! ("logarithmic method", Schindelhauer and Schomaker); each shard then wins a share of the
//! keys proportional to its weight, and changing one weight moves only the keys it must.
//!
//! The per-shard bid mixes the key's 64-bit hash with a seed derived from the shard *name*
//! through splitmix64's finaliser, so the key is hashed once, not N times.

use xxhash_rust::xxh3::xxh3_64;

#[derive(Debug, Clone)]
pub struct Rendezvous {
    /// Per shard: (seed from its name, weight).
    shards: Vec<(u64, f64)>,
}

impl Rendezvous {
    pub fn new<'a>(shards: impl IntoIterator<Item = (&'a str, u32)>) -> Self {
        Rendezvous {
            shards: shards
                .into_iter()
                .map(|(name, weight)| (xxh3_64(name.as_bytes()), f64::from(weight.max(1))))
                .collect(),
        }
    }

    /// The shard with the highest weighted bid for this key hash.
    pub fn shard_of(&self, hash: u64) -> usize {
        self.best_usable(hash, |_| true).unwrap_or(0)
    }

    /// The highest bidder among the `usable` shards: the owner once the others are
    /// removed. `None` if no shard is usable.
    pub fn best_usable(&self, hash: u64, usable: impl Fn(usize) -> bool) -> Option<usize> {
        let mut best: Option<(f64, usize)> = None;
        for (shard, &(seed, weight)) in self.shards.iter().enumerate() {
            if !usable(shard) {
                continue;
            }
            // Top 53 bits as a float in (0, 1): never 0, never 1.
            let u = ((mix(hash ^ seed) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            let score = weight / -u.ln();
            if best.is_none_or(|(top, _)| score > top) {
                best = Some((score, shard));
            }
        }
        best.map(|(_, shard)| shard)
    }
}

/// splitmix64's finaliser: a bijection on u64 that flips about half the output bits for
/// any one-bit change of the input.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

//! # A frequency sketch: counting billions of keys in a few kilobytes
//!
//! W-TinyLFU needs "how often has this key been asked for *recently*?" for keys that are
//! in the cache and, crucially, for keys that are not. Exact counts for every key ever
//! seen would cost more memory than the cache. A *count-min sketch* trades exactness for
//! a fixed size: `DEPTH` rows of `width` small counters; a key increments one counter per
//! row (chosen by a different hash per row) and its estimate is the *minimum* of its
//! counters. Collisions can only add, so the estimate never undercounts; taking the
//! minimum over rows makes overcounting unlikely.
//!
//! Three refinements from the TinyLFU paper (Einziger, Friedman, Manes, 2017):
//!
//! - **4-bit counters**, 16 per `u64`. Admission only compares frequencies, and a cache
//!   only cares whether a key is "hot", so counting up to 15 is enough.
//! - **Aging ("reset")**: after `sample_size` increments (80 × the expected number of
//!   entries) every counter is halved. Old popularity decays, so yesterday's hit does not
//!   keep its place forever — the sketch measures *recent* frequency.
//! - **Doorkeeper**: a Bloom filter in front of the counters. A key's first occurrence
//!   only sets its doorkeeper bits; only repeat visitors touch the counters. Most keys in
//!   a long-tailed workload are seen once, so the counters stay uncluttered by them. The
//!   estimate adds one if the doorkeeper knows the key. The reset clears the doorkeeper.

const DEPTH: usize = 4;
/// 4-bit counters per expected entry: 32 (16 bytes), twice Caffeine's.
const COUNTERS_PER_ENTRY: usize = 32;
/// Increments between two agings, per expected entry (Caffeine: 10).
const SAMPLE_PER_ENTRY: usize = 80;
/// Counters in one block: 8 words of 16.
const COUNTERS_PER_BLOCK: usize = 8 * 16;

/// Everything one key touches: its four counters and its doorkeeper bits, in one
/// 128-byte-aligned block (two adjacent cache lines, which the CPU's adjacent-line
/// prefetcher fetches together). The frequency sketch is read and written on every
/// request, for keys spread uniformly over it: on a large cache each use is a cache miss,
/// so the layout is what decides its cost. A `Vec<u64>` would start anywhere (the
/// allocator aligns to 16 bytes), so a 64-byte group of words would straddle lines.
#[derive(Debug, Clone, Copy, Default)]
#[repr(align(128))]
struct Block {
    /// 4-bit counters, 16 per word; row `i` lives in word `2i` or `2i + 1`.
    counters: [u64; 8],
    /// The doorkeeper's 512 bits for the keys that map to this block.
    doorkeeper: [u64; 8],
}

#[derive(Debug, Clone)]
pub struct FrequencySketch {
    blocks: Vec<Block>,
    /// The number of entries the sketch is sized for, a power of two.
    width: usize,
    block_mask: usize,
    additions: usize,
    sample_size: usize,
}

/// A well-mixed 64-bit value from a hash (the final step of SplitMix64), so that every
/// bit of the key hash influences every bit we slice out of this one.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl FrequencySketch {
    /// A sketch sized for about `expected_entries` distinct hot keys: `width` is that
    /// rounded up to a power of two.
    ///
    /// The sizes are chosen for *discrimination* at the cache's boundary, where admission
    /// decisions are made. On a Zipf(0.99) trace the key ranked C (the last that should
    /// fit a C-entry cache) is seen about once per 10·C requests, and the keys just
    /// outside the cache barely less: counted over Caffeine's 10·C requests, both read "1"
    /// and the contest is a coin toss. So this sketch ages every
    /// [`SAMPLE_PER_ENTRY`]·width increments, and has [`COUNTERS_PER_ENTRY`] counters per
    /// expected entry (a key uses [`DEPTH`] of them, so collisions stay rare at that
    /// longer horizon). A workload whose popularity *moves* is the window's business: the
    /// hill climber ([`crate::hill_climber`]) grows it when recency pays.
    pub fn new(expected_entries: usize) -> Self {
        let width = expected_entries.max(64).next_power_of_two();
        let blocks = width * COUNTERS_PER_ENTRY / COUNTERS_PER_BLOCK;
        FrequencySketch {
            blocks: vec![Block::default(); blocks],
            width,
            block_mask: blocks - 1,
            additions: 0,
            sample_size: SAMPLE_PER_ENTRY * width,
        }
    }

    pub fn width(&self) -> usize {
        self.width
    }

    /// Increments between two agings: the "recent" in recent frequency.
    pub fn sample_size(&self) -> usize {
        self.sample_size
    }

    fn block(&self, hash: u64) -> usize {
        (hash as usize) & self.block_mask
    }

    /// Where the key's counter for each row lives in its block: `(word, shift)`.
    ///
    /// A textbook count-min sketch puts each row in its own array, so a lookup touches
    /// `DEPTH` random cache lines. Here (as in Caffeine) the hash first picks one *block*,
    /// and all four counters live inside it — row `i` in word `2i` or `2i + 1` of the
    /// block, at a nibble chosen by another slice of the hash. One cache miss per lookup
    /// instead of four; the rows stay independent enough because the nibble and word
    /// choices come from different hash bits.
    fn slots(hash: u64) -> [(usize, u32); DEPTH] {
        let counter_hash = mix(hash);
        std::array::from_fn(|row| {
            let h = counter_hash >> (row * 8);
            let word = (row << 1) + (h & 1) as usize;
            let nibble = ((h >> 1) & 15) as u32;
            (word, nibble * 4)
        })
    }

    fn counter(block: &Block, (word, shift): (usize, u32)) -> u64 {
        (block.counters[word] >> shift) & 0xF
    }

    /// The doorkeeper's word for a key in its block and the key's bits in it (one per
    /// row): a *blocked* Bloom filter, one word per key.
    fn doorkeeper_bits(hash: u64) -> (usize, u64) {
        let h = mix(hash ^ 0x9E37_79B9_7F4A_7C15);
        let word = (h >> 24) as usize & 7;
        let mask = (0..DEPTH).fold(0u64, |m, i| m | 1u64 << ((h >> (i * 6)) & 63));
        (word, mask)
    }

    /// Estimated recent frequency of the key with this hash (0..=16).
    pub fn estimate(&self, hash: u64) -> u8 {
        let block = &self.blocks[self.block(hash)];
        let min = Self::slots(hash)
            .into_iter()
            .map(|slot| Self::counter(block, slot))
            .min()
            .unwrap_or(0);
        let (word, mask) = Self::doorkeeper_bits(hash);
        min as u8 + u8::from(block.doorkeeper[word] & mask == mask)
    }

    /// Records one occurrence of the key.
    pub fn increment(&mut self, hash: u64) {
        let index = self.block(hash);
        let block = &mut self.blocks[index];
        let (word, mask) = Self::doorkeeper_bits(hash);
        if block.doorkeeper[word] & mask != mask {
            block.doorkeeper[word] |= mask;
        } else {
            // Conservative update: only raise the counters that hold the minimum. It
            // keeps the estimate as tight as the plain update, with less overcounting.
            let slots = Self::slots(hash);
            let min = slots
                .iter()
                .map(|&s| Self::counter(block, s))
                .min()
                .unwrap_or(0);
            if min < 15 {
                for slot in slots {
                    if Self::counter(block, slot) == min {
                        block.counters[slot.0] += 1u64 << slot.1;
                    }
                }
            }
        }
        self.additions += 1;
        if self.additions >= self.sample_size {
            self.reset();
        }
    }

    /// Aging: halve every counter and clear the doorkeeper.
    fn reset(&mut self) {
        for block in &mut self.blocks {
            for word in &mut block.counters {
                // Shift every nibble right by one; the mask drops the bit that crossed
                // into the neighbouring nibble.
                *word = (*word >> 1) & 0x7777_7777_7777_7777;
            }
            block.doorkeeper = [0; 8];
        }
        self.additions /= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(i: u64) -> u64 {
        xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes())
    }

    #[test]
    fn counts_and_never_undercounts() {
        let mut s = FrequencySketch::new(1024);
        for _ in 0..5 {
            s.increment(hash(1));
        }
        s.increment(hash(2));
        assert_eq!(s.estimate(hash(1)), 5);
        assert_eq!(s.estimate(hash(2)), 1, "the doorkeeper remembers one visit");
        assert_eq!(s.estimate(hash(3)), 0);
        for _ in 0..40 {
            s.increment(hash(1));
        }
        assert_eq!(
            s.estimate(hash(1)),
            16,
            "15 in the counters + the doorkeeper"
        );
    }

    #[test]
    fn aging_halves_counts() {
        let mut s = FrequencySketch::new(64);
        for _ in 0..9 {
            s.increment(hash(7));
        }
        assert_eq!(s.estimate(hash(7)), 9);
        // Another key's visits push the sketch to its sample size: a reset happens.
        loop {
            let before = s.additions;
            s.increment(hash(8));
            if s.additions < before {
                break;
            }
        }
        // 8 counted (the first visit went to the doorkeeper), halved to 4, doorkeeper cleared.
        assert_eq!(s.estimate(hash(7)), 4);
    }
}

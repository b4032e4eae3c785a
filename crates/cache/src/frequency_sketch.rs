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
//! - **Aging ("reset")**: after `sample_size` increments (10 × the expected number of
//!   entries) every counter is halved. Old popularity decays, so yesterday's hit does not
//!   keep its place forever — the sketch measures *recent* frequency.
//! - **Doorkeeper**: a Bloom filter in front of the counters. A key's first occurrence
//!   only sets its doorkeeper bits; only repeat visitors touch the counters. Most keys in
//!   a long-tailed workload are seen once, so the counters stay uncluttered by them. The
//!   estimate adds one if the doorkeeper knows the key. The reset clears the doorkeeper.

const DEPTH: usize = 4;
/// Odd 64-bit constants, one per row, to derive each row's index from the key hash.
const SEEDS: [u64; DEPTH] = [
    0x9E37_79B9_7F4A_7C15,
    0xC2B2_AE3D_27D4_EB4F,
    0x1656_67B1_9E37_79F9,
    0x27D4_EB2F_1656_67C5,
];

#[derive(Debug, Clone)]
pub struct FrequencySketch {
    /// `DEPTH * width` 4-bit counters, 16 per word, row-major.
    counters: Vec<u64>,
    /// Bloom filter bits (the doorkeeper), `width` bits per row-hash.
    doorkeeper: Vec<u64>,
    width: usize,
    /// `log2(width)`.
    shift: u32,
    additions: usize,
    sample_size: usize,
}

impl FrequencySketch {
    /// A sketch sized for about `expected_entries` distinct hot keys.
    pub fn new(expected_entries: usize) -> Self {
        let width = expected_entries.max(64).next_power_of_two();
        FrequencySketch {
            counters: vec![0; DEPTH * width / 16],
            doorkeeper: vec![0; width / 64 * DEPTH],
            width,
            shift: width.trailing_zeros(),
            additions: 0,
            sample_size: 10 * width,
        }
    }

    pub fn width(&self) -> usize {
        self.width
    }

    fn index(&self, hash: u64, row: usize) -> usize {
        // Multiply-shift hashing: the top `shift` bits of hash × odd seed.
        let mixed = (hash ^ (hash >> 32)).wrapping_mul(SEEDS[row]);
        (mixed >> (64 - self.shift)) as usize
    }

    fn counter(&self, row: usize, column: usize) -> u64 {
        let at = row * self.width + column;
        (self.counters[at / 16] >> ((at % 16) * 4)) & 0xF
    }

    fn doorkeeper_bit(&self, row: usize, column: usize) -> (usize, u64) {
        let bit = row * self.width + column;
        (bit / 64, 1u64 << (bit % 64))
    }

    fn in_doorkeeper(&self, hash: u64) -> bool {
        (0..DEPTH).all(|row| {
            let (word, mask) = self.doorkeeper_bit(row, self.index(hash, row));
            self.doorkeeper[word] & mask != 0
        })
    }

    /// Estimated recent frequency of the key with this hash (0..=16).
    pub fn estimate(&self, hash: u64) -> u8 {
        let min = (0..DEPTH)
            .map(|row| self.counter(row, self.index(hash, row)))
            .min()
            .unwrap_or(0);
        min as u8 + u8::from(self.in_doorkeeper(hash))
    }

    /// Records one occurrence of the key.
    pub fn increment(&mut self, hash: u64) {
        if !self.in_doorkeeper(hash) {
            for row in 0..DEPTH {
                let (word, mask) = self.doorkeeper_bit(row, self.index(hash, row));
                self.doorkeeper[word] |= mask;
            }
        } else {
            // Conservative update: only raise the counters that hold the minimum. It
            // keeps the estimate as tight as the plain update, with less overcounting.
            let columns: [usize; DEPTH] = std::array::from_fn(|row| self.index(hash, row));
            let min = (0..DEPTH)
                .map(|row| self.counter(row, columns[row]))
                .min()
                .unwrap_or(0);
            if min < 15 {
                for (row, &column) in columns.iter().enumerate() {
                    if self.counter(row, column) == min {
                        let at = row * self.width + column;
                        self.counters[at / 16] += 1u64 << ((at % 16) * 4);
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
        for word in &mut self.counters {
            // Shift every nibble right by one; the mask drops the bit that crossed
            // into the neighbouring nibble.
            *word = (*word >> 1) & 0x7777_7777_7777_7777;
        }
        self.doorkeeper.fill(0);
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

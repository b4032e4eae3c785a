//! Jump consistent hash (Lamping and Veach, Google, 2014).
//!
//! A consistent hash in five lines, with no ring and no memory: it maps a 64-bit key to a
//! bucket in `0..N` so that growing N to N+1 moves exactly the `1/(N+1)` of keys that must
//! move (each to the new bucket), and the load is perfectly even.
//!
//! How it works: imagine growing the cluster one bucket at a time. When bucket `j` is
//! added, each key jumps into it with probability `1/(j+1)` — exactly the fraction needed
//! to keep the buckets even. A pseudo-random generator seeded by the key decides, for this
//! key, *where its next jump happens*, so instead of simulating every bucket we skip
//! straight from one jump to the next: O(log N) steps.
//!
//! The price: buckets are numbers, not names. You can only add or remove shards at the
//! *end* of the list; removing shard 3 of 10 renumbers 4..9 and moves their keys. There are
//! no weights either. Use it when shards are interchangeable and only grow (storage
//! partitions), use ketama or rendezvous when a shard in the middle may leave.

/// The bucket in `0..buckets` for `key`. `buckets` must be at least 1.
pub fn jump_hash(mut key: u64, buckets: usize) -> usize {
    let buckets = buckets.max(1) as i64;
    let (mut b, mut j) = (-1i64, 0i64);
    while j < buckets {
        b = j;
        // A linear congruential step: the key's own random sequence.
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        // Next bucket count at which this key jumps: (b+1) / r, r uniform in (0,1].
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as usize
}

#[cfg(test)]
mod tests {
    use super::jump_hash;

    #[test]
    fn stays_in_range_and_only_moves_to_the_new_bucket() {
        assert_eq!(jump_hash(0, 1), 0);
        assert_eq!(jump_hash(1, 1), 0);
        for key in 0..1000u64 {
            assert!(jump_hash(key, 10) < 10);
        }
        // Monotone: a key either stays or moves to the new bucket.
        for key in 0..10_000u64 {
            let k = key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let (a, b) = (jump_hash(k, 10), jump_hash(k, 11));
            assert!(a == b || b == 10);
        }
    }
}

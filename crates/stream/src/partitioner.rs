//! Which partition a message goes to.
//!
//! A topic is split into partitions so that many brokers and many consumers can work on
//! it at once, but order only holds *within* a partition. So messages that must stay in
//! order share a key, and the key picks the partition by hash: same key, same partition,
//! same order. Kafka's default partitioner hashes the key with murmur2, clears the sign
//! bit and takes the remainder by the partition count; using the very same function means
//! a keyed message lands where the Java client (or librdkafka with `murmur2_random`) would
//! put it, so producers in different languages agree. Messages without a key are spread
//! round-robin.
//!
//! Note what the modulo implies: adding partitions to a topic moves most keys to another
//! partition, so per-key order across the change is lost — which is why Kafka topics are
//! usually created with enough partitions up front.

use std::sync::atomic::{AtomicU32, Ordering};

/// Kafka's `Utils.murmur2`: MurmurHash2, 32-bit, seed `0x9747b28c`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(&first) = tail.first() {
        h ^= u32::from(first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows on MIN).
pub fn to_positive(n: i32) -> u32 {
    (n & 0x7fff_ffff) as u32
}

/// The partition Kafka's default partitioner picks for a keyed message.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    to_positive(murmur2(key)) % partitions.max(1)
}

/// Round-robin for messages without a key.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicU32,
}

impl RoundRobin {
    pub fn next(&self, partitions: u32) -> u32 {
        self.next.fetch_add(1, Ordering::Relaxed) % partitions.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of Kafka's own `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_kafka() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, hash) in cases {
            assert_eq!(murmur2(key), hash, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn partitions_follow_to_positive_modulo() {
        // "21" hashes to -973932308; & 0x7fffffff = 1173551340; % 8 = 4.
        assert_eq!(to_positive(-973_932_308), 1_173_551_340);
        assert_eq!(partition_for_key(b"21", 8), 1_173_551_340 % 8);
        assert_eq!(partition_for_key(b"abc", 3), 479_470_107 % 3);
        assert_eq!(to_positive(i32::MIN), 0);
    }

    #[test]
    fn round_robin_cycles() {
        let rr = RoundRobin::default();
        let got: Vec<u32> = (0..6).map(|_| rr.next(3)).collect();
        assert_eq!(got, [0, 1, 2, 0, 1, 2]);
    }
}

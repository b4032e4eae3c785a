//! Range sharding: ordered boundaries on the key itself.
//!
//! Shard `i` holds the keys from the previous shard's bound (inclusive) up to its own
//! `until` (exclusive); the last shard holds everything after. Keys are compared as bytes
//! (lexicographically), on their hash tag when they have one.
//!
//! What it buys: neighbouring keys live together, so a scan of `user:1000`..`user:1999` is
//! one shard's business, and a boundary can be moved to split a hot range. What it costs:
//! nothing spreads the load for you — sequential keys (timestamps, auto-increment ids)
//! all hit the last shard, the classic range-partitioning hot spot. Adding a shard moves
//! only the keys between the old and new boundaries, and you choose them.

use bytes::Bytes;

#[derive(Debug, Clone)]
pub struct Range {
    /// Exclusive upper bounds of every shard but the last, strictly increasing.
    bounds: Vec<Bytes>,
}

impl Range {
    /// `bounds[i]` is shard `i`'s exclusive upper bound; there is one fewer bound than
    /// shards.
    pub fn new(bounds: Vec<Bytes>) -> Result<Self, String> {
        if let Some(pair) = bounds.windows(2).find(|pair| pair[0] >= pair[1]) {
            return Err(format!(
                "range bounds must increase: {:?} is not below {:?}",
                String::from_utf8_lossy(&pair[0]),
                String::from_utf8_lossy(&pair[1])
            ));
        }
        Ok(Range { bounds })
    }

    /// The first shard whose bound is above the key; the last shard otherwise.
    pub fn shard_of(&self, key: &[u8]) -> usize {
        self.bounds.partition_point(|bound| bound.as_ref() <= key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_are_exclusive_upper_bounds() {
        let r = Range::new(vec![Bytes::from("h"), Bytes::from("p")]).unwrap();
        assert_eq!(r.shard_of(b"apple"), 0);
        assert_eq!(r.shard_of(b"h"), 1);
        assert_eq!(r.shard_of(b"oz"), 1);
        assert_eq!(r.shard_of(b"p"), 2);
        assert_eq!(r.shard_of(b"zebra"), 2);
        assert!(Range::new(vec![Bytes::from("p"), Bytes::from("h")]).is_err());
    }
}

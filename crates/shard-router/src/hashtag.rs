//! Hash tags: choosing which part of a key is hashed.
//!
//! Multi-key operations can only be served by one shard if all their keys live there. A
//! hash tag lets the application say "these keys belong together": if a key contains
//! `{...}`, only the part between the braces is hashed, so `{user:42}:name` and
//! `{user:42}:cart` always land on the same shard.
//!
//! The rule, exactly as Redis Cluster defines it (`keyHashSlot` in cluster.c):
//! - find the *first* `{`;
//! - find the first `}` *after* it;
//! - if both exist and there is at least one byte between them, hash only those bytes;
//! - otherwise hash the whole key.
//!
//! So `{}` is not a tag (the whole key `foo{}{bar}` is hashed), `foo{{bar}}` hashes `{bar`,
//! and `foo{bar}{zap}` hashes `bar`.

/// The bytes of `key` that decide its shard.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    let rest = &key[open + 1..];
    match rest.iter().position(|&b| b == b'}') {
        Some(close) if close > 0 => &rest[..close],
        _ => key,
    }
}

#[cfg(test)]
mod tests {
    use super::hash_tag;

    #[test]
    fn redis_cluster_examples() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"{user1000}.following", b"user1000"),
            (b"{user1000}.followers", b"user1000"),
            (b"foo{}{bar}", b"foo{}{bar}"),
            (b"foo{{bar}}zap", b"{bar"),
            (b"foo{bar}{zap}", b"bar"),
            (b"plain", b"plain"),
            (b"open{only", b"open{only"),
            (b"close}only{", b"close}only{"),
            (b"", b""),
            (b"{a}", b"a"),
        ];
        for (key, tag) in cases {
            assert_eq!(hash_tag(key), *tag, "{}", String::from_utf8_lossy(key));
        }
    }
}

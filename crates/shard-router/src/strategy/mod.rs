//! Sharding strategies: which shard owns a key.
//!
//! Every strategy answers the same question from the key's *hash tag* (see
//! [`crate::hashtag`]), and they differ in what happens when the set of shards changes —
//! the amount of data that must move — and in what they let you control:
//!
//! | strategy | lookup | adding an 11th shard to 10 moves | weights | remove a middle shard |
//! |---|---|---|---|---|
//! | [`modulo`] | `hash mod N` | ~10/11 of keys | no | renumbers everything |
//! | [`ketama`] | ring of virtual nodes, binary search | ~1/11 | yes | its keys spread to ring neighbours |
//! | [`jump`] | Lamping–Veach, O(log N), no memory | exactly ~1/11 | no | only at the end |
//! | [`rendezvous`] | highest of N bids | ~1/11 | yes | its keys spread evenly |
//! | [`range`] | ordered boundaries on the key | what you choose | – | merge into a neighbour |
//! | [`directory`] | a lookup table in a kv instance | what you choose | – | flip its entries |
//!
//! (The moved fractions are asserted by the tests below with 1M keys, and printed by
//! `cargo run -p shard-router --release --example distribution`.)

pub mod directory;
pub mod jump;
pub mod ketama;
pub mod modulo;
pub mod range;
pub mod rendezvous;

use bytes::Bytes;
use serde::Deserialize;
use xxhash_rust::xxh3::xxh3_64;

use crate::hashtag::hash_tag;
use directory::Directory;
use ketama::Ketama;
use range::Range;
use rendezvous::Rendezvous;

/// The strategy names of the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum StrategyKind {
    Modulo,
    #[default]
    Ketama,
    Jump,
    Rendezvous,
    Range,
    Directory,
}

/// What a strategy needs to know about one shard.
#[derive(Debug, Clone)]
pub struct ShardInfo<'a> {
    pub name: &'a str,
    pub weight: u32,
    /// Range strategy: exclusive upper bound of this shard's keys.
    pub until: Option<&'a str>,
}

/// A built strategy, ready to place keys.
#[derive(Debug, Clone)]
pub enum Strategy {
    Modulo(usize),
    Ketama(Ketama),
    Jump(usize),
    Rendezvous(Rendezvous),
    Range(Range),
    Directory(Directory),
}

/// Where a key goes: a shard, or "ask the directory".
#[derive(Debug, Clone, Copy)]
pub enum Place<'a> {
    Shard(usize),
    Ask(&'a Directory),
}

/// The 64-bit hash every hash strategy starts from: xxh3 of the key's hash tag.
pub fn key_hash(key: &[u8]) -> u64 {
    xxh3_64(hash_tag(key))
}

impl Strategy {
    /// Builds `kind` over `shards` (in config order). `directory` is `(table, default)`.
    pub fn new(
        kind: StrategyKind,
        shards: &[ShardInfo<'_>],
        vnodes: u32,
        directory: Option<(&str, &str)>,
    ) -> Result<Self, String> {
        if shards.is_empty() {
            return Err("at least one shard is needed".into());
        }
        let weighted = || shards.iter().map(|s| (s.name, s.weight));
        Ok(match kind {
            StrategyKind::Modulo => Strategy::Modulo(shards.len()),
            StrategyKind::Jump => Strategy::Jump(shards.len()),
            StrategyKind::Ketama => Strategy::Ketama(Ketama::new(weighted(), vnodes)),
            StrategyKind::Rendezvous => Strategy::Rendezvous(Rendezvous::new(weighted())),
            StrategyKind::Range => {
                let (last, rest) = shards.split_last().ok_or("at least one shard is needed")?;
                if last.until.is_some() {
                    return Err(format!(
                        "range: the last shard '{}' takes every key above the others and has no 'until'",
                        last.name
                    ));
                }
                let bounds = rest
                    .iter()
                    .map(|s| {
                        s.until
                            .map(|u| Bytes::copy_from_slice(u.as_bytes()))
                            .ok_or_else(|| format!("range: shard '{}' needs 'until'", s.name))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Strategy::Range(Range::new(bounds)?)
            }
            StrategyKind::Directory => {
                let (table, default) =
                    directory.ok_or("the directory strategy needs a [directory] section")?;
                Strategy::Directory(Directory::new(
                    table,
                    default,
                    shards.iter().map(|s| s.name),
                )?)
            }
        })
    }

    /// Where `key` goes.
    pub fn place(&self, key: &[u8]) -> Place<'_> {
        match self {
            Strategy::Modulo(n) => Place::Shard(modulo::shard_of(key_hash(key), *n)),
            Strategy::Jump(n) => Place::Shard(jump::jump_hash(key_hash(key), *n)),
            Strategy::Ketama(ring) => Place::Shard(ring.shard_of(key_hash(key))),
            Strategy::Rendezvous(r) => Place::Shard(r.shard_of(key_hash(key))),
            Strategy::Range(r) => Place::Shard(r.shard_of(hash_tag(key))),
            Strategy::Directory(d) => Place::Ask(d),
        }
    }

    /// Where `key` would go if only the `usable` shards existed: the next shard on the
    /// ring (ketama), the next-highest bidder (rendezvous). `None` for the strategies
    /// without such a successor, or when no shard is usable.
    pub fn place_among(&self, key: &[u8], usable: impl Fn(usize) -> bool) -> Option<usize> {
        match self {
            Strategy::Ketama(ring) => ring.first_usable(key_hash(key), usable),
            Strategy::Rendezvous(r) => r.best_usable(key_hash(key), usable),
            _ => None,
        }
    }

    /// The shard for a computed strategy (`None` for the directory, which must be asked).
    pub fn computed(&self, key: &[u8]) -> Option<usize> {
        match self.place(key) {
            Place::Shard(i) => Some(i),
            Place::Ask(_) => None,
        }
    }
}

/// Keys per shard for `keys` keys named `key:0`, `key:1`, ... (computed strategies only).
pub fn loads(strategy: &Strategy, shards: usize, keys: u64) -> Vec<u64> {
    let mut loads = vec![0u64; shards];
    for_each_key(keys, |key| {
        if let Some(slot) = strategy.computed(key).and_then(|i| loads.get_mut(i)) {
            *slot += 1;
        }
    });
    loads
}

/// The fraction of `keys` keys whose shard *name* differs between two layouts.
pub fn moved_fraction(before: (&Strategy, &[&str]), after: (&Strategy, &[&str]), keys: u64) -> f64 {
    let mut moved = 0u64;
    for_each_key(keys, |key| {
        fn name<'n>(s: &Strategy, names: &[&'n str], key: &[u8]) -> Option<&'n str> {
            s.computed(key).and_then(|i| names.get(i).copied())
        }
        if name(before.0, before.1, key) != name(after.0, after.1, key) {
            moved += 1;
        }
    });
    moved as f64 / keys.max(1) as f64
}

/// Population standard deviation divided by the mean.
pub fn relative_stddev(loads: &[u64]) -> f64 {
    let n = loads.len().max(1) as f64;
    let mean = loads.iter().sum::<u64>() as f64 / n;
    let var = loads
        .iter()
        .map(|&l| (l as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    var.sqrt() / mean
}

fn for_each_key(keys: u64, mut f: impl FnMut(&[u8])) {
    let mut buf = Vec::with_capacity(32);
    for i in 0..keys {
        buf.clear();
        buf.extend_from_slice(b"key:");
        buf.extend_from_slice(i.to_string().as_bytes());
        f(&buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: u64 = 1_000_000;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("s{i}")).collect()
    }

    fn build(kind: StrategyKind, names: &[String]) -> Strategy {
        let shards: Vec<ShardInfo> = names
            .iter()
            .map(|name| ShardInfo {
                name,
                weight: 1,
                until: None,
            })
            .collect();
        Strategy::new(kind, &shards, Ketama::DEFAULT_VNODES, None).unwrap()
    }

    /// Without shard 2, ketama and rendezvous give each of its keys to the shard that
    /// owns it once shard 2 is gone, and move no other key: exactly a layout without it.
    #[test]
    fn place_among_is_the_owner_without_the_unusable_shards() {
        let all = names(4);
        let without: Vec<String> = all.iter().filter(|n| *n != "s2").cloned().collect();
        for kind in [StrategyKind::Ketama, StrategyKind::Rendezvous] {
            let full = build(kind, &all);
            let smaller = build(kind, &without);
            for i in 0..10_000 {
                let key = format!("key:{i}");
                let owner = full.computed(key.as_bytes()).unwrap();
                assert_eq!(full.place_among(key.as_bytes(), |_| true), Some(owner));
                let remapped = full.place_among(key.as_bytes(), |s| s != 2).unwrap();
                let expected = &without[smaller.computed(key.as_bytes()).unwrap()];
                assert_eq!(&all[remapped], expected, "{kind:?} {key}");
            }
            assert_eq!(full.place_among(b"k", |_| false), None);
        }
        assert_eq!(
            build(StrategyKind::Jump, &all).place_among(b"k", |_| true),
            None
        );
    }

    /// The acceptance table: 1M keys over 10 shards, then an 11th shard is added.
    #[test]
    fn distribution_and_moved_keys_with_one_million_keys() {
        let (ten, eleven) = (names(10), names(11));
        let ten_refs: Vec<&str> = ten.iter().map(String::as_str).collect();
        let eleven_refs: Vec<&str> = eleven.iter().map(String::as_str).collect();
        let ketama = build(StrategyKind::Ketama, &ten);
        let spread = relative_stddev(&loads(&ketama, 10, KEYS));
        assert!(spread < 0.10, "ketama stddev {spread:.3} of the mean");
        for (kind, low, high) in [
            (StrategyKind::Ketama, 0.06, 0.12),
            (StrategyKind::Jump, 0.085, 0.097),
            (StrategyKind::Rendezvous, 0.085, 0.097),
            (StrategyKind::Modulo, 0.88, 0.94),
        ] {
            let moved = moved_fraction(
                (&build(kind, &ten), &ten_refs),
                (&build(kind, &eleven), &eleven_refs),
                KEYS,
            );
            assert!((low..high).contains(&moved), "{kind:?} moved {moved:.4}");
        }
    }

    #[test]
    fn even_spread_for_jump_rendezvous_and_modulo() {
        let ten = names(10);
        for kind in [
            StrategyKind::Jump,
            StrategyKind::Rendezvous,
            StrategyKind::Modulo,
        ] {
            let spread = relative_stddev(&loads(&build(kind, &ten), 10, 100_000));
            assert!(spread < 0.03, "{kind:?} stddev {spread:.3}");
        }
    }

    #[test]
    fn weights_give_proportional_shares() {
        let shards = [
            ShardInfo {
                name: "a",
                weight: 1,
                until: None,
            },
            ShardInfo {
                name: "b",
                weight: 3,
                until: None,
            },
        ];
        for kind in [StrategyKind::Ketama, StrategyKind::Rendezvous] {
            let s = Strategy::new(kind, &shards, Ketama::DEFAULT_VNODES, None).unwrap();
            let l = loads(&s, 2, 100_000);
            let share = l[1] as f64 / 100_000.0;
            assert!(
                (0.70..0.80).contains(&share),
                "{kind:?} heavy share {share}"
            );
        }
    }

    #[test]
    fn hash_tags_keep_keys_together_in_every_strategy() {
        let ten = names(10);
        for kind in [
            StrategyKind::Ketama,
            StrategyKind::Jump,
            StrategyKind::Rendezvous,
            StrategyKind::Modulo,
        ] {
            let s = build(kind, &ten);
            for user in 0..200 {
                let a = s.computed(format!("{{user:{user}}}:name").as_bytes());
                let b = s.computed(format!("{{user:{user}}}:cart").as_bytes());
                assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn ketama_is_keyed_by_name_not_position() {
        let a = [
            ShardInfo {
                name: "x",
                weight: 1,
                until: None,
            },
            ShardInfo {
                name: "y",
                weight: 1,
                until: None,
            },
        ];
        let b = [a[1].clone(), a[0].clone()];
        let sa = Strategy::new(StrategyKind::Ketama, &a, 160, None).unwrap();
        let sb = Strategy::new(StrategyKind::Ketama, &b, 160, None).unwrap();
        let moved = moved_fraction((&sa, &["x", "y"]), (&sb, &["y", "x"]), 10_000);
        assert_eq!(moved, 0.0);
    }

    #[test]
    fn config_errors_are_explained() {
        let shards = [
            ShardInfo {
                name: "a",
                weight: 1,
                until: Some("m"),
            },
            ShardInfo {
                name: "b",
                weight: 1,
                until: None,
            },
        ];
        assert!(Strategy::new(StrategyKind::Range, &shards, 160, None).is_ok());
        assert!(Strategy::new(StrategyKind::Range, &shards[..1], 160, None).is_err());
        assert!(Strategy::new(StrategyKind::Directory, &shards, 160, None).is_err());
        assert!(Strategy::new(StrategyKind::Directory, &shards, 160, Some(("t", "zz"))).is_err());
        assert!(Strategy::new(StrategyKind::Directory, &shards, 160, Some(("t", "b"))).is_ok());
    }
}

//! Sorted-set algebra (`ZUNION`, `ZINTER`, `ZDIFF`, `ZINTERCARD`) and the writes that
//! store a computed sorted set (`ZUNIONSTORE`, `ZINTERSTORE`, `ZDIFFSTORE`,
//! `ZRANGESTORE`, `GEOSEARCHSTORE`, `GEORADIUS ... STORE`) or cut one by a lex range
//! (`ZREMRANGEBYLEX`).
//!
//! ## Weighted union and intersection
//!
//! `ZUNIONSTORE out 2 clicks:mon clicks:tue WEIGHTS 1 2 AGGREGATE SUM` is how a
//! leaderboard combines periods: each input's scores are multiplied by its weight, and
//! a member in several inputs gets the SUM (or MIN, or MAX) of its weighted scores. A
//! plain set counts as a sorted set whose scores are all 1, so sets and sorted sets mix.
//! An intersection walks the *smallest* input and looks each member up in the others
//! (O(smallest × inputs)); a union adds every input into one map. Inputs are taken
//! smallest first, as Redis does, so floating-point sums add up in the same order and
//! give the same bits.
//!
//! A STORE form computes its result inside the write (so it sees the inputs as they are
//! at that instant, atomically), replaces the destination (its TTL too) and is
//! journaled as the destination's new record: replicas and the disk get the result, not
//! the recipe.

use std::collections::HashMap;

use bytes::Bytes;
use proto::CommandError;

use super::geo::Query;
use super::ops::{Algebra, remove_range};
use super::own;
use super::set::Set;
use super::zset::{LexBound, Range, ZSet, select};
use crate::keyspace::{Keyspace, Outcome};
use crate::value::{Entry, Value};

/// How scores of a member in several inputs combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Sum,
    Min,
    Max,
}

impl Aggregate {
    fn fold(self, acc: &mut f64, value: f64) {
        match self {
            // inf + -inf is NaN: Redis makes it 0.
            Aggregate::Sum => {
                *acc += value;
                if acc.is_nan() {
                    *acc = 0.0;
                }
            }
            Aggregate::Min => {
                if value < *acc {
                    *acc = value;
                }
            }
            Aggregate::Max => {
                if value > *acc {
                    *acc = value;
                }
            }
        }
    }
}

/// A `ZUNION`/`ZINTER`/`ZDIFF` request: the inputs, one weight each, the aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct Combine {
    pub keys: Vec<Bytes>,
    pub weights: Vec<f64>,
    pub aggregate: Aggregate,
    pub algebra: Algebra,
}

/// One sorted-set write of this module.
#[derive(Debug, Clone, PartialEq)]
pub enum ZStore {
    /// `ZUNIONSTORE`/`ZINTERSTORE`/`ZDIFFSTORE`.
    Combine { dest: Bytes, combine: Combine },
    /// `ZRANGESTORE dst src min max ...`.
    Range {
        dest: Bytes,
        src: Bytes,
        range: Range,
        rev: bool,
        offset: i64,
        limit: i64,
    },
    /// `GEOSEARCHSTORE` (`search`) or `GEORADIUS[BYMEMBER] ... STORE|STOREDIST`;
    /// `dist`: scores are distances instead of geohashes. No query: the source was
    /// missing, the result is empty.
    Geo {
        dest: Bytes,
        src: Bytes,
        query: Option<Query>,
        dist: bool,
        search: bool,
    },
    /// `ZREMRANGEBYLEX key min max`.
    RemRangeByLex {
        key: Bytes,
        min: LexBound,
        max: LexBound,
    },
}

impl ZStore {
    /// Can this write grow memory? (Removing never does.)
    pub fn may_grow(&self) -> bool {
        !matches!(self, ZStore::RemRangeByLex { .. })
    }
}

/// A set or sorted set read as a sorted set (a set's members score 1).
#[derive(Clone, Copy)]
enum Input<'a> {
    Z(&'a ZSet),
    S(&'a Set),
    Missing,
}

impl<'a> Input<'a> {
    fn len(self) -> usize {
        match self {
            Input::Z(z) => z.len(),
            Input::S(s) => s.len(),
            Input::Missing => 0,
        }
    }

    fn score(self, member: &[u8]) -> Option<f64> {
        match self {
            Input::Z(z) => z.score(&Bytes::copy_from_slice(member)),
            Input::S(s) => s.contains(member).then_some(1.0),
            Input::Missing => None,
        }
    }

    fn iter(self) -> Box<dyn Iterator<Item = (&'a [u8], f64)> + 'a> {
        match self {
            Input::Z(z) => Box::new(z.slots().iter().map(|(slot, &s)| (&slot.key()[..], s))),
            Input::S(s) => Box::new(s.iter().map(|m| (m, 1.0))),
            Input::Missing => Box::new(std::iter::empty()),
        }
    }
}

/// Type-checks every key (`WRONGTYPE` unless a set or sorted set), then borrows them.
fn inputs<'a>(
    ks: &'a mut Keyspace,
    db: usize,
    keys: &[Bytes],
    now: u64,
) -> Result<Vec<Input<'a>>, CommandError> {
    for key in keys {
        if let Some(v) = ks.value(db, key, now)
            && !matches!(v, Value::Set(_) | Value::ZSet(_))
        {
            return Err(CommandError::WrongType);
        }
    }
    let ks = &*ks;
    Ok(keys
        .iter()
        .map(|key| match ks.peek(db, key, now) {
            Some(Value::ZSet(z)) => Input::Z(z),
            Some(Value::Set(s)) => Input::S(s),
            _ => Input::Missing,
        })
        .collect())
}

/// Only the type check of [`inputs`]: lets a command report `WRONGTYPE` before a later
/// syntax error, in Redis's order.
pub fn check_inputs(
    ks: &mut Keyspace,
    db: usize,
    keys: &[Bytes],
    now: u64,
) -> Result<(), CommandError> {
    inputs(ks, db, keys, now).map(|_| ())
}

/// Computes a union, intersection or difference as a sorted set.
pub fn combine(ks: &mut Keyspace, db: usize, c: &Combine, now: u64) -> Result<ZSet, CommandError> {
    let mut sources: Vec<(Input<'_>, f64)> = inputs(ks, db, &c.keys, now)?
        .into_iter()
        .zip(c.weights.iter().copied())
        .collect();
    let mut out = ZSet::default();
    let weighted = |score: f64, weight: f64| {
        let v = score * weight;
        if v.is_nan() { 0.0 } else { v }
    };
    if c.algebra != Algebra::Diff {
        // Smallest first (a stable sort, as glibc's qsort).
        sources.sort_by_key(|(input, _)| input.len());
    }
    let Some(&(first, first_weight)) = sources.first() else {
        return Ok(out);
    };
    match c.algebra {
        Algebra::Inter => {
            'members: for (member, score) in first.iter() {
                let mut acc = weighted(score, first_weight);
                for &(other, weight) in &sources[1..] {
                    let Some(s) = other.score(member) else {
                        continue 'members;
                    };
                    c.aggregate.fold(&mut acc, s * weight);
                }
                out.insert(Bytes::copy_from_slice(member), acc);
            }
        }
        Algebra::Union => {
            let mut acc: HashMap<&[u8], f64> = HashMap::new();
            for &(input, weight) in &sources {
                for (member, score) in input.iter() {
                    let value = weighted(score, weight);
                    acc.entry(member)
                        .and_modify(|a| c.aggregate.fold(a, value))
                        .or_insert(value);
                }
            }
            for (member, score) in acc {
                out.insert(Bytes::copy_from_slice(member), score);
            }
        }
        Algebra::Diff => {
            for (member, score) in first.iter() {
                if !sources[1..]
                    .iter()
                    .any(|(other, _)| other.score(member).is_some())
                {
                    out.insert(Bytes::copy_from_slice(member), score);
                }
            }
        }
    }
    Ok(out)
}

/// `ZINTERCARD`: the size of the intersection, counting stops at `limit` (0: none).
pub fn inter_card(
    ks: &mut Keyspace,
    db: usize,
    keys: &[Bytes],
    limit: usize,
    now: u64,
) -> Result<usize, CommandError> {
    let mut sources = inputs(ks, db, keys, now)?;
    sources.sort_by_key(|input| input.len());
    let Some((first, others)) = sources.split_first() else {
        return Ok(0);
    };
    let mut n = 0;
    for (member, _) in first.iter() {
        if others.iter().all(|o| o.score(member).is_some()) {
            n += 1;
            if limit > 0 && n >= limit {
                break;
            }
        }
    }
    Ok(n)
}

/// The sorted set under `key` (`None`: missing), `WRONGTYPE` for another type.
fn zset_of<'a>(
    ks: &'a mut Keyspace,
    db: usize,
    key: &Bytes,
    now: u64,
) -> Result<Option<&'a ZSet>, CommandError> {
    ks.value(db, key, now).map(Value::as_zset).transpose()
}

/// Replaces `dest` with `z` (deleting it if `z` is empty); the reply is `z`'s size.
fn store(ks: &mut Keyspace, db: usize, dest: &Bytes, z: ZSet) -> Outcome {
    let n = z.len();
    ks.remove(db, dest);
    if n > 0 {
        ks.store(db, own(dest), Entry::new(Value::ZSet(Box::new(z)), None));
    }
    Outcome::Integer(n as i64)
}

/// Applies one write of this module through the keyspace's write path.
pub fn apply(ks: &mut Keyspace, db: usize, op: ZStore, now: u64) -> Result<Outcome, CommandError> {
    match op {
        ZStore::Combine { dest, combine: c } => {
            let z = combine(ks, db, &c, now)?;
            Ok(store(ks, db, &dest, z))
        }
        ZStore::Range {
            dest,
            src,
            range,
            rev,
            offset,
            limit,
        } => {
            let z: ZSet = zset_of(ks, db, &src, now)?
                .map(|z| {
                    select(z, &range, rev, offset, limit)
                        .into_iter()
                        .map(|(score, m)| (m.clone(), score))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
                .into();
            Ok(store(ks, db, &dest, z))
        }
        ZStore::Geo {
            dest,
            src,
            query,
            dist,
            ..
        } => {
            let found = match (zset_of(ks, db, &src, now)?, query) {
                (Some(z), Some(query)) => query.run(z)?,
                _ => Vec::new(),
            };
            let z: ZSet = found
                .into_iter()
                .map(|f| (f.member, if dist { f.dist } else { f.score }))
                .collect::<Vec<_>>()
                .into();
            Ok(store(ks, db, &dest, z))
        }
        ZStore::RemRangeByLex { key, min, max } => {
            let n = ks.update(db, &key, now, None, |v, journal| {
                let z = v.as_zset_mut()?;
                let start = z.order().count_below(|_, m| min.below_min(m));
                let doomed: Vec<Bytes> = z
                    .order()
                    .iter_from(start, false)
                    .take_while(|(_, m)| max.within_max(m))
                    .map(|(_, m)| m.clone())
                    .collect();
                Ok(remove_range(z, doomed, journal))
            })?;
            Ok(Outcome::Integer(n.unwrap_or(0) as i64))
        }
    }
}

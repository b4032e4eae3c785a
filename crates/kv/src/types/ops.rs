//! The writes to collections: one [`Op`] per kind of change, applied through the
//! keyspace's single write path ([`Keyspace::apply`] → [`apply`] →
//! [`Keyspace::update`]), so persistence and replication see them like any other write.
//!
//! Every `Op` is deterministic given the keyspace and `now`: random choices (`SPOP`) carry
//! their seed in the op.

use bytes::Bytes;
use proto::CommandError;

use super::edit::{Delta, Edit};
use super::list::List;
use super::own;
use super::set::Set;
use super::zset::{ScoreBound, ZSet};
use crate::keyspace::{Keyspace, Outcome, format_float};
use crate::value::{Entry, Value};

/// `ZADD`'s options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ZAddFlags {
    pub nx: bool,
    pub xx: bool,
    pub gt: bool,
    pub lt: bool,
    /// Count changed members, not only added ones.
    pub ch: bool,
    /// Increment one member's score and reply with it (`ZINCRBY` is `ZADD INCR`).
    pub incr: bool,
}

/// Which set-algebra operation (`SINTER`, `SUNION`, `SDIFF` and their `STORE` forms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algebra {
    Inter,
    Union,
    Diff,
}

/// One write to a collection.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    // hashes
    HSet {
        key: Bytes,
        pairs: Vec<(Bytes, Bytes)>,
        only_if_new: bool,
    },
    HDel {
        key: Bytes,
        fields: Vec<Bytes>,
    },
    HIncrBy {
        key: Bytes,
        field: Bytes,
        delta: i64,
    },
    HIncrByFloat {
        key: Bytes,
        field: Bytes,
        delta: f64,
    },
    // lists
    Push {
        key: Bytes,
        values: Vec<Bytes>,
        left: bool,
        only_if_exists: bool,
    },
    /// `count: None` pops one and answers a bulk; `Some(n)` answers an array.
    Pop {
        key: Bytes,
        left: bool,
        count: Option<usize>,
    },
    LSet {
        key: Bytes,
        index: i64,
        value: Bytes,
    },
    LInsert {
        key: Bytes,
        before: bool,
        pivot: Bytes,
        value: Bytes,
    },
    LRem {
        key: Bytes,
        count: i64,
        value: Bytes,
    },
    LTrim {
        key: Bytes,
        start: i64,
        stop: i64,
    },
    /// `LMOVE`/`RPOPLPUSH`: pop from one end of `from`, push to one end of `to`.
    LMove {
        from: Bytes,
        to: Bytes,
        from_left: bool,
        to_left: bool,
    },
    /// `SORT ... STORE`: `dest` becomes a list of `values` (deleted if there are none).
    ListStore {
        dest: Bytes,
        values: Vec<Bytes>,
    },
    // sets
    SAdd {
        key: Bytes,
        members: Vec<Bytes>,
    },
    SRem {
        key: Bytes,
        members: Vec<Bytes>,
    },
    SPop {
        key: Bytes,
        count: Option<usize>,
        seed: u64,
    },
    SMove {
        from: Bytes,
        to: Bytes,
        member: Bytes,
    },
    /// `SINTERSTORE`/`SUNIONSTORE`/`SDIFFSTORE`.
    SStore {
        dest: Bytes,
        keys: Vec<Bytes>,
        algebra: Algebra,
    },
    // sorted sets
    ZAdd {
        key: Bytes,
        flags: ZAddFlags,
        pairs: Vec<(f64, Bytes)>,
    },
    ZRem {
        key: Bytes,
        members: Vec<Bytes>,
    },
    ZRemRangeByRank {
        key: Bytes,
        start: i64,
        stop: i64,
    },
    ZRemRangeByScore {
        key: Bytes,
        min: ScoreBound,
        max: ScoreBound,
    },
    ZPop {
        key: Bytes,
        max: bool,
        count: Option<usize>,
    },
}

impl Op {
    /// Can this write grow memory (refused over `--maxmemory`)?
    pub fn may_grow(&self) -> bool {
        matches!(
            self,
            Op::HSet { .. }
                | Op::HIncrBy { .. }
                | Op::HIncrByFloat { .. }
                | Op::Push { .. }
                | Op::LSet { .. }
                | Op::LInsert { .. }
                | Op::LMove { .. }
                | Op::SAdd { .. }
                | Op::SMove { .. }
                | Op::SStore { .. }
                | Op::ListStore { .. }
                | Op::ZAdd { .. }
        )
    }
}

fn new_hash() -> Value {
    Value::Hash(Default::default())
}
fn new_list() -> Value {
    Value::List(Box::default())
}
fn new_set() -> Value {
    Value::Set(Default::default())
}
fn new_zset() -> Value {
    Value::ZSet(Box::default())
}

/// Resolves Redis's `start`/`stop` indexes (negative from the end, inclusive) against a
/// length: the half-open range, empty if nothing is selected.
pub fn index_range(start: i64, stop: i64, len: usize) -> (usize, usize) {
    let len = len as i64;
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let stop = if stop < 0 {
        len + stop
    } else {
        stop.min(len - 1)
    };
    if start > stop || start >= len {
        (0, 0)
    } else {
        (start as usize, stop as usize + 1)
    }
}

fn int(n: usize) -> Outcome {
    Outcome::Integer(n as i64)
}

fn bulks(items: impl IntoIterator<Item = Bytes>) -> Outcome {
    Outcome::Array(items.into_iter().map(Outcome::Bulk).collect())
}

/// A splitmix64 step: the deterministic random sequence of `SPOP`'s seed.
pub fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The members of several sets combined (`SINTER`, `SUNION`, `SDIFF`). A missing key is
/// an empty set; any non-set is `WRONGTYPE`.
pub fn combine(
    ks: &mut Keyspace,
    db: usize,
    keys: &[Bytes],
    algebra: Algebra,
    now: u64,
) -> Result<Vec<Bytes>, CommandError> {
    let mut sets: Vec<Option<&Set>> = Vec::with_capacity(keys.len());
    // Type-check every key first (Redis answers WRONGTYPE even if an earlier set is
    // empty), then borrow them all.
    for key in keys {
        if let Some(v) = ks.value(db, key, now) {
            v.as_set()?;
        }
    }
    let ks = &*ks;
    for key in keys {
        sets.push(ks.peek(db, key, now).and_then(|v| v.as_set().ok()));
    }
    let Some((first, rest)) = sets.split_first() else {
        return Ok(Vec::new());
    };
    let out = match algebra {
        Algebra::Inter => {
            if sets.iter().any(Option::is_none) {
                return Ok(Vec::new());
            }
            let mut all: Vec<&Set> = sets.iter().flatten().copied().collect();
            all.sort_by_key(|s| s.len());
            let (smallest, others) = all
                .split_first()
                .map_or((None, &[][..]), |(a, b)| (Some(*a), b));
            smallest
                .into_iter()
                .flat_map(|s| s.iter())
                .filter(|m| others.iter().all(|o| o.contains(m)))
                .map(Bytes::copy_from_slice)
                .collect()
        }
        Algebra::Union => {
            let mut union = Set::default();
            for s in sets.iter().flatten() {
                for m in s.iter() {
                    union.insert(m);
                }
            }
            union.iter().map(Bytes::copy_from_slice).collect()
        }
        Algebra::Diff => match first {
            None => Vec::new(),
            Some(first) => first
                .iter()
                .filter(|m| !rest.iter().flatten().any(|o| o.contains(m)))
                .map(Bytes::copy_from_slice)
                .collect(),
        },
    };
    Ok(out)
}

/// Runs `change` on each element, counting those it changed and, if `journal`, collecting
/// them into the edit `make` builds.
///
/// The edit holds the request's own bytes, not copies: the journal is encoded and
/// drained before the command returns, and cloning a view of the request is a reference
/// count, where the first clone of a fresh copy allocates.
fn touched(
    elements: &[Bytes],
    journal: bool,
    mut change: impl FnMut(&Bytes) -> bool,
    make: fn(Vec<Bytes>) -> Edit,
) -> (usize, Delta) {
    let mut n = 0;
    let mut touched = Vec::new();
    for e in elements {
        if change(e) {
            n += 1;
            if journal {
                touched.push(e.clone());
            }
        }
    }
    (n, Delta::edit_if(n > 0, journal, || make(touched)))
}

/// Removes a range of members just read off `z`'s order (`ZREMRANGEBYRANK`/`BYSCORE`).
/// They are collected first because the order cannot be walked while it changes; the
/// same list then becomes the journal's edit, so nothing is copied twice.
pub fn remove_range(z: &mut ZSet, doomed: Vec<Bytes>, journal: bool) -> (usize, Delta) {
    for m in &doomed {
        z.remove(m);
    }
    let n = doomed.len();
    (n, Delta::edit_if(n > 0, journal, || Edit::ZRemove(doomed)))
}

/// Applies one collection write. See the module docs.
pub fn apply(ks: &mut Keyspace, db: usize, op: Op, now: u64) -> Result<Outcome, CommandError> {
    match op {
        Op::HSet {
            key,
            pairs,
            only_if_new,
        } => {
            let n = ks.update(db, &key, now, Some(new_hash), |v, journal| {
                let h = v.as_hash_mut()?;
                let mut added = 0;
                let mut written = Vec::new();
                for (field, value) in &pairs {
                    if only_if_new && h.get(field).is_some() {
                        continue;
                    }
                    if journal {
                        written.push((field.clone(), value.clone()));
                    }
                    added += usize::from(h.insert(field, value));
                }
                let changed = added > 0 || !only_if_new;
                Ok((
                    added,
                    Delta::edit_if(changed, journal, || Edit::HashPut(written)),
                ))
            })?;
            Ok(int(n.unwrap_or(0)))
        }
        Op::HDel { key, fields } => {
            let n = ks.update(db, &key, now, None, |v, journal| {
                let h = v.as_hash_mut()?;
                Ok(touched(&fields, journal, |f| h.remove(f), Edit::HashRemove))
            })?;
            Ok(int(n.unwrap_or(0)))
        }
        Op::HIncrBy { key, field, delta } => {
            let n = ks.update(db, &key, now, Some(new_hash), |v, journal| {
                let h = v.as_hash_mut()?;
                let current = match h.get(&field) {
                    Some(text) => proto::decode::parse_int(text)
                        .ok_or_else(|| CommandError::err("hash value is not an integer"))?,
                    None => 0,
                };
                let next = current
                    .checked_add(delta)
                    .ok_or_else(|| CommandError::err("increment or decrement would overflow"))?;
                let text = Bytes::from(next.to_string());
                h.insert(&field, &text);
                let delta = Delta::edit(journal, || Edit::HashPut(vec![(own(&field), text)]));
                Ok((next, delta))
            })?;
            Ok(Outcome::Integer(n.unwrap_or(0)))
        }
        Op::HIncrByFloat { key, field, delta } => {
            let text = ks.update(db, &key, now, Some(new_hash), |v, journal| {
                let h = v.as_hash_mut()?;
                let current = match h.get(&field) {
                    Some(text) => proto::args::parse_f64(text)
                        .ok_or_else(|| CommandError::err("hash value is not a float"))?,
                    None => 0.0,
                };
                let next = current + delta;
                if !next.is_finite() {
                    return Err(CommandError::err("increment would produce NaN or Infinity"));
                }
                let text = Bytes::from(format_float(next));
                h.insert(&field, &text);
                let delta =
                    Delta::edit(journal, || Edit::HashPut(vec![(own(&field), text.clone())]));
                Ok((text, delta))
            })?;
            Ok(text.map_or(Outcome::Nil, Outcome::Bulk))
        }
        Op::Push {
            key,
            values,
            left,
            only_if_exists,
        } => {
            let create = if only_if_exists {
                None
            } else {
                Some(new_list as fn() -> Value)
            };
            let n = ks.update(db, &key, now, create, |v, journal| {
                let l = v.as_list_mut()?;
                let mut pushed = Vec::new();
                for value in &values {
                    // Copied straight into the list's chunk; the journal needs its own
                    // copy only when someone reads it.
                    if journal {
                        pushed.push(own(value));
                    }
                    l.push(value, left);
                }
                let delta = Delta::edit(journal, || Edit::ListPush {
                    left,
                    values: pushed,
                });
                Ok((l.len(), delta))
            })?;
            Ok(int(n.unwrap_or(0)))
        }
        Op::Pop { key, left, count } => {
            let popped = ks.update(db, &key, now, None, |v, journal| {
                let l = v.as_list_mut()?;
                let n = count.unwrap_or(1).min(l.len());
                let items: Vec<Bytes> = (0..n).filter_map(|_| l.pop(left)).collect();
                let delta = Delta::edit_if(n > 0, journal, || Edit::ListPop { left, count: n });
                Ok((items, delta))
            })?;
            Ok(match (popped, count) {
                (None, None) => Outcome::Nil,
                (None, Some(_)) => Outcome::NullArray,
                (Some(mut items), None) => items.pop().map_or(Outcome::Nil, Outcome::Bulk),
                (Some(items), Some(_)) => bulks(items),
            })
        }
        Op::LSet { key, index, value } => {
            let done = ks.update(db, &key, now, None, |v, journal| {
                let l = v.as_list_mut()?;
                let i = if index < 0 {
                    l.len() as i64 + index
                } else {
                    index
                };
                if i < 0 || i >= l.len() as i64 {
                    return Err(CommandError::err("index out of range"));
                }
                let index = i as usize;
                l.set(index, &value);
                let edit = || Edit::ListSet {
                    index,
                    value: own(&value),
                };
                Ok(((), Delta::edit(journal, edit)))
            })?;
            done.map(|()| Outcome::Ok)
                .ok_or_else(|| CommandError::err("no such key"))
        }
        Op::LInsert {
            key,
            before,
            pivot,
            value,
        } => {
            // O(n) in Redis too: journaled as the whole list.
            let n = ks.update(db, &key, now, None, |v, _| {
                let l = v.as_list_mut()?;
                let at = l.iter().position(|x| x == &pivot[..]);
                match at {
                    Some(i) => {
                        l.insert(if before { i } else { i + 1 }, &value);
                        Ok((l.len() as i64, Delta::Whole))
                    }
                    None => Ok((-1, Delta::Unchanged)),
                }
            })?;
            Ok(Outcome::Integer(n.unwrap_or(0)))
        }
        Op::LRem { key, count, value } => {
            // O(n) in Redis too: journaled as the whole list.
            let n = ks.update(db, &key, now, None, |v, _| {
                let l = v.as_list_mut()?;
                let n = l.remove_matching(&value, count);
                let delta = if n == 0 {
                    Delta::Unchanged
                } else {
                    Delta::Whole
                };
                Ok((n, delta))
            })?;
            Ok(int(n.unwrap_or(0)))
        }
        Op::LTrim { key, start, stop } => {
            ks.update(db, &key, now, None, |v, journal| {
                let l = v.as_list_mut()?;
                let len = l.len();
                let (a, b) = index_range(start, stop, len);
                l.keep(a, b);
                let (front, back) = (a, len - b.max(a));
                let edit = || Edit::ListTrim { front, back };
                Ok(((), Delta::edit_if(l.len() != len, journal, edit)))
            })?;
            Ok(Outcome::Ok)
        }
        Op::LMove {
            from,
            to,
            from_left,
            to_left,
        } => {
            // Both types are checked before anything moves, as Redis does.
            let source_len = match ks.value(db, &from, now) {
                None => return Ok(Outcome::Nil),
                Some(v) => v.as_list()?.len(),
            };
            if let Some(v) = ks.value(db, &to, now) {
                v.as_list()?;
            }
            if from == to && source_len == 1 {
                // Rotating a one-element list: unchanged, and never momentarily empty.
                return Ok(ks
                    .value(db, &from, now)
                    .and_then(|v| v.as_list().ok()?.get(0).map(Bytes::copy_from_slice))
                    .map_or(Outcome::Nil, Outcome::Bulk));
            }
            let item = ks.update(db, &from, now, None, |v, journal| {
                let item = v.as_list_mut()?.pop(from_left);
                let edit = || Edit::ListPop {
                    left: from_left,
                    count: 1,
                };
                Ok((item, Delta::edit(journal, edit)))
            })?;
            let Some(Some(item)) = item else {
                return Ok(Outcome::Nil);
            };
            ks.update(db, &to, now, Some(new_list), |v, journal| {
                v.as_list_mut()?.push(&item, to_left);
                let edit = || Edit::ListPush {
                    left: to_left,
                    values: vec![item.clone()],
                };
                Ok(((), Delta::edit(journal, edit)))
            })?;
            Ok(Outcome::Bulk(item))
        }
        Op::SAdd { key, members } => {
            let n = ks.update(db, &key, now, Some(new_set), |v, journal| {
                let s = v.as_set_mut()?;
                Ok(touched(&members, journal, |m| s.insert(m), Edit::SetAdd))
            })?;
            Ok(int(n.unwrap_or(0)))
        }
        Op::SRem { key, members } => {
            let n = ks.update(db, &key, now, None, |v, journal| {
                let s = v.as_set_mut()?;
                Ok(touched(&members, journal, |m| s.remove(m), Edit::SetRemove))
            })?;
            Ok(int(n.unwrap_or(0)))
        }
        Op::SPop { key, count, seed } => {
            let popped = ks.update(db, &key, now, None, |v, journal| {
                let s = v.as_set_mut()?;
                let n = count.unwrap_or(1).min(s.len());
                let mut state = seed;
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    let Some(m) = s.pick(next_random(&mut state)).map(Bytes::copy_from_slice)
                    else {
                        break;
                    };
                    s.remove(&m);
                    out.push(m);
                }
                let delta = Delta::edit_if(n > 0, journal, || Edit::SetRemove(out.clone()));
                Ok((out, delta))
            })?;
            Ok(match (popped, count) {
                (None, None) => Outcome::Nil,
                (None, Some(_)) => Outcome::Members(Vec::new()),
                (Some(mut items), None) => items.pop().map_or(Outcome::Nil, Outcome::Bulk),
                (Some(items), Some(_)) => Outcome::Members(items),
            })
        }
        Op::SMove { from, to, member } => {
            let present = match ks.value(db, &from, now) {
                None => false,
                Some(v) => v.as_set()?.contains(&member),
            };
            if let Some(v) = ks.value(db, &to, now) {
                v.as_set()?;
            }
            if !present {
                return Ok(Outcome::Integer(0));
            }
            if from == to {
                return Ok(Outcome::Integer(1));
            }
            ks.update(db, &from, now, None, |v, journal| {
                let gone = v.as_set_mut()?.remove(&member);
                let edit = || Edit::SetRemove(vec![own(&member)]);
                Ok((gone, Delta::edit(journal, edit)))
            })?;
            ks.update(db, &to, now, Some(new_set), |v, journal| {
                let added = v.as_set_mut()?.insert(&member);
                let edit = || Edit::SetAdd(vec![own(&member)]);
                Ok((added, Delta::edit_if(added, journal, edit)))
            })?;
            Ok(Outcome::Integer(1))
        }
        Op::SStore {
            dest,
            keys,
            algebra,
        } => {
            let members = combine(ks, db, &keys, algebra, now)?;
            let n = members.len();
            ks.remove(db, &dest);
            if n > 0 {
                let set: Set = members.into_iter().collect();
                ks.store(db, own(&dest), Entry::new(Value::Set(set), None));
            }
            Ok(int(n))
        }
        Op::ListStore { dest, values } => {
            let n = values.len();
            ks.remove(db, &dest);
            if n > 0 {
                let mut list = List::default();
                for value in &values {
                    list.push(value, false);
                }
                ks.store(
                    db,
                    own(&dest),
                    Entry::new(Value::List(Box::new(list)), None),
                );
            }
            Ok(int(n))
        }
        Op::ZAdd { key, flags, pairs } => zadd(ks, db, key, flags, pairs, now),
        Op::ZRem { key, members } => {
            let n = ks.update(db, &key, now, None, |v, journal| {
                let z = v.as_zset_mut()?;
                Ok(touched(&members, journal, |m| z.remove(m), Edit::ZRemove))
            })?;
            Ok(int(n.unwrap_or(0)))
        }
        Op::ZRemRangeByRank { key, start, stop } => {
            let n = ks.update(db, &key, now, None, |v, journal| {
                let z = v.as_zset_mut()?;
                let (a, b) = index_range(start, stop, z.len());
                let doomed: Vec<Bytes> = z
                    .order()
                    .iter_from(a, false)
                    .take(b - a)
                    .map(|(_, m)| m.clone())
                    .collect();
                Ok(remove_range(z, doomed, journal))
            })?;
            Ok(int(n.unwrap_or(0)))
        }
        Op::ZRemRangeByScore { key, min, max } => {
            let n = ks.update(db, &key, now, None, |v, journal| {
                let z = v.as_zset_mut()?;
                let start = z.order().count_below(|s, _| min.below_min(s));
                let doomed: Vec<Bytes> = z
                    .order()
                    .iter_from(start, false)
                    .take_while(|(s, _)| max.within_max(*s))
                    .map(|(_, m)| m.clone())
                    .collect();
                Ok(remove_range(z, doomed, journal))
            })?;
            Ok(int(n.unwrap_or(0)))
        }
        Op::ZPop { key, max, count } => {
            let popped = ks.update(db, &key, now, None, |v, journal| {
                let z = v.as_zset_mut()?;
                let n = count.unwrap_or(1).min(z.len());
                let items: Vec<(f64, Bytes)> = z
                    .order()
                    .iter_from(0, max)
                    .take(n)
                    .map(|(s, m)| (s, m.clone()))
                    .collect();
                for (_, m) in &items {
                    z.remove(m);
                }
                let edit = || Edit::ZRemove(items.iter().map(|(_, m)| m.clone()).collect());
                let delta = Delta::edit_if(n > 0, journal, edit);
                Ok((items, delta))
            })?;
            let popped = popped.unwrap_or_default().into_iter().map(|(s, m)| (m, s));
            Ok(match count {
                // Without a count, one flat [member, score] (or nothing), as Redis.
                None => Outcome::Array(
                    popped
                        .flat_map(|(m, s)| [Outcome::Bulk(m), Outcome::Score(s)])
                        .collect(),
                ),
                Some(_) => Outcome::Scored(popped.collect()),
            })
        }
    }
}

/// `ZADD` with its flags (and `ZINCRBY`, which is `ZADD INCR`).
fn zadd(
    ks: &mut Keyspace,
    db: usize,
    key: Bytes,
    flags: ZAddFlags,
    pairs: Vec<(f64, Bytes)>,
    now: u64,
) -> Result<Outcome, CommandError> {
    let create = if flags.xx {
        None
    } else {
        Some(new_zset as fn() -> Value)
    };
    let result = ks.update(db, &key, now, create, |v, journal| {
        let z = v.as_zset_mut()?;
        let (mut added, mut changed) = (0, 0);
        let mut written = Vec::new();
        let mut incr_result = None;
        for (score, member) in &pairs {
            let current = z.score(member);
            let mut score = *score;
            if flags.incr
                && let Some(cur) = current
            {
                score += cur;
                if score.is_nan() {
                    return Err(CommandError::err("resulting score is not a number (NaN)"));
                }
            }
            let go = match current {
                None => !flags.xx,
                Some(cur) => !(flags.nx || flags.gt && score <= cur || flags.lt && score >= cur),
            };
            if !go {
                continue;
            }
            incr_result = Some(score);
            match current {
                None => {
                    z.insert(own(member), score);
                    added += 1;
                }
                Some(cur) if cur != score => {
                    z.insert(member.clone(), score);
                    changed += 1;
                }
                Some(_) => continue,
            }
            if journal {
                written.push((member.clone(), score));
            }
        }
        let delta = Delta::edit_if(added + changed > 0, journal, || Edit::ZAdd(written));
        Ok(((added, changed, incr_result), delta))
    })?;
    let (added, changed, incr_result) = result.unwrap_or((0, 0, None));
    Ok(if flags.incr {
        incr_result.map_or(Outcome::Nil, Outcome::Score)
    } else if flags.ch {
        Outcome::Integer(added + changed)
    } else {
        Outcome::Integer(added)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::keyspace::{Change, Mutation};

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn run(ks: &mut Keyspace, op: Op) -> Result<Outcome, CommandError> {
        ks.apply(0, Mutation::Collection(op), 0)
    }

    #[test]
    fn writes_are_journaled_and_an_emptied_collection_deletes_its_key() {
        let mut ks = Keyspace::new(true);
        let sadd = Op::SAdd {
            key: b("s"),
            members: vec![b("a"), b("b")],
        };
        assert_eq!(run(&mut ks, sadd), Ok(Outcome::Integer(2)));
        for member in ["a", "b"] {
            let srem = Op::SRem {
                key: b("s"),
                members: vec![b(member)],
            };
            assert_eq!(run(&mut ks, srem), Ok(Outcome::Integer(1)));
        }
        // A no-op write journals nothing.
        let srem = Op::SRem {
            key: b("s"),
            members: vec![b("zz")],
        };
        assert_eq!(run(&mut ks, srem), Ok(Outcome::Integer(0)));
        let (changes, _) = ks.drain_changes();
        let edit = |edit| Change::Edit {
            db: 0,
            key: b("s"),
            edit,
        };
        assert_eq!(
            changes,
            vec![
                edit(Edit::SetAdd(vec![b("a"), b("b")])),
                edit(Edit::SetRemove(vec![b("a")])),
                Change::Remove { db: 0, key: b("s") },
            ]
        );
        assert_eq!(ks.type_of(0, &b("s"), 0), "none");
        assert_eq!(ks.used_memory(), 0);
    }

    /// Runs a script of commands on a journaling keyspace and replays its journal onto a
    /// fresh one: both must hold the same data after every step.
    #[test]
    fn replaying_the_journal_rebuilds_every_collection() {
        let bs = |items: &[&str]| items.iter().map(|s| b(s)).collect::<Vec<_>>();
        let push = |left, items: &[&str]| Op::Push {
            key: b("l"),
            values: bs(items),
            left,
            only_if_exists: false,
        };
        let pop = |key: &str, left, count| Op::Pop {
            key: b(key),
            left,
            count,
        };
        let lset = |index, value: &str| Op::LSet {
            key: b("l"),
            index,
            value: b(value),
        };
        let hset = |pairs: &[(&str, &str)], only_if_new| Op::HSet {
            key: b("h"),
            pairs: pairs.iter().map(|(f, v)| (b(f), b(v))).collect(),
            only_if_new,
        };
        let hfloat = |delta| Op::HIncrByFloat {
            key: b("h"),
            field: b("f5"),
            delta,
        };
        let zadd = |flags, pairs: &[(f64, &str)]| Op::ZAdd {
            key: b("z"),
            flags,
            pairs: pairs.iter().map(|(s, m)| (*s, b(m))).collect(),
        };
        let zpop = |max, count| Op::ZPop {
            key: b("z"),
            max,
            count,
        };
        let spop = |count, seed| Op::SPop {
            key: b("s"),
            count,
            seed,
        };
        let gt_ch = ZAddFlags {
            gt: true,
            ch: true,
            ..ZAddFlags::default()
        };
        let incr = ZAddFlags {
            incr: true,
            ..ZAddFlags::default()
        };
        let script: Vec<Mutation> = [
            push(false, &["a", "b", "c", "d", "e", "f"]),
            push(true, &["x", "y"]),
            pop("l", true, None),
            pop("l", false, Some(2)),
            lset(1, "B"),
            lset(-1, "E"),
            Op::LTrim {
                key: b("l"),
                start: 1,
                stop: -2,
            },
            Op::LInsert {
                key: b("l"),
                before: true,
                pivot: b("B"),
                value: b("ins"),
            },
            Op::LRem {
                key: b("l"),
                count: 0,
                value: b("ins"),
            },
            Op::Push {
                key: b("l2"),
                values: bs(&["only"]),
                left: false,
                only_if_exists: false,
            },
            Op::LMove {
                from: b("l"),
                to: b("l2"),
                from_left: true,
                to_left: false,
            },
            Op::LMove {
                from: b("l2"),
                to: b("l"),
                from_left: false,
                to_left: true,
            },
            hset(&[("f1", "v1"), ("f2", "v2"), ("f3", "3")], false),
            hset(&[("f1", "no")], true),
            hset(&[("f4", "v4")], true),
            Op::HDel {
                key: b("h"),
                fields: bs(&["f2", "nope"]),
            },
            Op::HIncrBy {
                key: b("h"),
                field: b("f3"),
                delta: 4,
            },
            hfloat(1.5),
            hfloat(0.1),
            Op::SAdd {
                key: b("s"),
                members: bs(&["a", "b", "c", "d", "e", "f", "g"]),
            },
            Op::SRem {
                key: b("s"),
                members: bs(&["a", "zz"]),
            },
            Op::SMove {
                from: b("s"),
                to: b("s2"),
                member: b("b"),
            },
            spop(None, 7),
            spop(Some(2), 99),
            Op::SStore {
                dest: b("s3"),
                keys: bs(&["s", "s2"]),
                algebra: Algebra::Union,
            },
            zadd(ZAddFlags::default(), &[(1.0, "a"), (2.0, "b"), (3.0, "c")]),
            zadd(ZAddFlags::default(), &[(4.0, "d"), (5.0, "e"), (6.0, "f")]),
            zadd(gt_ch, &[(10.0, "a"), (0.0, "b")]),
            zadd(incr, &[(2.5, "c")]),
            zadd(incr, &[(1.0, "new")]),
            Op::ZRem {
                key: b("z"),
                members: bs(&["d", "zz"]),
            },
            zpop(false, None),
            zpop(true, Some(2)),
            Op::ZRemRangeByRank {
                key: b("z"),
                start: 0,
                stop: 0,
            },
            pop("l2", false, Some(10)),
        ]
        .into_iter()
        .map(Mutation::Collection)
        .chain([
            Mutation::Expire {
                key: b("z"),
                at: 5000,
                condition: Default::default(),
            },
            Mutation::Persist { key: b("z") },
            Mutation::Expire {
                key: b("h"),
                at: 5000,
                condition: Default::default(),
            },
        ])
        .collect();
        let mut primary = Keyspace::new(true);
        let mut replica = Keyspace::new(true);
        for (step, mutation) in script.into_iter().enumerate() {
            let line = format!("{mutation:?}");
            let _ = primary.apply(0, mutation, 1000 + step as u64);
            let (changes, _) = primary.drain_changes();
            for change in changes {
                replica.replay(change);
            }
            replica.drain_changes();
            assert_eq!(replica.dataset(0), primary.dataset(0), "after {line}");
        }
        // l, h, s, s3, z (l2 was emptied by its pops, s2 by nothing: it holds "b").
        assert_eq!(primary.snapshot(0).len(), 1 + 6);
        assert_eq!(
            primary.ttl(0, &b("h"), 0),
            crate::keyspace::TtlState::At(5000)
        );
    }

    #[test]
    fn a_failed_write_leaves_no_trace() {
        let mut ks = Keyspace::new(true);
        let bad = Op::HIncrByFloat {
            key: b("h"),
            field: b("f"),
            delta: f64::INFINITY,
        };
        assert!(run(&mut ks, bad).is_err());
        assert_eq!(ks.type_of(0, &b("h"), 0), "none");
        assert!(ks.drain_changes().0.is_empty());
        let set = Mutation::Set {
            key: b("str"),
            value: b("v"),
            condition: crate::keyspace::Condition::Always,
            ttl: crate::keyspace::Ttl::Clear,
            get: false,
        };
        ks.apply(0, set, 0).unwrap();
        let push = Op::Push {
            key: b("str"),
            values: vec![b("x")],
            left: true,
            only_if_exists: false,
        };
        assert_eq!(run(&mut ks, push), Err(CommandError::WrongType));
        // LMOVE checks the destination's type before popping anything.
        let rpush = Op::Push {
            key: b("l"),
            values: vec![b("x")],
            left: false,
            only_if_exists: false,
        };
        run(&mut ks, rpush).unwrap();
        let lmove = Op::LMove {
            from: b("l"),
            to: b("str"),
            from_left: true,
            to_left: true,
        };
        assert_eq!(run(&mut ks, lmove), Err(CommandError::WrongType));
        assert_eq!(ks.type_of(0, &b("l"), 0), "list");
    }

    #[test]
    fn index_ranges_follow_redis() {
        assert_eq!(index_range(0, -1, 5), (0, 5));
        assert_eq!(index_range(-2, -1, 5), (3, 5));
        assert_eq!(index_range(-100, 1, 5), (0, 2));
        assert_eq!(index_range(3, 1, 5), (0, 0));
        assert_eq!(index_range(5, 10, 5), (0, 0));
        assert_eq!(index_range(0, -1, 0), (0, 0));
    }
}

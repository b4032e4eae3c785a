//! Applying one collection write: each [`Op`] read, checked and carried out on its
//! collection through [`Keyspace::update`], which journals what it returns.
//!
//! Each arm returns its reply and a [`Delta`]: the [`Edit`] that says which elements
//! changed (so the journal and the replicas get the effect, not the command), the whole
//! value for the O(n) writes Redis also rewrites, or nothing when the write changed
//! nothing.

use bytes::Bytes;
use proto::CommandError;

use super::{Op, ZAddFlags, combine, index_range, next_random};
use crate::keyspace::{Keyspace, Outcome, format_float};
use crate::types::edit::{Delta, Edit};
use crate::types::list::List;
use crate::types::own;
use crate::types::set::Set;
use crate::types::zset::ZSet;
use crate::value::{Entry, Value};

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

fn int(n: usize) -> Outcome {
    Outcome::Integer(n as i64)
}

fn bulks(items: impl IntoIterator<Item = Bytes>) -> Outcome {
    Outcome::Array(items.into_iter().map(Outcome::Bulk).collect())
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

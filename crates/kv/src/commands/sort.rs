//! `SORT` and `SORT_RO`: sort a list, set or sorted set, optionally by *other* keys.
//!
//! `SORT key` sorts the elements as numbers (`ALPHA`: as bytes). What makes SORT more
//! than a sort is its patterns, a small join done inside the server:
//!
//! - `BY weight_*` sorts element `e` by the value of key `weight_e` (the first `*` of the
//!   pattern is replaced by the element); `BY obj_*->price` reads field `price` of hash
//!   `obj_e`. A `BY` pattern without `*` means "don't sort": the elements keep their own
//!   order (a list's, a sorted set's by score), which with `LIMIT` pages through them.
//! - `GET name_*` (and `GET obj_*->name`) replaces each element by what the pattern
//!   finds, `GET #` by the element itself; several `GET`s give several values per element,
//!   and a missing key or field gives a null.
//! - `LIMIT offset count` keeps a page of the sorted result; `STORE dest` saves the result
//!   as a list (through the write path, so it persists and replicates) and answers its
//!   length. `SORT_RO` is the same without `STORE`, so it can run on a replica.
//!
//! Elements with the same weight are ordered by their own bytes, so the result is the
//! same on every run (and the same as Redis's). A weight that is not a number fails the
//! whole command with Redis's "One or more scores can't be converted into double".

use std::cmp::Ordering;

use bytes::Bytes;
use proto::{Args, CommandError, Frame};

use super::Result;
use crate::keyspace::Keyspace;
use crate::server::{Kv, Session};
use crate::types::ops::Op;
use crate::value::Value;

/// The parsed options.
#[derive(Default)]
struct Request {
    by: Option<Bytes>,
    /// `BY` without `*`: keep the collection's own order.
    dont_sort: bool,
    gets: Vec<Bytes>,
    desc: bool,
    alpha: bool,
    limit: Option<(i64, i64)>,
    store: Option<Bytes>,
}

fn parse(args: &mut Args, read_only: bool) -> Result<Request> {
    let mut r = Request::default();
    while let Some(option) = args.next_keyword() {
        let left = args.remaining();
        match option.as_str() {
            "ASC" => r.desc = false,
            "DESC" => r.desc = true,
            "ALPHA" => r.alpha = true,
            "LIMIT" if left >= 2 => r.limit = Some((args.next_int()?, args.next_int()?)),
            "STORE" if !read_only && left >= 1 => r.store = Some(args.next_bytes()?),
            "BY" if left >= 1 => {
                let pattern = args.next_bytes()?;
                r.dont_sort = !pattern.contains(&b'*');
                r.by = Some(pattern);
            }
            "GET" if left >= 1 => r.gets.push(args.next_bytes()?),
            _ => return Err(CommandError::Syntax),
        }
    }
    Ok(r)
}

/// What a pattern finds for `element`: the element itself for `#`, else the string at
/// the key the pattern names, or the hash field after `->`. `None` if there is nothing
/// there, or the pattern has no `*`.
fn lookup(ks: &mut Keyspace, db: usize, now: u64, pattern: &[u8], element: &[u8]) -> Option<Bytes> {
    if pattern == b"#" {
        return Some(Bytes::copy_from_slice(element));
    }
    let star = pattern.iter().position(|&b| b == b'*')?;
    let after = &pattern[star + 1..];
    let arrow = after.windows(2).position(|w| w == b"->");
    let (suffix, field) = match arrow {
        Some(i) if i + 2 < after.len() => (&after[..i], Some(&after[i + 2..])),
        _ => (after, None),
    };
    let key = Bytes::from([&pattern[..star], element, suffix].concat());
    match (ks.value(db, &key, now)?, field) {
        (Value::String(s), None) => Some(s.to_bytes()),
        (Value::Hash(h), Some(field)) => h.get(field).map(Bytes::copy_from_slice),
        _ => None,
    }
}

/// The elements in their own order: a list's, a sorted set's by score (reversed for
/// `DESC` when not sorting), a set's iteration order.
fn elements(value: Option<&Value>) -> Result<Vec<Bytes>> {
    Ok(match value {
        None => Vec::new(),
        Some(Value::List(l)) => l.iter().map(Bytes::copy_from_slice).collect(),
        Some(Value::Set(s)) => s.iter().map(Bytes::copy_from_slice).collect(),
        Some(Value::ZSet(z)) => z
            .order()
            .iter_from(0, false)
            .map(|(_, m)| m.clone())
            .collect(),
        Some(_) => return Err(CommandError::WrongType),
    })
}

/// Redis's LIMIT arithmetic: the inclusive window `[start, end]` of `len` elements
/// (empty when `end < start`).
fn window(limit: Option<(i64, i64)>, len: usize) -> (usize, usize) {
    let len = len as i64;
    let (offset, count) = limit.unwrap_or((0, -1));
    let start = offset.max(0).min(len);
    let count = count.max(-1).min(len);
    let mut end = if count < 0 {
        len - 1
    } else {
        start + count - 1
    };
    let start = if start >= len {
        end = len - 2;
        len - 1
    } else {
        start
    };
    end = end.min(len - 1);
    if end < start {
        return (0, 0);
    }
    (start as usize, (end + 1) as usize)
}

/// A weight parsed as C's `strtod` with nothing left over (Redis's check).
fn numeric_weight(text: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(text).ok()?.trim_start();
    if text.is_empty() {
        return Some(0.0);
    }
    text.parse::<f64>().ok().filter(|w| !w.is_nan())
}

/// Sorts and pages; the reply rows (one per element, or one per element and `GET`).
fn run(
    ks: &mut Keyspace,
    db: usize,
    now: u64,
    key: &Bytes,
    r: &Request,
) -> Result<Vec<Option<Bytes>>> {
    let mut items = elements(ks.value(db, key, now))?;
    let is_set = matches!(ks.peek(db, key, now), Some(Value::Set(_)));
    let (mut dont_sort, mut alpha, mut by) = (r.dont_sort, r.alpha, r.by.as_ref());
    // A set has no order of its own: stored results are sorted, so that a replica or a
    // replayed journal gets the same list (Redis does the same).
    if dont_sort && is_set && r.store.is_some() {
        (dont_sort, alpha, by) = (false, true, None);
    }
    if dont_sort {
        if r.desc {
            items.reverse();
        }
    } else {
        let mut keyed: Vec<(Bytes, Option<Bytes>)> = items
            .into_iter()
            .map(|e| {
                let weight = by.and_then(|p| lookup(ks, db, now, p, &e));
                (e, weight)
            })
            .collect();
        if alpha {
            keyed.sort_by(|a, b| {
                let cmp = match by {
                    Some(_) => a.1.cmp(&b.1),
                    None => a.0.cmp(&b.0),
                };
                if r.desc { cmp.reverse() } else { cmp }
            });
        } else {
            let mut scored = Vec::with_capacity(keyed.len());
            for (e, weight) in keyed {
                let text = if by.is_some() {
                    weight
                } else {
                    Some(e.clone())
                };
                let score = match text {
                    None => 0.0,
                    Some(t) => numeric_weight(&t).ok_or_else(|| {
                        CommandError::err("One or more scores can't be converted into double")
                    })?,
                };
                scored.push((e, score));
            }
            scored.sort_by(|a, b| {
                let cmp =
                    a.1.partial_cmp(&b.1)
                        .unwrap_or(Ordering::Equal)
                        .then_with(|| a.0.cmp(&b.0));
                if r.desc { cmp.reverse() } else { cmp }
            });
            keyed = scored.into_iter().map(|(e, _)| (e, None)).collect();
        }
        items = keyed.into_iter().map(|(e, _)| e).collect();
    }
    let (start, end) = window(r.limit, items.len());
    let page = &items[start..end];
    if r.gets.is_empty() {
        return Ok(page.iter().cloned().map(Some).collect());
    }
    let mut rows = Vec::with_capacity(page.len() * r.gets.len());
    for e in page {
        for pattern in &r.gets {
            rows.push(lookup(ks, db, now, pattern, e));
        }
    }
    Ok(rows)
}

/// `SORT key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC] [ALPHA]
/// [STORE destination]`; `SORT_RO` (`read_only`) without `STORE`.
pub fn sort(kv: &Kv, s: &mut Session, args: &mut Args, read_only: bool) -> Result {
    let key = args.next_bytes()?;
    let request = parse(args, read_only)?;
    // SORT is a write command even without STORE: a replica refuses it, as Redis's
    // does, and readers there use SORT_RO.
    if let Some(refused) = (!read_only)
        .then(|| kv.refuses_queued(&["write"]))
        .flatten()
    {
        return Err(refused);
    }
    let db = s.db;
    let rows = kv.read(|ks, now| run(ks, db, now, &key, &request))?;
    match request.store {
        None => Ok(Frame::Array(
            rows.into_iter()
                .map(|row| row.map_or(Frame::Null, Frame::Bulk))
                .collect(),
        )),
        Some(dest) => {
            let values = rows.into_iter().map(Option::unwrap_or_default).collect();
            super::collections::write(kv, s, Op::ListStore { dest, values })
        }
    }
}

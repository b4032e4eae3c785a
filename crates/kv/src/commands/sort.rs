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
//! Elements with the same number are ordered by their own bytes (Redis's `sortCompare`),
//! so the result is the same on every run and the same as Redis's; `ALPHA BY` ties keep
//! the collection's order. A weight that is not a number fails the whole command with
//! Redis's "One or more scores can't be converted into double".
//!
//! The cost is in the sorting, so it is done as Redis's `sort.c` does it: what each
//! element sorts by is computed once (a number parsed once, not per comparison), the
//! elements are sorted as views of the collection (no copy of the ones not answered),
//! and with `LIMIT` only the page is put in order (see [`sort_page`]). `SORT_RO` of a
//! 100-number list `LIMIT 0 10`: 74,712 -> 34,175 instructions per request
//! (callgrind, `-P 16`; redis-server 62,010).

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

/// The elements in their own order, as views of the value: a list's, a sorted set's
/// by score, a set's iteration order. Nothing is copied: only the page that is
/// answered will be.
fn elements(value: Option<&Value>) -> Result<Vec<&[u8]>> {
    // Sized up front: a set's and a sorted set's walks do not tell their length, and a
    // vector grown by doubling reallocates five times on the way to 100.
    fn gather<'a>(len: usize, walk: impl Iterator<Item = &'a [u8]>) -> Vec<&'a [u8]> {
        let mut all = Vec::with_capacity(len);
        all.extend(walk);
        all
    }
    Ok(match value {
        None => Vec::new(),
        Some(Value::List(l)) => gather(l.len(), l.iter()),
        Some(Value::Set(s)) => gather(s.len(), s.iter()),
        Some(Value::ZSet(z)) => gather(z.len(), z.order().iter_from(0, false).map(|(_, m)| &m[..])),
        Some(_) => return Err(CommandError::WrongType),
    })
}

/// Redis's LIMIT arithmetic: the window `start..end` of `len` elements (empty when
/// `end <= start`).
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

/// A weight parsed as C's `strtod` with nothing left over and no overflow (Redis's
/// check). An integer, what lists of ids and counters hold, takes the short way: it
/// is the same double `strtod` would give, without the general float parser (which
/// was a tenth of `SORT`'s instructions on a list of 100 numbers).
fn numeric_weight(text: &[u8]) -> Option<f64> {
    if let Some(n) = small_integer(text) {
        return Some(n);
    }
    if text.is_empty() {
        return Some(0.0); // `strtod("")` converts nothing and leaves nothing over
    }
    let text = std::str::from_utf8(text).ok()?.trim_start();
    let weight = text.parse::<f64>().ok().filter(|w| !w.is_nan())?;
    // `strtod` reports ERANGE for "1e400" where Rust answers infinity.
    let overflow = weight.is_infinite() && !text.to_ascii_lowercase().contains("inf");
    (!overflow).then_some(weight)
}

/// `-?[0-9]{1,15}` as a double: at most 15 digits, so the value is below 2^53, exact in a
/// double, and the sum cannot overflow (no checked arithmetic per digit).
fn small_integer(text: &[u8]) -> Option<f64> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    let mut n = 0u64;
    for &d in digits {
        let digit = d.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        n = n * 10 + u64::from(digit);
    }
    let n = n as f64;
    Some(if negative { -n } else { n })
}

/// Puts the elements of the sorted order's positions `start..end` (the `LIMIT` page) at
/// those positions of `items`, sorted, without sorting the rest.
///
/// Sorting all `n` elements to answer ten of them is `n log n` comparisons spent mostly
/// on elements nobody sees. A *selection* (quickselect, `select_nth_unstable_by`) puts
/// the element of rank `k` at position `k` with the smaller ones before it and the
/// larger ones after, in any order, in linear time. Two selections fence the page
/// (rank `end` first, then rank `start` inside the `end` smallest) and only the page is
/// sorted: `n + k log k` instead of `n log n`. Redis's `pqsort` (a partial quicksort)
/// does the same with `BY`. `cmp` must be a total order (ties broken), so the page is
/// the same whichever way the selection went.
fn sort_page<T>(
    items: &mut [T],
    (start, end): (usize, usize),
    mut cmp: impl FnMut(&T, &T) -> Ordering,
) {
    if start >= end {
        return;
    }
    if end < items.len() {
        items.select_nth_unstable_by(end, &mut cmp);
    }
    let head = &mut items[..end];
    if start > 0 {
        head.select_nth_unstable_by(start, &mut cmp);
    }
    head[start..].sort_unstable_by(cmp);
}

/// The positions in `elements` of the page `start..end` of the sorted order. `weights`:
/// what the `BY` pattern found for each element (`None`: sort by the elements).
///
/// What an element is sorted by is computed once, before sorting, as Redis's
/// `redisSortObject` holds it: a number parsed once per element, not once per
/// comparison. Ties are broken as Redis breaks them: numbers by the elements' bytes
/// (`DESC` reverses that too); `ALPHA BY` weights by the collection's own order.
fn page<E: AsRef<[u8]>>(
    elements: &[E],
    weights: Option<Vec<Option<Bytes>>>,
    alpha: bool,
    desc: bool,
    window: (usize, usize),
) -> Result<Vec<usize>> {
    let bytes = |i: usize| elements[i].as_ref();
    let directed = |o: Ordering| if desc { o.reverse() } else { o };
    let (start, end) = window;
    if !alpha {
        // Each score next to its element's position, so a comparison reads both scores
        // from the pair it holds; the elements' bytes are read only on a tie.
        let mut scored = Vec::with_capacity(elements.len());
        for i in 0..elements.len() {
            let text = match &weights {
                None => Some(bytes(i)),
                Some(w) => w[i].as_deref(),
            };
            // A missing weight counts as 0, as in Redis.
            let score = text.map_or(Some(0.0), numeric_weight).ok_or_else(|| {
                CommandError::err("One or more scores can't be converted into double")
            })?;
            scored.push((score, i));
        }
        sort_page(&mut scored, window, |a, b| {
            let by_score = a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal);
            directed(by_score.then_with(|| bytes(a.1).cmp(bytes(b.1))))
        });
        return Ok(scored[start..end].iter().map(|&(_, i)| i).collect());
    }
    let mut order: Vec<usize> = (0..elements.len()).collect();
    match weights {
        None => sort_page(&mut order, window, |&a, &b| {
            directed(bytes(a).cmp(bytes(b)))
        }),
        // A missing weight sorts first (`None < Some`), as Redis's NULL does.
        Some(w) => sort_page(&mut order, window, |&a, &b| {
            directed(w[a].cmp(&w[b])).then(a.cmp(&b))
        }),
    }
    Ok(order[start..end].to_vec())
}

/// The positions in `items` of the reply's elements, in reply order: the `LIMIT` page
/// of the collection's own order (`BY` without `*`), or of the sorted order.
fn arrange<E: AsRef<[u8]>>(
    items: &mut [E],
    weights: Option<Vec<Option<Bytes>>>,
    dont_sort: bool,
    alpha: bool,
    r: &Request,
) -> Result<Vec<usize>> {
    if dont_sort && r.desc {
        items.reverse();
    }
    let (start, end) = window(r.limit, items.len());
    if dont_sort {
        return Ok((start..end).collect());
    }
    page(items, weights, alpha, r.desc, (start, end))
}

/// Sorts and pages; the reply rows (one per element, or one per element and `GET`).
fn run(
    ks: &mut Keyspace,
    db: usize,
    now: u64,
    key: &Bytes,
    r: &Request,
) -> Result<Vec<Option<Bytes>>> {
    let value = ks.value(db, key, now);
    let is_set = matches!(value, Some(Value::Set(_)));
    let (mut dont_sort, mut alpha, mut by) = (r.dont_sort, r.alpha, r.by.as_ref());
    // A set has no order of its own: stored results are sorted, so that a replica or a
    // replayed journal gets the same list (Redis does the same).
    if dont_sort && is_set && r.store.is_some() {
        (dont_sort, alpha, by) = (false, true, None);
    }
    let by = by.filter(|_| !dont_sort);
    let mut items = elements(value)?;
    if by.is_none() && r.gets.is_empty() {
        // Nothing to look up in other keys: sort views of the elements where they lie
        // and copy out only the page.
        let rows = arrange(&mut items, None, dont_sort, alpha, r)?;
        return Ok(rows
            .into_iter()
            .map(|i| Some(Bytes::copy_from_slice(items[i])))
            .collect());
    }
    // The patterns read other keys of the keyspace: the elements are copied out first.
    let mut items: Vec<Bytes> = items.into_iter().map(Bytes::copy_from_slice).collect();
    let weights = by.map(|p| items.iter().map(|e| lookup(ks, db, now, p, e)).collect());
    let rows = arrange(&mut items, weights, dont_sort, alpha, r)?;
    if r.gets.is_empty() {
        return Ok(rows.into_iter().map(|i| Some(items[i].clone())).collect());
    }
    let mut out = Vec::with_capacity(rows.len() * r.gets.len());
    for i in rows {
        for pattern in &r.gets {
            out.push(lookup(ks, db, now, pattern, &items[i]));
        }
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every page of every length, over inputs with many ties: the page is the same
    /// slice a full sort gives.
    #[test]
    fn a_page_is_the_slice_of_the_full_sort() {
        let mut seed = 26u64;
        for len in 0..40 {
            let items: Vec<(u8, usize)> = (0..len)
                .map(|i| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((seed >> 60) as u8, i)
                })
                .collect();
            let mut full = items.clone();
            full.sort();
            for start in 0..=len {
                for end in start..=len {
                    let mut paged = items.clone();
                    sort_page(&mut paged, (start, end), |a, b| a.cmp(b));
                    assert_eq!(paged[start..end], full[start..end], "{len} {start}..{end}");
                }
            }
        }
    }

    #[test]
    fn weights_parse_as_strtod_with_nothing_left_over() {
        for (text, weight) in [
            ("7", Some(7.0)),
            ("-12", Some(-12.0)),
            ("007", Some(7.0)),
            ("999999999999999", Some(999_999_999_999_999.0)),
            ("9223372036854775807", Some(9_223_372_036_854_775_807.0)),
            ("2.5", Some(2.5)),
            (" 1e2", Some(100.0)),
            ("", Some(0.0)),
            ("-inf", Some(f64::NEG_INFINITY)),
            (" ", None),
            ("1 ", None),
            ("-", None),
            ("x", None),
            ("nan", None),
            ("1e400", None),
        ] {
            assert_eq!(numeric_weight(text.as_bytes()), weight, "{text:?}");
        }
        assert!(numeric_weight(b"-0").is_some_and(|w| w == 0.0 && w.is_sign_negative()));
    }

    #[test]
    fn limit_windows_follow_redis() {
        assert_eq!(window(None, 5), (0, 5));
        assert_eq!(window(Some((1, 2)), 5), (1, 3));
        assert_eq!(window(Some((-3, 2)), 5), (0, 2));
        assert_eq!(window(Some((3, -1)), 5), (3, 5));
        assert_eq!(window(Some((5, 1)), 5), (0, 0));
        assert_eq!(window(Some((0, i64::MAX)), 5), (0, 5));
        assert_eq!(window(Some((0, 0)), 5), (0, 0));
        assert_eq!(window(None, 0), (0, 0));
    }
}

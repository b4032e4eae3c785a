//! Partial content: byte ranges (RFC 9110 §14), storing `206` responses and combining them
//! (RFC 9111 §3.3, §3.4).
//!
//! A video player or a download manager asks for a large object piece by piece
//! (`Range: bytes=0-1048575`, then the next megabyte...). The origin answers each with
//! `206 Partial Content` and `Content-Range: bytes 0-1048575/73400320`. A cache that threw
//! those away would send every piece of every viewer to the origin; this one keeps them:
//!
//! - the pieces of one representation are kept together ([`Pieces`]), merged where they
//!   touch or overlap, so a later range inside what is held is answered from the cache;
//! - a new piece joins the stored ones only if both carry the same **strong validator**
//!   (an `ETag` that is not `W/`): that is the only proof that the bytes come from the same
//!   version of the object (§3.4). A piece of another version replaces them;
//! - once the pieces cover the whole object, the partial response becomes a complete `200`
//!   (§3.4: "the cache ... can use the combined response as if it were complete"), which
//!   then answers plain GETs too.
//!
//! Only single ranges are stored; a `multipart/byteranges` answer passes through.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use hyper::header::{self, HeaderMap, HeaderValue};

/// `Content-Range: bytes first-last/complete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    pub first: u64,
    /// Inclusive.
    pub last: u64,
    /// The whole representation's length (`None` for `/*`: unknown).
    pub complete: Option<u64>,
}

/// Parses a response's `Content-Range`.
pub fn content_range(headers: &HeaderMap) -> Option<ContentRange> {
    let value = headers.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let spec = value.trim().strip_prefix("bytes ")?;
    let (range, complete) = spec.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let (first, last): (u64, u64) = (first.trim().parse().ok()?, last.trim().parse().ok()?);
    let complete = match complete.trim() {
        "*" => None,
        n => Some(n.parse().ok()?),
    };
    let valid = first <= last && complete.is_none_or(|n| last < n);
    valid.then_some(ContentRange {
        first,
        last,
        complete,
    })
}

/// One `bytes=a-b` range (or `a-`, `-n`) of a body of `len` bytes, inclusive; `None`
/// for anything else (several ranges, other units, unsatisfiable), which is then
/// answered with the whole body as RFC 9110 §14.2 allows.
pub fn byte_range(value: &HeaderValue, len: usize) -> Option<(usize, usize)> {
    let spec = value.to_str().ok()?.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || len == 0 {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let (start, end) = if first.is_empty() {
        let suffix: usize = last.parse().ok()?;
        (len.checked_sub(suffix.min(len))?, len - 1)
    } else {
        let start: usize = first.parse().ok()?;
        let end = if last.is_empty() {
            len - 1
        } else {
            last.parse::<usize>().ok()?.min(len - 1)
        };
        (start, end)
    };
    (start <= end && start < len).then_some((start, end))
}

/// The strong entity tag of a response, if it has one (§8.8.3 of RFC 9110: `W/` is weak).
pub fn strong_etag(headers: &HeaderMap) -> Option<&[u8]> {
    let tag = headers.get(header::ETAG)?.as_bytes();
    (!tag.starts_with(b"W/")).then_some(tag)
}

/// May pieces from responses with these headers be combined (§3.4)? Only when both have
/// the same strong validator.
pub fn same_representation(stored: &HeaderMap, new: &HeaderMap) -> bool {
    matches!((strong_etag(stored), strong_etag(new)), (Some(a), Some(b)) if a == b)
}

/// `If-Range` (RFC 9110 §13.1.5): a range is served only if the representation is still
/// the one the client has part of — its strong `ETag`, or exactly its `Last-Modified`.
/// Otherwise the client gets the whole response.
pub fn if_range_holds(request: &HeaderMap, stored: &HeaderMap) -> bool {
    let Some(condition) = request.get(header::IF_RANGE) else {
        return true;
    };
    let condition = condition.as_bytes();
    if condition.starts_with(b"\"") {
        return strong_etag(stored) == Some(condition);
    }
    let modified = stored.get(header::LAST_MODIFIED).map(|v| v.as_bytes());
    matches!((http_date(condition), modified.and_then(http_date)), (Some(a), Some(b)) if a == b)
}

fn http_date(value: &[u8]) -> Option<std::time::SystemTime> {
    httpdate::parse_http_date(std::str::from_utf8(value).ok()?).ok()
}

/// The pieces held of one representation of `complete` bytes: start offset → bytes,
/// never overlapping or touching (those are merged as they arrive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pieces {
    complete: u64,
    pieces: BTreeMap<u64, Bytes>,
}

impl Pieces {
    pub fn new(complete: u64) -> Pieces {
        Pieces {
            complete,
            pieces: BTreeMap::new(),
        }
    }

    /// The whole representation's length.
    pub fn complete_length(&self) -> u64 {
        self.complete
    }

    /// Bytes held.
    pub fn held(&self) -> usize {
        self.pieces.values().map(Bytes::len).sum()
    }

    /// Adds the piece that starts at `first`, merging it with every piece it overlaps or
    /// touches. Bytes past the complete length are ignored.
    pub fn add(&mut self, first: u64, bytes: Bytes) {
        let room = self.complete.saturating_sub(first);
        let bytes = bytes.slice(..bytes.len().min(usize::try_from(room).unwrap_or(usize::MAX)));
        if bytes.is_empty() {
            return;
        }
        let mut start = first;
        let mut end = first + bytes.len() as u64; // exclusive
        // Every held piece that overlaps or touches [start, end) joins the new one.
        let touching: Vec<u64> = self
            .pieces
            .range(..=end)
            .filter(|(s, b)| **s + b.len() as u64 >= start)
            .map(|(s, _)| *s)
            .collect();
        if touching.is_empty() {
            self.pieces.insert(start, bytes);
            return;
        }
        let mut parts: Vec<(u64, Bytes)> = touching
            .iter()
            .filter_map(|s| self.pieces.remove(s).map(|b| (*s, b)))
            .collect();
        for (s, b) in &parts {
            start = start.min(*s);
            end = end.max(*s + b.len() as u64);
        }
        // Older pieces first, the new one last: where they overlap, the newest bytes win
        // (they are the same representation, so the bytes agree anyway).
        parts.push((first, bytes));
        let mut merged = BytesMut::zeroed(usize::try_from(end - start).unwrap_or(0));
        for (s, b) in parts {
            let at = usize::try_from(s - start).unwrap_or(0);
            merged[at..at + b.len()].copy_from_slice(&b);
        }
        self.pieces.insert(start, merged.freeze());
    }

    /// Bytes `first..=last` if one held piece covers them all.
    pub fn get(&self, first: u64, last: u64) -> Option<Bytes> {
        let (start, bytes) = self.pieces.range(..=first).next_back()?;
        let end = start + bytes.len() as u64; // exclusive
        (last < end).then(|| {
            let from = usize::try_from(first - start).unwrap_or(0);
            let to = usize::try_from(last - start).unwrap_or(0);
            bytes.slice(from..=to)
        })
    }

    /// The whole representation, once the pieces cover it.
    pub fn whole(&self) -> Option<Bytes> {
        match self.pieces.first_key_value() {
            Some((0, bytes)) if bytes.len() as u64 == self.complete => Some(bytes.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn range(s: &'static str, len: usize) -> Option<(usize, usize)> {
        byte_range(&HeaderValue::from_static(s), len)
    }

    #[test]
    fn byte_ranges() {
        assert_eq!(range("bytes=0-4", 10), Some((0, 4)));
        assert_eq!(range("bytes=5-", 10), Some((5, 9)));
        assert_eq!(range("bytes=-3", 10), Some((7, 9)));
        assert_eq!(range("bytes=8-100", 10), Some((8, 9)));
        assert_eq!(range("bytes=10-", 10), None);
        assert_eq!(range("bytes=0-1,3-4", 10), None);
        assert_eq!(range("items=0-1", 10), None);
        assert_eq!(range("bytes=-0", 10), None);
    }

    #[test]
    fn content_ranges() {
        let cr = |v| content_range(&headers(&[("content-range", v)]));
        assert_eq!(
            cr("bytes 0-4/10"),
            Some(ContentRange {
                first: 0,
                last: 4,
                complete: Some(10)
            })
        );
        assert_eq!(cr("bytes 5-9/*").and_then(|c| c.complete), None);
        assert!(cr("bytes 5-9/*").is_some());
        assert_eq!(cr("bytes 5-10/10"), None, "past the end");
        assert_eq!(cr("bytes 6-5/10"), None);
        assert_eq!(cr("items 0-1/2"), None);
        assert_eq!(cr("bytes */10"), None, "the 416 form");
    }

    #[test]
    fn pieces_merge_where_they_touch_and_overlap_and_become_whole() {
        let mut p = Pieces::new(10);
        p.add(0, Bytes::from_static(b"012"));
        p.add(6, Bytes::from_static(b"678"));
        assert_eq!(p.get(0, 2).as_deref(), Some(&b"012"[..]));
        assert_eq!(p.get(1, 3), None, "3 is not held");
        assert_eq!(p.whole(), None);
        p.add(3, Bytes::from_static(b"345")); // touches both neighbours
        assert_eq!(p.get(2, 7).as_deref(), Some(&b"234567"[..]));
        assert_eq!(p.held(), 9);
        p.add(7, Bytes::from_static(b"789xx")); // overlaps, and runs past the end
        assert_eq!(p.held(), 10);
        assert_eq!(p.whole().as_deref(), Some(&b"0123456789"[..]));
    }

    #[test]
    fn only_a_shared_strong_validator_combines() {
        let a = headers(&[("etag", "\"v1\"")]);
        let weak = headers(&[("etag", "W/\"v1\"")]);
        let other = headers(&[("etag", "\"v2\"")]);
        assert!(same_representation(&a, &a.clone()));
        assert!(!same_representation(&a, &weak));
        assert!(!same_representation(&a, &other));
        assert!(!same_representation(&HeaderMap::new(), &HeaderMap::new()));
    }

    #[test]
    fn if_range_needs_the_same_strong_etag_or_date() {
        let stored = headers(&[
            ("etag", "\"v1\""),
            ("last-modified", "Sat, 05 Dec 2026 01:19:30 GMT"),
        ]);
        assert!(if_range_holds(&HeaderMap::new(), &stored));
        assert!(if_range_holds(&headers(&[("if-range", "\"v1\"")]), &stored));
        assert!(!if_range_holds(
            &headers(&[("if-range", "\"v0\"")]),
            &stored
        ));
        assert!(!if_range_holds(
            &headers(&[("if-range", "W/\"v1\"")]),
            &stored
        ));
        assert!(if_range_holds(
            &headers(&[("if-range", "Sat, 05 Dec 2026 01:19:30 GMT")]),
            &stored
        ));
        assert!(!if_range_holds(
            &headers(&[("if-range", "Sat, 05 Dec 2026 01:19:31 GMT")]),
            &stored
        ));
    }
}

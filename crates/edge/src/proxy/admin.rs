//! Invalidation by hand or by event, and the stats page.
//!
//! - `PURGE /posts/1` removes every stored variant of that URL.
//! - `PURGE /` with `Surrogate-Key: post-1 posts` (or `Cache-Tag: post-1,posts`) removes
//!   every URL whose response carried one of those tags — how an origin invalidates all
//!   the pages showing a post when the post changes.
//! - `GET /_edge/stats`: hits, misses, hit ratio, bytes served from cache, origin
//!   requests, evictions, memory, as `key:value` lines like Redis's INFO.

use hyper::header::HeaderValue;
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};

use super::Edge;
use super::stats::Stats;
use crate::http::{Body, text};

/// `PURGE`: by tag if the request names tags, else by URL.
pub fn purge(edge: &Edge, parts: &Parts) -> Response<Body> {
    let mut tags: Vec<String> = Vec::new();
    for (name, separator) in [("surrogate-key", ' '), ("cache-tag", ',')] {
        for value in parts.headers.get_all(name) {
            if let Ok(value) = value.to_str() {
                tags.extend(
                    value
                        .split(separator)
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned),
                );
            }
        }
    }
    let removed = if tags.is_empty() {
        let key = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        edge.store().remove(key)
    } else {
        let mut store = edge.store();
        tags.iter().map(|t| store.purge_tag(t)).sum()
    };
    Stats::add(&edge.stats.purges, 1);
    let status = if removed > 0 {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    text(status, &format!("purged {removed}\n"))
}

/// `GET /_edge/stats`.
pub fn page(edge: &Edge, parts: &Parts) -> Response<Body> {
    if parts.uri.path() != "/_edge/stats" {
        return text(StatusCode::NOT_FOUND, "try /_edge/stats\n");
    }
    let s = &edge.stats;
    let (objects, used, evictions) = {
        let store = edge.store();
        (store.len(), store.used(), store.evictions())
    };
    let body = format!(
        "region:{}\nhits:{}\nmisses:{}\nstale:{}\nrevalidated:{}\nhit_ratio:{:.3}\n\
         bytes_from_cache:{}\norigin_requests:{}\nobjects:{}\nused_memory:{}\nevictions:{}\n\
         purges:{}\nin_flight_fills:{}\n",
        edge.region,
        Stats::get(&s.hits),
        Stats::get(&s.misses),
        Stats::get(&s.stale),
        Stats::get(&s.revalidated),
        s.hit_ratio(),
        Stats::get(&s.bytes_from_cache),
        Stats::get(&s.origin_requests),
        objects,
        used,
        evictions,
        Stats::get(&s.purges),
        edge.collapser.in_flight(),
    );
    let mut response = text(StatusCode::OK, &body);
    response
        .headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    response
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

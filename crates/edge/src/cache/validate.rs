//! Validation (RFC 9111 §4.3): asking the origin "has it changed?" instead of fetching it
//! again, and answering clients who ask the same question of the cache.
//!
//! A stale response with a validator (`ETag`, `Last-Modified`) is revalidated with a
//! conditional request (`If-None-Match`, `If-Modified-Since`). `304 Not Modified` means
//! the stored body is still good: its headers are updated from the 304 (§3.2, new
//! `Date`, `Cache-Control`, `ETag`...) and its age starts again. Anything else replaces it.

use std::time::SystemTime;

use hyper::header::{self, HeaderMap, HeaderValue};

use super::freshness::{Timing, date_field};
use super::store::{Stored, response_directives};

/// Adds the conditions that ask the origin whether `stored` is still current.
/// Returns false if it has no validator (then the request is an ordinary fetch).
pub fn add_conditions(request: &mut HeaderMap, stored: &Stored) -> bool {
    let mut any = false;
    if let Some(etag) = stored.headers.get(header::ETAG) {
        request.insert(header::IF_NONE_MATCH, etag.clone());
        any = true;
    }
    if let Some(modified) = stored.headers.get(header::LAST_MODIFIED) {
        request.insert(header::IF_MODIFIED_SINCE, modified.clone());
        any = true;
    }
    any
}

/// Whether a 304 with `headers` is about `stored` (§4.3.4): a 304 naming a different
/// entity tag validates some other response.
pub fn validates(stored: &Stored, not_modified: &HeaderMap) -> bool {
    match (
        not_modified.get(header::ETAG),
        stored.headers.get(header::ETAG),
    ) {
        (Some(new), Some(old)) => strip_weak(new.as_bytes()) == strip_weak(old.as_bytes()),
        (Some(_), None) => false,
        _ => true,
    }
}

/// Fields a 304 must not change in the stored response (§3.2): they describe the body
/// the cache holds, not the one the origin would send.
const KEEP: [header::HeaderName; 3] = [
    header::CONTENT_LENGTH,
    header::CONTENT_ENCODING,
    header::TRANSFER_ENCODING,
];

/// The stored response with the 304's headers merged in and its age restarted.
pub fn freshen(stored: &Stored, not_modified: &HeaderMap, timing: Timing) -> Stored {
    let mut headers = stored.headers.clone();
    for name in not_modified.keys() {
        if KEEP.contains(name) {
            continue;
        }
        headers.remove(name);
        for value in not_modified.get_all(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    let mut fresh = stored.clone();
    fresh.cc = response_directives(&headers);
    fresh.headers = headers;
    fresh.timing = timing;
    fresh
}

/// Whether a client's own conditional GET/HEAD is satisfied by `stored`, so the cache
/// answers `304` without a body (RFC 9110 §13.1.2, §13.1.3; §13.2.2's order:
/// `If-None-Match` first, and when it is present `If-Modified-Since` is ignored).
pub fn client_not_modified(request: &HeaderMap, stored: &Stored) -> bool {
    if let Some(inm) = crate::http::headers::joined(request, header::IF_NONE_MATCH) {
        let Some(etag) = stored.headers.get(header::ETAG) else {
            return false;
        };
        let ours = strip_weak(etag.as_bytes());
        return inm
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || strip_weak(tag.as_bytes()) == ours);
    }
    let Some(since) = date_field(request, header::IF_MODIFIED_SINCE) else {
        return false;
    };
    let modified = date_field(&stored.headers, header::LAST_MODIFIED)
        .or_else(|| date_field(&stored.headers, header::DATE));
    modified.is_some_and(|m| m <= since)
}

/// Weak comparison (RFC 9110 §8.8.3.2): `W/"x"` and `"x"` match.
fn strip_weak(tag: &[u8]) -> &[u8] {
    tag.strip_prefix(b"W/").unwrap_or(tag)
}

/// The headers a `304` from the cache carries (RFC 9110 §15.4.5).
pub fn not_modified_headers(stored: &Stored) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in [
        header::CACHE_CONTROL,
        header::CONTENT_LOCATION,
        header::DATE,
        header::ETAG,
        header::EXPIRES,
        header::VARY,
        header::LAST_MODIFIED,
    ] {
        for value in stored.headers.get_all(&name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// `Date` for a response this cache generates.
pub fn date_now(now: SystemTime) -> HeaderValue {
    HeaderValue::from_str(&httpdate::fmt_http_date(now))
        .unwrap_or_else(|_| HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::vary::SecondaryKey;
    use bytes::Bytes;
    use hyper::StatusCode;
    use std::time::Duration;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s)
    }

    fn stored() -> Stored {
        let mut h = HeaderMap::new();
        h.insert("etag", "\"v1\"".parse().expect("v"));
        h.insert(
            "last-modified",
            httpdate::fmt_http_date(at(0)).parse().expect("v"),
        );
        h.insert("cache-control", "max-age=10".parse().expect("v"));
        h.insert("content-length", "5".parse().expect("v"));
        h.insert("x-old", "kept".parse().expect("v"));
        Stored::new(
            StatusCode::OK,
            h,
            Bytes::from_static(b"hello"),
            Timing {
                request_time: at(0),
                response_time: at(0),
            },
            SecondaryKey::default(),
        )
    }

    #[test]
    fn conditions_come_from_the_validators() {
        let mut req = HeaderMap::new();
        assert!(add_conditions(&mut req, &stored()));
        assert_eq!(req["if-none-match"], "\"v1\"");
        assert!(req.contains_key("if-modified-since"));
    }

    #[test]
    fn a_304_updates_headers_but_not_the_body_or_its_length() {
        let mut nm = HeaderMap::new();
        nm.insert("cache-control", "max-age=100".parse().expect("v"));
        nm.insert("content-length", "0".parse().expect("v"));
        nm.insert("etag", "W/\"v1\"".parse().expect("v"));
        let s = stored();
        assert!(validates(&s, &nm));
        let t = Timing {
            request_time: at(50),
            response_time: at(50),
        };
        let fresh = freshen(&s, &nm, t);
        assert_eq!(fresh.headers["cache-control"], "max-age=100");
        assert_eq!(fresh.headers["content-length"], "5");
        assert_eq!(fresh.headers["x-old"], "kept");
        assert_eq!(fresh.cc.max_age, Some(Duration::from_secs(100)));
        assert_eq!(fresh.body, Bytes::from_static(b"hello"));
        let mut other = HeaderMap::new();
        other.insert("etag", "\"v2\"".parse().expect("v"));
        assert!(!validates(&s, &other));
    }

    #[test]
    fn client_conditionals() {
        let s = stored();
        let mut req = HeaderMap::new();
        req.insert("if-none-match", "\"x\", W/\"v1\"".parse().expect("v"));
        assert!(client_not_modified(&req, &s));
        req.insert("if-none-match", "\"x\"".parse().expect("v"));
        assert!(!client_not_modified(&req, &s));
        let mut ims = HeaderMap::new();
        ims.insert(
            "if-modified-since",
            httpdate::fmt_http_date(at(5)).parse().expect("v"),
        );
        assert!(client_not_modified(&ims, &s));
        ims.insert(
            "if-modified-since",
            httpdate::fmt_http_date(at(0) - Duration::from_secs(5))
                .parse()
                .expect("v"),
        );
        assert!(!client_not_modified(&ims, &s));
    }
}

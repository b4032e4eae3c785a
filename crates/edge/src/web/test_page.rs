//! `GET /test?...`: a response with exactly the caching headers the query asks for, so a
//! test (or a learner with curl) can put any rule of RFC 9111 in front of the edge.
//!
//! | parameter | header sent |
//! |---|---|
//! | `cc=max-age=60,public` | `Cache-Control: max-age=60,public` |
//! | `then=max-age=60` | that `Cache-Control` instead of `cc` from the second request on (a 304 that changes freshness) |
//! | `cdn=max-age=60` | `CDN-Cache-Control: max-age=60` |
//! | `etag="v1"` | `ETag: "v1"` (and `304` to a matching `If-None-Match`) |
//! | `lm=3600` | `Last-Modified:` an hour before the origin started (the same on every request; `304` to a later `If-Modified-Since`) |
//! | `expires=60` / `expires=bad` | `Expires:` in a minute / `Expires: bad` |
//! | `date=-30` | `Date:` 30 s ago |
//! | `age=20` | `Age: 20` |
//! | `vary=accept-language` | `Vary: accept-language` |
//! | `tag=a b` | `Surrogate-Key: a b` |
//! | `status=404` | that status |
//! | `delay=300` | answers after 300 ms (to make concurrent misses overlap) |
//! | `location=/x` | `Location: /x` |
//! | `size=1024` | a body padded to that many bytes (at most 16 MiB; for benchmarks) |
//! | `ranges=1` | `Accept-Ranges: bytes`; the body is `size` bytes of `0123456789...`, the same on every request, and a single `Range` gets `206` with `Content-Range` |
//!
//! The body names the URI and how many times the origin has been asked for it:
//! `/test?cc=max-age=60 #1`.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hyper::header::{self, HeaderMap};
use hyper::{Response, StatusCode};

use super::respond;
use crate::http::Body;

/// The most a `delay=` may ask for (a test origin should not be a slowloris itself).
const MAX_DELAY: Duration = Duration::from_secs(60);
/// The largest body `size=` may ask for.
const MAX_SIZE: usize = 16 << 20;

pub async fn test_page(
    query: &str,
    request: &HeaderMap,
    uri: &str,
    count: u64,
    started: SystemTime,
) -> Response<Body> {
    let now = SystemTime::now();
    let mut headers: Vec<(&str, String)> = Vec::new();
    let mut status = StatusCode::OK;
    let mut etag = None;
    let mut size = 0;
    let mut ranges = false;
    let mut modified = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value);
        let offset = |v: &str| v.parse::<i64>().ok().map(|s| shift(now, s));
        match name {
            "cc" if !(count > 1 && query.contains("then=")) => {
                headers.push(("cache-control", value))
            }
            "then" if count > 1 => headers.push(("cache-control", value)),
            "cdn" => headers.push(("cdn-cache-control", value)),
            "etag" => {
                etag = Some(value.clone());
                headers.push(("etag", value));
            }
            "lm" => {
                if let Ok(ago) = value.parse::<i64>() {
                    let t = shift(started, -ago);
                    modified = Some(t);
                    headers.push(("last-modified", httpdate::fmt_http_date(t)));
                }
            }
            "expires" => match value.parse::<i64>() {
                Ok(s) => headers.push(("expires", httpdate::fmt_http_date(shift(now, s)))),
                Err(_) => headers.push(("expires", value)),
            },
            "date" => {
                if let Some(t) = offset(&value) {
                    headers.push(("date", httpdate::fmt_http_date(t)));
                }
            }
            "age" => headers.push(("age", value)),
            "vary" => headers.push(("vary", value)),
            "tag" => headers.push(("surrogate-key", value)),
            "location" => headers.push(("location", value)),
            "size" => size = value.parse::<usize>().unwrap_or(0).min(MAX_SIZE),
            "ranges" => ranges = true,
            "status" => {
                if let Some(s) = value
                    .parse::<u16>()
                    .ok()
                    .and_then(|s| StatusCode::from_u16(s).ok())
                {
                    status = s;
                }
            }
            "delay" => {
                if let Ok(ms) = value.parse::<u64>() {
                    tokio::time::sleep(Duration::from_millis(ms).min(MAX_DELAY)).await;
                }
            }
            _ => {}
        }
    }
    if status == StatusCode::OK && conditional_match(request, etag.as_deref(), modified) {
        return respond(StatusCode::NOT_MODIFIED, &headers, Bytes::new());
    }
    if ranges {
        return ranged(request, headers, size);
    }
    // Echo the varied request headers, so a test sees which variant it got.
    let mut body = format!("{uri} #{count}");
    if let Some(lang) = request
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
    {
        body.push_str(&format!(" lang={lang}"));
    }
    body.push('\n');
    if body.len() < size {
        let pad = size - body.len();
        body.insert_str(body.len() - 1, &".".repeat(pad));
    }
    respond(status, &headers, Bytes::from(body))
}

/// `ranges=1`: a body that is the same on every request (pieces of it can be combined),
/// and a single byte range answered `206`.
fn ranged(request: &HeaderMap, mut headers: Vec<(&str, String)>, size: usize) -> Response<Body> {
    let body: Bytes = (0..size).map(|i| b'0' + (i % 10) as u8).collect();
    headers.push(("accept-ranges", "bytes".into()));
    let range = request
        .get(header::RANGE)
        .and_then(|r| crate::cache::partial::byte_range(r, body.len()));
    match range {
        Some((first, last)) => {
            headers.push(("content-range", format!("bytes {first}-{last}/{size}")));
            respond(
                StatusCode::PARTIAL_CONTENT,
                &headers,
                body.slice(first..=last),
            )
        }
        None => respond(StatusCode::OK, &headers, body),
    }
}

fn conditional_match(
    request: &HeaderMap,
    etag: Option<&str>,
    modified: Option<SystemTime>,
) -> bool {
    if let Some(inm) = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        let Some(etag) = etag else { return false };
        let etag = etag.trim_start_matches("W/");
        return inm.split(',').any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == etag
        });
    }
    let since = request
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    matches!((since, modified), (Some(since), Some(m)) if m <= since)
}

fn shift(t: SystemTime, seconds: i64) -> SystemTime {
    let d = Duration::from_secs(seconds.unsigned_abs());
    if seconds >= 0 { t + d } else { t - d }
}

/// `%XX` and `+` decoding for query values.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(digit: Option<&u8>) -> Option<u8> {
    (*digit? as char).to_digit(16).map(|d| d as u8)
}

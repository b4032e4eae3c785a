//! The edge's request path.
//!
//! ```text
//! GET/HEAD ─▶ lookup(URL, Vary) ─┬─ fresh ─────────────────────────▶ serve  X-Cache: HIT
//!                                ├─ stale, client allows (max-stale) ▶ serve  STALE
//!                                ├─ stale-while-revalidate ──▶ serve STALE, validate in background
//!                                ├─ must validate ─▶ conditional GET ─┬─ 304 ▶ freshen, serve REVALIDATED
//!                                │                                    ├─ 200 ▶ store, serve MISS
//!                                │                                    └─ error ▶ stale-if-error? STALE : 502/504
//!                                └─ nothing stored ─▶ collapsed GET ─▶ store if allowed, serve MISS
//! GET + Range ─▶ stored and fresh, holding those bytes? ─ yes ▶ 206 HIT (from a 200 or pieces)
//!                                                     └─ no ─▶ the range from the origin;
//!                                                              its 206 joins the pieces held
//! other methods ─▶ forward; on success invalidate the URL, Location, Content-Location
//! PURGE ─▶ remove the URL (or the tags in Surrogate-Key)
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use tracing::debug;

use super::origin::{self, FromOrigin, Outcome};
use super::stats::Stats;
use super::{Edge, admin};
use crate::cache::reuse::{Reuse, age_header, decide, request_directives};
use crate::cache::{CacheControl, Stored, partial, validate};
use crate::http::headers::{
    ArrivedOverTls, add_forwarded_for, add_forwarded_proto, strip_hop_by_hop,
};
use crate::http::{Body, Handler, read_body, text};

/// What `X-Cache` tells the client about where its response came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// Served from the cache, fresh.
    Hit,
    /// Fetched from the origin.
    Miss,
    /// Served from the cache although stale (max-stale, stale-while-revalidate,
    /// stale-if-error).
    Stale,
    /// Stale in the cache; the origin said `304 Not Modified`; served from the cache.
    Revalidated,
}

impl Label {
    fn as_str(self) -> &'static str {
        match self {
            Label::Hit => "HIT",
            Label::Miss => "MISS",
            Label::Stale => "STALE",
            Label::Revalidated => "REVALIDATED",
        }
    }
}

/// The edge as a [`Handler`].
pub struct EdgeHandler(pub Arc<Edge>);

impl Handler for EdgeHandler {
    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let edge = &self.0;
        let (mut parts, body) = req.into_parts();
        add_forwarded_for(&mut parts.headers, peer);
        let over_tls = parts.extensions.get::<ArrivedOverTls>().is_some();
        add_forwarded_proto(&mut parts.headers, over_tls);
        let response = if parts.method.as_str() == "PURGE" {
            admin::purge(edge, &parts, peer.ip())
        } else if parts.uri.path().starts_with("/_edge/") {
            admin::page(edge, &parts)
        } else if parts.method == Method::GET || parts.method == Method::HEAD {
            cached(edge, &parts).await
        } else {
            match read_body(&parts.headers, body, edge.max_body_bytes).await {
                Ok(body) => forward(edge, &parts, body).await,
                Err(refused) => refused,
            }
        };
        debug!(
            target: "edge::access",
            "{peer} {} {} {} {}",
            parts.method,
            parts.uri,
            response.status().as_u16(),
            response
                .headers()
                .get("x-cache")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-"),
        );
        response
    }
}

/// The cache key: the target URI's path and query (one edge fronts one origin).
fn cache_key(parts: &Parts) -> &str {
    parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
}

/// GET and HEAD: the cache path.
async fn cached(edge: &Arc<Edge>, parts: &Parts) -> Response<Body> {
    let key = cache_key(parts);
    let request_cc = request_directives(&parts.headers);
    let now = SystemTime::now();
    let stored = edge.store_read().get(key, &parts.headers);

    // A range of a complete stored response takes the usual path (served, or validated
    // first, then cut); without one, ranges have their own (pieces, or the origin's 206).
    if parts.headers.contains_key(header::RANGE)
        && stored.as_ref().is_none_or(|s| s.partial.is_some())
    {
        return ranged(edge, parts, key, stored, &request_cc, now).await;
    }
    // Pieces of a representation answer range requests only.
    let stored = stored.filter(|s| s.partial.is_none());

    let Some(stored) = stored else {
        if request_cc.only_if_cached {
            return gateway_timeout("only-if-cached and nothing stored");
        }
        return fill(edge, parts, key, None, false).await;
    };
    match decide(&stored, &request_cc, now) {
        Reuse::Fresh => serve(edge, parts, &stored, Label::Hit, now),
        Reuse::StaleAllowed => serve(edge, parts, &stored, Label::Stale, now),
        Reuse::StaleWhileRevalidate => {
            let background = edge.clone();
            let headers = parts.headers.clone();
            let stale = stored.clone();
            let key = key.to_owned();
            tokio::spawn(async move {
                origin::fetch_collapsed(&background, &key, &headers, Some(stale)).await;
            });
            serve(edge, parts, &stored, Label::Stale, now)
        }
        Reuse::Validate { stale_if_error } => {
            if request_cc.only_if_cached {
                return gateway_timeout("only-if-cached and the stored response is stale");
            }
            fill(edge, parts, key, Some(stored), stale_if_error).await
        }
    }
}

/// A GET with `Range` and no complete stored response: from the fresh pieces of earlier
/// `206`s when they hold the bytes, else from the origin, whose `206` is stored with the
/// pieces already held (see [`crate::cache::partial`]).
async fn ranged(
    edge: &Arc<Edge>,
    parts: &Parts,
    key: &str,
    stored: Option<Arc<Stored>>,
    request_cc: &CacheControl,
    now: SystemTime,
) -> Response<Body> {
    if let Some(s) = &stored
        && decide(s, request_cc, now) == Reuse::Fresh
        && piece_for(parts, s).is_some()
    {
        return serve(edge, parts, s, Label::Hit, now);
    }
    if request_cc.only_if_cached {
        return gateway_timeout("only-if-cached and the range is not stored");
    }
    let mut headers = origin::fill_headers(&parts.headers);
    if let Some(range) = parts.headers.get(header::RANGE) {
        headers.insert(header::RANGE, range.clone());
    }
    let response = match origin::send(edge, Method::GET, key, headers, Bytes::new()).await {
        Ok(response) => response,
        Err(e) => return text(e.status(), &format!("{e}\n")),
    };
    let held = stored.as_deref();
    match response.status {
        StatusCode::PARTIAL_CONTENT => {
            origin::keep_piece(edge, key, &parts.headers, &response, held);
        }
        // The origin ignored the range: the whole response, stored as any other.
        StatusCode::OK => {
            origin::keep(edge, key, &parts.headers, &response);
        }
        _ => {}
    }
    from_origin(edge, parts, &response)
}

/// The range a request asks of a stored partial response, if its pieces hold it (and
/// `If-Range` still names this representation): `(first, last, complete, bytes)`.
fn piece_for(parts: &Parts, stored: &Stored) -> Option<(u64, u64, u64, Bytes)> {
    let pieces = stored.partial.as_deref()?;
    if !partial::if_range_holds(&parts.headers, &stored.headers) {
        return None;
    }
    let complete = pieces.complete_length();
    let range = parts.headers.get(header::RANGE)?;
    let (first, last) = partial::byte_range(range, usize::try_from(complete).ok()?)?;
    let (first, last) = (first as u64, last as u64);
    pieces
        .get(first, last)
        .map(|bytes| (first, last, complete, bytes))
}

/// A trip to the origin for a miss or a validation, collapsed with concurrent ones.
async fn fill(
    edge: &Arc<Edge>,
    parts: &Parts,
    key: &str,
    stale: Option<Arc<Stored>>,
    stale_if_error: bool,
) -> Response<Body> {
    // A request with credentials may get an answer for its user only: never share it.
    let outcome = if parts.headers.contains_key(header::AUTHORIZATION) {
        None
    } else {
        origin::fetch_collapsed(edge, key, &parts.headers, stale.clone()).await
    };
    let outcome = match outcome {
        Some(outcome) => outcome,
        None => origin::fetch_alone(edge, key, &parts.headers, stale.clone()).await,
    };
    let now = SystemTime::now();
    let Outcome {
        origin,
        stored,
        revalidated,
    } = &*outcome;
    let failed = match origin {
        Err(_) => true,
        Ok(r) => r.status.is_server_error(),
    };
    match (stored, origin) {
        (_, _) if failed => match stale {
            // RFC 5861 stale-if-error: a stale copy beats an error page.
            Some(stale) if stale_if_error => serve(edge, parts, &stale, Label::Stale, now),
            // must-revalidate and the origin cannot be reached: "the cache MUST generate an
            // error response rather than reuse the stale response", preferably 504 (§5.2.2.2).
            Some(stale)
                if origin.is_err()
                    && (stale.cc.must_revalidate
                        || stale.cc.proxy_revalidate
                        || stale.cc.s_maxage.is_some()) =>
            {
                gateway_timeout("the origin cannot be reached to revalidate (must-revalidate)")
            }
            _ => passed_on(edge, parts, origin),
        },
        (Some(stored), _) if *revalidated => serve(edge, parts, stored, Label::Revalidated, now),
        (Some(stored), _) => serve(edge, parts, stored, Label::Miss, now),
        (None, _) => passed_on(edge, parts, origin),
    }
}

/// What the origin said, passed to the client unstored (or why it said nothing).
fn passed_on(
    edge: &Edge,
    parts: &Parts,
    origin: &Result<FromOrigin, crate::http::UpstreamError>,
) -> Response<Body> {
    match origin {
        Ok(response) => from_origin(edge, parts, response),
        Err(e) => text(e.status(), &format!("{e}\n")),
    }
}

/// A stored response served to a client: its conditional request answered with 304,
/// `Age` set, HEAD without body.
fn serve(
    edge: &Edge,
    parts: &Parts,
    stored: &Stored,
    label: Label,
    now: SystemTime,
) -> Response<Body> {
    let counter = match label {
        Label::Hit => &edge.stats.hits,
        Label::Stale => &edge.stats.stale,
        Label::Revalidated => &edge.stats.revalidated,
        Label::Miss => &edge.stats.misses,
    };
    Stats::add(counter, 1);
    let mut response = serve_body(parts, stored, now);
    if label != Label::Miss && response.status() != StatusCode::NOT_MODIFIED {
        Stats::add(&edge.stats.bytes_from_cache, stored.body.len() as u64);
    }
    set_label(&mut response, edge, label);
    response
}

fn serve_body(parts: &Parts, stored: &Stored, now: SystemTime) -> Response<Body> {
    let (status, mut headers, body) =
        if let Some((first, last, complete, bytes)) = piece_for(parts, stored) {
            (
                StatusCode::PARTIAL_CONTENT,
                range_headers(&stored.headers, first, last, complete),
                bytes,
            )
        } else if stored.status == StatusCode::OK
            && validate::client_not_modified(&parts.headers, stored)
        {
            (
                StatusCode::NOT_MODIFIED,
                validate::not_modified_headers(stored),
                Bytes::new(),
            )
        } else if let Some(range) = parts.headers.get(header::RANGE)
            && stored.status == StatusCode::OK
            && partial::if_range_holds(&parts.headers, &stored.headers)
            && let Some((first, last)) = partial::byte_range(range, stored.body.len())
        {
            (
                StatusCode::PARTIAL_CONTENT,
                range_headers(
                    &stored.headers,
                    first as u64,
                    last as u64,
                    stored.body.len() as u64,
                ),
                stored.body.slice(first..=last),
            )
        } else {
            (stored.status, stored.headers.clone(), stored.body.clone())
        };
    headers.insert(header::AGE, age_header(stored.age(now)));
    if !headers.contains_key(header::DATE) {
        headers.insert(header::DATE, validate::date_now(now));
    }
    build(parts, status, headers, body)
}

/// The stored headers for `bytes first-last/complete` of the representation.
fn range_headers(stored: &HeaderMap, first: u64, last: u64, complete: u64) -> HeaderMap {
    let mut headers = stored.clone();
    if let Ok(v) = HeaderValue::from_str(&format!("bytes {first}-{last}/{complete}")) {
        headers.insert(header::CONTENT_RANGE, v);
    }
    headers.remove(header::CONTENT_LENGTH);
    headers
}

/// An origin response passed to the client as it came (not stored).
fn from_origin(edge: &Edge, parts: &Parts, response: &FromOrigin) -> Response<Body> {
    Stats::add(&edge.stats.misses, 1);
    let mut out = build(
        parts,
        response.status,
        response.headers.clone(),
        response.body.clone(),
    );
    set_label(&mut out, edge, Label::Miss);
    out
}

fn build(parts: &Parts, status: StatusCode, headers: HeaderMap, body: Bytes) -> Response<Body> {
    let body = if parts.method == Method::HEAD || status == StatusCode::NOT_MODIFIED {
        Bytes::new()
    } else {
        body
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    if status == StatusCode::NOT_MODIFIED {
        response.headers_mut().remove(header::CONTENT_LENGTH);
    }
    response
}

fn set_label(response: &mut Response<Body>, edge: &Edge, label: Label) {
    let headers = response.headers_mut();
    headers.insert("x-cache", HeaderValue::from_static(label.as_str()));
    edge.add_via(headers);
}

fn gateway_timeout(why: &str) -> Response<Body> {
    text(StatusCode::GATEWAY_TIMEOUT, &format!("{why}\n"))
}

/// Any other method: forwarded as it is. A successful unsafe request (POST, PUT, DELETE,
/// PATCH...) changed the resource, so the cache forgets it, and the resources its
/// `Location` and `Content-Location` name (RFC 9111 §4.4).
async fn forward(edge: &Edge, parts: &Parts, body: Bytes) -> Response<Body> {
    let key = cache_key(parts).to_owned();
    let mut headers = parts.headers.clone();
    strip_hop_by_hop(&mut headers);
    let response = match origin::send(edge, parts.method.clone(), &key, headers, body).await {
        Ok(response) => response,
        Err(e) => return text(e.status(), &format!("{e}\n")),
    };
    let safe = matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    if !safe && (response.status.is_success() || response.status.is_redirection()) {
        let mut store = edge.store();
        store.remove(&key);
        for name in [header::LOCATION, header::CONTENT_LOCATION] {
            if let Some(target) = response
                .headers
                .get(&name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| same_origin_path(v, parts))
            {
                store.remove(&target);
            }
        }
    }
    from_origin(edge, parts, &response)
}

/// The path of `location` if it is on this host (relative, or absolute with our `Host`):
/// invalidating another host's URL would let one origin purge another's (§4.4).
fn same_origin_path(location: &str, parts: &Parts) -> Option<String> {
    if location.starts_with('/') {
        return Some(location.to_owned());
    }
    let uri: hyper::Uri = location.parse().ok()?;
    let host = parts.headers.get(header::HOST)?.to_str().ok()?;
    (uri.authority()?.as_str() == host)
        .then(|| uri.path_and_query().map(|p| p.as_str().to_owned()))
        .flatten()
}

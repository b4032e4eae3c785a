//! Going to the origin: one fetch (or conditional fetch) for everyone who needs it, its
//! result stored if RFC 9111 §3 allows, and the simulated distance of `--origin-latency`.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use hyper::header::{self, HeaderMap};
use hyper::{Method, StatusCode};

use super::Edge;
use super::stats::Stats;
use crate::cache::collapse::{self, Role};
use crate::cache::freshness::Timing;
use crate::cache::partial::{self, Pieces};
use crate::cache::reuse::request_directives;
use crate::cache::store::response_directives;
use crate::cache::vary::{SecondaryKey, Vary, vary_of};
use crate::cache::{Stored, storable, validate};
use crate::http::UpstreamError;
use crate::http::headers::strip_hop_by_hop;

/// A response from the origin, whole.
#[derive(Debug)]
pub struct FromOrigin {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub timing: Timing,
}

/// What one trip to the origin produced, shared by every request collapsed onto it.
#[derive(Debug)]
pub struct Outcome {
    /// What the origin answered (or why it did not).
    pub origin: Result<FromOrigin, UpstreamError>,
    /// The stored response that now answers the leader's request: the new one, or the
    /// old one freshened by a 304. `None` if nothing could be stored.
    pub stored: Option<Arc<Stored>>,
    /// True if a 304 validated the stored response.
    pub revalidated: bool,
}

/// Shared between the leader and its followers.
pub type Fetched = Arc<Outcome>;

/// The request headers sent to the origin for a cache fill: the client's, minus what
/// belongs to its connection and minus its own conditions and ranges (the cache wants
/// the whole, current response; it answers the client's conditions itself).
pub fn fill_headers(client: &HeaderMap) -> HeaderMap {
    let mut headers = client.clone();
    strip_hop_by_hop(&mut headers);
    for name in [
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_MATCH,
        header::IF_UNMODIFIED_SINCE,
        header::IF_RANGE,
        header::RANGE,
    ] {
        headers.remove(name);
    }
    headers
}

/// One request to the origin, after the simulated distance.
pub async fn send(
    edge: &Edge,
    method: Method,
    path: &str,
    mut headers: HeaderMap,
    body: Bytes,
) -> Result<FromOrigin, UpstreamError> {
    edge.add_via(&mut headers);
    if !edge.origin_latency.is_zero() {
        tokio::time::sleep(edge.origin_latency).await;
    }
    Stats::add(&edge.stats.origin_requests, 1);
    let request_time = SystemTime::now();
    let response = edge.origin.send(method, path, headers, body).await?;
    let response_time = SystemTime::now();
    let (parts, body) = response.into_parts();
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    Ok(FromOrigin {
        status: parts.status,
        headers,
        body,
        timing: Timing {
            request_time,
            response_time,
        },
    })
}

/// Fetches `key` for a request with `client` headers — conditionally if `stale` has
/// validators — and stores what may be stored. Concurrent calls for the same key wait
/// for one fetch (see [`crate::cache::collapse`]); `None` means the result the leader got
/// is not one this request may use (another variant, or not storable), so the caller
/// fetches on its own with [`fetch_alone`].
pub async fn fetch_collapsed(
    edge: &Arc<Edge>,
    key: &str,
    client: &HeaderMap,
    stale: Option<Arc<Stored>>,
) -> Option<Fetched> {
    loop {
        match collapse::join(&edge.collapser, key) {
            Role::Leader(leader) => {
                let edge = edge.clone();
                let key = key.to_owned();
                let client = client.clone();
                let task = tokio::spawn(async move {
                    let outcome = Arc::new(fetch(&edge, &key, &client, stale).await);
                    leader.finish(outcome.clone());
                    outcome
                });
                return task.await.ok();
            }
            Role::Follower(rx) => {
                let Some(outcome) = collapse::follow(rx).await else {
                    continue; // the leader vanished: try to lead
                };
                let usable = outcome.origin.is_err()
                    || outcome
                        .stored
                        .as_ref()
                        .is_some_and(|s| s.secondary.matches(client));
                return usable.then_some(outcome);
            }
        }
    }
}

/// The same fetch without collapsing: for requests that cannot share (with
/// `Authorization`, or whose variant the collapsed fetch did not produce).
pub async fn fetch_alone(
    edge: &Edge,
    key: &str,
    client: &HeaderMap,
    stale: Option<Arc<Stored>>,
) -> Fetched {
    Arc::new(fetch(edge, key, client, stale).await)
}

async fn fetch(edge: &Edge, key: &str, client: &HeaderMap, stale: Option<Arc<Stored>>) -> Outcome {
    let mut headers = fill_headers(client);
    let conditional = stale
        .as_deref()
        .is_some_and(|s| validate::add_conditions(&mut headers, s));
    let origin = send(edge, Method::GET, key, headers, Bytes::new()).await;
    let response = match origin {
        Ok(response) => response,
        Err(e) => {
            return Outcome {
                origin: Err(e),
                stored: None,
                revalidated: false,
            };
        }
    };
    if conditional
        && response.status == StatusCode::NOT_MODIFIED
        && let Some(old) = stale.as_deref()
    {
        if validate::validates(old, &response.headers) {
            // Still current: keep the body, take the new headers, restart the age.
            let fresh = Arc::new(validate::freshen(old, &response.headers, response.timing));
            edge.store().insert(key, fresh.clone());
            return Outcome {
                origin: Ok(response),
                stored: Some(fresh),
                revalidated: true,
            };
        }
        // A 304 about some other response: ask again, unconditionally.
        return Box::pin(fetch(edge, key, client, None)).await;
    }
    let stored = keep(edge, key, client, &response);
    Outcome {
        origin: Ok(response),
        stored,
        revalidated: false,
    }
}

/// Stores `response` under `key` if §3 allows it and it fits; returns what was stored.
pub fn keep(
    edge: &Edge,
    key: &str,
    client: &HeaderMap,
    response: &FromOrigin,
) -> Option<Arc<Stored>> {
    let request_cc = request_directives(client);
    let response_cc = response_directives(&response.headers);
    let verdict = storable::check(
        &Method::GET,
        client,
        &request_cc,
        response.status,
        &response.headers,
        &response_cc,
    );
    let fields = match (verdict, vary_of(&response.headers)) {
        (Ok(()), Vary::Fields(fields)) if response.body.len() <= edge.max_object_size => fields,
        _ => return None,
    };
    let stored = Arc::new(Stored::new(
        response.status,
        response.headers.clone(),
        response.body.clone(),
        response.timing,
        SecondaryKey::of(&fields, client),
    ));
    edge.store().insert(key, stored.clone()).then_some(stored)
}

/// Stores a `206`'s piece (RFC 9111 §3.3, §3.4): with the pieces already held of the same
/// representation (the same strong `ETag`, the same length), else as the first piece of a
/// new one. Pieces that cover the whole object become a complete `200`.
pub fn keep_piece(
    edge: &Edge,
    key: &str,
    client: &HeaderMap,
    response: &FromOrigin,
    held: Option<&Stored>,
) -> Option<Arc<Stored>> {
    let range = partial::content_range(&response.headers)?;
    let complete = range.complete?;
    let announced = range.last - range.first + 1;
    if response.body.len() as u64 != announced
        || complete > edge.max_object_size as u64
        || storable::check(
            &Method::GET,
            client,
            &request_directives(client),
            response.status,
            &response.headers,
            &response_directives(&response.headers),
        )
        .is_err()
    {
        return None;
    }
    let Vary::Fields(fields) = vary_of(&response.headers) else {
        return None;
    };
    let mut pieces = match held.and_then(|s| s.partial.as_deref().map(|p| (s, p))) {
        Some((s, p))
            if p.complete_length() == complete
                && partial::same_representation(&s.headers, &response.headers) =>
        {
            p.clone()
        }
        _ => Pieces::new(complete),
    };
    pieces.add(range.first, response.body.clone());
    let secondary = SecondaryKey::of(&fields, client);
    let mut headers = response.headers.clone();
    let stored = match pieces.whole() {
        Some(body) => {
            headers.remove(header::CONTENT_RANGE);
            headers.insert(header::CONTENT_LENGTH, header::HeaderValue::from(complete));
            Stored::new(StatusCode::OK, headers, body, response.timing, secondary)
        }
        None => Stored::partial(headers, pieces, response.timing, secondary),
    };
    let stored = Arc::new(stored);
    edge.store().insert(key, stored.clone()).then_some(stored)
}

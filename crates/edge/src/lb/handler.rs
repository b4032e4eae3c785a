//! The balancer's request path: rate limit → pick a backend (sticky cookie first) →
//! forward → on a failure to connect, eject-count it and retry an idempotent request
//! once on another backend.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use tracing::debug;

use super::policy::{self, Policy};
use super::{HashOn, Lb, sticky};
use crate::http::headers::{
    ArrivedOverTls, add_forwarded_for, add_forwarded_proto, add_via, strip_hop_by_hop,
};
use crate::http::{Body, Handler, UpstreamError, read_body, text};

/// How many backends one request may try.
const MAX_ATTEMPTS: usize = 2;

/// The balancer as a [`Handler`].
pub struct LbHandler(pub Arc<Lb>);

impl Handler for LbHandler {
    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let lb = &self.0;
        let (parts, body) = req.into_parts();
        if parts.uri.path() == "/_lb/stats" {
            return stats(lb);
        }
        if let Some(limiter) = &lb.limiter {
            let verdict = limiter
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .check(peer.ip(), Instant::now());
            if let Err(wait) = verdict {
                lb.rejected.fetch_add(1, Ordering::Relaxed);
                let mut response = text(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded\n");
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
                return response;
            }
        }
        let body = match read_body(&parts.headers, body, lb.max_body_bytes).await {
            Ok(body) => body,
            Err(refused) => return refused,
        };
        let response = forward(lb, &parts, body, peer).await;
        debug!(target: "lb::access", "{peer} {} {} {}", parts.method, parts.uri, response.status().as_u16());
        response
    }
}

async fn forward(lb: &Lb, parts: &Parts, body: Bytes, peer: SocketAddr) -> Response<Body> {
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut headers = parts.headers.clone();
    strip_hop_by_hop(&mut headers);
    add_forwarded_for(&mut headers, peer);
    add_forwarded_proto(
        &mut headers,
        parts.extensions.get::<ArrivedOverTls>().is_some(),
    );
    add_via(&mut headers, "lb");
    let idempotent = matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    );
    let pinned = lb
        .sticky
        .as_deref()
        .and_then(|name| sticky::cookie(&parts.headers, name));
    let mut tried: Vec<usize> = Vec::new();
    let mut last_error = UpstreamError::Unreachable("no healthy backend".into());
    while tried.len() < MAX_ATTEMPTS {
        let Some(i) = pick(lb, parts, pinned, &tried) else {
            break;
        };
        tried.push(i);
        let backend = &lb.backends[i];
        let result = {
            let _in_flight = backend.begin();
            backend
                .upstream
                .send(parts.method.clone(), path, headers.clone(), body.clone())
                .await
        };
        match result {
            Ok(response) => {
                backend.succeeded();
                let (mut head, body) = response.into_parts();
                strip_hop_by_hop(&mut head.headers);
                add_via(&mut head.headers, "lb");
                if let Some(name) = &lb.sticky
                    && pinned != Some(backend.id.as_str())
                    && let Some(cookie) = sticky::set_cookie(name, &backend.id)
                {
                    head.headers.append(header::SET_COOKIE, cookie);
                }
                return Response::from_parts(head, Full::new(body));
            }
            Err(e) => {
                debug!("lb: {} failed: {e}", backend.name);
                backend.failed(lb.eject_after);
                last_error = e;
                if !idempotent {
                    break;
                }
            }
        }
    }
    let status = if tried.is_empty() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        last_error.status()
    };
    text(status, &format!("{last_error}\n"))
}

/// The backend for this request: the one its sticky cookie names if healthy, else the
/// policy's choice among the healthy ones not tried yet.
fn pick(lb: &Lb, parts: &Parts, pinned: Option<&str>, tried: &[usize]) -> Option<usize> {
    let usable = |b: usize| lb.backends[b].is_healthy() && !tried.contains(&b);
    if let Some(id) = pinned
        && let Some(i) = lb.backends.iter().position(|b| b.id == id)
        && usable(i)
    {
        return Some(i);
    }
    let n = lb.backends.len();
    match lb.policy {
        Policy::RoundRobin => policy::round_robin(&lb.next, n, usable),
        Policy::LeastConnections => {
            policy::least_connections(&lb.next, n, usable, |b| lb.backends[b].active())
        }
        Policy::Hash => {
            let key: &[u8] = match &lb.hash_on {
                HashOn::Path => parts.uri.path().as_bytes(),
                HashOn::Header(name) => parts
                    .headers
                    .get(name)
                    .map(|v| v.as_bytes())
                    .unwrap_or_default(),
            };
            lb.ring.pick(key, usable)
        }
    }
}

/// `GET /_lb/stats`: per backend, health, requests, in flight.
fn stats(lb: &Lb) -> Response<Body> {
    let mut body = format!(
        "policy:{:?}\nrate_limited:{}\n",
        lb.policy,
        lb.rejected.load(Ordering::Relaxed)
    );
    for b in lb.backends.iter() {
        body.push_str(&format!(
            "backend:{} healthy={} requests={} active={}\n",
            b.name,
            b.is_healthy(),
            b.requests.load(Ordering::Relaxed),
            b.active()
        ));
    }
    body.push_str(&crate::http::tls::stats_lines(lb.tls.as_deref()));
    let mut response = text(StatusCode::OK, &body);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

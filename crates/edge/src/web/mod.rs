//! `infralab web`: the origin — a small blog server whose every resource chooses its
//! caching headers, so each level above it has something to obey.
//!
//! | resource | `Cache-Control` | why |
//! |---|---|---|
//! | `GET /static/:name` | `public, max-age=31536000, immutable` | the name changes when the content does |
//! | `GET /posts/:id` (HTML, or JSON with `Accept: application/json`: `Vary: Accept`) | `public, max-age=N, stale-while-revalidate=30, stale-if-error=300` + `ETag`, `Last-Modified`, `Surrogate-Key: post-:id posts` | short freshness, cheap revalidation, purgeable by event |
//! | `GET /api/me` | `private, max-age=60` | one user's data: browsers may keep it, edges must not |
//! | `PUT`/`POST /posts/:id` | — | edits the post, then purges the edges by surrogate key |
//! | `GET /test?cc=..&etag=..` | whatever the query says | for tests and the curious: see [`test_page`] |
//! | `GET /health` | `no-store` | for the load balancer's health checks |
//!
//! Edits purge the edges *directly* (`PURGE` with `Surrogate-Key` to each `--purge-edge`),
//! not through pub/sub: the editor learns when every edge has forgotten the old post, and
//! an edge that is down is reported at once. At CDN scale (hundreds of nodes) a fan-out
//! service would take over, as Fastly's purge API does.
//!
//! Every request is counted per URI (`X-Origin-Count`, `GET /_web/stats`), which is how
//! tests prove that N collapsed misses reached the origin once.

mod posts;
pub mod store;
mod test_page;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};
use tokio_util::sync::CancellationToken;

use crate::BoxError;
use crate::http::{self, Body, Handler, HttpArgs, Running, Upstream, text};

pub use test_page::test_page;

/// The origin's default port.
pub const DEFAULT_PORT: u16 = 8000;

/// `infralab web [--name NAME] [--post-max-age S] [--purge-edge HOST:PORT ...]`
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "web",
    about = "A small blog origin that sets every caching header"
)]
pub struct Args {
    #[command(flatten)]
    pub http: HttpArgs,
    /// This server's name, in `X-Served-By` (so a load balancer's choices are visible).
    #[arg(long, default_value = "web")]
    pub name: String,
    /// Freshness lifetime of a post, in seconds.
    #[arg(long, default_value_t = 10)]
    pub post_max_age: u64,
    /// Edges to purge when a post changes (`host:port`, repeatable or comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub purge_edge: Vec<String>,
    /// Keep posts in this kv server (or the router in front of the shards) instead of memory.
    #[arg(long)]
    pub kv: Option<String>,
    /// With `--kv`: read posts cache-aside through this cache server.
    #[arg(long, requires = "kv")]
    pub cache: Option<String>,
}

impl Args {
    /// For tests: port 0, named `name`.
    pub fn ephemeral(name: &str) -> Args {
        Args {
            http: HttpArgs::ephemeral(),
            name: name.to_owned(),
            post_max_age: 10,
            purge_edge: Vec::new(),
            kv: None,
            cache: None,
        }
    }
}

/// Bytes of URIs the per-URI request counts may hold.
const MAX_COUNTED_BYTES: usize = 16 << 20;

/// Requests counted, per URI and in all.
#[derive(Default)]
struct Counts {
    per_uri: HashMap<String, u64>,
    key_bytes: usize,
    total: u64,
}

/// The origin's state.
pub struct Web {
    name: String,
    post_max_age: u64,
    posts: store::PostStore,
    edges: Vec<Upstream>,
    healthy: AtomicBool,
    counts: Mutex<Counts>,
    max_body_bytes: usize,
    /// When it started, in whole seconds: the anchor of `/test?lm=`.
    started: std::time::SystemTime,
    /// HTTPS, with `--tls-port`.
    tls: Option<Arc<http::Tls>>,
}

impl Web {
    /// Counts a request for `uri`; returns its count so far.
    fn count(&self, uri: &str) -> u64 {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        counts.total += 1;
        if let Some(n) = counts.per_uri.get_mut(uri) {
            *n += 1;
            return *n;
        }
        // Bound the table by the bytes of its keys: past the budget, new URIs are counted
        // in the total only (and report 0).
        if counts.key_bytes + uri.len() > MAX_COUNTED_BYTES {
            return 0;
        }
        counts.key_bytes += uri.len();
        counts.per_uri.insert(uri.to_owned(), 1);
        1
    }

    fn stats(&self) -> String {
        let counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut lines: Vec<String> = counts
            .per_uri
            .iter()
            .map(|(u, n)| format!("{n} {u}"))
            .collect();
        lines.sort();
        let total = counts.total;
        format!(
            "name:{}\nrequests:{total}\n{}{}\n",
            self.name,
            http::tls::stats_lines(self.tls.as_deref()),
            lines.join("\n")
        )
    }
}

/// Starts the origin; returns once it listens.
pub async fn start(args: Args, shutdown: CancellationToken) -> Result<Running, BoxError> {
    let posts = match &args.kv {
        Some(kv) => store::PostStore::resp(kv, args.cache.as_deref())
            .await
            .map_err(|e| format!("web: posts in kv {kv}: {e}"))?,
        None => store::PostStore::memory(),
    };
    let tls = http::Tls::from_args(&args.http.tls)?;
    let web = Arc::new(Web {
        name: args.name.clone(),
        post_max_age: args.post_max_age,
        posts,
        edges: args
            .purge_edge
            .iter()
            .map(|e| Upstream::new(e, Duration::from_secs(5), 64 * 1024))
            .collect(),
        healthy: AtomicBool::new(true),
        counts: Mutex::new(Counts::default()),
        max_body_bytes: args.http.max_body_bytes,
        started: httpdate::parse_http_date(&httpdate::fmt_http_date(std::time::SystemTime::now()))
            .unwrap_or(std::time::UNIX_EPOCH),
        tls: tls.clone(),
    });
    let running = http::spawn(
        "web",
        Arc::new(WebHandler(web)),
        &args.http,
        DEFAULT_PORT,
        tls,
        shutdown,
    )
    .await?;
    Ok(running)
}

struct WebHandler(Arc<Web>);

impl Handler for WebHandler {
    async fn handle(&self, req: Request<Incoming>, _peer: SocketAddr) -> Response<Body> {
        let web = &self.0;
        let (parts, body) = req.into_parts();
        let uri = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into());
        let count = web.count(&uri);
        let forwarded_for = parts.headers.get("x-forwarded-for").cloned();
        let forwarded_proto = parts.headers.get("x-forwarded-proto").cloned();
        let path = parts.uri.path();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut response = match (&parts.method, segments.as_slice()) {
            (&Method::GET | &Method::HEAD, ["health"]) => health(web),
            (&Method::PUT, ["_web", "health"]) => {
                match http::read_body(&parts.headers, body, 64).await {
                    Ok(b) => {
                        web.healthy.store(&b[..] != b"down", Ordering::Relaxed);
                        text(StatusCode::OK, "ok\n")
                    }
                    Err(refused) => refused,
                }
            }
            (&Method::GET, ["_web", "stats"]) => text(StatusCode::OK, &web.stats()),
            (&Method::GET | &Method::HEAD, ["posts", id]) => {
                posts::get(web, id, &parts.headers).await
            }
            (&Method::PUT | &Method::POST, ["posts", id]) => {
                match http::read_body(&parts.headers, body, web.max_body_bytes).await {
                    Ok(content) => posts::edit(web, id, content).await,
                    Err(refused) => refused,
                }
            }
            (&Method::GET | &Method::HEAD, ["static", name]) => posts::asset(name),
            (&Method::GET | &Method::HEAD, ["api", "me"]) => posts::me(count),
            (method, ["test"]) => {
                // Any method: unsafe ones succeed too, so the edge's invalidation shows.
                if method != Method::GET && method != Method::HEAD {
                    let _ = http::read_body(&parts.headers, body, web.max_body_bytes).await;
                }
                let query = parts.uri.query().unwrap_or("");
                test_page(query, &parts.headers, &uri, count, web.started).await
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        };
        let headers = response.headers_mut();
        if let Ok(name) = HeaderValue::from_str(&web.name) {
            headers.insert("x-served-by", name);
        }
        headers.insert("x-origin-count", HeaderValue::from(count));
        // Who the proxies say the client was (tests check X-Forwarded-For with it).
        if let Some(xff) = forwarded_for {
            headers.insert("x-echo-forwarded-for", xff);
        }
        if let Some(proto) = forwarded_proto {
            headers.insert("x-echo-forwarded-proto", proto);
        }
        response
    }
}

fn health(web: &Web) -> Response<Body> {
    let (status, body) = if web.healthy.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "down\n")
    };
    let mut response = text(status, body);
    response
        .headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    response
}

/// A response with a body and headers.
fn respond(status: StatusCode, headers: &[(&str, String)], body: Bytes) -> Response<Body> {
    let mut response = Response::new(http_body_util::Full::new(body));
    *response.status_mut() = status;
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

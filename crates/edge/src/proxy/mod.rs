//! `infralab edge`: a caching reverse proxy — one CDN edge node in front of one origin.
//!
//! - [`handler`]: the request path (lookup → serve / validate / fetch → store).
//! - [`origin`]: the fetch to the origin, with the simulated distance (`--origin-latency`)
//!   and request collapsing.
//! - [`admin`]: `PURGE` by URL or tag, and the stats page.
//! - [`stats`]: hit/miss counters.

pub mod admin;
pub mod handler;
pub mod origin;
pub mod stats;

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use hyper::HeaderMap;
use hyper::header::{self, HeaderValue};
use tokio_util::sync::CancellationToken;

use crate::BoxError;
use crate::cache::Store;
use crate::cache::collapse::Collapser;
use crate::http::{self, HttpArgs, Running, Upstream};

pub use stats::Stats;

/// The edge's default port.
pub const DEFAULT_PORT: u16 = 8080;

/// `infralab edge --origin URL [--region NAME] [--origin-latency MS] [--max-memory SIZE]`
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "edge",
    about = "An HTTP caching reverse proxy (RFC 9111): one CDN edge node"
)]
pub struct Args {
    #[command(flatten)]
    pub http: HttpArgs,
    /// The origin: `http://host:port` or `host:port`.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub origin: String,
    /// This edge's name: in `Via` and the stats (`eu`, `us-east`).
    #[arg(long, default_value = "edge")]
    pub region: String,
    /// Simulated distance to the origin: added to every origin request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub origin_latency: u64,
    /// Memory for stored responses (`64mb`, `1gb`); least recently used leave first.
    #[arg(long, default_value = "64mb", value_parser = crate::parse_size)]
    pub max_memory: usize,
    /// Largest response stored, in bytes; larger ones pass through.
    #[arg(long, default_value = "8mb", value_parser = crate::parse_size)]
    pub max_object_size: usize,
    /// Seconds to wait for the origin before answering `504`.
    #[arg(long, default_value_t = 30)]
    pub origin_timeout: u64,
    /// Accept `PURGE` from any address (by default: loopback and private networks only,
    /// where the origins that purge on events live).
    #[arg(long)]
    pub purge_from_anywhere: bool,
}

impl Args {
    /// For tests: port 0 in front of `origin`.
    pub fn ephemeral(origin: &str) -> Args {
        Args {
            http: HttpArgs::ephemeral(),
            origin: origin.to_owned(),
            region: "edge".into(),
            origin_latency: 0,
            max_memory: 64 << 20,
            max_object_size: 8 << 20,
            origin_timeout: 30,
            purge_from_anywhere: false,
        }
    }
}

/// Largest origin response read at all (a larger one is `502`).
const MAX_ORIGIN_RESPONSE: usize = 64 << 20;

/// Everything the request path shares.
pub struct Edge {
    /// Read-locked for lookups (hits on all threads at once), write-locked to change it.
    pub store: RwLock<crate::cache::Store>,
    pub collapser: Arc<Collapser<origin::Fetched>>,
    pub origin: Upstream,
    pub stats: Stats,
    pub region: String,
    /// `Via: 1.1 <region>`, made once rather than per response.
    pub via: Option<HeaderValue>,
    pub origin_latency: Duration,
    pub max_object_size: usize,
    pub max_body_bytes: usize,
    pub purge_from_anywhere: bool,
    /// HTTPS, with `--tls-port`.
    pub tls: Option<Arc<http::Tls>>,
}

impl Edge {
    pub fn new(args: &Args) -> Edge {
        Edge {
            tls: None,
            store: RwLock::new(Store::new(args.max_memory)),
            collapser: Arc::new(Collapser::default()),
            origin: Upstream::new(
                &args.origin,
                Duration::from_secs(args.origin_timeout.max(1)),
                MAX_ORIGIN_RESPONSE,
            ),
            stats: Stats::default(),
            region: args.region.clone(),
            via: crate::http::headers::via_value(&args.region),
            origin_latency: Duration::from_millis(args.origin_latency),
            max_object_size: args.max_object_size,
            max_body_bytes: args.http.max_body_bytes,
            purge_from_anywhere: args.purge_from_anywhere,
        }
    }

    /// The store, locked to change it (a poisoned lock still holds a consistent store:
    /// every method finishes its bookkeeping before it can panic).
    pub fn store(&self) -> RwLockWriteGuard<'_, Store> {
        self.store
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends this hop to `Via`, on requests to the origin and responses to clients.
    pub fn add_via(&self, headers: &mut HeaderMap) {
        if let Some(via) = &self.via {
            headers.append(header::VIA, via.clone());
        }
    }

    /// The store, locked to look up in it (shared with other readers).
    pub fn store_read(&self) -> RwLockReadGuard<'_, Store> {
        self.store
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Starts an edge; returns once it listens.
pub async fn start(args: Args, shutdown: CancellationToken) -> Result<Running, BoxError> {
    let tls = http::Tls::from_args(&args.http.tls)?;
    let edge = Arc::new(Edge {
        tls: tls.clone(),
        ..Edge::new(&args)
    });
    let running = http::spawn(
        "edge",
        Arc::new(handler::EdgeHandler(edge)),
        &args.http,
        DEFAULT_PORT,
        tls,
        shutdown,
    )
    .await?;
    Ok(running)
}

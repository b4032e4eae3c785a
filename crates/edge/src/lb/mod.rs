//! `infralab lb`: an HTTP load balancer.
//!
//! - [`policy`]: round robin, least connections, consistent hashing.
//! - [`pool`]: the backends, passive ejection, active health checks, re-admission.
//! - [`sticky`]: session affinity by a cookie the balancer sets.
//! - [`rate`]: per-client token buckets (`429` with `Retry-After`).
//! - [`handler`]: the request path that uses them.

pub mod handler;
pub mod policy;
pub mod pool;
pub mod rate;
pub mod sticky;

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::BoxError;
use crate::http::{self, HttpArgs, Running};
pub use policy::Policy;
use pool::Backend;

/// The balancer's default port.
pub const DEFAULT_PORT: u16 = 8090;

/// `infralab lb --backends A,B [--policy round-robin|least-connections|hash] [--sticky]`
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "lb", about = "An HTTP load balancer")]
pub struct Args {
    #[command(flatten)]
    pub http: HttpArgs,
    /// The backends, `host:port`, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub backends: Vec<String>,
    /// How to pick a backend.
    #[arg(long, value_enum, default_value = "round-robin")]
    pub policy: Policy,
    /// For `--policy hash`: `path`, or `header:NAME` (a user id, a session).
    #[arg(long, default_value = "path")]
    pub hash_on: String,
    /// Session affinity: a client keeps the backend its first request went to (a cookie).
    #[arg(long)]
    pub sticky: bool,
    /// The sticky cookie's name.
    #[arg(long, default_value = "infralab_lb")]
    pub sticky_cookie: String,
    /// The path of active health checks (a 2xx means healthy).
    #[arg(long, default_value = "/health")]
    pub health_path: String,
    /// Milliseconds between health checks of each backend.
    #[arg(long, default_value_t = 1000)]
    pub health_interval_ms: u64,
    /// Eject a backend after this many requests in a row fail to reach it.
    #[arg(long, default_value_t = 3)]
    pub eject_after: u32,
    /// Requests per second each client IP may make (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub rate_limit: u32,
    /// Burst a client may make above the rate (default: one second's worth).
    #[arg(long)]
    pub rate_burst: Option<u32>,
    /// Seconds to wait for a backend before `504`.
    #[arg(long, default_value_t = 30)]
    pub backend_timeout: u64,
}

impl Args {
    /// For tests: port 0 in front of `backends`.
    pub fn ephemeral(backends: &[String]) -> Args {
        Args {
            http: HttpArgs::ephemeral(),
            backends: backends.to_vec(),
            policy: Policy::RoundRobin,
            hash_on: "path".into(),
            sticky: false,
            sticky_cookie: "infralab_lb".into(),
            health_path: "/health".into(),
            health_interval_ms: 1000,
            eject_after: 3,
            rate_limit: 0,
            rate_burst: None,
            backend_timeout: 30,
        }
    }
}

/// What to hash for `--policy hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashOn {
    Path,
    Header(hyper::header::HeaderName),
}

impl HashOn {
    fn parse(text: &str) -> Result<HashOn, String> {
        match text.split_once(':') {
            None if text == "path" => Ok(HashOn::Path),
            Some(("header", name)) => hyper::header::HeaderName::from_bytes(name.trim().as_bytes())
                .map(HashOn::Header)
                .map_err(|e| format!("--hash-on header:{name}: {e}")),
            _ => Err(format!("--hash-on {text}: use path or header:NAME")),
        }
    }
}

/// The balancer's state.
pub struct Lb {
    pub backends: Arc<Vec<Backend>>,
    pub policy: Policy,
    pub hash_on: HashOn,
    pub ring: policy::Ring,
    pub next: AtomicUsize,
    pub sticky: Option<String>,
    pub eject_after: u32,
    pub limiter: Option<Mutex<rate::RateLimiter>>,
    pub max_body_bytes: usize,
    pub rejected: std::sync::atomic::AtomicU64,
    /// TLS termination, with `--tls-port`: the balancer decrypts once for every backend.
    pub tls: Option<Arc<http::Tls>>,
}

/// Starts a balancer and its health checks; returns once it listens.
pub async fn start(args: Args, shutdown: CancellationToken) -> Result<Running, BoxError> {
    if args.backends.is_empty() {
        return Err("lb: --backends needs at least one host:port".into());
    }
    let timeout = Duration::from_secs(args.backend_timeout.max(1));
    let backends: Arc<Vec<Backend>> = Arc::new(
        args.backends
            .iter()
            .map(|b| Backend::new(b, timeout))
            .collect(),
    );
    let tls = http::Tls::from_args(&args.http.tls)?;
    let names: Vec<String> = backends.iter().map(|b| b.name.clone()).collect();
    let lb = Arc::new(Lb {
        backends: backends.clone(),
        policy: args.policy,
        hash_on: HashOn::parse(&args.hash_on)?,
        ring: policy::Ring::new(&names),
        next: AtomicUsize::new(0),
        sticky: args.sticky.then(|| args.sticky_cookie.clone()),
        eject_after: args.eject_after.max(1),
        limiter: (args.rate_limit > 0).then(|| {
            Mutex::new(rate::RateLimiter::new(
                args.rate_limit,
                args.rate_burst.unwrap_or(args.rate_limit),
            ))
        }),
        max_body_bytes: args.http.max_body_bytes,
        rejected: Default::default(),
        tls: tls.clone(),
    });
    let running = http::spawn(
        "lb",
        Arc::new(handler::LbHandler(lb)),
        &args.http,
        DEFAULT_PORT,
        tls,
        shutdown.clone(),
    )
    .await?;
    tokio::spawn(pool::health_checks(
        backends,
        args.health_path.clone(),
        Duration::from_millis(args.health_interval_ms.max(10)),
        running.shutdown_token(),
    ));
    Ok(running)
}

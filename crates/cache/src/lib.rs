//! # cache — a bounded cache server
//!
//! The course's caching chapters as a running server that speaks Redis's protocol: a
//! cache holds a hot subset of the data in memory, bounded by `--maxmemory`; every entry
//! carries a TTL; it is populated lazily (read-through on a miss) or eagerly
//! (write-through, `WARM`); it is invalidated by time, by event (a pub/sub channel) or by
//! hand (DEL); and it is judged by its hit ratio (`INFO stats`).
//!
//! Read in this order:
//!
//! 1. [`store`] — the engine: slab + index + expiry, memory accounting ([`memory`]).
//! 2. [`policy`] and the policies: [`lru`] (exact), [`tinylfu`] with its
//!    [`frequency_sketch`], [`random`], [`ttl`], [`noeviction`].
//! 3. [`layer`] — the cache layer every connection shares: read-through with
//!    [`singleflight`], write-through and WARM, to the [`origin`]; event-based
//!    [`invalidation`].
//! 4. [`commands`] — RESP → cache layer → reply.
//! 5. [`server`] — wiring: the layer as a RESP server (INFO, CONFIG), the expiry task.
#![forbid(unsafe_code)]

pub mod changes;
pub mod commands;
pub mod entry;
pub mod frequency_sketch;
pub mod hill_climber;
pub mod invalidation;
pub mod layer;
pub mod lru;
pub mod memory;
pub mod noeviction;
pub mod origin;
pub mod policy;
pub mod random;
pub mod server;
pub mod singleflight;
pub mod store;
pub mod tinylfu;
pub mod ttl;
pub mod workload;

use std::sync::Arc;

use service::{BoxError, CancellationToken, Running};

use crate::invalidation::ChannelAddr;
use crate::layer::CacheLayer;
use crate::policy::PolicyKind;

/// The cache's port: one above kv's, so a cache in front of kv is 7380 → 7379.
pub const DEFAULT_PORT: u16 = 7380;

/// How the cache is filled from its origin.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Population {
    /// Cache-aside / read-through: a miss reads the origin; writes stay in the cache.
    Lazy,
    /// Read-through, and every write goes to the origin first, then to the cache.
    WriteThrough,
}

#[derive(clap::Parser, Debug, Clone)]
#[command(name = "cache", about = "A bounded cache server (Redis protocol)")]
pub struct Args {
    #[command(flatten)]
    pub service: service::ServiceArgs,
    /// Memory limit for keys, values and per-entry overhead (`100mb`, `1gb`; 0: none).
    #[arg(long, default_value = "64mb", value_parser = parse_memory)]
    pub maxmemory: u64,
    /// Eviction policy: lru, lfu (W-TinyLFU), random, ttl, noeviction.
    #[arg(long, default_value = "lfu", value_parser = parse_policy)]
    pub maxmemory_policy: PolicyKind,
    /// TTL in seconds for entries written without one (0: none).
    #[arg(long, default_value_t = 0)]
    pub default_ttl: u64,
    /// The system of record, any RESP server: HOST:PORT.
    #[arg(long)]
    pub origin: Option<String>,
    /// How the origin fills the cache.
    #[arg(long, value_enum, default_value = "lazy")]
    pub population: Population,
    /// Cache "the origin has no such key" for this many seconds (0: don't).
    #[arg(long, default_value_t = 0)]
    pub negative_ttl: u64,
    /// Deadline for one origin request, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub origin_timeout_ms: u64,
    /// Delete the keys published on this pub/sub channel: HOST:PORT/CHANNEL.
    #[arg(long)]
    pub invalidate_channel: Option<ChannelAddr>,
}

fn parse_memory(s: &str) -> Result<u64, String> {
    service::settings::parse_memory(s).map_err(|e| format!("{e} (e.g. 64mb)"))
}

fn parse_policy(s: &str) -> Result<PolicyKind, String> {
    PolicyKind::parse(s).ok_or_else(|| {
        format!("unknown policy {s:?}: expected lru, lfu, random, ttl or noeviction")
    })
}

/// Binds, starts the background tasks and returns once listening.
///
/// The cache runs on a thread of its own, one event loop like Redis's and kv's
/// ([`service::spawn_on_own_thread`]). Every command already runs under the store's one
/// lock, so a second worker thread only adds parallel parsing and socket work — and
/// drags the store's index, slab and policy lists between the cores' caches on every
/// command, while the connection it hands work to is often parked on the other core (a
/// futex wake per hand-off). On one thread the lock is never contended and those lines
/// stay in one core's cache.
pub async fn start(args: Args, shutdown: CancellationToken) -> Result<Running, BoxError> {
    service::spawn_on_own_thread("cache", move || start_here(args, shutdown)).await
}

/// [`start`] on the current runtime: the connections, the expiry task and the
/// invalidation subscriber all land on it.
async fn start_here(args: Args, shutdown: CancellationToken) -> Result<Running, BoxError> {
    let server = Arc::new(CacheLayer::new(&args));
    let running = service::spawn(
        server.clone(),
        &args.service,
        DEFAULT_PORT,
        shutdown.clone(),
    )
    .await?;
    tokio::spawn(server::expiry_task(server.clone(), shutdown.clone()));
    if let Some(source) = args.invalidate_channel {
        tokio::spawn(invalidation::run(server, source, shutdown));
    }
    Ok(running)
}

/// Runs until `shutdown` is cancelled.
pub async fn run(args: Args, shutdown: CancellationToken) -> Result<(), BoxError> {
    start(args, shutdown).await?.wait().await;
    Ok(())
}

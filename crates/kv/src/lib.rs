//! # kv — a durable, Redis-compatible key-value store with TTL
//!
//! The course's "key-value store": the database behind every cache. Point `redis-cli`,
//! `redis-benchmark` or any Redis client at it.
//!
//! Read in this order:
//! - [`keyspace`]: the engine — 16 databases, lazy and active expiry, SCAN's cursor, and
//!   the one write path every change goes through ([`keyspace::Keyspace::apply`]).
//! - [`value`]: what a key holds (an enum: a string or a collection); [`types`]: the
//!   hash, list, set and sorted set (a treap for ranks), and the writes that change them.
//! - [`storage`]: durability — an append-only journal (group commit under `--fsync
//!   always`, written before the replies under `everysec`) folded into sled, the
//!   checkpoint; [`codec`]: the fixed byte format; [`allocator`]: giving freed memory back.
//! - [`commands`]: RESP arguments → engine → reply, one module per command family;
//!   [`transaction`]: `MULTI`/`EXEC`/`WATCH`, queued per connection, run as one unit;
//!   [`scripting`]: `EVAL` and friends, Lua scripts run atomically on a VM thread.
//! - [`notify`], [`events`]: what kv tells clients when data changes — keyspace
//!   notifications and `CLIENT TRACKING` invalidations (`hub::tracking`), on the pub/sub
//!   hub kv shares with the pubsub server (SUBSCRIBE ... PUBSUB work on kv too).
//! - [`server`]: the lock, the expiry cycle, INFO and CONFIG; [`encoding`]: what
//!   `OBJECT ENCODING` reports and the thresholds behind it.
#![forbid(unsafe_code)]

pub mod allocator;
pub mod blocking;
pub mod clock;
pub mod codec;
pub mod commands;
pub mod encoding;
pub mod events;
pub mod keyspace;
pub mod monitor;
pub mod notify;
pub mod replication;
pub mod scripting;
pub mod server;
pub mod slowlog;
pub mod storage;
pub mod transaction;
pub mod types;
pub mod value;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use service::{BoxError, CancellationToken, Running};

pub use server::{Kv, Session};
pub use storage::Fsync;

/// Takes a lock even if a thread panicked while holding it. A panic in one command must
/// not turn every later command into another panic; each critical section leaves its data
/// consistent before anything that could panic, so the data is still usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// The port kv listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 7379;

/// `infralab kv` flags.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "kv",
    about = "A durable, Redis-compatible key-value store with TTL"
)]
pub struct Args {
    #[command(flatten)]
    pub service: service::ServiceArgs,
    /// Keep the data in this directory (a journal and a sled checkpoint); without it the
    /// store is in memory only.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// When a write reaches the disk: `always` (before the reply), `everysec`, or `no`
    /// (left to the kernel).
    #[arg(long, value_enum, default_value = "everysec")]
    pub fsync: Fsync,
    /// Start even when the journal is damaged in the middle (records after the damage are
    /// dropped; the damaged file is kept as `*.kvj.damaged`). Without it kv refuses to
    /// start and names the file and byte. A torn last record is always truncated.
    #[arg(long)]
    pub load_truncated: bool,
    /// Refuse writes that grow memory beyond this many bytes (`100mb`, `1gb`; 0: no limit).
    #[arg(long, default_value = "0", value_parser = service::settings::parse_memory)]
    pub maxmemory: u64,
    /// Start as a read replica of this primary (`HOST:PORT`); `REPLICAOF` changes it.
    #[arg(long, value_parser = replication::parse_address)]
    pub replicaof: Option<(String, u16)>,
    /// `async`: reply before replicas have the write; `sync`: reply once
    /// `--sync-replicas` replicas acknowledged it.
    #[arg(long, value_enum, default_value = "async")]
    pub replication: replication::Mode,
    /// Replicas that must acknowledge each write in `--replication sync`.
    #[arg(long, default_value = "1")]
    pub sync_replicas: usize,
    /// Milliseconds a sync write waits for its replicas before answering
    /// `-NOTREPLICATED`.
    #[arg(long, default_value = "1000")]
    pub sync_timeout: u64,
    /// Bytes of recent stream kept for replicas that reconnect (`1mb`, `64mb`).
    #[arg(long, default_value = "1mb", value_parser = service::settings::parse_memory)]
    pub repl_backlog_size: u64,
}

/// Opens the store, binds, and serves until `shutdown` is cancelled. Returns once
/// listening.
pub async fn start(args: Args, shutdown: CancellationToken) -> Result<Running, BoxError> {
    let clock = Arc::new(clock::SystemClock);
    start_with_clock(args, shutdown, clock).await
}

/// [`start`] with an injected clock (tests move time by hand).
///
/// kv runs on a thread of its own, one event loop like Redis's
/// ([`service::spawn_on_own_thread`]). Every command already runs under one lock, so more
/// threads only add parallel parsing and socket work — and, with the keyspace lock, its
/// map and the allocator's memory passing between cores, each write pays for cache lines
/// the other core dirtied. On this project's 2-core machines, where redis-benchmark takes
/// the other core, one thread was faster on nearly every `redis-benchmark` test (SET -P 16
/// 0.80 -> 0.87 of Redis, INCR 0.86 -> 0.96); the exception was MSET -P 16 (0.87 -> 0.60),
/// whose 21-argument parsing had been spread over both cores (see the README's
/// performance section). Durability keeps its own thread (the journal writer).
pub async fn start_with_clock(
    args: Args,
    shutdown: CancellationToken,
    clock: Arc<dyn clock::Clock>,
) -> Result<Running, BoxError> {
    service::spawn_on_own_thread("kv", move || start_here(args, shutdown, clock)).await
}

/// [`start_with_clock`] on the current runtime: every task kv spawns (connections, the
/// expiry cycle, replication links) lands on it.
async fn start_here(
    args: Args,
    shutdown: CancellationToken,
    clock: Arc<dyn clock::Clock>,
) -> Result<Running, BoxError> {
    // SHUTDOWN stops this server alone, not others sharing `shutdown` (`infralab up`).
    let shutdown = shutdown.child_token();
    let (dir, fsync, maxmemory) = (args.dir.clone(), args.fsync, args.maxmemory);
    let load_truncated = args.load_truncated;
    let kv =
        tokio::task::spawn_blocking(move || Kv::open(dir, fsync, load_truncated, maxmemory, clock))
            .await??;
    let kv = Arc::new(
        kv.with_shutdown(shutdown.clone())
            .with_replication(replication::Config {
                mode: args.replication,
                sync_replicas: args.sync_replicas,
                sync_timeout: std::time::Duration::from_millis(args.sync_timeout),
                backlog_size: usize::try_from(args.repl_backlog_size).unwrap_or(usize::MAX),
                replicaof: args.replicaof.clone(),
            }),
    );
    scripting::Scripts::start(&kv)?;
    let running = service::spawn(kv.clone(), &args.service, DEFAULT_PORT, shutdown.clone()).await?;
    replication::Replication::attach(&kv, shutdown.clone(), running.addr().port());
    let stopping = (kv.clone(), shutdown.clone());
    tokio::spawn(async move {
        stopping.1.cancelled().await;
        stopping.0.blocked.stop();
    });
    tokio::spawn(allocator::run(shutdown.clone()));
    tokio::spawn(kv.expiry_cycle(shutdown));
    Ok(running)
}

/// Runs until `shutdown` is cancelled and the server has stopped.
pub async fn run(args: Args, shutdown: CancellationToken) -> Result<(), BoxError> {
    start(args, shutdown).await?.wait().await;
    Ok(())
}

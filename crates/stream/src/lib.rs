//! # stream — a Kafka-style partitioned log with consumer groups and retention
//!
//! Write once, read by many. A *topic* is split into *partitions*; a message's key picks
//! its partition by hash (Kafka's murmur2), so order holds per key; each partition is an
//! append-only *log* cut into *segment* files; consumers read at their own offsets, and
//! reading deletes nothing — messages go when *retention* (time or size) says so. A
//! *consumer group* shares a topic's partitions among its members, one owner per
//! partition, and remembers how far it got (*committed offsets*).
//!
//! Read it bottom-up:
//! - [`record`]: the record batch format (Kafka's v2, CRC32C).
//! - [`segment`]: one segment file and its sparse offset index.
//! - [`log`]: a partition's log: append, roll, read, retention, crash recovery.
//! - [`partitioner`]: murmur2, compatible with Kafka's default partitioner.
//! - [`topic`]: topics and partitions on disk.
//! - [`group`]: the consumer group coordinator; [`offsets`]: committed offsets, durable.
//! - [`durability`]: `--fsync` and group commit.
//! - Delivery guarantees: [`producer_state`] (idempotent producers: sequence numbers per
//!   partition), [`marker`] (transaction markers in the log), [`transaction`] (the
//!   coordinator's state machine), [`transaction_log`] (its durable state) and
//!   [`txn_coordinator`] (ending transactions: the decision, the markers, the offsets).
//! - [`commands`]: the RESP commands; [`server`]: wiring and background tasks.
//! - [`kafka`]: the Kafka wire protocol on a second port, in front of the same engine.
#![forbid(unsafe_code)]

pub mod clock;
pub mod commands;
pub mod durability;
pub mod group;
pub mod kafka;
pub mod log;
pub mod marker;
pub mod offsets;
pub mod partitioner;
pub mod producer_state;
pub mod read_cache;
pub mod record;
pub mod segment;
pub mod server;
pub mod topic;
pub mod transaction;
pub mod transaction_log;
pub mod txn_coordinator;

use std::path::PathBuf;
use std::sync::Arc;

use service::{BoxError, CancellationToken, Running};

pub use durability::FsyncPolicy;
pub use server::StreamServer;

/// The RESP port (the Kafka protocol listener will use 9092).
pub const DEFAULT_PORT: u16 = 7383;

/// `infralab stream` flags.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "stream", about = "A Kafka-style partitioned log over RESP")]
pub struct Args {
    #[command(flatten)]
    pub service: service::ServiceArgs,
    /// Directory for topics and committed offsets.
    #[arg(long, default_value = "./data/stream")]
    pub dir: PathBuf,
    /// When a produce is acknowledged: after an fsync (`always`, producers grouped into
    /// shared fsyncs), with an fsync every second (`everysec`), or when the OS writes (`no`).
    #[arg(long, value_enum, default_value = "everysec")]
    pub fsync: FsyncPolicy,
    /// Start even when a segment is damaged in the middle, cutting it at the damage (the
    /// records after it are dropped). Without it the server refuses to start and names
    /// the file and byte. A torn last batch is always cut off.
    #[arg(long)]
    pub load_truncated: bool,
    /// Create a topic on first produce (with --default-partitions), as Kafka does by default.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_create_topics: bool,
    /// Partitions of an auto-created topic, and of TOPIC.CREATE without PARTITIONS.
    #[arg(long, default_value_t = 1)]
    pub default_partitions: u32,
    /// Default retention.ms of new topics (-1: forever).
    #[arg(long, default_value_t = 7 * 24 * 3600 * 1000)]
    pub retention_ms: i64,
    /// Default retention.bytes of new topics, per partition (-1: no limit).
    #[arg(long, default_value_t = -1)]
    pub retention_bytes: i64,
    /// Default segment.bytes of new topics.
    #[arg(long, default_value_t = 1 << 30)]
    pub segment_bytes: u64,
    /// How often retention runs, in milliseconds.
    #[arg(long, default_value_t = 60_000)]
    pub retention_check_interval_ms: u64,
    /// Session timeout of a group member that does not give one, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub session_timeout_ms: i64,
    /// Port of the Kafka protocol listener, on the same --bind address: a number, `0` for
    /// no Kafka listener (as Redis's `port 0`), or `auto` for any free port (tests).
    #[arg(long, default_value = "9092")]
    pub kafka_port: kafka::KafkaPort,
    /// Largest Kafka request accepted, in bytes (Kafka's `socket.request.max.bytes`); a
    /// client announcing a larger one is disconnected, as Kafka does.
    #[arg(long, default_value_t = kafka::DEFAULT_MAX_REQUEST_BYTES)]
    pub kafka_max_request_bytes: usize,
    /// Memory all Kafka connections together may hold for requests still arriving, in
    /// bytes; a connection whose partial request would go past it is disconnected.
    #[arg(long, default_value_t = kafka::DEFAULT_MAX_BUFFERED_REQUEST_BYTES)]
    pub kafka_max_buffered_request_bytes: usize,
    /// Host name Kafka clients are told to connect to (Metadata, FindCoordinator);
    /// default: the bind address, or `localhost` when binding every interface.
    #[arg(long)]
    pub kafka_advertised_host: Option<String>,
    /// Port Kafka clients are told to connect to; default: the listener's own. For a
    /// broker behind a proxy or a port mapping (Kafka's `advertised.listeners`).
    #[arg(long)]
    pub kafka_advertised_port: Option<u16>,
}

/// What [`start_with_kafka`] returns: the RESP server and the Kafka listener's address
/// (`None` with `--kafka-port 0`).
pub struct Started {
    pub running: Running,
    pub kafka_addr: Option<std::net::SocketAddr>,
}

/// Opens the data directory (recovering every log), binds and starts serving; returns
/// once listening.
pub async fn start(args: Args, shutdown: CancellationToken) -> Result<Running, BoxError> {
    Ok(start_with_kafka(args, shutdown).await?.running)
}

/// Like [`start`], and tells where the Kafka listener is (its port may have been `auto`).
///
/// The server runs on a thread of its own, one event loop for both listeners
/// ([`service::spawn_on_own_thread_with`]), as kv and the shard router do. Producers to a
/// partition meet on its lock anyway, and on a shared multi-threaded runtime every hand-off
/// between tasks — a group-commit fsync waking the fifty producers it covered, a produce
/// waking a long-polling fetch — could wake a parked worker on the other core: `strace -c`
/// counted 1.5 `futex` calls per produce under `--fsync always` (29,399 for 20,000). With
/// the fsyncs off the loop (on the blocking pool; segment writes and reads, which stay on
/// it, are copies to and from the page cache) one thread is enough on this project's
/// 2-core machines: `--fsync always`, 50 producers at `-P 1`, 29.4k -> 31.3k
/// produces/s (redis-server `appendfsync always` 32.3k in the same runs, medians of 5);
/// batched produce and fetch unchanged.
pub async fn start_with_kafka(
    args: Args,
    shutdown: CancellationToken,
) -> Result<Started, BoxError> {
    let (running, kafka_addr) = service::spawn_on_own_thread_with("stream", move || async move {
        let started = start_here(args, shutdown).await?;
        Ok((started.running, started.kafka_addr))
    })
    .await?;
    Ok(Started {
        running,
        kafka_addr,
    })
}

/// [`start_with_kafka`] on the current runtime: every task the server spawns (both
/// listeners' connections, the fsync and retention tasks) lands on it.
async fn start_here(args: Args, shutdown: CancellationToken) -> Result<Started, BoxError> {
    let server = Arc::new(StreamServer::open(
        &args,
        Arc::new(clock::SystemClock),
        shutdown.clone(),
    )?);
    txn_coordinator::recover(&server).await;
    server::spawn_background(server.clone(), &args, shutdown.clone());
    let kafka_addr = match args.kafka_port.to_bind() {
        Some(port) => Some(
            kafka::spawn(
                server.clone(),
                kafka::Listener::new(&args, port),
                shutdown.clone(),
            )
            .await?,
        ),
        None => None,
    };
    let running = service::spawn(server, &args.service, DEFAULT_PORT, shutdown).await?;
    Ok(Started {
        running,
        kafka_addr,
    })
}

/// Runs until `shutdown` is cancelled.
pub async fn run(args: Args, shutdown: CancellationToken) -> Result<(), BoxError> {
    start(args, shutdown).await?.wait().await;
    Ok(())
}

/// A mutex's guard, also after a panic elsewhere poisoned it: the data behind these locks
/// (lists of files, cached batches) stays consistent at every step, so a panic in another
/// task is no reason to stop serving.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

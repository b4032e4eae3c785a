//! # broker — a durable work queue
//!
//! The course's message-broker chapter, as a server: one message goes to one consumer; it
//! is deleted only when that consumer acknowledges it; a consumer that takes a message and
//! dies gives it back; the broker holds messages durably until someone can take them, so
//! producers and consumers never wait for each other. The semantics are those of Amazon
//! SQS and beanstalkd; the protocol is RESP, so redis-cli and every Redis client drive it,
//! and beanstalkd's and SQS's own protocols on two more ports, on the same queues.
//!
//! Read it in this order:
//! 1. [`message`] — a message and its three states (ready, delayed, in flight).
//! 2. [`visibility`] — the visibility timeout: leases, and why redelivery is at-least-once.
//! 3. [`receipt`] — why each delivery has its own receipt.
//! 4. [`queue`] — one queue's indexes: priority + FIFO, delays, leases, retention.
//! 5. [`dead_letter`] — poison messages and redrive; [`fifo`] — FIFO queues: ordered
//!    message groups and deduplicated sends.
//! 6. [`engine`] — all queues and the protocol's operations, deterministic in `now`.
//! 7. [`store`] and [`codec`] — durability with sled and `--fsync`.
//! 8. [`shared_engine`] — the engine as connections share it: durability waits, long
//!    polling; [`consumer`] — consumers that disconnect.
//! 9. [`commands`] (RESP → shared engine → reply) and [`server`] (wiring).
//! 10. [`beanstalk`] — beanstalkd's protocol on a second port, on the same queues.
//! 11. [`sqs`] — Amazon SQS's API on a third port (HTTP), on the same queues.
#![forbid(unsafe_code)]

pub mod beanstalk;
pub mod clock;
pub mod codec;
pub mod commands;
pub mod consumer;
pub mod dead_letter;
pub mod engine;
pub mod fifo;
pub mod journal;
pub mod message;
pub mod queue;
pub mod receipt;
pub mod redo;
pub mod schedule;
pub mod seal;
pub mod server;
pub mod shared_engine;
pub mod sqs;
pub mod store;
pub mod visibility;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use service::protocol_port::ProtocolPort;
use service::{BoxError, CancellationToken, Running};

use crate::clock::{Clock, SystemClock};
use crate::engine::Engine;
use crate::receipt::NonceSource;
use crate::server::Broker;
use crate::shared_engine::SharedEngine;

pub use crate::consumer::OnDisconnect;
pub use crate::store::Fsync;

/// The broker's port (`redis-cli -p 7382`).
pub const DEFAULT_PORT: u16 = 7382;

/// `infralab broker ...`
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "broker", about = "A durable work-queue broker")]
pub struct Args {
    #[command(flatten)]
    pub service: service::ServiceArgs,
    /// Directory of the message store.
    #[arg(long, default_value = "./data/broker")]
    pub dir: PathBuf,
    /// When writes reach the disk: `always` (before the reply), `everysec`, or `no`.
    #[arg(long, value_enum, default_value = "everysec")]
    pub fsync: Fsync,
    /// Start even when the redo log is damaged in the middle (the changes after the
    /// damage are dropped), or when sled's log came back without flushes that had
    /// completed (see `seal`). Without it the broker refuses to start and names the file.
    /// A torn last record is always cut off.
    #[arg(long)]
    pub load_truncated: bool,
    /// A closed consumer connection's in-flight messages: `release` (visible again at
    /// once) or `keep` (visible when their visibility timeout ends, as SQS).
    #[arg(long, value_enum, default_value = "release")]
    pub on_disconnect: OnDisconnect,
    /// Port of the beanstalkd protocol listener, on the same --bind address: a number, `0`
    /// for no beanstalkd listener, or `auto` for any free port (tests).
    #[arg(long, default_value = "11300")]
    pub beanstalk_port: ProtocolPort,
    /// Port of the SQS API listener (HTTP), on the same --bind address: a number, `0` for
    /// no SQS listener, or `auto` for any free port (tests).
    #[arg(long, default_value = "9324")]
    pub sqs_port: ProtocolPort,
    /// Largest job body a beanstalkd `put` may carry, in bytes (beanstalkd's `-z`).
    #[arg(short = 'z', long, default_value_t = beanstalk::DEFAULT_MAX_JOB_SIZE)]
    pub max_job_size: usize,
}

/// What [`start_with_protocols`] returns: the RESP server and the addresses of the
/// beanstalkd and SQS listeners (`None` when their port is 0).
pub struct Started {
    pub running: Running,
    pub beanstalk_addr: Option<std::net::SocketAddr>,
    pub sqs_addr: Option<std::net::SocketAddr>,
}

/// Opens the store, restores the queues, binds, and returns once listening.
pub async fn start(args: Args, shutdown: CancellationToken) -> Result<Running, BoxError> {
    start_with_clock(args, shutdown, Arc::new(SystemClock)).await
}

/// [`start`] with a given clock.
pub async fn start_with_clock(
    args: Args,
    shutdown: CancellationToken,
    clock: Arc<dyn Clock>,
) -> Result<Running, BoxError> {
    Ok(start_on(args, shutdown, clock).await?.running)
}

/// Like [`start`], and tells where the beanstalkd and SQS listeners are (their ports may
/// have been `auto`).
pub async fn start_with_protocols(
    args: Args,
    shutdown: CancellationToken,
) -> Result<Started, BoxError> {
    start_on(args, shutdown, Arc::new(SystemClock)).await
}

async fn start_on(
    args: Args,
    shutdown: CancellationToken,
    clock: Arc<dyn Clock>,
) -> Result<Started, BoxError> {
    if args.beanstalk_port.to_bind().is_some() {
        beanstalk::check_auth(&args.service.bind, args.service.requirepass.is_some())?;
    }
    let dir = args.dir.clone();
    let fsync = args.fsync;
    let load_truncated = args.load_truncated;
    let (store, (queues, messages)) = tokio::task::spawn_blocking(move || {
        store::Store::open_and_load(&dir, fsync, load_truncated)
    })
    .await??;
    let mut engine = Engine::new(store.clone(), NonceSource::random_seed());
    let release = args.on_disconnect == OnDisconnect::Release;
    engine
        .restore(queues, messages, release, clock.now())
        .map_err(|e| format!("restoring the queues: {e:?}"))?;
    let inner = Arc::new(SharedEngine::new(
        engine,
        store,
        fsync,
        args.on_disconnect,
        clock,
        shutdown.clone(),
    ));
    // The sweep and the other protocols' listeners: the RESP server's shutdown waits for
    // them (see `Broker::background`).
    let mut background = vec![tokio::spawn(server::sweep(
        inner.clone(),
        Duration::from_secs(1),
    ))];
    let mut beanstalk_addr = None;
    if let Some(port) = args.beanstalk_port.to_bind() {
        let service = &args.service;
        let spawned = beanstalk::spawn(
            inner.clone(),
            service,
            port,
            args.max_job_size,
            shutdown.clone(),
        );
        let (addr, task) = spawned.await?;
        background.push(task);
        beanstalk_addr = Some(addr);
    }
    let mut sqs_addr = None;
    if let Some(port) = args.sqs_port.to_bind() {
        let (addr, task) = sqs::spawn(inner.clone(), &args.service, port, shutdown.clone()).await?;
        background.push(task);
        sqs_addr = Some(addr);
    }
    let broker = Arc::new(Broker {
        inner,
        background: std::sync::Mutex::new(background),
    });
    let running = service::spawn(broker, &args.service, DEFAULT_PORT, shutdown).await?;
    Ok(Started {
        running,
        beanstalk_addr,
        sqs_addr,
    })
}

/// Runs the broker until `shutdown` is cancelled.
pub async fn run(args: Args, shutdown: CancellationToken) -> Result<(), BoxError> {
    start(args, shutdown).await?.wait().await;
    Ok(())
}

//! # pubsub — push-based publish/subscribe with slow-consumer protection
//!
//! The course's pub/sub chapter in one server, compatible with Redis's pub/sub so
//! `redis-cli SUBSCRIBE` and any Redis client library work unchanged:
//!
//! - **Push, not pull.** A subscriber does not ask for messages; the server writes each
//!   one to every subscriber the moment it is published. Latency is one network hop. There
//!   is no persistence: a subscriber that is not connected at publish time never sees the
//!   message.
//! - **Fan-out.** One publish reaches many subscribers, so the cost that matters is per
//!   recipient. The hub ([`hub::fanout`], a library kv's pub/sub shares) encodes a message
//!   once and hands every subscriber's queue the same bytes (a queue that fell far behind
//!   copies them into compact blocks of its own); the publisher never waits for
//!   any subscriber.
//! - **No back-pressure.** A publisher cannot be slowed by a subscriber, so a slow
//!   subscriber's queue grows. [`hub::outbox`] bounds every queue (Redis's
//!   `client-output-buffer-limit pubsub 32mb 8mb 60`) and applies a policy — disconnect,
//!   drop the oldest or drop the newest — when a subscriber cannot keep up.
//! - **The hybrid.** Subscribers that must not lose messages put a durable queue behind the
//!   pub/sub server: [`bridge`] subscribes to a pattern and feeds every message into a
//!   broker queue, where consumers take them at their own pace.
//!
//! Layers: the engine and the commands live in the [`hub`] library crate (the outbox and
//! the fan-out tables, no sockets; RESP commands → hub calls), shared with kv, which serves
//! `SUBSCRIBE` from the database as Redis does; [`server`] plugs the hub into the shared
//! connection loop, and [`bridge`] feeds a pattern's messages into a broker queue.
#![forbid(unsafe_code)]

pub mod bridge;
pub mod server;

use std::sync::Arc;

use service::{BoxError, CancellationToken, Running, ServiceArgs};

pub use hub::{OutputLimit, SlowPolicy};
pub use server::PubSub;

/// The pub/sub server's port.
pub const DEFAULT_PORT: u16 = 7381;

/// `infralab pubsub` flags.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "pubsub",
    about = "Redis-compatible pub/sub with bounded subscriber queues"
)]
pub struct Args {
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Each subscriber's queue limits: `<hard> <soft> <soft-seconds>` (Redis's syntax, and
    /// its default): over `hard` bytes, or over `soft` bytes for longer than
    /// `soft-seconds`, the subscriber is too slow. 0 disables a limit.
    #[arg(long, default_value = "32mb 8mb 60")]
    pub client_output_buffer_limit: OutputLimit,
    /// What happens to a subscriber over its limit: `disconnect` (as Redis), `drop-oldest`
    /// or `drop-newest` (the subscriber stays connected and loses messages).
    #[arg(long, value_enum, default_value_t = SlowPolicy::Disconnect)]
    pub slow_consumer_policy: SlowPolicy,
}

/// Binds and starts serving; returns once listening.
///
/// The server runs on a thread of its own, one event loop as Redis's
/// ([`service::spawn_on_own_thread`], as kv, the cache and the router do). Every
/// `PUBLISH` already runs under the hub's one lock, so a second thread adds no
/// throughput, only hand-offs: on the shared multi-threaded runtime a publisher and its
/// subscribers' connections run on different cores, and each message's encoded copy is
/// allocated by one thread and freed by another. The allocator (mimalloc, one heap per
/// thread) hands such a block back to its owner's heap later, through a queue, so the
/// memory a fast subscriber has just written is not at once there for the next message.
/// On one thread a freed block is the next one allocated, and the process has one
/// thread's heap and stack instead of a pool of them (see the README's slow-subscriber
/// figures).
pub async fn start(args: Args, shutdown: CancellationToken) -> Result<Running, BoxError> {
    service::spawn_on_own_thread("pubsub", move || start_here(args, shutdown)).await
}

/// [`start`] on the current runtime: every connection's task lands on it.
async fn start_here(args: Args, shutdown: CancellationToken) -> Result<Running, BoxError> {
    let server = Arc::new(PubSub::new(
        args.client_output_buffer_limit,
        args.slow_consumer_policy,
    ));
    Ok(service::spawn(server, &args.service, DEFAULT_PORT, shutdown).await?)
}

/// Serves until `shutdown` is cancelled.
pub async fn run(args: Args, shutdown: CancellationToken) -> Result<(), BoxError> {
    start(args, shutdown).await?.wait().await;
    Ok(())
}

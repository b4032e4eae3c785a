//! The hybrid architecture: pub/sub in front, a durable queue behind.
//!
//! Pub/sub pushes a message to whoever is connected *now*, and a subscriber that is slow
//! or away loses messages: that is the price of its low latency. A work queue is the
//! opposite: messages wait, durably, until a consumer takes and acknowledges them. The
//! course's hybrid puts a queue behind the subscribers that must not lose anything:
//!
//! ```text
//!                      ┌──▶ fast subscriber (dashboard)     push, may lose under load
//! publisher ──▶ pubsub ┤
//!                      └──▶ bridge ──QSENDBATCH──▶ broker queue ──▶ workers, at their pace
//! ```
//!
//! `infralab bridge --pubsub HOST:PORT --pattern P --broker HOST:PORT --queue Q` is that
//! bridge. It is an ordinary client of both servers (it talks RESP over the network; it
//! links neither engine), made of two loops joined by a bounded backlog:
//!
//! - the **subscribe loop** `PSUBSCRIBE`s to the pattern and appends every message's
//!   payload to the backlog. It always keeps reading, so the pub/sub server never sees
//!   the bridge as a slow consumer, even while the broker is down.
//! - the **forward loop** sends the backlog's oldest messages to the queue with one
//!   `QSENDBATCH` (all or none) and removes them only once the broker has answered with
//!   their ids.
//!
//! Either connection may fail; each loop reconnects with exponential back-off (50 ms up to
//! 2 s). Order is kept: one forward loop, batches in backlog order. What is guaranteed:
//! every message published while the bridge is subscribed reaches the queue, in order, as
//! long as the backlog does not overflow (`--backlog`; beyond it new messages are dropped
//! and counted). A batch whose reply was lost with the broker connection is sent again,
//! so a message can arrive twice (at-least-once) but never not at all. Messages published
//! while the bridge is *not* subscribed (the pub/sub server restarting) were never
//! delivered to anyone: pub/sub keeps nothing.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use proto::Frame;
use service::{BoxError, CancellationToken, RespClient};
use tokio::sync::Notify;
use tracing::{info, warn};

use hub::outbox::parse_memory;

/// How long a stopping bridge keeps trying to hand its backlog to the broker.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// `infralab bridge` flags.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "bridge", about = "Feeds a pub/sub pattern into a broker queue")]
pub struct BridgeArgs {
    /// The pub/sub server.
    #[arg(long, default_value = "127.0.0.1:7381")]
    pub pubsub: String,
    /// The channels to forward, as a `PSUBSCRIBE` glob pattern.
    #[arg(long)]
    pub pattern: String,
    /// The broker.
    #[arg(long, default_value = "127.0.0.1:7382")]
    pub broker: String,
    /// The queue that receives every message's payload.
    #[arg(long)]
    pub queue: String,
    /// Password for both servers, if they run with `--requirepass`.
    #[arg(long, env = "INFRALAB_REQUIREPASS")]
    pub password: Option<String>,
    /// Most messages per `QSENDBATCH`.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Payload bytes held while the broker is slow or unreachable; beyond it new messages
    /// are dropped (and counted).
    #[arg(long, default_value = "64mb", value_parser = parse_memory)]
    pub backlog: usize,
    /// Seconds between two count reports in the log (0: only when stopping).
    #[arg(long, default_value_t = 10)]
    pub report_every: u64,
}

/// What the bridge has done so far.
#[derive(Debug, Default)]
pub struct BridgeStats {
    /// Messages received from the pub/sub server.
    pub received: AtomicU64,
    /// Messages the broker acknowledged.
    pub forwarded: AtomicU64,
    /// Messages dropped because the backlog was full.
    pub dropped: AtomicU64,
    /// Successful subscriptions (1 + reconnections to the pub/sub server).
    pub pubsub_connects: AtomicU64,
    /// Successful connections to the broker.
    pub broker_connects: AtomicU64,
}

impl BridgeStats {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// One line for the log.
    pub fn summary(&self, backlog: usize) -> String {
        format!(
            "received={} forwarded={} dropped={} backlog={} pubsub_connects={} broker_connects={}",
            Self::get(&self.received),
            Self::get(&self.forwarded),
            Self::get(&self.dropped),
            backlog,
            Self::get(&self.pubsub_connects),
            Self::get(&self.broker_connects),
        )
    }
}

/// Messages received and not yet acknowledged by the broker, oldest first.
#[derive(Debug, Default)]
struct Backlog {
    state: Mutex<(VecDeque<Bytes>, usize)>,
    ready: Notify,
}

impl Backlog {
    fn lock(&self) -> MutexGuard<'_, (VecDeque<Bytes>, usize)> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Appends, unless that would pass `limit` bytes. Only the forward loop removes
    /// messages, and only from the front, so a batch in flight stays put.
    fn push(&self, payload: Bytes, limit: usize) -> bool {
        let mut s = self.lock();
        if s.1 + payload.len() > limit && !s.0.is_empty() {
            return false;
        }
        s.1 += payload.len();
        s.0.push_back(payload);
        self.ready.notify_one();
        true
    }

    /// The oldest `max` messages (copies of the handles), waiting for one if empty.
    async fn front(&self, max: usize) -> Vec<Bytes> {
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let batch: Vec<Bytes> = self.lock().0.iter().take(max).cloned().collect();
            if !batch.is_empty() {
                return batch;
            }
            notified.await;
        }
    }

    fn pop(&self, n: usize) {
        let mut s = self.lock();
        for _ in 0..n {
            if let Some(p) = s.0.pop_front() {
                s.1 -= p.len();
            }
        }
    }

    fn len(&self) -> usize {
        self.lock().0.len()
    }
}

/// Exponential back-off between reconnection attempts.
struct Backoff(Duration);

impl Backoff {
    const FIRST: Duration = Duration::from_millis(50);
    const MAX: Duration = Duration::from_secs(2);

    fn new() -> Self {
        Backoff(Self::FIRST)
    }

    fn reset(&mut self) {
        self.0 = Self::FIRST;
    }

    /// Sleeps for the current delay (doubling it for next time); `false` on shutdown.
    async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let delay = self.0;
        self.0 = (self.0 * 2).min(Self::MAX);
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}

/// A running bridge.
pub struct Bridge {
    pub stats: Arc<BridgeStats>,
    task: tokio::task::JoinHandle<()>,
}

impl Bridge {
    /// Starts both loops in the background; they stop when `shutdown` is cancelled.
    pub fn spawn(args: BridgeArgs, shutdown: CancellationToken) -> Bridge {
        let stats = Arc::new(BridgeStats::default());
        let backlog = Arc::new(Backlog::default());
        let args = Arc::new(args);
        let subscriber = tokio::spawn(subscribe_loop(
            args.clone(),
            backlog.clone(),
            stats.clone(),
            shutdown.clone(),
        ));
        // The forward loop outlives the subscription a little, to drain the backlog.
        let stop_forwarding = CancellationToken::new();
        let forwarder = tokio::spawn(forward_loop(
            args.clone(),
            backlog.clone(),
            stats.clone(),
            stop_forwarding.clone(),
        ));
        let task = tokio::spawn({
            let stats = stats.clone();
            async move {
                let every = Duration::from_secs(args.report_every);
                if !every.is_zero() {
                    let mut tick = tokio::time::interval(every);
                    tick.tick().await;
                    loop {
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tick.tick() => info!("bridge: {}", stats.summary(backlog.len())),
                        }
                    }
                }
                shutdown.cancelled().await;
                let _ = subscriber.await;
                let drained = async {
                    while backlog.len() > 0 {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                };
                let _ = tokio::time::timeout(DRAIN_TIMEOUT, drained).await;
                stop_forwarding.cancel();
                let _ = forwarder.await;
                info!("bridge stopped: {}", stats.summary(backlog.len()));
            }
        });
        Bridge { stats, task }
    }

    /// Waits until the bridge has stopped.
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Runs the bridge until `shutdown` is cancelled.
pub async fn run(args: BridgeArgs, shutdown: CancellationToken) -> Result<(), BoxError> {
    if args.batch == 0 {
        return Err("--batch must be at least 1".into());
    }
    info!(
        "bridge: {} PSUBSCRIBE {} -> {} QSENDBATCH {}",
        args.pubsub, args.pattern, args.broker, args.queue
    );
    Bridge::spawn(args, shutdown).wait().await;
    Ok(())
}

async fn connect(addr: &str, password: Option<&str>) -> Result<RespClient, BoxError> {
    let mut client = RespClient::connect(addr).await?;
    if let Some(password) = password {
        let reply = client
            .call(["AUTH".to_string(), password.to_string()])
            .await?;
        if reply.is_error() {
            return Err(format!("{addr}: AUTH failed: {reply:?}").into());
        }
    }
    Ok(client)
}

async fn subscribe_loop(
    args: Arc<BridgeArgs>,
    backlog: Arc<Backlog>,
    stats: Arc<BridgeStats>,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new();
    loop {
        let ended = tokio::select! {
            _ = shutdown.cancelled() => return,
            ended = subscribe_once(&args, &backlog, &stats, &mut backoff) => ended,
        };
        if let Err(e) = ended {
            warn!("bridge: pub/sub {}: {e}; reconnecting", args.pubsub);
        }
        if !backoff.wait(&shutdown).await {
            return;
        }
    }
}

/// One subscription, until the connection fails.
async fn subscribe_once(
    args: &BridgeArgs,
    backlog: &Backlog,
    stats: &BridgeStats,
    backoff: &mut Backoff,
) -> Result<(), BoxError> {
    let mut client = connect(&args.pubsub, args.password.as_deref()).await?;
    let reply = client
        .call(["PSUBSCRIBE".to_string(), args.pattern.clone()])
        .await?;
    match reply {
        Frame::Array(items) if items.first() == Some(&Frame::bulk("psubscribe")) => {}
        other => return Err(format!("unexpected PSUBSCRIBE reply {other:?}").into()),
    }
    BridgeStats::add(&stats.pubsub_connects, 1);
    backoff.reset();
    loop {
        // `pmessage pattern channel payload`; anything else (a PING reply) is ignored.
        if let Frame::Array(mut items) = client.read_reply().await?
            && items.len() == 4
            && items[0] == Frame::bulk("pmessage")
            && let Some(Frame::Bulk(payload)) = items.pop()
        {
            BridgeStats::add(&stats.received, 1);
            if !backlog.push(payload, args.backlog) {
                BridgeStats::add(&stats.dropped, 1);
            }
        }
    }
}

async fn forward_loop(
    args: Arc<BridgeArgs>,
    backlog: Arc<Backlog>,
    stats: Arc<BridgeStats>,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new();
    let mut broker: Option<RespClient> = None;
    loop {
        let batch = tokio::select! {
            _ = shutdown.cancelled() => return,
            batch = backlog.front(args.batch) => batch,
        };
        let client = match broker.as_mut() {
            Some(client) => client,
            None => match connect(&args.broker, args.password.as_deref()).await {
                Ok(client) => {
                    BridgeStats::add(&stats.broker_connects, 1);
                    broker.insert(client)
                }
                Err(e) => {
                    warn!("bridge: broker {}: {e}; retrying", args.broker);
                    if !backoff.wait(&shutdown).await {
                        return;
                    }
                    continue;
                }
            },
        };
        let mut words = Vec::with_capacity(batch.len() + 2);
        words.push(Bytes::from_static(b"QSENDBATCH"));
        words.push(Bytes::copy_from_slice(args.queue.as_bytes()));
        let n = batch.len();
        words.extend(batch);
        match client.call(words).await {
            Ok(Frame::Array(ids)) if ids.len() == n => {
                backlog.pop(n);
                BridgeStats::add(&stats.forwarded, n as u64);
                backoff.reset();
                continue;
            }
            Ok(Frame::Error(e)) => {
                warn!(
                    "bridge: broker refused the batch: {}",
                    String::from_utf8_lossy(&e)
                );
            }
            Ok(other) => {
                warn!("bridge: unexpected broker reply {other:?}; reconnecting");
                broker = None;
            }
            Err(e) => {
                warn!("bridge: broker {}: {e}; reconnecting", args.broker);
                broker = None;
            }
        }
        if !backoff.wait(&shutdown).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn backlog_keeps_order_and_its_limit() {
        let b = Backlog::default();
        assert!(b.push(Bytes::from_static(b"aaaa"), 8));
        assert!(b.push(Bytes::from_static(b"bbbb"), 8));
        assert!(
            !b.push(Bytes::from_static(b"c"), 8),
            "full: the newest is dropped"
        );
        assert_eq!(b.front(1).await, vec![Bytes::from_static(b"aaaa")]);
        b.pop(1);
        assert!(b.push(Bytes::from_static(b"c"), 8));
        assert_eq!(
            b.front(10).await,
            vec![Bytes::from_static(b"bbbb"), Bytes::from_static(b"c")]
        );
        // A message larger than the whole backlog still goes through when it is empty.
        b.pop(2);
        assert!(b.push(Bytes::from(vec![0u8; 100]), 8));
    }
}

//! Wiring: the engine behind a mutex, durability, long polling, consumers that vanish.
//!
//! - Every request runs against the [`Engine`] under one short lock with `now` from the
//!   clock; with `--fsync always` the request then waits for [`Store::flush`] *outside*
//!   the lock, so other requests proceed and share the flush.
//! - Long polling: each queue has a [`Notify`]. A `QRECV ... BLOCK` that finds nothing
//!   registers on it *before* looking (so a send between the look and the wait is not
//!   missed), then sleeps until a send wakes it, a delay or lease in that queue falls due,
//!   its own deadline passes, or the server shuts down.
//! - A consumer's connection remembers the receipts it holds; when the connection closes
//!   those deliveries are released at once (`--on-disconnect release`, the default, as a
//!   RabbitMQ channel closing) or left to their visibility timeout (`keep`, as SQS).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use clap::ValueEnum;
use proto::Args;
use service::{CancellationToken, Client, CommandSpec, InfoSection, Reply, Server};
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::warn;

use crate::clock::{Clock, Millis};
use crate::commands;
use crate::engine::{Engine, Error};
use crate::journal::StorageError;
use crate::message::MessageId;
use crate::queue::Delivery;
use crate::receipt::Receipt;
use crate::store::{Fsync, MAX_PENDING, Store, lock};

/// `--on-disconnect`: what happens to a consumer's in-flight messages when its connection
/// closes (and to every in-flight message when the broker restarts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnDisconnect {
    /// Visible again at once: the consumer is gone, so is its work.
    Release,
    /// Left to their visibility timeout, as SQS (whose consumers have no connection).
    Keep,
}

/// How long a `QRECV` waits: not at all, until a deadline, or for ever (`BLOCK 0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    No,
    Until(Instant),
    Forever,
}

pub struct Broker {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    engine: Mutex<Engine<Store>>,
    store: Store,
    pub fsync: Fsync,
    pub on_disconnect: OnDisconnect,
    clock: Arc<dyn Clock>,
    wakers: Mutex<HashMap<Bytes, Arc<Notify>>>,
    shutdown: CancellationToken,
}

impl Inner {
    pub fn new(
        engine: Engine<Store>,
        store: Store,
        fsync: Fsync,
        on_disconnect: OnDisconnect,
        clock: Arc<dyn Clock>,
        shutdown: CancellationToken,
    ) -> Self {
        Inner {
            engine: Mutex::new(engine),
            store,
            fsync,
            on_disconnect,
            clock,
            wakers: Mutex::new(HashMap::new()),
            shutdown,
        }
    }

    /// Runs `f` on the engine with the current time, then wakes the consumers waiting on
    /// queues that gained ready messages.
    pub fn run<T>(
        &self,
        f: impl FnOnce(&mut Engine<Store>, Millis) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let (result, woken) = {
            let mut engine = lock(&self.engine);
            let result = f(&mut engine, self.clock.now());
            (result, engine.take_woken())
        };
        if !woken.is_empty() {
            let wakers = lock(&self.wakers);
            for name in woken {
                if let Some(notify) = wakers.get(&name) {
                    // One waiter, not all: waking every blocked consumer for one message
                    // is a thundering herd. The one woken passes the baton on if it
                    // leaves messages behind (see `receive`).
                    notify.notify_one();
                }
            }
        }
        result
    }

    /// Like [`Inner::run`], for a change the client must not see confirmed before it is
    /// durable: under `--fsync always`, waits for the flush.
    pub async fn write<T>(
        &self,
        f: impl FnOnce(&mut Engine<Store>, Millis) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let result = self.run(f)?;
        if self.fsync == Fsync::Always {
            self.store.flush().await?;
        } else if self.store.backlog() > MAX_PENDING {
            // Writers outrunning the once-a-second flush hand the backlog to sled themselves.
            self.apply().await?;
        }
        Ok(result)
    }

    fn waker(&self, queue: &Bytes) -> Arc<Notify> {
        lock(&self.wakers).entry(queue.clone()).or_default().clone()
    }

    /// Drops a deleted queue's waker, waking its waiters (they look again, and wait on
    /// the waker of the queue if it is created again).
    pub fn forget_waker(&self, queue: &Bytes) {
        if let Some(notify) = lock(&self.wakers).remove(queue) {
            notify.notify_waiters();
        }
    }

    /// Receives up to `max` messages, waiting as `wait` says for at least one.
    pub async fn receive(
        &self,
        queue: &Bytes,
        max: usize,
        visibility: Option<Millis>,
        wait: Wait,
    ) -> Result<Vec<Delivery>, Error> {
        loop {
            let waker = self.waker(queue);
            let notified = waker.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (deliveries, due_in, more) = self.run(|engine, now| {
                let deliveries = engine.receive(queue, max, visibility, now)?;
                let due_in = engine.next_due(queue).map(|t| t.saturating_sub(now));
                Ok((deliveries, due_in, engine.ready_len(queue) > 0))
            })?;
            if more && !deliveries.is_empty() && wait != Wait::No {
                // Messages are left: wake the next waiting consumer for them.
                waker.notify_one();
            }
            let deadline = match wait {
                _ if !deliveries.is_empty() => return Ok(deliveries),
                Wait::No => return Ok(deliveries),
                Wait::Until(deadline) if deadline <= Instant::now() => return Ok(deliveries),
                Wait::Until(deadline) => Some(deadline),
                Wait::Forever => None,
            };
            // Wake when a delay or lease in this queue falls due (+1 ms: it is due *at*
            // that millisecond), or at our deadline, whichever is first.
            let due = due_in.map(|ms| Instant::now() + Duration::from_millis(ms + 1));
            let wake_at = match (deadline, due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let sleep = async {
                match wake_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = notified => {}
                _ = sleep => {}
                _ = self.shutdown.cancelled() => return Ok(Vec::new()),
            }
        }
    }

    pub async fn flush(&self) -> Result<(), Error> {
        Ok(self.store.flush().await?)
    }

    /// Hands the pending writes to sled without waiting for the disk.
    async fn apply(&self) -> Result<(), Error> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.apply()).await {
            Ok(result) => Ok(result?),
            Err(e) => Err(StorageError(format!("apply task failed: {e}")).into()),
        }
    }

    /// The once-a-second write of `--fsync everysec` (and `always`, for the writes nobody
    /// waits for: receives); under `--fsync no` the writes only go to sled.
    async fn background_flush(&self) -> Result<(), Error> {
        // Under `no` too: a flush is what lets the redo log's files go (its fsync of
        // sled's log is skipped).
        self.flush().await
    }
}

/// Per connection: the deliveries this consumer holds, released if it goes away.
#[derive(Default)]
pub struct Session {
    consumer: Option<Consumer>,
}

struct Consumer {
    inner: Arc<Inner>,
    held: HashMap<MessageId, (Bytes, Receipt)>,
    /// Prune stale entries when `held` grows past this.
    prune_at: usize,
}

impl Session {
    pub(crate) fn hold(&mut self, inner: &Arc<Inner>, queue: &Bytes, deliveries: &[Delivery]) {
        let consumer = self.consumer.get_or_insert_with(|| Consumer {
            inner: inner.clone(),
            held: HashMap::new(),
            prune_at: 1024,
        });
        for d in deliveries {
            consumer.held.insert(d.id, (queue.clone(), d.receipt));
        }
        if consumer.held.len() > consumer.prune_at {
            // Deliveries that expired (and went to other consumers) are no longer ours.
            let _ = consumer.inner.run(|engine, now| {
                consumer
                    .held
                    .retain(|_, (queue, receipt)| engine.is_current(queue, receipt, now));
                Ok(())
            });
            consumer.prune_at = (consumer.held.len() * 2).max(1024);
        }
    }

    pub(crate) fn done(&mut self, receipt: &Receipt) {
        if let Some(consumer) = &mut self.consumer {
            consumer.held.remove(&receipt.message);
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if self.held.is_empty() || self.inner.on_disconnect == OnDisconnect::Keep {
            return;
        }
        let held: Vec<(Bytes, Receipt)> = self.held.drain().map(|(_, held)| held).collect();
        if let Err(e) = self.inner.run(|engine, now| engine.release(&held, now)) {
            warn!("broker: releasing a closed connection's messages failed: {e:?}");
        }
    }
}

impl Server for Broker {
    type Session = Session;

    fn name(&self) -> &'static str {
        "broker"
    }

    fn commands(&self) -> &'static [CommandSpec] {
        commands::COMMANDS
    }

    async fn execute(&self, client: &mut Client<Session>, args: Args) -> Reply {
        commands::execute(&self.inner, &mut client.session, args).await
    }

    /// Before the batch's replies go out: the redo log's records reach the kernel
    /// (`--fsync everysec` and `no`; see [`crate::redo`]).
    fn batch_executed(&self, _session: &mut Session) {
        self.inner.store.write_redo();
    }

    fn info(&self) -> Vec<InfoSection> {
        let (queues, messages) = lock(&self.inner.engine).totals();
        vec![
            InfoSection::new("broker")
                .field("queues", queues)
                .field("messages", messages)
                .field("fsync", self.inner.fsync.as_str())
                .field(
                    "on_disconnect",
                    on_disconnect_name(self.inner.on_disconnect),
                ),
        ]
    }

    fn config_get(&self) -> Vec<(String, String)> {
        vec![
            ("fsync".into(), self.inner.fsync.as_str().into()),
            (
                "on-disconnect".into(),
                on_disconnect_name(self.inner.on_disconnect).into(),
            ),
        ]
    }

    async fn shutdown(&self) {
        if let Err(e) = self.inner.flush().await {
            warn!("broker: final flush failed: {e:?}");
        }
    }
}

fn on_disconnect_name(policy: OnDisconnect) -> &'static str {
    match policy {
        OnDisconnect::Release => "release",
        OnDisconnect::Keep => "keep",
    }
}

/// The background sweep: applies retention and lease expiry to queues nobody touches,
/// then writes what is pending (see [`crate::store`]).
pub(crate) async fn sweep(inner: Arc<Inner>, every: Duration) {
    loop {
        tokio::select! {
            _ = inner.shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(e) = inner.run(|engine, now| engine.tick_all(now)) {
            warn!("broker: sweep failed: {e:?}");
        }
        if let Err(e) = inner.background_flush().await {
            warn!("broker: flush failed: {e:?}");
        }
    }
}

//! The engine as every connection shares it: one short lock per request, the wait for
//! durability, and long polling. Commands call into it; `server.rs` only wires it up.
//!
//! - Every request runs against the [`Engine`] under one short lock with `now` from the
//!   clock; with `--fsync always` the request then waits for [`Store::flush`] *outside*
//!   the lock, so other requests proceed and share the flush.
//! - Long polling: each queue has a [`Notify`]. A `QRECV ... BLOCK` that finds nothing
//!   registers on it *before* looking (so a send between the look and the wait is not
//!   missed), then sleeps until a send wakes it, a delay or lease in that queue falls due,
//!   its own deadline passes, or the server shuts down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use service::CancellationToken;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::clock::{Clock, Millis};
use crate::consumer::OnDisconnect;
use crate::engine::{Engine, Error};
use crate::journal::StorageError;
use crate::queue::Delivery;
use crate::store::{Fsync, MAX_PENDING, Store, lock};

/// Seconds between checkpoints of the redo log into sled (`--fsync everysec` and `no`).
pub const CHECKPOINT_EVERY: u64 = 10;
/// A redo log file this large is checkpointed at the next second, whatever the time: it
/// bounds the log's size on disk and the replay after a crash.
pub const CHECKPOINT_BYTES: u64 = 64 * 1024 * 1024;

/// How long a `QRECV` waits: not at all, until a deadline, or for ever (`BLOCK 0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    No,
    Until(Instant),
    Forever,
}

/// The engine and what surrounds it for a server: the store it flushes, the clock, the
/// long-poll wakers.
pub(crate) struct SharedEngine {
    engine: Mutex<Engine<Store>>,
    store: Store,
    pub fsync: Fsync,
    pub on_disconnect: OnDisconnect,
    clock: Arc<dyn Clock>,
    wakers: Mutex<HashMap<Bytes, Arc<Notify>>>,
    pub shutdown: CancellationToken,
}

impl SharedEngine {
    pub fn new(
        engine: Engine<Store>,
        store: Store,
        fsync: Fsync,
        on_disconnect: OnDisconnect,
        clock: Arc<dyn Clock>,
        shutdown: CancellationToken,
    ) -> Self {
        SharedEngine {
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

    /// Like [`SharedEngine::run`], for a change the client must not see confirmed before it is
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

    pub(crate) fn waker(&self, queue: &Bytes) -> Arc<Notify> {
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

    /// The once-a-second work of durability; `second` counts the calls.
    ///
    /// Under `--fsync always` a flush of sled (for the writes nobody waits for: receives).
    /// Under `everysec` and `no` every change is already in the redo log, written to the
    /// kernel before its reply: the log *is* the durable copy, as a database's write-ahead
    /// log is, and sled is its checkpoint. So once a second only the log is fsynced
    /// (`everysec`; nothing under `no`), and sled gets the batch of changes — a
    /// checkpoint, after which the log's older files go — every [`CHECKPOINT_EVERY`]
    /// seconds, or sooner once the log holds [`CHECKPOINT_BYTES`]. A message sent and
    /// acknowledged between two checkpoints (a busy queue's normal job) then never costs
    /// sled anything; with a flush every second, every message that waited longer than a
    /// second in a backlog was written to sled and deleted from it again.
    pub(crate) async fn background_flush(&self, second: u64) -> Result<(), Error> {
        let checkpoint = self.fsync == Fsync::Always
            || second.is_multiple_of(CHECKPOINT_EVERY)
            || self.store.redo_written() >= CHECKPOINT_BYTES;
        if checkpoint {
            self.flush().await
        } else {
            Ok(self.store.sync_redo().await?)
        }
    }

    /// Before a batch's replies go out: the redo log's records reach the kernel
    /// (`--fsync everysec` and `no`; see [`crate::redo`]).
    pub(crate) fn write_redo(&self) {
        self.store.write_redo();
    }

    /// Queues and messages, for `INFO`.
    pub fn totals(&self) -> (usize, usize) {
        lock(&self.engine).totals()
    }
}

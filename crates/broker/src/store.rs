//! Durability with sled: the [`Journal`] the server's engine writes through.
//!
//! Two trees: `messages` (message id, big-endian so keys sort by id → the queue name and
//! the message) and `queues` (name → attributes). A message's record is rewritten when its
//! state changes (received, nacked, delayed) and removed when it is acknowledged.
//!
//! **Write-behind.** The engine's writes do not go to sled one by one: they collect in a
//! [`Pending`] set, keyed by message id, and are applied to sled as one batch when the
//! store is flushed. Within a batch the writes of one message *coalesce*: a message that
//! is sent, received and acknowledged between two flushes — the normal life of a job in
//! a busy queue — costs sled nothing at all (its put, its rewrite and its delete cancel
//! out), and a message rewritten several times is written once. RabbitMQ's queue index
//! does the same for messages acknowledged before they reach disk. Each sled operation
//! costs tens of thousands of instructions (its pages are copy-on-write trees, and a
//! queue's keys — appended at one end, deleted at the other — make it split and merge
//! nodes all the time), so this is most of the broker's work per message.
//!
//! `--fsync` decides when a flush happens, the same vocabulary as Redis's `appendfsync`:
//! - `always`: the server calls [`Store::flush`] after each change and replies only when it
//!   has completed — a confirmed send or ack survives a crash of the process or machine.
//!   Concurrent requests share flushes (*group commit*, see [`Store::flush`]), so this
//!   costs latency more than throughput.
//! - `everysec`: every change is in the redo log ([`crate::redo`]), written to the kernel
//!   before the replies and fsynced once a second, so a crash of the process loses
//!   nothing and a crash of the machine at most about a second. sled is the log's
//!   checkpoint: the server flushes the pending batch into it every 10 seconds (or once
//!   the log holds 64 MiB; see [`SharedEngine::background_flush`]), so a message sent and
//!   acknowledged within that window never reaches sled at all.
//! - `no`: as `everysec`, without any `fdatasync`: the kernel decides.
//!
//! [`SharedEngine::background_flush`]: crate::shared_engine::SharedEngine::background_flush

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use clap::ValueEnum;

use crate::codec;
use crate::journal::{Journal, StorageError};
use crate::message::{Message, MessageId, Status};
use crate::queue::QueueConfig;
use crate::redo::{self, Change, Redo};
use crate::seal::{Check, Seal};

/// `--fsync`: when writes reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Fsync {
    Always,
    Everysec,
    No,
}

impl Fsync {
    pub fn as_str(self) -> &'static str {
        match self {
            Fsync::Always => "always",
            Fsync::Everysec => "everysec",
            Fsync::No => "no",
        }
    }
}

/// Everything read back at startup.
pub type Loaded = (Vec<(Bytes, QueueConfig)>, Vec<(Bytes, Message)>);

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    messages: sled::Tree,
    queues: sled::Tree,
    commits: Arc<GroupCommit>,
    /// sled's log file, for `fdatasync` after a flush (see [`Store::flush`]).
    log: Arc<std::fs::File>,
    /// Writes made by the engine and not yet handed to sled.
    pending: Arc<Mutex<Pending>>,
    /// Held while a batch is taken from `pending` and applied, so batches reach sled in
    /// the order they were taken.
    applying: Arc<Mutex<()>>,
    /// Under `--fsync everysec` and `no`: every change, written to the kernel before the
    /// replies (see [`crate::redo`]). `None` under `always`, whose replies wait for sled.
    redo: Option<Arc<Mutex<Redo>>>,
    /// `fdatasync` sled's log after a flush (not under `--fsync no`).
    sync_log: bool,
    /// Each flush's number, in sled and outside it (see [`crate::seal`]).
    seal: Arc<Seal>,
}

/// The engine's writes since the last batch: the newest version of each record (`None`:
/// delete it).
#[derive(Default)]
struct Pending {
    /// By id: new ids are appended at the end of the map, which a B-tree does cheaply.
    messages: BTreeMap<MessageId, Option<(Bytes, Message)>>,
    queues: HashMap<Bytes, Option<QueueConfig>>,
    /// Every message id that was ever put in a batch is at most this, so a message with a
    /// larger id has never been near sled: deleting it only has to forget its pending put.
    batched_up_to: MessageId,
}

/// Pending message writes beyond which a writer applies them to sled itself instead of
/// waiting for the next flush (backpressure, and a bound on one batch's size).
pub const MAX_PENDING: usize = 65_536;

/// Group commit: many writers waiting for durability, one flush at a time serving them all.
///
/// A writer takes a ticket *after* its write. If no flush is running it becomes the
/// leader: it reads the newest ticket, flushes (covering every write up to that ticket),
/// and publishes the ticket as done. Writers whose ticket is covered return; the others
/// wait for the next flush, which one of them leads. Under load each flush serves every
/// request that arrived while the previous one ran — the disk sets the pace, not the
/// number of clients.
///
/// (sled's own `flush_async` deadlocks when called concurrently in 0.34 — sled issue
/// #1308, fixed only in unreleased versions — which is one more reason to serialise.)
struct GroupCommit {
    requested: AtomicU64,
    flushing: AtomicBool,
    /// (highest ticket made durable, error of the last flush if it failed).
    done: tokio::sync::watch::Sender<(u64, Option<String>)>,
}

/// Releases leadership if the leader's future is dropped mid-flush.
struct Leader<'a>(&'a GroupCommit);

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.0.flushing.store(false, Ordering::SeqCst);
        // Wake the waiters so one of them takes over.
        self.0.done.send_modify(|_| {});
    }
}

fn storage(e: sled::Error) -> StorageError {
    StorageError(e.to_string())
}

/// Locks a mutex; a panic while it was held does not poison the broker's state for good.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// sled 0.34 panics on some damage to its files instead of returning an error (a
/// flipped byte in the middle of `db`: "tried to serialize Uninitialized" while it
/// recovers). Opening and loading run inside [`std::panic::catch_unwind`], so the panic
/// becomes an error that names the file; this hook keeps the default hook from printing
/// a panic trace for it, on the opening thread only, while it opens.
mod quiet_open {
    use std::cell::Cell;
    use std::sync::Once;

    thread_local! {
        static OPENING: Cell<bool> = const { Cell::new(false) };
    }

    /// Runs `f`, turning a panic into `Err(message)` without printing a trace.
    pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if !OPENING.with(Cell::get) {
                    previous(info);
                }
            }));
        });
        OPENING.with(|o| o.set(true));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        OPENING.with(|o| o.set(false));
        result.map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into())
        })
    }
}

impl Store {
    /// Opens the store in `dir`, replays the redo log into it (see [`crate::redo`]; with
    /// `load_truncated`, past damage in its middle), and reads everything back
    /// ([`Store::load`]). Damage that makes sled panic is reported as an error naming the
    /// database file.
    pub fn open_and_load(
        dir: &Path,
        fsync: Fsync,
        load_truncated: bool,
    ) -> Result<(Store, Loaded), StorageError> {
        let opened = quiet_open::catch(|| {
            let (mut store, check) = Store::open_checked(dir)?;
            if let Check::Lost { recovered, sealed } = check {
                let what = format!(
                    "the message store's log is damaged in the middle: sled recovered it \
                     only up to flush {recovered}, but flush {sealed} had completed, so \
                     the messages confirmed after it would be lost"
                );
                if !load_truncated {
                    return Err(StorageError(format!(
                        "{what}; restore the directory from a backup, or start with \
                         --load-truncated to serve what sled recovered"
                    )));
                }
                tracing::warn!(
                    "{}: {what}; --load-truncated: serving what sled recovered",
                    dir.join("db").display()
                );
            }
            let redo_dir = dir.join("redo");
            let (changes, last) = redo::recover(&redo_dir, load_truncated)?;
            let replayed = changes.len();
            store.replay(changes)?;
            let redo = Redo::create(&redo_dir, last)?;
            // The replayed changes are on disk in sled now: their files can go.
            redo.forget(last)?;
            if replayed > 0 {
                tracing::info!("replayed {replayed} changes from the redo log");
            }
            store.sync_log = fsync != Fsync::No;
            store.redo = (fsync != Fsync::Always).then(|| Arc::new(Mutex::new(redo)));
            let loaded = store.load()?;
            Ok((store, loaded))
        });
        let db = dir.join("db");
        match opened {
            Ok(Ok(opened)) => Ok(opened),
            Ok(Err(StorageError(e))) => Err(StorageError(format!("{}: {e}", db.display()))),
            Err(panic) => Err(StorageError(format!(
                "{}: the message store is damaged and cannot be opened (sled: {panic}); \
                 restore the directory from a backup, or move it away to start empty",
                db.display()
            ))),
        }
    }

    /// Opens the store in `dir` (without the seal's check: see [`Self::open_and_load`]).
    pub fn open(dir: &Path) -> Result<Store, StorageError> {
        Self::open_checked(dir).map(|(store, _)| store)
    }

    /// Opens the store, and compares sled's log with the seal ([`crate::seal`]).
    fn open_checked(dir: &Path) -> Result<(Store, Check), StorageError> {
        // No timer of sled's own: the server flushes (see the module's doc).
        let db = sled::Config::new()
            .path(dir)
            .flush_every_ms(None)
            .open()
            .map_err(storage)?;
        let (seal, check) = Seal::open(dir, &db)?;
        let store = Store {
            messages: db.open_tree("messages").map_err(storage)?,
            queues: db.open_tree("queues").map_err(storage)?,
            db,
            log: Arc::new(
                std::fs::File::open(dir.join("db"))
                    .map_err(|e| StorageError(format!("{}: {e}", dir.join("db").display())))?,
            ),
            commits: Arc::new(GroupCommit {
                requested: AtomicU64::new(0),
                flushing: AtomicBool::new(false),
                done: tokio::sync::watch::Sender::new((0, None)),
            }),
            pending: Arc::default(),
            applying: Arc::default(),
            redo: None,
            sync_log: true,
            seal: Arc::new(seal),
        };
        Ok((store, check))
    }

    /// Makes what was applied to sled durable, sealed: the seal's counter goes into the
    /// batch, sled's log is flushed (and `fdatasync`ed), then the counter is recorded
    /// outside sled. Blocking.
    fn flush_sealed(&self) -> Result<(), StorageError> {
        let n = self.seal.stamp(&self.db)?;
        self.db.flush().map_err(storage)?;
        // On Linux sled 0.34 ends a flush with `sync_file_range`, which survives a crash
        // of the process but not of the machine (it neither flushes the drive's cache nor
        // the file's metadata). `fdatasync` does.
        if self.sync_log {
            self.log
                .sync_data()
                .map_err(|e| StorageError(e.to_string()))?;
        }
        self.seal.sealed(n)
    }

    /// `--fsync everysec` between checkpoints: `fdatasync` of the redo log's current file,
    /// so a crash of the machine loses at most the last second (the older files were
    /// synced when they were current, or their changes are in sled). Nothing under `no`
    /// (the kernel decides) or `always` (no redo log: sled is flushed before each reply).
    pub async fn sync_redo(&self) -> Result<(), StorageError> {
        let Some(redo) = &self.redo else {
            return Ok(());
        };
        if !self.sync_log {
            return Ok(());
        }
        let file = lock(redo).current_file()?;
        match tokio::task::spawn_blocking(move || file.sync_data()).await {
            Ok(result) => result.map_err(|e| StorageError(e.to_string())),
            Err(e) => Err(StorageError(format!("redo sync task failed: {e}"))),
        }
    }

    /// Bytes in the redo log's current file: what a restart would replay.
    pub fn redo_written(&self) -> u64 {
        self.redo.as_ref().map_or(0, |redo| lock(redo).written())
    }

    /// Applies changes recovered from the redo log to sled and makes them durable. Every
    /// delete is written (the ids of messages sled holds are not known yet).
    fn replay(&mut self, changes: Vec<Change>) -> Result<(), StorageError> {
        if changes.is_empty() {
            return Ok(());
        }
        lock(&self.pending).batched_up_to = MessageId::MAX;
        for change in changes {
            match change {
                Change::PutMessage(queue, message) => self.put_message(&queue, &message)?,
                Change::DeleteMessage(id) => self.delete_message(id)?,
                Change::PutQueue(name, config) => self.put_queue(&name, &config)?,
                Change::DeleteQueue(name) => self.delete_queue(&name)?,
                Change::SetStatus(id, status) => self.replay_status(id, status)?,
            }
        }
        self.apply()?;
        lock(&self.pending).batched_up_to = 0;
        self.flush_sealed()
    }

    /// Replays a [`Change::SetStatus`]: onto the message as an earlier record of the
    /// replay left it, else as sled has it; a message in neither was deleted before
    /// sled's checkpoint, and its deletion follows in the log (see [`crate::redo`]).
    fn replay_status(&mut self, id: MessageId, status: Status) -> Result<(), StorageError> {
        let mut pending = lock(&self.pending);
        if let Some(Some((_, message))) = pending.messages.get_mut(&id) {
            message.set_status(status);
            return Ok(());
        }
        let Some(record) = self.messages.get(id.to_be_bytes()).map_err(storage)? else {
            return Ok(());
        };
        let (queue, mut message): (Bytes, Message) = codec::decode(&record)?;
        message.set_status(status);
        pending.messages.insert(id, Some((queue, message)));
        Ok(())
    }

    /// Writes the redo log's buffered changes to the kernel: one `write()`, called after a
    /// connection's batch of commands and before their replies (see [`crate::redo`]).
    pub fn write_redo(&self) {
        if let Some(redo) = &self.redo
            && let Err(e) = lock(redo).write()
        {
            tracing::error!("redo log write failed: {e}");
        }
    }

    /// Adds a change to the redo log's buffer (under `--fsync everysec` and `no`).
    ///
    /// The caller holds the pending set's lock across this and its own update of the
    /// set: a checkpoint ([`Store::flush`]) rotates the log and then takes the pending
    /// set, so a change is either in the batch it takes or in the log that outlives it.
    /// (Logged, then the log rotated and the batch taken, then added to the set: it would
    /// be in neither until the next checkpoint, and a crash would lose it.)
    fn log_change(&self, change: impl FnOnce() -> Change) -> Result<(), StorageError> {
        match &self.redo {
            Some(redo) => lock(redo).push(&change()),
            None => Ok(()),
        }
    }

    /// Reads every queue and message, in id order.
    pub fn load(&self) -> Result<Loaded, StorageError> {
        let mut queues = Vec::new();
        for entry in self.queues.iter() {
            let (name, value) = entry.map_err(storage)?;
            queues.push((Bytes::copy_from_slice(&name), codec::decode(&value)?));
        }
        let mut messages = Vec::new();
        for entry in self.messages.iter() {
            let (_, value) = entry.map_err(storage)?;
            let (queue, message): (Bytes, Message) = codec::decode(&value)?;
            let pending = &mut lock(&self.pending).batched_up_to;
            *pending = (*pending).max(message.id);
            messages.push((queue, message));
        }
        Ok((queues, messages))
    }

    /// How many message writes wait for the next batch.
    pub fn backlog(&self) -> usize {
        lock(&self.pending).messages.len()
    }

    /// Hands the pending writes to sled as one batch (not durable until sled flushes).
    /// Blocking: call it from a blocking thread.
    pub fn apply(&self) -> Result<(), StorageError> {
        let _order = lock(&self.applying);
        let (messages, queues) = {
            let mut pending = lock(&self.pending);
            let messages = std::mem::take(&mut pending.messages);
            let queues = std::mem::take(&mut pending.queues);
            if let Some(&highest) = messages.keys().next_back() {
                pending.batched_up_to = pending.batched_up_to.max(highest);
            }
            (messages, queues)
        };
        let mut batch = sled::Batch::default();
        for (id, record) in messages {
            match record {
                Some((queue, message)) => {
                    batch.insert(&id.to_be_bytes(), codec::encode(&(queue, message))?)
                }
                None => batch.remove(&id.to_be_bytes()),
            }
        }
        // Queues created before their messages are written, deleted after: a crash between
        // the two leaves at worst an empty queue, never messages of a deleted one.
        let (created, deleted): (Vec<_>, Vec<_>) =
            queues.into_iter().partition(|(_, config)| config.is_some());
        for (name, config) in created {
            if let Some(config) = config {
                self.queues
                    .insert(name.as_ref(), codec::encode(&config)?)
                    .map_err(storage)?;
            }
        }
        self.messages.apply_batch(batch).map_err(storage)?;
        for (name, _) in deleted {
            self.queues.remove(name.as_ref()).map_err(storage)?;
        }
        Ok(())
    }

    /// Makes every write made before the call durable; concurrent callers share flushes.
    /// The pending writes are applied to sled, sled's log is written, then `fdatasync`ed.
    pub async fn flush(&self) -> Result<(), StorageError> {
        let commits = &self.commits;
        let ticket = commits.requested.fetch_add(1, Ordering::SeqCst) + 1;
        loop {
            // Subscribe before looking, so a flush finishing in between is not missed.
            let mut done = commits.done.subscribe();
            {
                let (durable, error) = &*done.borrow_and_update();
                if *durable >= ticket {
                    return match error {
                        Some(e) => Err(StorageError(e.clone())),
                        None => Ok(()),
                    };
                }
            }
            if commits.flushing.swap(true, Ordering::SeqCst) {
                // Someone else is flushing: wait for it, then look again.
                let _ = done.changed().await;
                continue;
            }
            let leader = Leader(commits);
            let target = commits.requested.load(Ordering::SeqCst);
            let store = self.clone();
            let flush = move || -> Result<(), String> {
                // A new redo file first: every change in the older ones is then in the
                // batch applied below (or an earlier one), and they can go once sled has
                // it on disk.
                let sealed = match &store.redo {
                    Some(redo) => Some(lock(redo).rotate().map_err(|e| e.0)?),
                    None => None,
                };
                store.apply().map_err(|e| e.0)?;
                store.flush_sealed().map_err(|e| e.0)?;
                match (&store.redo, sealed) {
                    (Some(redo), Some(sealed)) => lock(redo).forget(sealed).map_err(|e| e.0),
                    _ => Ok(()),
                }
            };
            let result = match tokio::task::spawn_blocking(flush).await {
                Ok(result) => result.err(),
                Err(e) => Some(format!("flush task failed: {e}")),
            };
            commits.done.send_modify(|(durable, error)| {
                *durable = (*durable).max(target);
                *error = result;
            });
            drop(leader);
        }
    }
}

impl Journal for Store {
    fn next_id(&mut self) -> Result<MessageId, StorageError> {
        // sled guarantees these increase across restarts, crashes included. +1 so no
        // message has id 0.
        self.db.generate_id().map(|id| id + 1).map_err(storage)
    }

    fn put_message(&mut self, queue: &Bytes, message: &Message) -> Result<(), StorageError> {
        let mut pending = lock(&self.pending);
        self.log_change(|| Change::PutMessage(queue.clone(), message.clone()))?;
        // A clone shares the payload (`Bytes`): encoding waits for the batch, and is
        // skipped if the message is gone by then.
        pending
            .messages
            .insert(message.id, Some((queue.clone(), message.clone())));
        Ok(())
    }

    fn update_message(&mut self, queue: &Bytes, message: &Message) -> Result<(), StorageError> {
        let mut pending = lock(&self.pending);
        self.log_change(|| Change::SetStatus(message.id, message.status()))?;
        match pending.messages.get_mut(&message.id) {
            // Sent since the last batch (a busy queue's usual case): no new clone.
            Some(Some((_, pending))) => pending.set_status(message.status()),
            _ => {
                pending
                    .messages
                    .insert(message.id, Some((queue.clone(), message.clone())));
            }
        }
        Ok(())
    }

    fn delete_message(&mut self, id: MessageId) -> Result<(), StorageError> {
        let mut pending = lock(&self.pending);
        self.log_change(|| Change::DeleteMessage(id))?;
        if id > pending.batched_up_to {
            // Never handed to sled: forgetting its pending put is the whole deletion.
            pending.messages.remove(&id);
        } else {
            pending.messages.insert(id, None);
        }
        Ok(())
    }

    fn put_queue(&mut self, name: &Bytes, config: &QueueConfig) -> Result<(), StorageError> {
        let mut pending = lock(&self.pending);
        self.log_change(|| Change::PutQueue(name.clone(), config.clone()))?;
        pending.queues.insert(name.clone(), Some(config.clone()));
        Ok(())
    }

    fn delete_queue(&mut self, name: &Bytes) -> Result<(), StorageError> {
        let mut pending = lock(&self.pending);
        self.log_change(|| Change::DeleteQueue(name.clone()))?;
        pending.queues.insert(name.clone(), None);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::ready as message;

    fn on_disk(store: &Store) -> Vec<MessageId> {
        store
            .messages
            .iter()
            .keys()
            .map(|k| u64::from_be_bytes(k.unwrap().as_ref().try_into().unwrap()))
            .collect()
    }

    /// Opens a store this process just closed. sled's background threads let go of the
    /// directory's lock a moment after the last handle is dropped (a new process never
    /// sees this: the kernel drops a dead process's lock), so a refusal for the lock is
    /// retried until it is released, for at most 10 s.
    fn reopen<T>(open: impl Fn() -> Result<T, StorageError>) -> T {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match open() {
                Ok(opened) => return opened,
                Err(e)
                    if e.0.contains("could not acquire lock")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("the store did not reopen: {}", e.0),
            }
        }
    }

    #[test]
    fn writes_coalesce_until_applied_and_deletes_of_applied_messages_are_kept() {
        let dir = std::env::temp_dir().join(format!("broker-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let q = Bytes::from_static(b"q");
        {
            let mut store = Store::open(&dir).unwrap();
            let (a, b) = (store.next_id().unwrap(), store.next_id().unwrap());
            store.put_message(&q, &message(a)).unwrap();
            store.put_message(&q, &message(b)).unwrap();
            // Sent, received and acknowledged before the batch: nothing reaches sled.
            store.put_message(&q, &message(b)).unwrap();
            store.delete_message(b).unwrap();
            assert_eq!(store.backlog(), 1);
            store.apply().unwrap();
            assert_eq!(on_disk(&store), vec![a]);
            // `a` is in sled now: its deletion must be written, not just forgotten.
            store.delete_message(a).unwrap();
            let c = store.next_id().unwrap();
            store.put_message(&q, &message(c)).unwrap();
            store.put_queue(&q, &QueueConfig::default()).unwrap();
            store.apply().unwrap();
            assert_eq!(on_disk(&store), vec![c]);
            store.delete_queue(&q).unwrap();
            store.db.flush().unwrap();
        }
        // After a restart, ids loaded from disk count as written: deleting one is kept.
        let mut store = reopen(|| Store::open(&dir));
        let (queues, messages) = store.load().unwrap();
        assert_eq!(queues.len(), 1, "the queue's deletion was never applied");
        assert_eq!(messages.len(), 1);
        store.delete_message(messages[0].1.id).unwrap();
        store.delete_queue(&q).unwrap();
        store.apply().unwrap();
        assert_eq!(on_disk(&store), Vec::<MessageId>::new());
        assert_eq!(store.queues.len(), 0);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The redo log records a receive as the message's status alone, and a restart that
    /// replays it rebuilds the lease exactly: onto the put earlier in the log, or onto
    /// sled's copy when a checkpoint took the put.
    #[tokio::test]
    async fn a_status_record_is_small_and_replays_onto_the_put_or_sleds_copy() {
        use crate::message::{Lease, State};
        use crate::receipt::Receipt;
        let dir = std::env::temp_dir().join(format!("broker-status-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let q = Bytes::from_static(b"q");
        let body = |id| Message {
            payload: Bytes::from(vec![b'j'; 1024]),
            ..message(id)
        };
        let leased = |mut m: Message, nonce| {
            m.deliveries += 1;
            m.first_received = Some(100);
            m.priority = 7;
            m.state = State::InFlight(Lease {
                receipt: Receipt {
                    message: m.id,
                    delivery: m.deliveries,
                    nonce,
                },
                deadline: 30_100,
            });
            m
        };
        let (a, b, c);
        {
            let (mut store, _) = Store::open_and_load(&dir, Fsync::Everysec, false).unwrap();
            (a, b, c) = (
                store.next_id().unwrap(),
                store.next_id().unwrap(),
                store.next_id().unwrap(),
            );
            store.put_message(&q, &body(a)).unwrap();
            // A checkpoint: `a` is in sled, and no longer in the log.
            store.flush().await.unwrap();
            let before = store.redo_written();
            store.update_message(&q, &leased(body(a), 1)).unwrap();
            store.write_redo();
            let status = store.redo_written() - before;
            assert!(status < 100, "a status record of {status} bytes");
            store.put_message(&q, &body(b)).unwrap();
            store.update_message(&q, &leased(body(b), 2)).unwrap();
            store.put_message(&q, &body(c)).unwrap();
            store.update_message(&q, &leased(body(c), 3)).unwrap();
            store.delete_message(c).unwrap();
            store.write_redo();
            // The process dies: nothing but the log has these changes.
        }
        let (store, (_, messages)) = reopen(|| Store::open_and_load(&dir, Fsync::Everysec, false));
        let expected = vec![
            (q.clone(), leased(body(a), 1)),
            (q.clone(), leased(body(b), 2)),
        ];
        assert_eq!(messages, expected);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

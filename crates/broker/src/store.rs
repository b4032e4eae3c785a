//! Durability with sled: the [`Journal`] the server's engine writes through.
//!
//! Two trees: `messages` (message id, big-endian so keys sort by id → the queue name and
//! the message) and `queues` (name → attributes). A message's record is rewritten when its
//! state changes (received, nacked, delayed) and removed when it is acknowledged.
//!
//! sled buffers writes in memory and makes them durable when flushed. `--fsync` decides
//! when that happens, the same vocabulary as Redis's `appendfsync`:
//! - `always`: the server calls [`Store::flush`] after each change and replies only when it
//!   has completed — a confirmed send or ack survives a crash of the process or machine.
//!   Concurrent requests share flushes (*group commit*, see [`Store::flush`]), so this
//!   costs latency more than throughput.
//! - `everysec`: sled flushes every second; a crash loses at most about a second of writes.
//! - `no`: sled flushes when its buffers fill, and on a clean shutdown.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use clap::ValueEnum;

use crate::codec;
use crate::journal::{Journal, StorageError};
use crate::message::{Message, MessageId};
use crate::queue::QueueConfig;

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
}

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

impl Store {
    pub fn open(dir: &Path, fsync: Fsync) -> Result<Store, StorageError> {
        let flush_every = match fsync {
            Fsync::Always | Fsync::Everysec => Some(1000),
            Fsync::No => None,
        };
        let db = sled::Config::new()
            .path(dir)
            .flush_every_ms(flush_every)
            .open()
            .map_err(storage)?;
        Ok(Store {
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
        })
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
            messages.push(codec::decode(&value)?);
        }
        Ok((queues, messages))
    }

    /// Makes every write made before the call durable; concurrent callers share flushes.
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
            let (db, log) = (self.db.clone(), self.log.clone());
            let flush = move || -> Result<(), String> {
                db.flush().map_err(|e| e.to_string())?;
                // On Linux sled 0.34 ends a flush with `sync_file_range`, which survives a
                // crash of the process but not of the machine (it neither flushes the
                // drive's cache nor the file's metadata). `fdatasync` does.
                log.sync_data().map_err(|e| e.to_string())
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
        let record = codec::encode(&(queue, message))?;
        self.messages
            .insert(message.id.to_be_bytes(), record)
            .map(|_| ())
            .map_err(storage)
    }

    fn delete_message(&mut self, id: MessageId) -> Result<(), StorageError> {
        self.messages
            .remove(id.to_be_bytes())
            .map(|_| ())
            .map_err(storage)
    }

    fn put_queue(&mut self, name: &Bytes, config: &QueueConfig) -> Result<(), StorageError> {
        self.queues
            .insert(name.as_ref(), codec::encode(config)?)
            .map(|_| ())
            .map_err(storage)
    }

    fn delete_queue(&mut self, name: &Bytes) -> Result<(), StorageError> {
        self.queues
            .remove(name.as_ref())
            .map(|_| ())
            .map_err(storage)
    }
}

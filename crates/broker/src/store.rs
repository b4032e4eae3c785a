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
//!   Concurrent requests share flushes (group commit), so this costs latency more than
//!   throughput.
//! - `everysec`: sled flushes every second; a crash loses at most about a second of writes.
//! - `no`: sled flushes when its buffers fill, and on a clean shutdown.

use std::path::Path;

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

    /// Makes every write so far durable. Concurrent callers are served by the same disk
    /// write where they can be: sled writes its log buffer once for all of them.
    pub async fn flush(&self) -> Result<(), StorageError> {
        self.db.flush_async().await.map(|_| ()).map_err(storage)
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

//! The engine's view of the disk: every change it makes to a message or a queue is
//! written through a [`Journal`] before the reply goes out. The server's journal is
//! [`crate::store::Store`] (sled); engine tests use [`MemoryJournal`], which keeps nothing.

use bytes::Bytes;

use crate::message::{Message, MessageId};
use crate::queue::QueueConfig;

/// A failed write or read of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageError(pub String);

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "storage error: {}", self.0)
    }
}

impl std::error::Error for StorageError {}

pub trait Journal {
    /// A fresh message id: larger than every id handed out before, even before a crash.
    fn next_id(&mut self) -> Result<MessageId, StorageError>;
    /// Writes (or overwrites) a message and the queue it is in.
    fn put_message(&mut self, queue: &Bytes, message: &Message) -> Result<(), StorageError>;
    /// Rewrites a message whose [`Status`](crate::message::Status) changed (received,
    /// given back, its lease extended or ended, its delay over) and nothing else: the
    /// store may record the status alone.
    fn update_message(&mut self, queue: &Bytes, message: &Message) -> Result<(), StorageError>;
    fn delete_message(&mut self, id: MessageId) -> Result<(), StorageError>;
    fn put_queue(&mut self, name: &Bytes, config: &QueueConfig) -> Result<(), StorageError>;
    fn delete_queue(&mut self, name: &Bytes) -> Result<(), StorageError>;
}

/// A journal that writes nothing (engine tests, and nothing else).
#[derive(Debug, Default)]
pub struct MemoryJournal {
    last_id: MessageId,
}

impl Journal for MemoryJournal {
    fn next_id(&mut self) -> Result<MessageId, StorageError> {
        self.last_id += 1;
        Ok(self.last_id)
    }

    fn put_message(&mut self, _: &Bytes, _: &Message) -> Result<(), StorageError> {
        Ok(())
    }

    fn update_message(&mut self, _: &Bytes, _: &Message) -> Result<(), StorageError> {
        Ok(())
    }

    fn delete_message(&mut self, _: MessageId) -> Result<(), StorageError> {
        Ok(())
    }

    fn put_queue(&mut self, _: &Bytes, _: &QueueConfig) -> Result<(), StorageError> {
        Ok(())
    }

    fn delete_queue(&mut self, _: &Bytes) -> Result<(), StorageError> {
        Ok(())
    }
}

//! The shared state of one server: the engine behind its mutex, the lock table, and the
//! write-ahead log. Sessions hold an `Arc<Database>`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::cancel::Backends;
use crate::engine::Engine;
use crate::isolation::Isolation;
use crate::locks::LockTable;
use crate::wal::Wal;

pub struct Database {
    engine: Mutex<Engine>,
    /// The engine's catalog version, readable without its lock.
    catalog_version: Arc<AtomicU64>,
    pub locks: LockTable,
    /// The connected sessions, for CancelRequest and `pg_cancel_backend`.
    pub backends: Arc<Backends>,
    /// `None` when the database lives only in memory (no `--dir`).
    pub wal: Option<Wal>,
    /// Log bytes after which a checkpoint is taken.
    checkpoint_bytes: u64,
    /// Log position of the last checkpoint, and its generation.
    checkpointed_at: AtomicU64,
    generation: AtomicU64,
    /// The isolation level sessions start with (`--default-isolation`).
    pub default_isolation: Isolation,
    /// The engine's transaction counters, readable without its lock.
    pub stats: Arc<crate::pg_stat::TxStats>,
}

impl Database {
    pub fn new(
        engine: Engine,
        wal: Option<Wal>,
        generation: u64,
        checkpoint_bytes: u64,
    ) -> Database {
        Database {
            catalog_version: engine.catalog_version.clone(),
            stats: engine.stats.clone(),
            engine: Mutex::new(engine),
            locks: LockTable::default(),
            backends: Arc::default(),
            wal,
            checkpoint_bytes,
            checkpointed_at: AtomicU64::new(0),
            generation: AtomicU64::new(generation),
            default_isolation: Isolation::RepeatableRead,
        }
    }

    /// Sessions start at `level` instead of repeatable read.
    pub fn with_default_isolation(mut self, level: Isolation) -> Database {
        self.default_isolation = level;
        self
    }

    /// Called after a commit at log position `lsn`: once the log has grown by
    /// `--checkpoint-bytes` since the last checkpoint, write the committed state as a new
    /// checkpoint and start a new log, so the log (and recovery time) stays bounded.
    /// The checkpoint is built under the engine lock and queued on the log in order, so
    /// every commit before it is in it and every commit after it is in the new log.
    pub fn maybe_checkpoint(&self, lsn: u64) {
        let Some(wal) = &self.wal else { return };
        if lsn.saturating_sub(self.checkpointed_at.load(Ordering::Relaxed)) < self.checkpoint_bytes
        {
            return;
        }
        let engine = self.engine();
        let last = self.checkpointed_at.load(Ordering::Relaxed);
        if lsn.saturating_sub(last) < self.checkpoint_bytes || !engine.ddl_in_flight.is_empty() {
            return; // another session just did it, or DDL is in flight: later
        }
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        wal.checkpoint(generation, engine.checkpoint());
        self.checkpointed_at.store(lsn, Ordering::Relaxed);
    }

    /// Changes whenever the catalog changes (see `Engine::catalog_version`).
    pub fn catalog_version(&self) -> u64 {
        self.catalog_version.load(Ordering::Acquire)
    }

    pub fn engine(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }
}

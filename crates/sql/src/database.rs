//! The shared state of one server: the engine behind its mutex, the lock table, and the
//! write-ahead log. Sessions hold an `Arc<Database>`.

use std::sync::{Mutex, MutexGuard};

use crate::engine::Engine;
use crate::locks::LockTable;
use crate::wal::Wal;

pub struct Database {
    engine: Mutex<Engine>,
    pub locks: LockTable,
    /// `None` when the database lives only in memory (no `--dir`).
    pub wal: Option<Wal>,
}

impl Database {
    pub fn new(engine: Engine, wal: Option<Wal>) -> Database {
        Database {
            engine: Mutex::new(engine),
            locks: LockTable::default(),
            wal,
        }
    }

    pub fn engine(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }
}

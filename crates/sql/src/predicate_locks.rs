//! Serializable's shared locks: two-phase locking for reads, with predicate locks.
//!
//! Under serializable every read *locks what it read* until the transaction ends, and a
//! writer (at any level) that would change it waits. Locking only the rows read would
//! not be enough: a row that does not exist yet cannot be locked, so another
//! transaction could insert one that matches the reader's WHERE clause — a *phantom*.
//! So the lock is on the *predicate* the read used, in the coarse form a lock manager
//! can check cheaply:
//!
//! - an index lookup `WHERE id = 7` locks the key `7` of that index: any writer that
//!   creates, changes or removes a row whose key in that index is 7 waits;
//! - any other read (a sequential scan, a range) locks the whole table: every writer of
//!   that table waits. (InnoDB locks the index gaps it scanned instead — "next-key
//!   locks" — which is finer but needs ordered index ranges in the lock manager.)
//!
//! A transaction that has taken [`MAX_KEY_LOCKS_PER_TABLE`] key locks on one table
//! trades them for a table lock (*lock escalation*), so the memory a client can make the
//! server spend on locks is bounded.
//!
//! The other half of "readers wait for writers": before reading, the reader checks the
//! rows its lock covers for a version a running transaction is writing, and waits for
//! that transaction as a writer would ([`Halt::Wait`], the wait-for graph in `locks`).
//! A reader and a writer that each wait for the other are a deadlock, and one of them
//! gets 40P01: this is how two-phase locking turns write skew into an error.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use crate::engine::{Halt, Result, Table};
use crate::mvcc::{CommitLog, TxId, TxStatus};
use crate::storage::{RowId, key_of};
use crate::types::Value;

/// Key locks one transaction may hold on one table before they become a table lock.
pub const MAX_KEY_LOCKS_PER_TABLE: usize = 1024;

/// `(index number, key)`.
type KeyLock = (usize, Vec<Value>);

#[derive(Debug, Default)]
pub struct PredicateLocks {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Table -> transactions holding a shared lock on all of it.
    tables: HashMap<String, BTreeSet<TxId>>,
    /// Table -> (index, key) -> transactions holding a shared lock on that key.
    keys: HashMap<String, BTreeMap<KeyLock, BTreeSet<TxId>>>,
    /// What each transaction holds, to release it at the end.
    held: HashMap<TxId, Held>,
}

#[derive(Debug, Default)]
struct Held {
    tables: BTreeSet<String>,
    keys: BTreeMap<String, BTreeSet<KeyLock>>,
}

/// A granted shared lock, as `pg_locks` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    pub tx: TxId,
    pub table: String,
    /// `None`: the whole table.
    pub key: Option<KeyLock>,
}

impl PredicateLocks {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `tx` read all of `table` (or a range of it).
    pub fn lock_table(&self, tx: TxId, table: &str) {
        let mut inner = self.inner();
        inner.tables.entry(table.into()).or_default().insert(tx);
        let held = inner.held.entry(tx).or_default();
        held.tables.insert(table.into());
        // The table lock covers every key lock on it.
        if let Some(keys) = held.keys.remove(table) {
            for k in keys {
                remove_key(&mut inner, tx, table, &k);
            }
        }
    }

    /// `tx` looked `key` up in `table`'s index `index`.
    pub fn lock_key(&self, tx: TxId, table: &str, index: usize, key: &[Value]) {
        let count = {
            let mut inner = self.inner();
            let held = inner.held.entry(tx).or_default();
            if held.tables.contains(table) {
                return;
            }
            let mine = held.keys.entry(table.into()).or_default();
            mine.insert((index, key.to_vec()));
            let count = mine.len();
            inner
                .keys
                .entry(table.into())
                .or_default()
                .entry((index, key.to_vec()))
                .or_default()
                .insert(tx);
            count
        };
        if count > MAX_KEY_LOCKS_PER_TABLE {
            self.lock_table(tx, table);
        }
    }

    /// `tx` ended: every lock it held goes.
    pub fn release(&self, tx: TxId) {
        let mut inner = self.inner();
        let Some(held) = inner.held.remove(&tx) else {
            return;
        };
        for table in held.tables {
            if let Some(holders) = inner.tables.get_mut(&table) {
                holders.remove(&tx);
                if holders.is_empty() {
                    inner.tables.remove(&table);
                }
            }
        }
        for (table, keys) in held.keys {
            for k in keys {
                remove_key(&mut inner, tx, &table, &k);
            }
        }
    }

    /// Another transaction holding a shared lock that a write of `versions` (the row's
    /// values before and/or after) to `table` conflicts with.
    fn blocker(&self, me: TxId, table: &Table, versions: &[&[Value]]) -> Option<TxId> {
        let inner = self.inner();
        let name = table.def.name.as_str();
        if let Some(t) = inner.tables.get(name)
            && let Some(&other) = t.iter().find(|&&t| t != me)
        {
            return Some(other);
        }
        let keys = inner.keys.get(name)?;
        for (i, columns) in table.index_columns().iter().enumerate() {
            for values in versions {
                let key = (i, key_of(values, columns));
                if let Some(&other) = keys.get(&key).and_then(|h| h.iter().find(|&&t| t != me)) {
                    return Some(other);
                }
            }
        }
        None
    }

    /// Every shared lock granted now (for `pg_locks`).
    pub fn granted(&self) -> Vec<Granted> {
        let inner = self.inner();
        let mut out = Vec::new();
        for (table, holders) in &inner.tables {
            for &tx in holders {
                out.push(Granted {
                    tx,
                    table: table.clone(),
                    key: None,
                });
            }
        }
        for (table, keys) in &inner.keys {
            for (key, holders) in keys {
                for &tx in holders {
                    out.push(Granted {
                        tx,
                        table: table.clone(),
                        key: Some(key.clone()),
                    });
                }
            }
        }
        out
    }
}

fn remove_key(inner: &mut Inner, tx: TxId, table: &str, key: &KeyLock) {
    if let Some(keys) = inner.keys.get_mut(table) {
        if let Some(holders) = keys.get_mut(key) {
            holders.remove(&tx);
            if holders.is_empty() {
                keys.remove(key);
            }
        }
        if keys.is_empty() {
            inner.keys.remove(table);
        }
    }
}

/// The writer's side, for every write at every level: `me` is about to write a row of
/// `table` whose values are `versions` (old and/or new). Waits ([`Halt::Wait`]) while a
/// serializable reader holds a lock that covers either.
pub fn before_write(
    locks: &PredicateLocks,
    me: TxId,
    table: &Table,
    versions: &[&[Value]],
) -> Result<()> {
    match locks.blocker(me, table, versions) {
        Some(reader) => Err(Halt::Wait(reader)),
        None => Ok(()),
    }
}

/// The reader's side, under serializable: lock the predicate (`index_key`, or the whole
/// table), then wait for any running transaction writing a row it covers.
pub fn before_read(
    locks: &PredicateLocks,
    clog: &CommitLog,
    me: TxId,
    table: &Table,
    index_key: Option<(usize, &[Value])>,
) -> Result<()> {
    let rows: Vec<RowId> = match index_key {
        Some((index, key)) => {
            locks.lock_key(me, &table.def.name, index, key);
            table.heap.lookup(index, key)
        }
        None => {
            locks.lock_table(me, &table.def.name);
            table.heap.rows.keys().copied().collect()
        }
    };
    for row in rows {
        let Some(v) = table.heap.newest(row) else {
            continue;
        };
        for writer in [v.xmin, v.xmax] {
            if writer != 0 && writer != me && clog.status(writer) == TxStatus::InProgress {
                return Err(Halt::Wait(writer));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Column, IndexDef, TableDef};
    use crate::types::DataType;

    fn table() -> Table {
        Table::new(TableDef {
            name: "t".into(),
            columns: vec![Column {
                name: "id".into(),
                ty: DataType::Int,
                not_null: true,
                default: None,
                serial: false,
                type_name: "integer".into(),
                generated: None,
                dropped: false,
            }],
            indexes: vec![IndexDef {
                name: "t_pkey".into(),
                columns: vec![0],
                unique: true,
                primary: true,
                constraint: true,
            }],
            checks: Vec::new(),
            foreign_keys: Vec::new(),
            triggers: Vec::new(),
            view: None,
        })
    }

    #[test]
    fn a_key_lock_blocks_writers_of_that_key_only_and_escalates() {
        let locks = PredicateLocks::default();
        let t = table();
        locks.lock_key(1, "t", 0, &[Value::Int(7)]);
        assert!(matches!(
            before_write(&locks, 2, &t, &[&[Value::Int(7)]]),
            Err(Halt::Wait(1))
        ));
        assert!(before_write(&locks, 2, &t, &[&[Value::Int(8)]]).is_ok());
        assert!(before_write(&locks, 1, &t, &[&[Value::Int(7)]]).is_ok());
        for k in 0..=MAX_KEY_LOCKS_PER_TABLE as i64 {
            locks.lock_key(1, "t", 0, &[Value::Int(100 + k)]);
        }
        // Escalated: one table lock, and a write of any key waits.
        assert_eq!(locks.granted().len(), 1);
        assert!(before_write(&locks, 2, &t, &[&[Value::Int(8)]]).is_err());
        locks.release(1);
        assert!(locks.granted().is_empty());
        assert!(before_write(&locks, 2, &t, &[&[Value::Int(7)]]).is_ok());
    }
}

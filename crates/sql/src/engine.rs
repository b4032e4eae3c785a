//! The engine: tables, the commit log, and the one write path every change goes through
//! — row locks, constraint checks, undo for rollback and redo for the log.
//!
//! The engine is plain data behind one mutex (`database`). A statement runs start to
//! end holding it; when it meets a row locked by another running transaction it does
//! not wait *here*: it returns [`Halt::Wait`], the session undoes the statement's partial
//! work, waits on the lock table without the mutex, and runs the statement again with a
//! fresh snapshot. Re-running sees the other transaction's committed result, which is
//! how read committed avoids lost updates (PostgreSQL instead re-evaluates just the
//! waited-for row, "EvalPlanQual"). What a repeatable-read writer does instead — fail
//! with 40001 — and the shared locks serializable readers leave for writers to respect
//! are decided in `isolation` and `predicate_locks`; this module only asks them.

use std::collections::BTreeMap;

use crate::catalog::{OnDelete, TableDef};
use crate::error::SqlError;
use crate::expr::{Env, Scope, eval};
use crate::isolation::Isolation;
use crate::mvcc::{CommitLog, Snapshot, TxId, TxStatus};
use crate::predicate_locks::{self, PredicateLocks};
use crate::storage::{Heap, RowId, Version, key_of};
use crate::types::Value;
use crate::vacuum::Vacuum;
use crate::wal::{Change, Redo};

/// A foreign key pointing at a table: (child table, fk columns, parent columns,
/// ON DELETE action, ON UPDATE action, constraint name).
type Referencing = (String, Vec<usize>, Vec<usize>, OnDelete, OnDelete, String);

/// Why a statement stopped.
#[derive(Debug)]
pub enum Halt {
    Error(SqlError),
    /// A row it needs is locked by this running transaction: wait for it, then retry.
    Wait(TxId),
}

impl From<SqlError> for Halt {
    fn from(e: SqlError) -> Halt {
        Halt::Error(e)
    }
}

pub type Result<T> = std::result::Result<T, Halt>;

#[derive(Debug)]
pub struct Table {
    pub def: TableDef,
    pub heap: Heap,
}

impl Table {
    pub fn new(def: TableDef) -> Table {
        let heap = Heap::new(def.indexes.len());
        Table { def, heap }
    }

    pub fn index_columns(&self) -> Vec<Vec<usize>> {
        self.def.indexes.iter().map(|i| i.columns.clone()).collect()
    }

    /// Builds every index again from the rows (after their keys or the definition
    /// changed).
    pub fn rebuild_indexes(&mut self) {
        self.heap.indexes = self
            .def
            .indexes
            .iter()
            .map(|i| self.heap.build_index(&i.columns))
            .collect();
    }

    pub fn scope(&self, alias: &str) -> Scope {
        Scope {
            columns: self
                .def
                .columns
                .iter()
                .map(|c| (alias.to_string(), c.name.clone(), c.ty))
                .collect(),
        }
    }
}

/// How to take back one change (statement failure, ROLLBACK).
#[derive(Debug)]
pub enum Undo {
    /// A version was appended to each of these rows, in order. Consecutive rows share
    /// one entry (see [`TxState::pushed`]): a COPY of a million rows leaves one undo
    /// record per batch, not a million.
    Pushed {
        table: String,
        rows: std::ops::Range<RowId>,
    },
    /// The newest version's `xmax` was set (it was 0).
    Xmax {
        table: String,
        row: RowId,
    },
    CreatedTable(String),
    DroppedTable(Box<Table>),
    CreatedIndex {
        table: String,
    },
    /// ALTER TABLE, CREATE/DROP TRIGGER: the definition before it. Undo restores it,
    /// cuts rows back to its width (ADD COLUMN) and rebuilds the indexes it has.
    AlteredTable {
        table: String,
        def: Box<TableDef>,
    },
    /// ALTER COLUMN ... TYPE rewrote one column of every row: its old value in each
    /// version of each row (oldest version first).
    RewroteColumn {
        table: String,
        column: usize,
        values: Vec<(RowId, Vec<Value>)>,
    },
    /// ALTER TABLE ... RENAME TO: renamed back.
    RenamedTable {
        from: String,
        to: String,
    },
    /// CREATE FUNCTION (`None`: there was none of that name) or DROP FUNCTION.
    Function {
        name: String,
        before: Option<Box<crate::triggers::Function>>,
    },
}

/// A running transaction's bookkeeping.
#[derive(Debug)]
pub struct TxState {
    pub id: TxId,
    pub undo: Vec<Undo>,
    pub redo: Redo,
    /// Row changes of this statement that AFTER ROW triggers must see, fired when the
    /// statement ends (see `triggers`). Empty unless a table has triggers.
    pub events: Vec<crate::triggers::RowEvent>,
    /// Its isolation level (see `isolation`), fixed by its first statement.
    pub isolation: Isolation,
    /// The snapshot it keeps across statements (repeatable read), once taken.
    pub snapshot: Option<Snapshot>,
    /// When it began: what `now()` and `current_timestamp` return in every statement of
    /// it, as in PostgreSQL. Kept as the clock's reading (one `clock_gettime`); only a
    /// `now()` pays for the conversion to a timestamp.
    pub started: std::time::SystemTime,
    /// Undo entries below this index belong before the last [`TxState::mark`]: they are
    /// never extended, so undoing to a mark takes back exactly what followed it.
    undo_floor: usize,
}

impl TxState {
    /// The position to undo to (a statement's start, a savepoint).
    pub fn mark(&mut self) -> (usize, usize) {
        self.undo_floor = self.undo.len();
        (self.undo.len(), self.redo.len())
    }

    /// Records that a version was appended to `row`: extends the last entry when it
    /// covers the row just before (a bulk insert's rows are consecutive), else a new one.
    fn pushed(&mut self, table: &str, row: RowId) {
        if self.undo.len() > self.undo_floor
            && let Some(Undo::Pushed { table: t, rows }) = self.undo.last_mut()
            && rows.end == row
            && t == table
        {
            rows.end += 1;
            return;
        }
        self.undo.push(Undo::Pushed {
            table: table.into(),
            rows: row..row + 1,
        });
    }
}

#[derive(Debug)]
pub struct Engine {
    pub tables: BTreeMap<String, Table>,
    pub clog: CommitLog,
    /// Transactions that ran DDL and have not ended: the catalog is not versioned, so a
    /// checkpoint waits until they are gone (it would otherwise save their schema).
    pub ddl_in_flight: std::collections::BTreeSet<TxId>,
    /// Bumped by every change to the catalog (DDL, and its undo): what a prepared
    /// statement derived from the catalog (its result columns) is still valid while this
    /// has not moved. Shared so it can be read without the engine lock.
    pub catalog_version: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Trigger functions (`CREATE FUNCTION ... RETURNS trigger`), by name.
    pub functions: BTreeMap<String, crate::triggers::Function>,
    /// Set while recovery replays the log: a materialized view created by replayed DDL
    /// is left empty, its rows follow in the log.
    pub replaying: bool,
    /// Serializable readers' shared locks, which every writer checks.
    pub predicate_locks: PredicateLocks,
    /// The snapshots vacuum must respect, and when to sweep.
    pub vacuum: Vacuum,
    /// Transactions ended (counted in `finish`); shared so `pg_stat_database` reads
    /// it without the engine lock.
    pub stats: std::sync::Arc<crate::pg_stat::TxStats>,
}

impl Default for Engine {
    fn default() -> Self {
        Engine {
            tables: BTreeMap::new(),
            clog: CommitLog::new(),
            ddl_in_flight: Default::default(),
            catalog_version: Default::default(),
            functions: BTreeMap::new(),
            replaying: false,
            predicate_locks: PredicateLocks::default(),
            vacuum: Vacuum::default(),
            stats: Default::default(),
        }
    }
}

impl Engine {
    pub fn table(&self, name: &str) -> std::result::Result<&Table, SqlError> {
        self.tables
            .get(name)
            .ok_or_else(|| SqlError::undefined_table(name))
    }

    pub fn table_mut(&mut self, name: &str) -> std::result::Result<&mut Table, SqlError> {
        self.tables
            .get_mut(name)
            .ok_or_else(|| SqlError::undefined_table(name))
    }

    pub fn begin(&mut self) -> TxState {
        TxState {
            id: self.clog.begin(),
            undo: Vec::new(),
            redo: Redo::default(),
            events: Vec::new(),
            isolation: Isolation::ReadCommitted,
            snapshot: None,
            started: std::time::SystemTime::now(),
            undo_floor: 0,
        }
    }

    pub fn snapshot(&self, tx: &TxState) -> Snapshot {
        self.clog.snapshot(tx.id)
    }

    /// `tx` is about to change the catalog: a checkpoint waits for it to end, and what
    /// prepared statements derived from the catalog is stale.
    pub fn begin_ddl(&mut self, tx: TxId) {
        self.ddl_in_flight.insert(tx);
        self.catalog_changed();
    }

    fn catalog_changed(&self) {
        self.catalog_version
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// Takes back everything `tx` did after `mark`, newest first.
    pub fn undo_to(&mut self, tx: &mut TxState, mark: (usize, usize)) {
        while tx.undo.len() > mark.0 {
            let Some(u) = tx.undo.pop() else { break };
            if !matches!(u, Undo::Pushed { .. } | Undo::Xmax { .. }) {
                self.catalog_changed();
            }
            match u {
                Undo::Pushed { table, rows } => {
                    if let Some(t) = self.tables.get_mut(&table) {
                        let cols = t.index_columns();
                        for row in rows.rev() {
                            t.heap.pop_version(row, &cols);
                        }
                    }
                }
                Undo::Xmax { table, row } => {
                    if let Some(t) = self.tables.get_mut(&table) {
                        t.heap.set_xmax(row, 0);
                    }
                }
                Undo::CreatedTable(name) => {
                    self.tables.remove(&name);
                }
                Undo::DroppedTable(t) => {
                    self.tables.insert(t.def.name.clone(), *t);
                }
                Undo::AlteredTable { table, def } => {
                    if let Some(t) = self.tables.get_mut(&table) {
                        let width = def.columns.len();
                        for chain in t.heap.rows.values_mut() {
                            for v in chain {
                                v.values.truncate(width);
                            }
                        }
                        t.heap.indexes = def
                            .indexes
                            .iter()
                            .map(|i| t.heap.build_index(&i.columns))
                            .collect();
                        t.def = *def;
                    }
                }
                Undo::RewroteColumn {
                    table,
                    column,
                    values,
                } => {
                    // The AlteredTable record below this one restores the type and
                    // rebuilds the indexes.
                    if let Some(t) = self.tables.get_mut(&table) {
                        for (row, old) in values {
                            let Some(chain) = t.heap.rows.get_mut(&row) else {
                                continue;
                            };
                            for (version, v) in chain.iter_mut().zip(old) {
                                if let Some(slot) = version.values.get_mut(column) {
                                    *slot = v;
                                }
                            }
                        }
                    }
                }
                Undo::RenamedTable { from, to } => crate::executor::rename_table(self, &to, &from),
                Undo::Function { name, before } => match before {
                    Some(f) => {
                        self.functions.insert(name, *f);
                    }
                    None => {
                        self.functions.remove(&name);
                    }
                },
                Undo::CreatedIndex { table } => {
                    if let Some(t) = self.tables.get_mut(&table) {
                        t.def.indexes.pop();
                        t.heap.indexes.pop();
                    }
                }
            }
        }
        tx.redo.truncate(mark.1);
        tx.undo_floor = tx.undo_floor.min(tx.undo.len());
    }

    /// Ends `tx`: committed (its redo goes to the log first, by the caller) or rolled back.
    pub fn finish(&mut self, tx: &mut TxState, commit: bool) {
        self.stats.ended(commit);
        // Only a committed writer can leave dead versions behind (a rollback's are
        // taken out by its undo): reads do not bring the next sweep closer.
        let wrote = commit && !tx.undo.is_empty();
        if !commit {
            self.undo_to(tx, (0, 0));
        } else if tx.undo.iter().any(|u| matches!(u, Undo::DroppedTable(_))) {
            // A dropped table's rows are freed now that nothing can bring them back —
            // on a thread of their own: freeing a million rows takes a good fraction
            // of a second, which neither the engine lock nor the client should wait for
            // (PostgreSQL likewise only unlinks the files at commit).
            let undo = std::mem::take(&mut tx.undo);
            let freed = std::thread::Builder::new()
                .name("sql-drop".into())
                .spawn(move || drop(undo));
            if let Err(e) = freed {
                tracing::warn!("freeing a dropped table on this thread: {e}");
            }
        }
        self.ddl_in_flight.remove(&tx.id);
        self.predicate_locks.release(tx.id);
        let sweep_due = self.vacuum.finished(tx.id, wrote);
        self.clog.finish(
            tx.id,
            if commit {
                TxStatus::Committed
            } else {
                TxStatus::Aborted
            },
        );
        if sweep_due {
            crate::vacuum::sweep(self);
        }
    }

    /// The newest version of `row` if it is live for `me`; waits (via [`Halt::Wait`]) if
    /// another running transaction is creating or deleting it. This is the check a
    /// writer makes before touching a row, and what unique and foreign-key checks use:
    /// they must see the newest state, not a snapshot, or two transactions could both
    /// insert the same key.
    pub fn live_newest<'a>(
        clog: &CommitLog,
        heap: &'a Heap,
        row: RowId,
        me: TxId,
    ) -> Result<Option<&'a Version>> {
        let Some(v) = heap.newest(row) else {
            return Ok(None);
        };
        if v.xmin != me && clog.status(v.xmin) == TxStatus::InProgress {
            return Err(Halt::Wait(v.xmin));
        }
        if v.xmax == 0 {
            return Ok(Some(v));
        }
        if v.xmax == me || clog.status(v.xmax) == TxStatus::Committed {
            return Ok(None);
        }
        if clog.status(v.xmax) == TxStatus::InProgress {
            return Err(Halt::Wait(v.xmax));
        }
        Ok(Some(v))
    }

    /// Fills defaults, applies types, and checks NOT NULL, CHECK, UNIQUE and FOREIGN KEY
    /// for a row about to be written to `table` (as row `row`, when it replaces one).
    pub(crate) fn check_row(
        &self,
        tx: &TxState,
        table: &str,
        values: &[Value],
        row: Option<RowId>,
    ) -> Result<()> {
        let t = self.table(table)?;
        let def = &t.def;
        for (c, v) in def.columns.iter().zip(values) {
            if c.not_null && v.is_null() {
                return Err(SqlError::new(
                    "23502",
                    format!(
                        "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
                        c.name, def.name
                    ),
                )
                .into());
            }
        }
        let scope = if def.checks.is_empty() {
            Scope::default() // no CHECK to evaluate: no names to resolve
        } else {
            t.scope(&def.name)
        };
        for check in &def.checks {
            let env = Env {
                scope: &scope,
                row: values,
                params: &[],
                aggregates: None,
                subquery: None,
                outer: None,
            };
            if eval(&check.expr, &env)?.truthy()? == Some(false) {
                return Err(SqlError::new(
                    "23514",
                    format!(
                        "new row for relation \"{}\" violates check constraint \"{}\"",
                        def.name, check.name
                    ),
                )
                .into());
            }
        }
        for (i, index) in def.indexes.iter().enumerate().filter(|(_, i)| i.unique) {
            let key = key_of(values, &index.columns);
            if key.iter().any(Value::is_null) {
                continue; // NULLs are distinct: never a duplicate
            }
            for other in t.heap.lookup(i, &key) {
                if Some(other) == row {
                    continue;
                }
                if let Some(v) = Self::live_newest(&self.clog, &t.heap, other, tx.id)?
                    && key_of(&v.values, &index.columns) == key
                {
                    return Err(SqlError::new(
                        "23505",
                        format!(
                            "duplicate key value violates unique constraint \"{}\"",
                            index.name
                        ),
                    )
                    .with_detail(format!(
                        "Key ({})=({}) already exists.",
                        names(def, &index.columns),
                        key.iter()
                            .map(|v| v.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                    .into());
                }
            }
        }
        for fk in &def.foreign_keys {
            let key = key_of(values, &fk.columns);
            if key.iter().any(Value::is_null) {
                continue;
            }
            let parent = self.table(&fk.parent)?;
            let found = match parent.def.unique_index_on(&fk.parent_columns) {
                Some(idx) => {
                    let mut found = false;
                    for r in parent.heap.lookup(idx, &key) {
                        if let Some(v) = Self::live_newest(&self.clog, &parent.heap, r, tx.id)?
                            && key_of(&v.values, &fk.parent_columns) == key
                        {
                            found = true;
                            break;
                        }
                    }
                    found
                }
                None => false,
            };
            if !found {
                return Err(SqlError::new(
                    "23503",
                    format!(
                        "insert or update on table \"{}\" violates foreign key constraint \"{}\"",
                        def.name, fk.name
                    ),
                )
                .with_detail(format!(
                    "Key ({})=({}) is not present in table \"{}\".",
                    names(def, &fk.columns),
                    key.iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    fk.parent
                ))
                .into());
            }
        }
        Ok(())
    }

    /// Inserts a row; returns its id.
    pub fn insert(
        &mut self,
        tx: &mut TxState,
        table: &str,
        mut values: Vec<Value>,
    ) -> Result<RowId> {
        crate::generated::compute(&self.table(table)?.def, &mut values)?;
        self.check_row(tx, table, &values, None)?;
        predicate_locks::before_write(
            &self.predicate_locks,
            tx.id,
            self.table(table)?,
            &[&values],
        )?;
        let t = self
            .tables
            .get_mut(table)
            .ok_or_else(|| SqlError::undefined_table(table))?;
        let row = t.heap.next_row;
        crate::triggers::queue(&t.def, tx, None, Some(&values));
        push_version(t, tx, table, row, values);
        Ok(row)
    }

    /// Takes the row lock on `row` (by checking nobody else holds it) and returns its
    /// current values; `None` if it was deleted. Under repeatable read the row must also
    /// be unchanged since the transaction's snapshot (`isolation::first_updater_wins`).
    fn lock_row(&mut self, tx: &TxState, table: &str, row: RowId) -> Result<Option<Vec<Value>>> {
        crate::vacuum::prune_before_write(self, table, row);
        let t = self.table(table)?;
        // A running writer is waited for first; its fate decides what follows.
        let live = Self::live_newest(&self.clog, &t.heap, row, tx.id)?;
        if let Some(newest) = t.heap.newest(row) {
            crate::isolation::first_updater_wins(tx, &self.clog, newest)?;
        }
        Ok(live.map(|v| v.values.clone()))
    }

    /// Replaces row `row` with `values`: the old version gets `xmax`, a new one is added.
    pub fn update(
        &mut self,
        tx: &mut TxState,
        table: &str,
        row: RowId,
        mut values: Vec<Value>,
    ) -> Result<bool> {
        let Some(old) = self.lock_row(tx, table, row)? else {
            return Ok(false);
        };
        crate::generated::compute(&self.table(table)?.def, &mut values)?;
        self.check_row(tx, table, &values, Some(row))?;
        predicate_locks::before_write(
            &self.predicate_locks,
            tx.id,
            self.table(table)?,
            &[&old, &values],
        )?;
        let t = self
            .tables
            .get_mut(table)
            .ok_or_else(|| SqlError::undefined_table(table))?;
        t.heap.set_xmax(row, tx.id);
        tx.undo.push(Undo::Xmax {
            table: table.into(),
            row,
        });
        crate::triggers::queue(&t.def, tx, Some(&old), Some(&values));
        push_version(t, tx, table, row, values.clone());
        // After the new version is in place, so rows that ON UPDATE CASCADE moves to
        // the new key find it.
        self.check_referencing(tx, table, &old, Some(&values))?;
        Ok(true)
    }

    /// Deletes row `row` (sets `xmax`), applying ON DELETE actions to referencing rows.
    pub fn delete(&mut self, tx: &mut TxState, table: &str, row: RowId) -> Result<bool> {
        let Some(old) = self.lock_row(tx, table, row)? else {
            return Ok(false);
        };
        predicate_locks::before_write(&self.predicate_locks, tx.id, self.table(table)?, &[&old])?;
        self.check_referencing(tx, table, &old, None)?;
        let t = self
            .tables
            .get_mut(table)
            .ok_or_else(|| SqlError::undefined_table(table))?;
        t.heap.set_xmax(row, tx.id);
        tx.undo.push(Undo::Xmax {
            table: table.into(),
            row,
        });
        crate::triggers::queue(&t.def, tx, Some(&old), None);
        tx.redo.push(Change::Delete {
            table: table.into(),
            row,
        });
        Ok(true)
    }

    /// A parent row `old` of `table` is being deleted (`new` is `None`) or updated: find
    /// the rows that reference its key and RESTRICT, CASCADE or SET NULL them.
    fn check_referencing(
        &mut self,
        tx: &mut TxState,
        table: &str,
        old: &[Value],
        new: Option<&[Value]>,
    ) -> Result<()> {
        // (child table, fk columns, parent columns, action, constraint name)
        let fks: Vec<Referencing> = self
            .tables
            .values()
            .flat_map(|c| {
                c.def
                    .foreign_keys
                    .iter()
                    .filter(|fk| fk.parent == table)
                    .map(|fk| {
                        (
                            c.def.name.clone(),
                            fk.columns.clone(),
                            fk.parent_columns.clone(),
                            fk.on_delete,
                            fk.on_update,
                            fk.name.clone(),
                        )
                    })
            })
            .collect();
        for (child, columns, parent_columns, on_delete, on_update, name) in fks {
            let key = key_of(old, &parent_columns);
            if key.iter().any(Value::is_null) {
                continue;
            }
            if let Some(new) = new
                && key_of(new, &parent_columns) == key
            {
                continue; // key unchanged
            }
            let referencing: Vec<(RowId, Vec<Value>)> = {
                let c = self.table(&child)?;
                let candidates: Vec<RowId> =
                    match c.def.indexes.iter().position(|i| i.columns == columns) {
                        Some(idx) => c.heap.lookup(idx, &key),
                        None => c.heap.rows.keys().copied().collect(),
                    };
                let mut found = Vec::new();
                for r in candidates {
                    if let Some(v) = Self::live_newest(&self.clog, &c.heap, r, tx.id)?
                        && key_of(&v.values, &columns) == key
                    {
                        found.push((r, v.values.clone()));
                    }
                }
                found
            };
            if referencing.is_empty() {
                continue;
            }
            match (if new.is_some() { on_update } else { on_delete }, new) {
                (OnDelete::Cascade, None) => {
                    for (r, _) in referencing {
                        self.delete(tx, &child, r)?;
                    }
                }
                (OnDelete::SetNull, _) => {
                    for (r, mut values) in referencing {
                        for &c in &columns {
                            values[c] = Value::Null;
                        }
                        self.update(tx, &child, r, values)?;
                    }
                }
                (OnDelete::Cascade, Some(new)) => {
                    let new_key = key_of(new, &parent_columns);
                    for (r, mut values) in referencing {
                        for (&c, v) in columns.iter().zip(&new_key) {
                            values[c] = v.clone();
                        }
                        self.update(tx, &child, r, values)?;
                    }
                }
                _ => {
                    let def = &self.table(table)?.def;
                    return Err(SqlError::new(
                        "23503",
                        format!(
                            "update or delete on table \"{table}\" violates foreign key constraint \"{name}\" on table \"{child}\""
                        ),
                    )
                    .with_detail(format!(
                        "Key ({})=({}) is still referenced from table \"{child}\".",
                        names(def, &parent_columns),
                        key.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
                    ))
                    .into());
                }
            }
        }
        Ok(())
    }

    /// The next value of a SERIAL column's sequence. Sequences are not transactional (a
    /// rolled-back insert leaves a gap), as in PostgreSQL.
    pub fn next_serial(&mut self, tx: &mut TxState, table: &str, column: usize) -> Result<i64> {
        let t = self
            .tables
            .get_mut(table)
            .ok_or_else(|| SqlError::undefined_table(table))?;
        let next = t.heap.sequences.get(&column).copied().unwrap_or(0) + 1;
        t.heap.sequences.insert(column, next);
        tx.redo.push(Change::Sequence {
            table: table.into(),
            column: column as u32,
            value: next,
        });
        Ok(next)
    }
}

impl Engine {
    /// The committed state as a list of changes — the checkpoint: the schema as DDL
    /// (`dump`), the newest committed version of every row, and the sequences. Versions of transactions still running are left out: their commit
    /// records will follow in the next log.
    ///
    /// Returned framed, as the log writes it: rows are encoded where they lie, never
    /// copied into a list of changes first (a copy of every row, under the engine lock).
    pub fn checkpoint(&self) -> Vec<u8> {
        let committed = self.clog.snapshot(0);
        let mut out = Redo::default();
        for ddl in crate::dump::schema(self) {
            out.push(Change::Ddl(ddl));
        }
        for t in self.tables.values() {
            for (row, v) in t.heap.scan(&committed, &self.clog) {
                out.put(&t.def.name, row, &v.values);
            }
            for (&column, &value) in &t.heap.sequences {
                out.push(Change::Sequence {
                    table: t.def.name.clone(),
                    column: column as u32,
                    value,
                });
            }
        }
        out.into_record()
    }
}

fn names(def: &TableDef, columns: &[usize]) -> String {
    columns
        .iter()
        .map(|&i| def.columns[i].name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Adds `values` as `tx`'s new version of `row` (an insert, or an update's second half),
/// with the undo entry that removes it on rollback and the redo entry the log will carry.
fn push_version(t: &mut Table, tx: &mut TxState, table: &str, row: RowId, values: Vec<Value>) {
    tx.redo.put(table, row, &values);
    tx.pushed(table, row);
    let cols = t.index_columns();
    t.heap.push_version(
        row,
        Version {
            xmin: tx.id,
            xmax: 0,
            values,
        },
        &cols,
    );
}

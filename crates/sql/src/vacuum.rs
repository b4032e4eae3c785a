//! Vacuum: reclaiming row versions no snapshot can see any more.
//!
//! MVCC never overwrites: every UPDATE adds a version and every DELETE leaves the old one
//! in place, so a table updated in a loop would grow without bound. A version can go
//! once its deleter (`xmax`) committed *and every snapshot that exists or can still be
//! taken sees that commit* — then no reader can ever pick that version again.
//!
//! Statement snapshots live only while their statement holds the engine lock, and
//! vacuum runs under that lock too, so the only snapshots it must respect are the ones
//! repeatable-read transactions keep across statements, and the one a read-committed
//! statement keeps while it waits for a row lock to run again. Each registers its *horizon*
//! (the oldest transaction id its snapshot might not see, [`Snapshot::horizon`]); the
//! oldest horizon is the line: a version deleted by a committed transaction below it is
//! dead. One long repeatable-read transaction therefore holds back vacuum for everyone —
//! PostgreSQL's famous "long transaction bloats the table".
//!
//! Pruning happens in two places, as in PostgreSQL: the row an UPDATE or DELETE is about
//! to change is pruned on the spot (PostgreSQL prunes the page on access), and every
//! [`VACUUM_EVERY`] finished transactions — or on `VACUUM` — every table is swept, which
//! also removes deleted rows nobody touches again (autovacuum).
//!
//! [`Snapshot::horizon`]: crate::mvcc::Snapshot::horizon

use std::collections::BTreeMap;

use crate::engine::{Engine, Table};
use crate::mvcc::{CommitLog, TxId, TxStatus};
use crate::storage::{RowId, key_of};

/// Finished transactions between two sweeps of every table.
pub const VACUUM_EVERY: u64 = 4096;

#[derive(Debug, Default)]
pub struct Vacuum {
    /// Repeatable-read transactions -> the horizon of the snapshot they keep.
    held: BTreeMap<TxId, TxId>,
    since_sweep: u64,
    /// Versions reclaimed since startup (for tests and `pg_stat`-style curiosity).
    pub reclaimed: u64,
}

impl Vacuum {
    /// `tx` keeps a snapshot with this horizon until it ends.
    pub fn hold(&mut self, tx: TxId, horizon: TxId) {
        self.held.insert(tx, horizon);
    }

    /// `tx` no longer keeps a snapshot (a read-committed statement that waited ended).
    pub fn release(&mut self, tx: TxId) {
        self.held.remove(&tx);
    }

    /// `tx` ended. Returns true when a sweep is due.
    pub fn finished(&mut self, tx: TxId) -> bool {
        self.held.remove(&tx);
        self.since_sweep += 1;
        self.since_sweep >= VACUUM_EVERY
    }

    /// Deleters below this id are seen by every snapshot that exists or will be taken.
    pub fn horizon(&self, clog: &CommitLog) -> TxId {
        self.held
            .values()
            .copied()
            .min()
            .unwrap_or_else(|| clog.next_id())
    }
}

/// Removes the dead versions of `row`; returns how many went.
pub fn prune_row(table: &mut Table, row: RowId, clog: &CommitLog, horizon: TxId) -> u64 {
    let dead = |xmax: TxId| xmax != 0 && xmax < horizon && clog.status(xmax) == TxStatus::Committed;
    let columns = table.index_columns();
    let heap = &mut table.heap;
    let Some(chain) = heap.rows.get_mut(&row) else {
        return 0;
    };
    if !chain.iter().any(|v| dead(v.xmax)) {
        return 0;
    }
    let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(chain)
        .into_iter()
        .partition(|v| dead(v.xmax));
    for (tree, cols) in heap.indexes.iter_mut().zip(&columns) {
        for v in &gone {
            let key = key_of(&v.values, cols);
            if !kept.iter().any(|k| key_of(&k.values, cols) == key) {
                tree.remove(&(key, row));
            }
        }
    }
    if kept.is_empty() {
        heap.rows.remove(&row);
    } else {
        *chain = kept;
    }
    gone.len() as u64
}

/// Prunes every row of every table (VACUUM); returns the versions reclaimed.
pub fn sweep(engine: &mut Engine) -> u64 {
    let horizon = engine.vacuum.horizon(&engine.clog);
    let clog = &engine.clog;
    let mut reclaimed = 0;
    for table in engine.tables.values_mut() {
        let rows: Vec<RowId> = table.heap.rows.keys().copied().collect();
        for row in rows {
            reclaimed += prune_row(table, row, clog, horizon);
        }
    }
    engine.vacuum.reclaimed += reclaimed;
    engine.vacuum.since_sweep = 0;
    reclaimed
}

/// Prunes one row before a write to it.
pub fn prune_before_write(engine: &mut Engine, table: &str, row: RowId) {
    let horizon = engine.vacuum.horizon(&engine.clog);
    let clog = &engine.clog;
    if let Some(t) = engine.tables.get_mut(table) {
        engine.vacuum.reclaimed += prune_row(t, row, clog, horizon);
    }
}

/// Is this query text a `VACUUM` command (answered before parsing: sqlparser does not
/// parse PostgreSQL's VACUUM)?
pub fn is_vacuum(sql: &str) -> bool {
    sql.trim_start()
        .get(..6)
        .is_some_and(|w| w.eq_ignore_ascii_case("vacuum"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isolation::{Isolation, statement_snapshot};
    use crate::types::Value;

    fn versions(engine: &Engine) -> usize {
        engine.tables["t"].heap.rows.values().map(Vec::len).sum()
    }

    fn create(engine: &mut Engine) {
        let stmt = crate::server::parse("CREATE TABLE t (id INT PRIMARY KEY, n INT)")
            .ok()
            .and_then(|mut s| s.pop())
            .expect("parses");
        let mut tx = engine.begin();
        let snapshot = statement_snapshot(engine, &mut tx, None);
        let mut ctx = crate::executor::Ctx {
            engine,
            tx: &mut tx,
            snapshot,
            params: &[],
            waited_in_subquery: Default::default(),
        };
        assert!(crate::executor::execute(&mut ctx, &stmt).is_ok());
        engine.finish(&mut tx, true);
    }

    fn update(engine: &mut Engine, row: RowId, n: i64) {
        let mut tx = engine.begin();
        assert!(matches!(
            engine.update(
                &mut tx,
                "t",
                row,
                vec![Value::Int(row as i64), Value::Int(n)]
            ),
            Ok(true)
        ));
        engine.finish(&mut tx, true);
    }

    #[test]
    fn an_update_loop_keeps_a_bounded_number_of_versions() {
        let mut engine = Engine::default();
        create(&mut engine);
        let mut tx = engine.begin();
        for id in 1..=10 {
            assert!(
                engine
                    .insert(&mut tx, "t", vec![Value::Int(id), Value::Int(0)])
                    .is_ok()
            );
        }
        engine.finish(&mut tx, true);
        for round in 1..=2_000 {
            update(&mut engine, 1 + (round % 10), round as i64);
        }
        // Each row keeps its current version and at most the one before it.
        assert!(versions(&engine) <= 20, "{} versions", versions(&engine));
        assert_eq!(engine.tables["t"].heap.indexes[0].len(), 10);
    }

    #[test]
    fn a_repeatable_read_snapshot_holds_back_vacuum_until_it_ends() {
        let mut engine = Engine::default();
        create(&mut engine);
        let mut tx = engine.begin();
        assert!(
            engine
                .insert(&mut tx, "t", vec![Value::Int(1), Value::Int(0)])
                .is_ok()
        );
        engine.finish(&mut tx, true);
        let mut reader = engine.begin();
        reader.isolation = Isolation::RepeatableRead;
        let old = statement_snapshot(&mut engine, &mut reader, None);
        for n in 1..=100 {
            update(&mut engine, 1, n);
        }
        sweep(&mut engine);
        // The reader still sees the value of its snapshot.
        let seen = engine.tables["t"]
            .heap
            .visible(1, &old, &engine.clog)
            .map(|v| v.values[1].clone());
        assert_eq!(seen, Some(Value::Int(0)));
        engine.finish(&mut reader, true);
        sweep(&mut engine);
        assert_eq!(versions(&engine), 1);
        // A deleted row goes entirely, index entries too.
        let mut tx = engine.begin();
        assert!(matches!(engine.delete(&mut tx, "t", 1), Ok(true)));
        engine.finish(&mut tx, true);
        sweep(&mut engine);
        assert!(engine.tables["t"].heap.rows.is_empty());
        assert!(engine.tables["t"].heap.indexes[0].is_empty());
    }
}

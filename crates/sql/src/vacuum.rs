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
//! [`VACUUM_EVERY`] transactions that wrote — or on `VACUUM` — every table is swept, which
//! also removes deleted rows nobody touches again (autovacuum). A sweep visits only the rows
//! that have a deleted version (`Heap::to_vacuum`), so it costs what was written since the
//! last one, not the size of the table. `VACUUM VERBOSE` says per
//! table how many versions went and how many are "dead but not yet removable": deleted by
//! a committed transaction at or above the horizon, which some kept snapshot may not see.
//!
//! Removing a version also removes the index entries only it needed (an index maps a
//! key to a row if *some* version of the row has that key).
//!
//! [`Snapshot::horizon`]: crate::mvcc::Snapshot::horizon

use std::collections::BTreeMap;

use crate::engine::{Engine, Table};
use crate::error::SqlError;
use crate::mvcc::{CommitLog, TxId, TxStatus};
use crate::storage::{RowId, key_of};

/// Writing transactions between two sweeps of every table (reads leave nothing to sweep).
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

    /// `tx` ended (having committed writes, or not). Returns true when a sweep is due:
    /// every [`VACUUM_EVERY`] writing transactions.
    pub fn finished(&mut self, tx: TxId, wrote: bool) -> bool {
        self.held.remove(&tx);
        self.since_sweep += u64::from(wrote);
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

/// What pruning one row removed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pruned {
    pub versions: u64,
    pub index_entries: u64,
}

/// Removes the dead versions of `row`.
pub fn prune_row(table: &mut Table, row: RowId, clog: &CommitLog, horizon: TxId) -> Pruned {
    let dead = |xmax: TxId| xmax != 0 && xmax < horizon && clog.status(xmax) == TxStatus::Committed;
    let mut pruned = Pruned::default();
    let columns = table.index_columns();
    let heap = &mut table.heap;
    let Some(chain) = heap.rows.get_mut(&row) else {
        heap.to_vacuum.remove(&row);
        return pruned;
    };
    if !chain.iter().any(|v| dead(v.xmax)) {
        if chain.iter().all(|v| v.xmax == 0) {
            heap.to_vacuum.remove(&row); // a rolled-back delete: nothing left to do here
        }
        return pruned;
    }
    let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(chain)
        .into_iter()
        .partition(|v| dead(v.xmax));
    for (tree, cols) in heap.indexes.iter_mut().zip(&columns) {
        for v in &gone {
            let key = key_of(&v.values, cols);
            if !kept.iter().any(|k| key_of(&k.values, cols) == key)
                && tree.remove(&(crate::storage::IndexKey::new(key), row))
            {
                pruned.index_entries += 1;
            }
        }
    }
    if kept.is_empty() {
        heap.rows.remove(&row);
        heap.to_vacuum.remove(&row);
    } else {
        if kept.iter().all(|v| v.xmax == 0) {
            heap.to_vacuum.remove(&row);
        }
        *chain = kept;
    }
    pruned.versions = gone.len() as u64;
    pruned
}

/// Prunes every row of every table (the periodic sweep); returns the versions reclaimed.
pub fn sweep(engine: &mut Engine) -> u64 {
    let names: Vec<String> = engine.tables.keys().cloned().collect();
    names
        .iter()
        .map(|name| vacuum_table(engine, name).removed as u64)
        .sum()
}

/// `VACUUM [tables]`: sweeps the named tables (every table when none is named) and says
/// what it did to each.
pub fn run(engine: &mut Engine, command: &Command) -> Result<Vec<Report>, SqlError> {
    let names: Vec<String> = if command.tables.is_empty() {
        engine.tables.keys().cloned().collect()
    } else {
        for t in &command.tables {
            engine.table(t)?;
        }
        command.tables.clone()
    };
    Ok(names
        .iter()
        .map(|name| vacuum_table(engine, name))
        .collect())
}

/// Prunes the rows of one table that have a deleted version (`Heap::to_vacuum`: every
/// other row is a single live version, nothing to prune) and counts what is left.
fn vacuum_table(engine: &mut Engine, name: &str) -> Report {
    let mut report = Report {
        table: name.to_string(),
        ..Report::default()
    };
    let horizon = engine.vacuum.horizon(&engine.clog);
    let clog = &engine.clog;
    let Some(table) = engine.tables.get_mut(name) else {
        return report;
    };
    let rows: Vec<RowId> = table.heap.to_vacuum.iter().copied().collect();
    for row in rows {
        let pruned = prune_row(table, row, clog, horizon);
        report.removed += pruned.versions as usize;
        report.index_entries_removed += pruned.index_entries as usize;
    }
    // A clean row is one live version; the others are counted version by version.
    let deleted = |xmax: TxId| xmax != 0 && clog.status(xmax) == TxStatus::Committed;
    let heap = &table.heap;
    report.remain = heap.rows.len() - heap.to_vacuum.len();
    for chain in heap.to_vacuum.iter().filter_map(|r| heap.rows.get(r)) {
        report.remain += chain.len();
        report.not_yet_removable += chain.iter().filter(|v| deleted(v.xmax)).count();
    }
    engine.vacuum.reclaimed += report.removed as u64;
    engine.vacuum.since_sweep = 0;
    report
}

/// Prunes one row before a write to it.
pub fn prune_before_write(engine: &mut Engine, table: &str, row: RowId) {
    let horizon = engine.vacuum.horizon(&engine.clog);
    let clog = &engine.clog;
    if let Some(t) = engine.tables.get_mut(table) {
        engine.vacuum.reclaimed += prune_row(t, row, clog, horizon).versions;
    }
}

/// A parsed `VACUUM [FULL] [FREEZE] [VERBOSE] [ANALYZE] [table [, ...]]` (or with the
/// options in parentheses).
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub verbose: bool,
    /// Empty: every table.
    pub tables: Vec<String>,
}

/// What VACUUM did to one table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub table: String,
    /// Dead versions removed.
    pub removed: usize,
    /// Versions left (live ones, and dead ones a snapshot may still need).
    pub remain: usize,
    /// Of those, deleted by a committed transaction some snapshot may not see yet.
    pub not_yet_removable: usize,
    pub index_entries_removed: usize,
}

impl Report {
    /// The line VACUUM VERBOSE sends (as an INFO notice), worded as PostgreSQL's.
    pub fn message(&self) -> String {
        format!(
            "finished vacuuming \"public.{}\": index entries removed: {}\ntuples: {} removed, {} remain, {} are dead but not yet removable",
            self.table,
            self.index_entries_removed,
            self.removed,
            self.remain,
            self.not_yet_removable
        )
    }
}

/// Parses a VACUUM command (sqlparser does not know PostgreSQL's form); `None` if the
/// text is not one.
pub fn parse(sql: &str) -> Option<Result<Command, SqlError>> {
    let text = sql.trim().trim_end_matches(';').trim();
    let (head, rest) = text.split_at(
        text.find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(text.len()),
    );
    if !head.eq_ignore_ascii_case("vacuum") {
        return None;
    }
    let mut rest = rest.trim_start();
    let mut verbose = false;
    if let Some(inner) = rest.strip_prefix('(') {
        let Some((options, after)) = inner.split_once(')') else {
            return Some(Err(SqlError::syntax("syntax error at end of input", None)));
        };
        for option in options.split(',') {
            let mut words = option.split_whitespace();
            let name = words.next().unwrap_or("").to_ascii_lowercase();
            let value = words.next().map(str::to_ascii_lowercase);
            let on = !matches!(value.as_deref(), Some("false" | "off" | "0"));
            match name.as_str() {
                "verbose" => verbose = on,
                "full"
                | "freeze"
                | "analyze"
                | "skip_locked"
                | "index_cleanup"
                | "truncate"
                | "process_toast"
                | "parallel"
                | "disable_page_skipping"
                | "process_main" => {}
                other => {
                    return Some(Err(SqlError::syntax(
                        format!("unrecognized VACUUM option \"{other}\""),
                        None,
                    )));
                }
            }
        }
        rest = after.trim_start();
    }
    loop {
        let word: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        let lower = word.to_ascii_lowercase();
        if !["full", "freeze", "verbose", "analyze", "analyse"].contains(&lower.as_str()) {
            break;
        }
        verbose |= lower == "verbose";
        rest = rest[word.len()..].trim_start();
    }
    let mut tables = Vec::new();
    for t in rest.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let name = t.split('(').next().unwrap_or("").trim();
        let name = name.rsplit('.').next().unwrap_or(name);
        let name = match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
            Some(quoted) => quoted.to_string(),
            None => name.to_lowercase(),
        };
        tables.push(name);
    }
    Some(Ok(Command { verbose, tables }))
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

    /// Consecutive inserts share an undo entry, but never across a savepoint or
    /// statement mark: undoing to the mark takes back exactly the rows after it.
    #[test]
    fn undo_to_a_mark_takes_back_the_inserts_after_it_only() {
        let mut engine = Engine::default();
        create(&mut engine);
        let mut tx = engine.begin();
        let insert = |engine: &mut Engine, tx: &mut crate::engine::TxState, id: i64| {
            let row = vec![Value::Int(id), Value::Int(0)];
            assert!(engine.insert(tx, "t", row).is_ok());
        };
        for id in 1..=3 {
            insert(&mut engine, &mut tx, id);
        }
        let mark = tx.mark();
        for id in 4..=5 {
            insert(&mut engine, &mut tx, id);
        }
        assert_eq!(tx.undo.len(), 2, "one entry before the mark, one after");
        engine.undo_to(&mut tx, mark);
        assert_eq!(versions(&engine), 3);
        assert_eq!(tx.redo.len(), 3);
        insert(&mut engine, &mut tx, 6);
        engine.finish(&mut tx, false);
        assert_eq!(versions(&engine), 0);
        assert!(engine.tables["t"].heap.indexes.iter().all(|i| i.is_empty()));
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

    #[test]
    fn the_horizon_advances_while_transactions_keep_overlapping() {
        let mut e = Engine::default();
        fn snapshot_of(e: &mut Engine) -> crate::engine::TxState {
            let mut tx = e.begin();
            tx.isolation = Isolation::RepeatableRead;
            statement_snapshot(e, &mut tx, None);
            tx
        }
        let mut t1 = snapshot_of(&mut e);
        let mut t2 = snapshot_of(&mut e);
        assert_eq!(e.vacuum.horizon(&e.clog), t1.id);
        e.finish(&mut t1, true);
        let mut t3 = snapshot_of(&mut e);
        e.finish(&mut t2, true);
        let mut t4 = snapshot_of(&mut e);
        e.finish(&mut t3, true);
        // Never a moment without a snapshot held, yet the horizon moved on: t4's snapshot
        // was taken while t3 ran, so only t3's commit might be unseen by it.
        assert_eq!(e.vacuum.horizon(&e.clog), t3.id);
        e.finish(&mut t4, true);
        // Nothing held: every deleter that committed is below the horizon.
        assert_eq!(e.vacuum.horizon(&e.clog), e.clog.next_id());
    }

    #[test]
    fn vacuum_commands_parse_as_postgresql_writes_them() {
        let p = |s: &str| parse(s).expect("a vacuum").expect("parses");
        assert_eq!(
            p("VACUUM"),
            Command {
                verbose: false,
                tables: vec![]
            }
        );
        assert_eq!(
            p("vacuum verbose analyze Accounts, public.\"Mixed\";"),
            Command {
                verbose: true,
                tables: vec!["accounts".into(), "Mixed".into()]
            }
        );
        assert_eq!(
            p("VACUUM (VERBOSE, ANALYZE) t"),
            Command {
                verbose: true,
                tables: vec!["t".into()]
            }
        );
        assert!(parse("SELECT 1").is_none());
        assert!(parse("vacuumx").is_none());
    }
}

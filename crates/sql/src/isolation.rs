//! Isolation levels: which anomalies each level lets through, and the code that decides.
//!
//! Two transactions running at once can see each other in ways no serial order would
//! allow. The SQL standard names four levels by the anomalies they forbid; what each
//! level *measures* on this server (`tests/isolation.rs` runs every scenario at every
//! level) is:
//!
//! | level              | G0 | G1a G1b G1c OTV | PMP P4 G-single | G2-item G2 |
//! |--------------------|----|-----------------|-----------------|------------|
//! | read uncommitted   | no | yes             | yes             | yes        |
//! | read committed     | no | no              | yes             | yes        |
//! | repeatable read    | no | no              | no              | yes        |
//! | serializable       | no | no              | no              | no         |
//!
//! ("yes" = the anomaly can happen.) Four decisions make the levels, each in one place:
//!
//! 1. **Which snapshot a statement reads** ([`statement_snapshot`]). Read uncommitted
//!    reads a *dirty* snapshot (running transactions count as committed: dirty reads);
//!    read committed and serializable take a fresh snapshot per statement (so two reads
//!    in one transaction can disagree); repeatable read takes one snapshot at its first
//!    statement and keeps it (snapshot isolation: every read agrees, no phantoms).
//! 2. **What a writer does about a newer version** ([`first_updater_wins`]). Every level
//!    waits for a running writer of the same row (no dirty writes, G0). After the wait,
//!    read uncommitted and read committed run the statement again against the newest
//!    committed version; repeatable read fails with 40001 if the row changed after its
//!    snapshot, because updating a value it never saw would lose the other update (P4).
//! 3. **Whether reads lock** (`predicate_locks`). Only serializable: every read takes a
//!    shared lock — on the index keys it looked up, or on the whole table for a scan —
//!    held to commit, and waits for running writers of what it reads. Writers at any
//!    level wait for those locks. That is two-phase locking, the course's serializable:
//!    "while one transaction reads, others must wait"; the cycles it would otherwise
//!    allow (write skew) become deadlocks, and one side gets 40P01.
//! 4. **When old versions can go** (`vacuum`): once no snapshot can see them.
//!
//! The course's ANSI table says phantoms are possible under repeatable read. That is
//! true of a locking implementation that locks only the rows it read (MySQL's manual
//! level, and the standard's wording); a snapshot cannot grow new rows, so snapshot
//! isolation prevents the read phantom — and instead allows write skew, which the ANSI
//! table has no column for (Berenson et al., 1995).

use std::borrow::Cow;
use std::fmt;

use sqlparser::ast::TransactionIsolationLevel;

use crate::engine::{Engine, TxState};
use crate::error::SqlError;
use crate::mvcc::{CommitLog, Snapshot, TxStatus};
use crate::storage::{RowId, Version};
use crate::types::Value;

/// The four levels of the SQL standard, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Isolation {
    ReadUncommitted,
    ReadCommitted,
    RepeatableRead,
    Serializable,
}

impl Isolation {
    /// The level as PostgreSQL names it in `SHOW transaction_isolation`.
    pub fn name(self) -> &'static str {
        match self {
            Isolation::ReadUncommitted => "read uncommitted",
            Isolation::ReadCommitted => "read committed",
            Isolation::RepeatableRead => "repeatable read",
            Isolation::Serializable => "serializable",
        }
    }

    /// Parses a level as `SET default_transaction_isolation` takes it
    /// (`'repeatable read'`, also `REPEATABLE-READ` as MySQL writes it).
    pub fn parse(text: &str) -> Result<Isolation, SqlError> {
        let words = text
            .trim()
            .trim_matches(['\'', '"'])
            .to_ascii_lowercase()
            .replace(['-', '_'], " ");
        match words.split_whitespace().collect::<Vec<_>>().join(" ").as_str() {
            "read uncommitted" => Ok(Isolation::ReadUncommitted),
            "read committed" => Ok(Isolation::ReadCommitted),
            "repeatable read" => Ok(Isolation::RepeatableRead),
            "serializable" => Ok(Isolation::Serializable),
            _ => Err(SqlError::new(
                "22023",
                format!("invalid value for parameter \"transaction_isolation\": \"{text}\""),
            )
            .with_detail(
                "Available values: serializable, repeatable read, read committed, read uncommitted.",
            )),
        }
    }

    /// Does what a statement read outlive the statement — repeatable read's snapshot,
    /// serializable's read locks? Then even a read-only transaction lasts until COMMIT.
    pub fn keeps_reads(self) -> bool {
        matches!(self, Isolation::RepeatableRead | Isolation::Serializable)
    }

    /// Does a read take shared locks (two-phase locking)?
    pub fn locking_reads(self) -> bool {
        self == Isolation::Serializable
    }
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<&TransactionIsolationLevel> for Isolation {
    fn from(level: &TransactionIsolationLevel) -> Isolation {
        match level {
            TransactionIsolationLevel::ReadUncommitted => Isolation::ReadUncommitted,
            TransactionIsolationLevel::ReadCommitted => Isolation::ReadCommitted,
            // SQL Server's SNAPSHOT level is snapshot isolation: this server's repeatable read.
            TransactionIsolationLevel::RepeatableRead | TransactionIsolationLevel::Snapshot => {
                Isolation::RepeatableRead
            }
            TransactionIsolationLevel::Serializable => Isolation::Serializable,
        }
    }
}

/// Decision 1: the snapshot the next statement of `tx` reads. `earlier` is the snapshot
/// of this statement's previous attempt, if it waited for a lock and runs again.
///
/// Read committed runs again with the *same* snapshot and rechecks only the rows it
/// waited for ([`newest_for_write`]); serializable takes a new one (what it read is
/// locked, so it reads the newest); read uncommitted's dirty snapshot is always new.
/// Repeatable read's snapshot is taken by its first statement (as in PostgreSQL, not by
/// BEGIN) and registered with vacuum, which must keep every version it can see.
pub fn statement_snapshot(
    engine: &mut Engine,
    tx: &mut TxState,
    earlier: Option<Snapshot>,
) -> Snapshot {
    match tx.isolation {
        Isolation::ReadUncommitted => engine.clog.dirty_snapshot(tx.id),
        Isolation::ReadCommitted => earlier.unwrap_or_else(|| engine.clog.snapshot(tx.id)),
        Isolation::Serializable => engine.clog.snapshot(tx.id),
        Isolation::RepeatableRead => {
            if let Some(s) = &tx.snapshot {
                return s.clone();
            }
            let s = engine.clog.snapshot(tx.id);
            engine.vacuum.hold(tx.id, s.horizon());
            tx.snapshot = Some(s.clone());
            s
        }
    }
}

/// A read-committed statement is about to wait for a lock and run again with
/// `snapshot`: vacuum must keep the versions it sees until then.
pub fn hold_for_retry(engine: &mut Engine, tx: &TxState, snapshot: &Snapshot) {
    if tx.isolation == Isolation::ReadCommitted {
        engine.vacuum.hold(tx.id, snapshot.horizon());
    }
}

/// A statement ended: a read-committed statement's snapshot is no longer needed.
pub fn statement_done(engine: &mut Engine, tx: &TxState) {
    if tx.isolation == Isolation::ReadCommitted {
        engine.vacuum.release(tx.id);
    }
}

/// Decision 2a, read committed's (and read uncommitted's) half: an UPDATE or DELETE found
/// row `row` with values `read` in its snapshot and the WHERE clause matched; which
/// values should it work on? The row's newest committed version — after waiting for a
/// running writer of it ([`Halt::Wait`]) — or `None` if that writer deleted it. The
/// caller evaluates the WHERE clause again on what this returns (PostgreSQL's
/// "EvalPlanQual"); rows that did *not* match in the snapshot are not looked at again,
/// which is how a predicate write at read committed can miss a row (PMP).
///
/// Repeatable read and serializable work on what they read: for them `read` is returned
/// as it is, and [`first_updater_wins`] or the read locks decide.
pub fn newest_for_write(
    engine: &Engine,
    tx: &TxState,
    table: &str,
    row: RowId,
    read: Vec<Value>,
) -> crate::engine::Result<Option<Vec<Value>>> {
    if tx.snapshot.is_some() || tx.isolation.locking_reads() {
        return Ok(Some(read));
    }
    let t = engine.table(table)?;
    Ok(Engine::live_newest(&engine.clog, &t.heap, row, tx.id)?.map(|v| v.values.clone()))
}

/// Decision 2: may `tx` write a row whose newest version is `newest`? Called once no
/// other running transaction holds the row (the writer has waited for it already).
///
/// Under read uncommitted and read committed, yes: the statement reads the newest
/// committed version when it runs again after a wait, so an `UPDATE ... SET n = n + 1`
/// adds to the other transaction's result. (PostgreSQL re-evaluates just the waited-for
/// row — "EvalPlanQual" — and keeps the rest of the statement's snapshot; InnoDB reads
/// the newest committed version of each row it locks, a "semi-consistent" read. This
/// server re-runs the whole statement with a new snapshot, which gives the same answer
/// for the row and may also see rows committed meanwhile.)
///
/// Under repeatable read the row must not have changed since the transaction's snapshot: if a transaction the
/// snapshot does not see created the newest version, or deleted it, the update would be
/// based on a value this transaction never read — a lost update. The first updater wins
/// and the second gets PostgreSQL's 40001, to be retried by the client. (Serializable
/// needs no such check: its reads hold shared locks, so a row it read cannot change
/// before it writes it.)
pub fn first_updater_wins(
    tx: &TxState,
    clog: &CommitLog,
    newest: &Version,
) -> Result<(), SqlError> {
    let Some(snapshot) = &tx.snapshot else {
        return Ok(());
    };
    let changed = |by: u64| by != 0 && by != tx.id && !snapshot.sees(by, clog);
    let deleted_since =
        newest.xmax != 0 && clog.status(newest.xmax) == TxStatus::Committed && changed(newest.xmax);
    if changed(newest.xmin) || deleted_since {
        return Err(serialization_failure());
    }
    Ok(())
}

/// 40001, as PostgreSQL words it for a write conflict under repeatable read.
pub fn serialization_failure() -> SqlError {
    SqlError::new(
        "40001",
        "could not serialize access due to concurrent update",
    )
}

/// MySQL spells the session default `SET SESSION TRANSACTION ISOLATION LEVEL ...` (the
/// course's wording); PostgreSQL spells it `SET SESSION CHARACTERISTICS AS TRANSACTION
/// ...`. The parser drops the `SESSION`, so the text is rewritten to PostgreSQL's form
/// first, wherever a statement starts with it.
pub fn mysql_session_syntax(sql: &str) -> Cow<'_, str> {
    const MYSQL: &str = "set session transaction";
    let lower = sql.to_ascii_lowercase();
    if !lower.contains(MYSQL) {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len() + 32);
    let mut at = 0;
    let mut statement_start = true;
    let bytes = sql.as_bytes();
    while at < sql.len() {
        if statement_start && lower[at..].starts_with(MYSQL) {
            out.push_str("SET SESSION CHARACTERISTICS AS TRANSACTION");
            at += MYSQL.len();
            statement_start = false;
            continue;
        }
        let c = bytes[at];
        if c == b';' {
            statement_start = true;
        } else if !c.is_ascii_whitespace() {
            statement_start = false;
        }
        // Copy one whole UTF-8 character.
        let len = sql[at..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&sql[at..at + len]);
        at += len;
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_in_postgresql_and_mysql_spelling() {
        assert_eq!(
            Isolation::parse("'Repeatable Read'").ok(),
            Some(Isolation::RepeatableRead)
        );
        assert_eq!(
            Isolation::parse("READ-UNCOMMITTED").ok(),
            Some(Isolation::ReadUncommitted)
        );
        assert_eq!(
            Isolation::parse("chaos").err().map(|e| e.code),
            Some("22023")
        );
    }

    #[test]
    fn mysql_session_form_is_rewritten_only_at_a_statement_start() {
        assert_eq!(
            mysql_session_syntax("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"),
            "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED"
        );
        assert_eq!(
            mysql_session_syntax("select 1; set session transaction isolation level serializable"),
            "select 1; SET SESSION CHARACTERISTICS AS TRANSACTION isolation level serializable"
        );
        let quoted = "SELECT 'set session transaction'";
        assert_eq!(mysql_session_syntax(quoted), quoted);
    }

    #[test]
    fn the_second_updater_of_a_row_fails_under_a_transaction_snapshot() {
        let mut engine = Engine::default();
        let mut first = engine.begin();
        let mut second = engine.begin();
        second.isolation = Isolation::RepeatableRead;
        let _ = statement_snapshot(&mut engine, &mut second, None);
        engine.finish(&mut first, true);
        let theirs = Version {
            xmin: first.id,
            xmax: 0,
            values: Vec::new(),
        };
        let err = first_updater_wins(&second, &engine.clog, &theirs).err();
        assert_eq!(err.map(|e| e.code), Some("40001"));
        // Read committed has no transaction snapshot: it proceeds.
        second.isolation = Isolation::ReadCommitted;
        second.snapshot = None;
        assert!(first_updater_wins(&second, &engine.clog, &theirs).is_ok());
    }
}

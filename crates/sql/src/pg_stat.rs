//! `pg_stat_database` and `infralab_stat_aborts`: how many transactions ended, and why
//! the ones that failed did.
//!
//! A database's throughput is its commits per second, and its health the share of
//! transactions that roll back — and *why* they do: a burst of 40001 (serialization
//! failure) means concurrent writers of the same rows under repeatable read or
//! serializable, 40P01 a lock cycle, 23xxx an application bug or a race on a key. The
//! client that got the error retries or reports it; only the server sees them all.
//!
//! PostgreSQL counts ends in `pg_stat_database` (`xact_commit`, `xact_rollback`,
//! `deadlocks`); it has no view of aborts by cause, so that one is infralab's own,
//! `infralab_stat_aborts(cause, count)`. The counters are atomics outside the engine
//! lock, so a monitor polling every second never queues behind a transaction.
//!
//! Only whole-view queries are answered: `SELECT * FROM pg_stat_database` and
//! `SELECT * FROM infralab_stat_aborts`.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlparser::ast::Statement;

use crate::executor::Output;
use crate::session::Session;
use crate::types::{DataType, Value};

/// Why a statement's error undid its transaction's work, with the SQLSTATEs of each.
const CAUSES: [&str; 7] = [
    "serialization_failure", // 40001
    "deadlock_detected",     // 40P01
    "lock_timeout",          // 55P03
    "statement_timeout",     // 57014, by statement_timeout
    "query_canceled",        // 57014, by a cancel request or pg_cancel_backend
    "constraint_violation",  // 23xxx: unique, foreign key, check, not null
    "other",
];

/// Transactions ended since the server started; one per database (there is one).
#[derive(Debug, Default)]
pub struct TxStats {
    commits: AtomicU64,
    rollbacks: AtomicU64,
    aborts: [AtomicU64; CAUSES.len()],
}

impl TxStats {
    /// A transaction ended (`Engine::finish`, the one place every transaction ends:
    /// COMMIT, ROLLBACK, an error, autocommit, a disconnect). A read-only transaction
    /// counts too, as in PostgreSQL.
    pub fn ended(&self, commit: bool) {
        let counter = if commit {
            &self.commits
        } else {
            &self.rollbacks
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A statement failed, undoing its transaction (or back to its savepoint): count it
    /// under its cause. A statement refused because the block already failed (25P02)
    /// is not a new abort.
    pub fn failed(&self, code: &str, message: &str) {
        let cause = match code {
            "25P02" => return,
            "40001" => 0,
            "40P01" => 1,
            "55P03" => 2,
            "57014" if message.contains("statement timeout") => 3,
            "57014" => 4,
            c if c.starts_with("23") => 5,
            _ => 6,
        };
        self.aborts[cause].fetch_add(1, Ordering::Relaxed);
    }

    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    pub fn rollbacks(&self) -> u64 {
        self.rollbacks.load(Ordering::Relaxed)
    }

    /// Transactions that chose to end over a lock cycle (40P01).
    pub fn deadlocks(&self) -> u64 {
        self.aborts[1].load(Ordering::Relaxed)
    }

    /// Aborts counted under each cause, in a fixed order.
    pub fn aborts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        CAUSES
            .iter()
            .zip(&self.aborts)
            .map(|(cause, n)| (*cause, n.load(Ordering::Relaxed)))
    }
}

#[derive(Clone, Copy)]
enum View {
    Database,
    Aborts,
}

fn view(stmt: &Statement) -> Option<View> {
    if !crate::pg_catalog::reads_system_view(stmt) {
        return None;
    }
    let sql = stmt.to_string().to_ascii_lowercase();
    let rest = sql.strip_prefix("select * from ")?;
    let rest = rest.strip_prefix("pg_catalog.").unwrap_or(rest);
    match rest.trim() {
        "pg_stat_database" => Some(View::Database),
        "infralab_stat_aborts" => Some(View::Aborts),
        _ => None,
    }
}

/// The columns of an answer (for Describe).
pub fn columns(stmt: &Statement) -> Option<Vec<(String, DataType)>> {
    let columns: &[(&str, DataType)] = match view(stmt)? {
        View::Database => &[
            ("datid", DataType::BigInt),
            ("datname", DataType::Text),
            ("numbackends", DataType::BigInt),
            ("xact_commit", DataType::BigInt),
            ("xact_rollback", DataType::BigInt),
            ("conflicts", DataType::BigInt),
            ("deadlocks", DataType::BigInt),
        ],
        View::Aborts => &[("cause", DataType::Text), ("count", DataType::BigInt)],
    };
    Some(columns.iter().map(|(n, t)| (n.to_string(), *t)).collect())
}

/// The answer, if `stmt` asks for one of the views.
pub fn answer(stmt: &Statement, session: &Session) -> Option<Output> {
    let db = session.db();
    let stats = &db.stats;
    let int = |n: u64| Value::Int(n as i64);
    let rows = match view(stmt)? {
        View::Database => {
            vec![vec![
                Value::Int(1),
                Value::Text("infralab".into()),
                int(db.backends.count() as u64),
                int(stats.commits()),
                int(stats.rollbacks()),
                // Conflicts with recovery on a standby: there are no standbys.
                Value::Int(0),
                int(stats.deadlocks()),
            ]]
        }
        View::Aborts => stats
            .aborts()
            .map(|(cause, n)| vec![Value::Text(cause.into()), int(n)])
            .collect(),
    };
    Some(crate::pg_catalog::select(columns(stmt)?, rows))
}

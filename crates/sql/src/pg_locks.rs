//! `pg_locks`: who holds which lock and who waits for whom, as PostgreSQL's view shows it.
//!
//! This is how a learner (and a test) *sees* a transaction blocked — exactly how
//! PostgreSQL's own isolation tester decides that a step is waiting — instead of
//! guessing from a statement that has not answered yet. Two kinds of rows:
//!
//! - a wait: `locktype = 'transactionid'`, `granted = false`; `virtualtransaction` is the
//!   waiting transaction and `transactionid` the one whose end it waits for (a row lock
//!   is "wait until the transaction in the row's `xmax` ends");
//! - a serializable reader's shared lock (`predicate_locks`): `locktype = 'relation'`
//!   (the whole table) or `'tuple'` (one index key, shown in `key`), `mode = 'ShareLock'`,
//!   `granted = true`.
//!
//! Only whole-view queries are answered: `SELECT * FROM pg_locks [WHERE NOT granted]` and
//! `SELECT count(*) FROM pg_locks [WHERE NOT granted]`.

use sqlparser::ast::Statement;

use crate::executor::Output;
use crate::session::Session;
use crate::types::{DataType, Value};

/// Which of the supported forms `stmt` is: (count only, waits only).
fn form(stmt: &Statement) -> Option<(bool, bool)> {
    if !crate::pg_catalog::reads_system_view(stmt) {
        return None;
    }
    let sql = stmt.to_string().to_ascii_lowercase();
    let rest = sql.strip_prefix("select ")?;
    let (count, rest) = if let Some(r) = rest.strip_prefix("count(*) ") {
        (true, r)
    } else {
        (false, rest.strip_prefix("* ")?)
    };
    let rest = rest
        .strip_prefix("from pg_catalog.pg_locks")
        .or_else(|| rest.strip_prefix("from pg_locks"))?;
    match rest.trim() {
        "" => Some((count, false)),
        "where not granted" => Some((count, true)),
        _ => None,
    }
}

const COLUMNS: [(&str, DataType); 6] = [
    ("locktype", DataType::Text),
    ("relation", DataType::Text),
    ("key", DataType::Text),
    ("transactionid", DataType::BigInt),
    ("virtualtransaction", DataType::BigInt),
    ("mode", DataType::Text),
];

/// The columns of an answer (for Describe).
pub fn columns(stmt: &Statement) -> Option<Vec<(String, DataType)>> {
    let (count, _) = form(stmt)?;
    Some(if count {
        vec![("count".into(), DataType::BigInt)]
    } else {
        COLUMNS
            .iter()
            .map(|(n, t)| (n.to_string(), *t))
            .chain([("granted".to_string(), DataType::Bool)])
            .collect()
    })
}

/// The answer, if `stmt` asks for `pg_locks`.
pub fn answer(stmt: &Statement, session: &Session) -> Option<Output> {
    let (count, waits_only) = form(stmt)?;
    let db = session.db();
    let text = |s: &str| Value::Text(s.to_string());
    let mut rows: Vec<Vec<Value>> = db
        .locks
        .waits()
        .into_iter()
        .map(|(waiter, holder)| {
            vec![
                text("transactionid"),
                Value::Null,
                Value::Null,
                Value::Int(holder as i64),
                Value::Int(waiter as i64),
                text("ShareLock"),
                Value::Bool(false),
            ]
        })
        .collect();
    if !waits_only {
        for g in db.engine().predicate_locks.granted() {
            let key = g.key.as_ref().map(|(index, key)| {
                let values: Vec<String> = key.iter().map(|v| v.to_string()).collect();
                format!("index {index}: ({})", values.join(", "))
            });
            rows.push(vec![
                text(if key.is_some() { "tuple" } else { "relation" }),
                Value::Text(g.table),
                key.map_or(Value::Null, Value::Text),
                Value::Null,
                Value::Int(g.tx as i64),
                text("ShareLock"),
                Value::Bool(true),
            ]);
        }
    }
    if count {
        rows = vec![vec![Value::Int(rows.len() as i64)]];
    }
    Some(crate::pg_catalog::select(columns(stmt)?, rows))
}

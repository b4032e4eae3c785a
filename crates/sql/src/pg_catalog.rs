//! Answers to the catalog queries clients send on their own. psql implements `\dt` as a
//! query over `pg_catalog.pg_class`; rather than emulate PostgreSQL's system tables, the
//! server recognises that query and answers it from its own catalog. This module keeps
//! the `\dt` query as it arrives through the extended protocol (parsed); the simple
//! protocol's describe queries — `\d`, `\di`, `\d table`... — are `describe`'s.

use sqlparser::ast::{SetExpr, Statement, TableFactor};

use crate::executor::Output;
use crate::session::Session;
use crate::types::{DataType, Value};

/// psql's `\dt` (list tables) query.
fn is_list_tables(sql: &str) -> bool {
    sql.contains("pg_catalog.pg_class c")
        && sql.contains("c.relkind IN ('r', 'p', '')")
        && sql.contains("AS \"Owner\"")
}

/// Does `stmt` read a system view (a `pg_...` or `infralab_...` relation in its FROM)?
/// Only such a query can be one this module, `pg_locks` or `pg_stat` answers: the check that spares every other
/// statement from being printed back to text to be recognised.
pub fn reads_system_view(stmt: &Statement) -> bool {
    let Statement::Query(q) = stmt else {
        return false;
    };
    let SetExpr::Select(select) = q.body.as_ref() else {
        return false;
    };
    select.from.iter().any(|f| match &f.relation {
        TableFactor::Table { name, .. } => name
            .0
            .last()
            .and_then(|part| part.as_ident())
            .is_some_and(|i| {
                let name = i.value.to_ascii_lowercase();
                name.starts_with("pg_") || name.starts_with("infralab_")
            }),
        _ => false,
    })
}

/// An answer for `stmt` if it is one of the known catalog queries.
pub fn answer(stmt: &Statement, session: &Session) -> Option<Output> {
    if !reads_system_view(stmt) {
        return None;
    }
    if let Some(out) = crate::pg_stat::answer(stmt, session) {
        return Some(out);
    }
    let sql = stmt.to_string();
    if !is_list_tables(&sql) {
        return None;
    }
    let engine = session.db().engine();
    let mut names: Vec<&String> = engine.tables.keys().collect();
    names.sort();
    let rows: Vec<Vec<Value>> = names
        .into_iter()
        .map(|n| {
            ["public", n.as_str(), "table", "infralab"]
                .map(|s| Value::Text(s.to_string()))
                .to_vec()
        })
        .collect();
    Some(select(columns(stmt)?, rows))
}

/// A system view's answer: `rows` under `columns`, tagged as a SELECT.
pub fn select(columns: Vec<(String, DataType)>, rows: Vec<Vec<Value>>) -> Output {
    Output {
        columns,
        tag: format!("SELECT {}", rows.len()),
        rows,
        returns_rows: true,
        copy_in: None,
    }
}

/// The columns such an answer has (for Describe).
pub fn columns(stmt: &Statement) -> Option<Vec<(String, DataType)>> {
    if let Some(columns) = crate::pg_stat::columns(stmt) {
        return Some(columns);
    }
    (reads_system_view(stmt) && is_list_tables(&stmt.to_string())).then(|| {
        ["Schema", "Name", "Type", "Owner"]
            .map(|c| (c.to_string(), DataType::Text))
            .to_vec()
    })
}

/// Queries answered before parsing (sqlparser does not parse them): ANALYZE is a no-op
/// here (the planner keeps no statistics; VACUUM is `vacuum`), and pgbench's partition
/// probe — "is pgbench_accounts partitioned?" — is answered "no".
pub fn canned(sql: &str) -> Option<Output> {
    let lower = sql.trim_start().to_ascii_lowercase();
    if lower.starts_with("analyze") {
        return Some(Output {
            tag: "ANALYZE".into(),
            ..Output::default()
        });
    }
    if lower.contains("pg_catalog.pg_partitioned_table") && lower.contains("pgbench_accounts") {
        return Some(Output {
            columns: vec![
                ("n".into(), DataType::Int),
                ("partstrat".into(), DataType::Text),
                ("count".into(), DataType::BigInt),
            ],
            rows: vec![vec![Value::Int(1), Value::Null, Value::Int(0)]],
            tag: "SELECT 1".into(),
            returns_rows: true,
            copy_in: None,
        });
    }
    None
}

/// Drops what the parser does not know but that changes no result: `COPY ... WITH
/// (FREEZE ON)` (pgbench -i; freezing is an optimisation of PostgreSQL's storage).
pub fn rewrite(sql: &str) -> std::borrow::Cow<'_, str> {
    let lower = sql.to_ascii_lowercase();
    if lower.trim_start().starts_with("copy ")
        && let Some(at) = lower.find("with (freeze on)")
    {
        let mut s = sql.to_string();
        s.replace_range(at..at + "with (freeze on)".len(), "");
        return s.into();
    }
    sql.into()
}

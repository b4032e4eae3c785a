//! Answers to the catalog queries clients send on their own. psql implements `\dt` as a
//! query over `pg_catalog.pg_class`; rather than emulate PostgreSQL's system tables, the
//! server recognises that query and answers it from its own catalog. A small, honest
//! subset: `\dt` works; `\d table` (half a dozen queries over `pg_attribute`,
//! `pg_index`, `pg_constraint`...) is not answered yet and gets 42P01 for `pg_class`.

use sqlparser::ast::Statement;

use crate::executor::Output;
use crate::session::Session;
use crate::types::{DataType, Value};

/// psql's `\dt` (list tables) query.
fn is_list_tables(sql: &str) -> bool {
    sql.contains("pg_catalog.pg_class c")
        && sql.contains("c.relkind IN ('r', 'p', '')")
        && sql.contains("AS \"Owner\"")
}

/// An answer for `stmt` if it is one of the known catalog queries.
pub fn answer(stmt: &Statement, session: &Session) -> Option<Output> {
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
    Some(Output {
        columns: columns(stmt)?,
        tag: format!("SELECT {}", rows.len()),
        rows,
        returns_rows: true,
        copy_in: None,
    })
}

/// The columns such an answer has (for Describe).
pub fn columns(stmt: &Statement) -> Option<Vec<(String, DataType)>> {
    is_list_tables(&stmt.to_string()).then(|| {
        ["Schema", "Name", "Type", "Owner"]
            .map(|c| (c.to_string(), DataType::Text))
            .to_vec()
    })
}

/// Queries answered before parsing (sqlparser does not parse them): VACUUM (the sweep
/// itself runs in the server, see `vacuum`) and ANALYZE (a no-op: no statistics), and pgbench's partition probe — "is
/// pgbench_accounts partitioned?" — is answered "no".
pub fn canned(sql: &str) -> Option<Output> {
    let lower = sql.trim_start().to_ascii_lowercase();
    if lower.starts_with("vacuum") || lower.starts_with("analyze") {
        let tag = if lower.starts_with("vacuum") {
            "VACUUM"
        } else {
            "ANALYZE"
        };
        return Some(Output {
            tag: tag.into(),
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

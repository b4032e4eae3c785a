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

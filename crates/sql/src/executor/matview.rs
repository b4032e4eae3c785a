//! Materialized views: `CREATE MATERIALIZED VIEW top_accounts AS SELECT ...` and
//! `REFRESH MATERIALIZED VIEW top_accounts`.
//!
//! The course's "database caching" level in one object: the result of an expensive
//! query, computed once and *stored* as a table, so reading it costs a scan of the
//! stored rows instead of re-running the query. The price is staleness: the stored
//! result does not follow changes to the tables it was computed from until someone runs
//! `REFRESH` — exactly the trade-off of any cache with explicit invalidation.
//!
//! Storage is an ordinary table (its rows are MVCC versions, logged like any others),
//! whose definition also keeps the query. Only `REFRESH` writes it (INSERT, UPDATE,
//! DELETE get 42809). `REFRESH` deletes the old rows and inserts the new result in the
//! refreshing transaction: readers keep seeing the old result until it commits, as with
//! PostgreSQL's `REFRESH ... CONCURRENTLY` (without CONCURRENTLY PostgreSQL locks readers
//! out instead). The rows of a new or refreshed view reach the log as rows, not as the
//! query, so recovery restores the stored — possibly stale — result, not a fresh one.

use sqlparser::ast::{self, Statement};

use crate::catalog::{Column, TableDef, object_name};
use crate::engine::{Result, Table, Undo};
use crate::error::SqlError;
use crate::storage::RowId;
use crate::types::Value;
use crate::wal::Change;

use super::{Ctx, Output, query};

pub(super) fn create(
    ctx: &mut Ctx<'_>,
    view: &ast::CreateView,
    stmt: &Statement,
) -> Result<Output> {
    ctx.engine.begin_ddl(ctx.tx.id);
    let name = object_name(&view.name);
    let tag = |rows: usize| Output {
        tag: format!("SELECT {rows}"),
        ..Output::default()
    };
    if ctx.engine.tables.contains_key(&name) {
        if view.if_not_exists {
            return Ok(tag(0));
        }
        return Err(SqlError::new("42P07", format!("relation \"{name}\" already exists")).into());
    }
    let columns = super::describe(ctx.engine, &Statement::Query(view.query.clone()))?;
    let names: Vec<String> = if view.columns.is_empty() {
        columns.iter().map(|(n, _)| n.clone()).collect()
    } else {
        if view.columns.len() > columns.len() {
            return Err(SqlError::syntax(
                "CREATE MATERIALIZED VIEW specifies too many column names",
                None,
            )
            .into());
        }
        let mut n: Vec<String> = view
            .columns
            .iter()
            .map(|c| crate::catalog::ident(&c.name))
            .collect();
        n.extend(columns.iter().skip(n.len()).map(|(c, _)| c.clone()));
        n
    };
    let mut def = TableDef {
        name: name.clone(),
        columns: Vec::new(),
        indexes: Vec::new(),
        checks: Vec::new(),
        foreign_keys: Vec::new(),
        triggers: Vec::new(),
        view: Some(view.query.clone()),
    };
    for (n, (_, ty)) in names.into_iter().zip(&columns) {
        crate::catalog::add_column(
            &mut def,
            Column {
                name: n,
                ty: *ty,
                not_null: false,
                default: None,
                serial: false,
                type_name: ty.pg_name(),
                generated: None,
                dropped: false,
            },
        )?;
    }
    ctx.engine.tables.insert(name.clone(), Table::new(def));
    ctx.tx.undo.push(Undo::CreatedTable(name.clone()));
    ctx.tx.redo.push(Change::Ddl(stmt.to_string()));
    if ctx.engine.replaying {
        return Ok(tag(0)); // the rows follow in the log
    }
    let rows = populate(ctx, &name)?;
    Ok(tag(rows))
}

pub(super) fn refresh(ctx: &mut Ctx<'_>, r: &ast::RefreshMaterializedView) -> Result<Output> {
    let name = object_name(&r.name);
    if r.with_data == Some(false) {
        // PostgreSQL then leaves the view unreadable until the next refresh.
        return Err(SqlError::unsupported("REFRESH MATERIALIZED VIEW ... WITH NO DATA").into());
    }
    let t = ctx.engine.table(&name)?;
    if t.def.view.is_none() {
        return Err(
            SqlError::new("42809", format!("\"{name}\" is not a materialized view")).into(),
        );
    }
    let old: Vec<RowId> = t
        .heap
        .scan(&ctx.snapshot, &ctx.engine.clog)
        .map(|(id, _)| id)
        .collect();
    for id in old {
        ctx.engine.delete(ctx.tx, &name, id)?;
    }
    populate(ctx, &name)?;
    Ok(Output {
        tag: "REFRESH MATERIALIZED VIEW".into(),
        ..Output::default()
    })
}

/// Runs the view's query and stores its rows; returns how many.
fn populate(ctx: &mut Ctx<'_>, name: &str) -> Result<usize> {
    let def = ctx.engine.table(name)?.def.clone();
    let Some(q) = &def.view else { return Ok(0) };
    let rows = query(ctx, q)?.rows;
    let count = rows.len();
    for row in rows {
        let values: Vec<Value> = row
            .into_iter()
            .zip(&def.columns)
            .map(|(v, c)| v.cast(c.ty))
            .collect::<std::result::Result<_, _>>()?;
        ctx.engine.insert(ctx.tx, name, values)?;
    }
    Ok(count)
}

/// The relations a query reads (its FROM clauses, joins, subqueries in FROM and set
/// operations): what a view depends on, for DROP TABLE and for checkpoint order.
pub fn relations(q: &ast::Query) -> Vec<String> {
    fn body(b: &ast::SetExpr, out: &mut Vec<String>) {
        match b {
            ast::SetExpr::Select(s) => {
                for t in &s.from {
                    factor(&t.relation, out);
                    for j in &t.joins {
                        factor(&j.relation, out);
                    }
                }
            }
            ast::SetExpr::Query(q) => body(&q.body, out),
            ast::SetExpr::SetOperation { left, right, .. } => {
                body(left, out);
                body(right, out);
            }
            _ => {}
        }
    }
    fn factor(f: &ast::TableFactor, out: &mut Vec<String>) {
        match f {
            ast::TableFactor::Table { name, .. } => out.push(object_name(name)),
            ast::TableFactor::Derived { subquery, .. } => body(&subquery.body, out),
            ast::TableFactor::NestedJoin {
                table_with_joins, ..
            } => {
                factor(&table_with_joins.relation, out);
                for j in &table_with_joins.joins {
                    factor(&j.relation, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    body(&q.body, &mut out);
    out.sort();
    out.dedup();
    out
}

//! DDL: CREATE TABLE/INDEX, DROP TABLE and DROP MATERIALIZED VIEW, TRUNCATE (ALTER TABLE
//! is `alter`). Each change to the catalog is undone with its transaction and logged as
//! its statement text, which recovery replays.

use sqlparser::ast::{self, Statement};

use crate::catalog::{self, object_name};
use crate::engine::{Result, Table, Undo};
use crate::error::SqlError;
use crate::storage::RowId;
use crate::wal::Change;

use super::{Ctx, Output};

// ---- DDL ----

pub(super) fn create_table(
    ctx: &mut Ctx<'_>,
    create: &ast::CreateTable,
    stmt: &Statement,
) -> Result<Output> {
    ctx.engine.begin_ddl(ctx.tx.id);
    let name = object_name(&create.name);
    let tag = Output {
        tag: "CREATE TABLE".into(),
        ..Output::default()
    };
    if ctx.engine.tables.contains_key(&name) {
        if create.if_not_exists {
            return Ok(tag);
        }
        return Err(SqlError::new("42P07", format!("relation \"{name}\" already exists")).into());
    }
    if create.query.is_some() {
        return Err(SqlError::unsupported("CREATE TABLE AS").into());
    }
    let sql = stmt.to_string();
    let engine = &*ctx.engine;
    let def = catalog::table_from_ast(create, &|p| engine.tables.get(p).map(|t| t.def.clone()))?;
    ctx.engine.tables.insert(name.clone(), Table::new(def));
    ctx.tx.undo.push(Undo::CreatedTable(name));
    ctx.tx.redo.push(Change::Ddl(sql));
    Ok(tag)
}

pub(super) fn create_index(
    ctx: &mut Ctx<'_>,
    create: &ast::CreateIndex,
    stmt: &Statement,
) -> Result<Output> {
    ctx.engine.begin_ddl(ctx.tx.id);
    let table = object_name(&create.table_name);
    let sql = stmt.to_string();
    let t = ctx
        .engine
        .tables
        .get_mut(&table)
        .ok_or_else(|| SqlError::undefined_table(&table))?;
    let def = catalog::index_from_ast(&t.def, create)?;
    if t.def.indexes.iter().any(|i| i.name == def.name) {
        if create.if_not_exists {
            return Ok(Output {
                tag: "CREATE INDEX".into(),
                ..Output::default()
            });
        }
        return Err(
            SqlError::new("42P07", format!("relation \"{}\" already exists", def.name)).into(),
        );
    }
    let tree = t.heap.build_index(&def.columns);
    t.def.indexes.push(def);
    t.heap.indexes.push(tree);
    ctx.tx.undo.push(Undo::CreatedIndex { table });
    ctx.tx.redo.push(Change::Ddl(sql));
    Ok(Output {
        tag: "CREATE INDEX".into(),
        ..Output::default()
    })
}

pub(super) fn drop_tables(
    ctx: &mut Ctx<'_>,
    names: &[ast::ObjectName],
    if_exists: bool,
    cascade: bool,
    stmt: &Statement,
    materialized: bool,
) -> Result<Output> {
    ctx.engine.begin_ddl(ctx.tx.id);
    let what = if materialized {
        "MATERIALIZED VIEW"
    } else {
        "TABLE"
    };
    for n in names {
        let name = object_name(n);
        let Some(t) = ctx.engine.tables.get(&name) else {
            if if_exists {
                continue;
            }
            return Err(if materialized {
                SqlError::new(
                    "42P01",
                    format!("materialized view \"{name}\" does not exist"),
                )
            } else {
                SqlError::undefined_table(&name)
            }
            .into());
        };
        if t.def.view.is_some() != materialized {
            return Err(SqlError::new(
                "42809",
                format!(
                    "\"{name}\" is not a {}",
                    if materialized {
                        "materialized view"
                    } else {
                        "table"
                    }
                ),
            )
            .with_detail(format!(
                "Use DROP {} to remove {}.",
                if materialized {
                    "TABLE"
                } else {
                    "MATERIALIZED VIEW"
                },
                if materialized {
                    "a table"
                } else {
                    "a materialized view"
                }
            ))
            .into());
        }
        if cascade {
            drop_dependents(ctx, &name);
        }
        if let Some(view) = ctx.engine.tables.values().find(|t| {
            t.def.name != name
                && t.def
                    .view
                    .as_ref()
                    .is_some_and(|q| super::relations(q).contains(&name))
        }) {
            return Err(SqlError::new(
                "2BP01",
                format!(
                    "cannot drop {} {name} because other objects depend on it",
                    what.to_lowercase()
                ),
            )
            .with_detail(format!(
                "materialized view {} depends on {} {name}",
                view.def.name,
                what.to_lowercase()
            ))
            .into());
        }
        if let Some(child) = ctx
            .engine
            .tables
            .values()
            .find(|t| t.def.name != name && t.def.foreign_keys.iter().any(|f| f.parent == name))
        {
            return Err(SqlError::new(
                "2BP01",
                format!("cannot drop table {name} because other objects depend on it"),
            )
            .with_detail(format!(
                "constraint {} on table {} depends on table {name}",
                child
                    .def
                    .foreign_keys
                    .iter()
                    .find(|f| f.parent == name)
                    .map_or("", |f| f.name.as_str()),
                child.def.name
            ))
            .into());
        }
        if let Some(t) = ctx.engine.tables.remove(&name) {
            ctx.tx.undo.push(Undo::DroppedTable(Box::new(t)));
        }
    }
    ctx.tx.redo.push(Change::Ddl(stmt.to_string()));
    Ok(Output {
        tag: format!("DROP {what}"),
        ..Output::default()
    })
}

pub(super) fn truncate(ctx: &mut Ctx<'_>, t: &ast::Truncate, _stmt: &Statement) -> Result<Output> {
    for target in &t.table_names {
        let table = object_name(&target.name);
        let rows: Vec<RowId> = {
            let tab = ctx.engine.table(&table)?;
            super::dml::writable(&tab.def)?;
            tab.heap
                .scan(&ctx.snapshot, &ctx.engine.clog)
                .map(|(id, _)| id)
                .collect()
        };
        // Row by row, so MVCC, row locks, foreign keys and the log all apply as to DELETE
        // (PostgreSQL swaps in a new empty file instead, which is not MVCC-safe).
        for id in rows {
            ctx.engine.delete(ctx.tx, &table, id)?;
        }
    }
    Ok(Output {
        tag: "TRUNCATE TABLE".into(),
        ..Output::default()
    })
}

/// DROP ... CASCADE: what depends on table `name` goes first — the materialized views
/// that read it (and theirs, in turn), and the foreign keys of other tables that
/// reference it (the referencing tables stay, as in PostgreSQL).
fn drop_dependents(ctx: &mut Ctx<'_>, name: &str) {
    let views: Vec<String> = ctx
        .engine
        .tables
        .values()
        .filter(|t| {
            t.def.name != name
                && t.def
                    .view
                    .as_ref()
                    .is_some_and(|q| super::relations(q).iter().any(|r| r == name))
        })
        .map(|t| t.def.name.clone())
        .collect();
    for v in views {
        drop_dependents(ctx, &v);
        if let Some(t) = ctx.engine.tables.remove(&v) {
            ctx.tx.undo.push(Undo::DroppedTable(Box::new(t)));
        }
    }
    for t in ctx.engine.tables.values_mut() {
        if t.def.name != name && t.def.foreign_keys.iter().any(|f| f.parent == name) {
            ctx.tx.undo.push(Undo::AlteredTable {
                table: t.def.name.clone(),
                def: Box::new(t.def.clone()),
            });
            t.def.foreign_keys.retain(|f| f.parent != name);
        }
    }
}

/// `DROP INDEX [IF EXISTS] name [, ...]`. An index that enforces a PRIMARY KEY or
/// UNIQUE constraint goes with `ALTER TABLE ... DROP CONSTRAINT` instead (2BP01).
pub(super) fn drop_indexes(
    ctx: &mut Ctx<'_>,
    names: &[ast::ObjectName],
    if_exists: bool,
    stmt: &Statement,
) -> Result<Output> {
    ctx.engine.begin_ddl(ctx.tx.id);
    for n in names {
        let name = object_name(n);
        let found = ctx.engine.tables.values().find_map(|t| {
            t.def
                .indexes
                .iter()
                .position(|i| i.name == name)
                .map(|at| (t.def.name.clone(), at))
        });
        let Some((table, at)) = found else {
            if if_exists {
                continue;
            }
            return Err(SqlError::new("42704", format!("index \"{name}\" does not exist")).into());
        };
        let t = ctx
            .engine
            .tables
            .get_mut(&table)
            .ok_or_else(|| SqlError::undefined_table(&table))?;
        if t.def.indexes[at].constraint {
            return Err(SqlError::new(
                "2BP01",
                format!(
                    "cannot drop index {name} because constraint {name} on table {table} requires it"
                ),
            )
            .with_detail(format!(
                "You can drop constraint {name} on table {table} instead."
            ))
            .into());
        }
        ctx.tx.undo.push(Undo::AlteredTable {
            table: table.clone(),
            def: Box::new(t.def.clone()),
        });
        t.def.indexes.remove(at);
        t.heap.indexes.remove(at);
    }
    ctx.tx.redo.push(Change::Ddl(stmt.to_string()));
    Ok(Output {
        tag: "DROP INDEX".into(),
        ..Output::default()
    })
}

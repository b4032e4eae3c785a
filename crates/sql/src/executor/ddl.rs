//! DDL: CREATE TABLE/INDEX, DROP TABLE, ALTER TABLE, TRUNCATE. Each change to the catalog
//! is undone with its transaction and logged as its statement text, which recovery
//! replays.

use sqlparser::ast::{self, Statement};

use crate::catalog::{self, ident, object_name};
use crate::engine::{Result, Table, Undo};
use crate::error::SqlError;
use crate::storage::RowId;
use crate::types::Value;
use crate::wal::Change;

use super::{Ctx, Output};

// ---- DDL ----

pub(super) fn create_table(
    ctx: &mut Ctx<'_>,
    create: &ast::CreateTable,
    stmt: &Statement,
) -> Result<Output> {
    ctx.engine.ddl_in_flight.insert(ctx.tx.id);
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
    let def = catalog::table_from_ast(create, &sql, &|p| {
        engine.tables.get(p).map(|t| t.def.clone())
    })?;
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
    ctx.engine.ddl_in_flight.insert(ctx.tx.id);
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
    t.def.ddl.push(sql.clone());
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
) -> Result<Output> {
    ctx.engine.ddl_in_flight.insert(ctx.tx.id);
    if cascade {
        return Err(SqlError::unsupported("DROP TABLE ... CASCADE").into());
    }
    for n in names {
        let name = object_name(n);
        if !ctx.engine.tables.contains_key(&name) {
            if if_exists {
                continue;
            }
            return Err(SqlError::undefined_table(&name).into());
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
            .with_detail(format!("table {} references it", child.def.name))
            .into());
        }
        if let Some(t) = ctx.engine.tables.remove(&name) {
            ctx.tx.undo.push(Undo::DroppedTable(Box::new(t)));
        }
    }
    ctx.tx.redo.push(Change::Ddl(stmt.to_string()));
    Ok(Output {
        tag: "DROP TABLE".into(),
        ..Output::default()
    })
}

pub(super) fn truncate(ctx: &mut Ctx<'_>, t: &ast::Truncate, _stmt: &Statement) -> Result<Output> {
    for target in &t.table_names {
        let table = object_name(&target.name);
        let rows: Vec<RowId> = {
            let tab = ctx.engine.table(&table)?;
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

pub(super) fn alter_table(
    ctx: &mut Ctx<'_>,
    alter: &ast::AlterTable,
    stmt: &Statement,
) -> Result<Output> {
    ctx.engine.ddl_in_flight.insert(ctx.tx.id);
    let table = object_name(&alter.name);
    let sql = stmt.to_string();
    for op in &alter.operations {
        let constraint = match op {
            ast::AlterTableOperation::AddConstraint { constraint, .. } => constraint,
            other => return Err(SqlError::unsupported(format!("ALTER TABLE {other}")).into()),
        };
        let (columns, primary, name) = match constraint {
            ast::TableConstraint::PrimaryKey(pk) => {
                (&pk.columns, true, pk.name.as_ref().map(ident))
            }
            ast::TableConstraint::Unique(u) => (&u.columns, false, u.name.as_ref().map(ident)),
            other => return Err(SqlError::unsupported(format!("ALTER TABLE ADD {other}")).into()),
        };
        let t = ctx
            .engine
            .tables
            .get(&table)
            .ok_or_else(|| SqlError::undefined_table(&table))?;
        if primary && t.def.primary_key().is_some() {
            return Err(SqlError::new(
                "42P16",
                format!("multiple primary keys for table \"{table}\" are not allowed"),
            )
            .into());
        }
        let create = ast::CreateIndex {
            name: None,
            table_name: alter.name.clone(),
            using: None,
            columns: columns.clone(),
            unique: true,
            concurrently: false,
            r#async: false,
            if_not_exists: false,
            include: Vec::new(),
            nulls_distinct: None,
            with: Vec::new(),
            predicate: None,
            index_options: Vec::new(),
            alter_options: Vec::new(),
        };
        let mut index = catalog::index_from_ast(&t.def, &create)?;
        index.primary = primary;
        let cols: Vec<&str> = index
            .columns
            .iter()
            .map(|&i| t.def.columns[i].name.as_str())
            .collect();
        index.name = name.unwrap_or_else(|| {
            if primary {
                format!("{table}_pkey")
            } else {
                format!("{table}_{}_key", cols.join("_"))
            }
        });
        // Existing rows must satisfy the new key: no NULLs (primary key), no duplicates.
        let mut seen = std::collections::HashSet::new();
        for (_, v) in t.heap.scan(&ctx.snapshot, &ctx.engine.clog) {
            let key = crate::storage::key_of(&v.values, &index.columns);
            if primary && key.iter().any(Value::is_null) {
                return Err(SqlError::new(
                    "23502",
                    format!(
                        "column \"{}\" of relation \"{table}\" contains null values",
                        cols.join(", ")
                    ),
                )
                .into());
            }
            if !key.iter().any(Value::is_null) && !seen.insert(key) {
                return Err(SqlError::new(
                    "23505",
                    format!("could not create unique index \"{}\"", index.name),
                )
                .into());
            }
        }
        let before = Box::new(t.def.clone());
        let t = ctx
            .engine
            .tables
            .get_mut(&table)
            .ok_or_else(|| SqlError::undefined_table(&table))?;
        let tree = t.heap.build_index(&index.columns);
        if primary {
            for &c in &index.columns {
                t.def.columns[c].not_null = true;
            }
        }
        t.def.indexes.push(index);
        t.heap.indexes.push(tree);
        t.def.ddl.push(sql.clone());
        ctx.tx.undo.push(Undo::AlteredTable {
            table: table.clone(),
            def: before,
        });
    }
    ctx.tx.redo.push(Change::Ddl(sql));
    Ok(Output {
        tag: "ALTER TABLE".into(),
        ..Output::default()
    })
}

//! ALTER TABLE: changing a table that already has rows.
//!
//! Each operation is a change to the table's definition plus whatever the rows need:
//!
//! - `ADD COLUMN c type [DEFAULT d] [constraints]` appends a value to every row version
//!   (the default, or NULL), then checks the new constraints against the rows. (PostgreSQL
//!   11+ avoids the rewrite for a constant default by storing it once in the catalog.)
//! - `DROP COLUMN c` rewrites nothing: as in PostgreSQL the column is only marked dropped
//!   and hidden (see [`crate::catalog::DROPPED_PREFIX`]); its indexes and constraints go.
//! - `RENAME COLUMN`, `RENAME TO`: names only; expressions that named the column follow.
//! - `ADD CONSTRAINT` (PRIMARY KEY, UNIQUE, CHECK, FOREIGN KEY) validates every existing
//!   row first — a constraint the data already breaks is refused, unless `NOT VALID`
//!   (CHECK and FOREIGN KEY), which only applies it to rows written from now on.
//! - `DROP CONSTRAINT`, `ALTER COLUMN SET/DROP DEFAULT`, `SET/DROP NOT NULL`.
//! - `ALTER COLUMN ... TYPE ... [USING ...]` rewrites every row: see [`super::alter_type`].
//!
//! The statement is one unit: undone as a whole with its transaction (the table's
//! previous definition is the undo record) and logged as its text.

use sqlparser::ast::{self, AlterColumnOperation, AlterTableOperation, Expr, Statement};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::catalog::{self, DROPPED_PREFIX, TableDef, ident, object_name};
use crate::engine::{Engine, Result, Undo};
use crate::error::SqlError;
use crate::expr::{Scope, eval};
use crate::storage::{IndexKey, RowId, key_of};
use crate::types::Value;
use crate::wal::Change;

use super::{Ctx, Output, env};

pub(super) fn alter_table(
    ctx: &mut Ctx<'_>,
    alter: &ast::AlterTable,
    stmt: &Statement,
) -> Result<Output> {
    ctx.engine.begin_ddl(ctx.tx.id);
    let mut table = object_name(&alter.name);
    match ctx.engine.tables.get(&table) {
        None if alter.if_exists => {
            return Ok(Output {
                tag: "ALTER TABLE".into(),
                ..Output::default()
            });
        }
        None => return Err(SqlError::undefined_table(&table).into()),
        Some(t) if t.def.view.is_some() => {
            return Err(SqlError::new("42809", format!("\"{table}\" is not a table")).into());
        }
        Some(_) => {}
    }
    // Logged first: replay runs the statement before the sequence values it draws.
    ctx.tx.redo.push(Change::Ddl(stmt.to_string()));
    for op in &alter.operations {
        if let AlterTableOperation::RenameTable { table_name } = op {
            let to = match table_name {
                ast::RenameTableNameKind::As(n) | ast::RenameTableNameKind::To(n) => object_name(n),
            };
            if ctx.engine.tables.contains_key(&to) {
                return Err(
                    SqlError::new("42P07", format!("relation \"{to}\" already exists")).into(),
                );
            }
            rename_table(ctx.engine, &table, &to);
            ctx.tx.undo.push(Undo::RenamedTable {
                from: table.clone(),
                to: to.clone(),
            });
            table = to;
            continue;
        }
        let before = Box::new(ctx.engine.table(&table)?.def.clone());
        ctx.tx.undo.push(Undo::AlteredTable {
            table: table.clone(),
            def: before,
        });
        operation(ctx, &table, op)?;
    }
    Ok(Output {
        tag: "ALTER TABLE".into(),
        ..Output::default()
    })
}

fn operation(ctx: &mut Ctx<'_>, table: &str, op: &AlterTableOperation) -> Result<()> {
    match op {
        AlterTableOperation::AddColumn {
            if_not_exists,
            column_def,
            ..
        } => {
            if *if_not_exists
                && ctx
                    .engine
                    .table(table)?
                    .def
                    .column(&ident(&column_def.name))
                    .is_some()
            {
                return Ok(());
            }
            add_column(ctx, table, column_def)
        }
        AlterTableOperation::DropColumn {
            column_names,
            if_exists,
            drop_behavior,
            ..
        } => {
            if matches!(drop_behavior, Some(ast::DropBehavior::Cascade)) {
                return Err(SqlError::unsupported("DROP COLUMN ... CASCADE").into());
            }
            for c in column_names {
                drop_column(ctx, table, &ident(c), *if_exists)?;
            }
            Ok(())
        }
        AlterTableOperation::RenameColumn {
            old_column_name,
            new_column_name,
        } => rename_column(
            ctx.engine,
            table,
            &ident(old_column_name),
            &ident(new_column_name),
        ),
        AlterTableOperation::AddConstraint {
            constraint,
            not_valid,
        } => add_constraint(ctx, table, constraint, *not_valid),
        AlterTableOperation::DropConstraint {
            if_exists,
            name,
            drop_behavior,
        } => {
            if matches!(drop_behavior, Some(ast::DropBehavior::Cascade)) {
                return Err(SqlError::unsupported("DROP CONSTRAINT ... CASCADE").into());
            }
            drop_constraint(ctx.engine, table, &ident(name), *if_exists)
        }
        AlterTableOperation::AlterColumn { column_name, op } => {
            alter_column(ctx, table, &ident(column_name), op)
        }
        other => Err(SqlError::unsupported(format!("ALTER TABLE {other}")).into()),
    }
}

/// The rows a statement of this transaction sees, with their ids.
pub(super) fn visible_rows(ctx: &Ctx<'_>, table: &str) -> Result<Vec<(RowId, Vec<Value>)>> {
    let t = ctx.engine.table(table)?;
    Ok(t.heap
        .scan(&ctx.snapshot, &ctx.engine.clog)
        .map(|(id, v)| (id, v.values.clone()))
        .collect())
}

fn add_column(ctx: &mut Ctx<'_>, table: &str, column_def: &ast::ColumnDef) -> Result<()> {
    let mut constraints = Vec::new();
    let column = catalog::column_from_ast(table, column_def, &mut constraints)?;
    let mut def = ctx.engine.table(table)?.def.clone();
    catalog::add_column(&mut def, column.clone())?;
    crate::generated::check_definitions(&def)?;
    let at = def.columns.len() - 1;
    // The new column's value in each row: its default (a SERIAL draws from its
    // sequence), computed for a generated column, else NULL.
    let rows: Vec<RowId> = ctx.engine.table(table)?.heap.rows.keys().copied().collect();
    let mut values: Vec<(RowId, Value)> = Vec::with_capacity(rows.len());
    for &row in &rows {
        let v = if column.serial {
            Value::Int(ctx.engine.next_serial(ctx.tx, table, at)?)
        } else if let Some(d) = &column.default {
            eval(d, &env(&Scope::default(), &[], ctx.params))?.cast(column.ty)?
        } else {
            Value::Null
        };
        values.push((row, v));
    }
    let t = ctx.engine.table_mut(table)?;
    for (row, v) in values {
        if let Some(chain) = t.heap.rows.get_mut(&row) {
            for version in chain.iter_mut() {
                version.values.push(v.clone());
                if column.generated.is_some() {
                    crate::generated::compute(&def, &mut version.values)?;
                }
            }
        }
    }
    t.def = def;
    if column.not_null {
        check_no_nulls(ctx, table, at)?;
    }
    for c in &constraints {
        add_constraint(ctx, table, c, false)?;
    }
    Ok(())
}

fn check_no_nulls(ctx: &Ctx<'_>, table: &str, column: usize) -> Result<()> {
    if visible_rows(ctx, table)?
        .iter()
        .any(|(_, v)| v[column].is_null())
    {
        let name = &ctx.engine.table(table)?.def.columns[column].name;
        return Err(SqlError::new(
            "23502",
            format!("column \"{name}\" of relation \"{table}\" contains null values"),
        )
        .into());
    }
    Ok(())
}

fn drop_column(ctx: &mut Ctx<'_>, table: &str, name: &str, if_exists: bool) -> Result<()> {
    let def = &ctx.engine.table(table)?.def;
    let Some(at) = def.column(name) else {
        if if_exists {
            return Ok(());
        }
        return Err(SqlError::new(
            "42703",
            format!("column \"{name}\" of relation \"{table}\" does not exist"),
        )
        .into());
    };
    // Another table's foreign key needs an index of ours that includes the column.
    for other in ctx.engine.tables.values() {
        for fk in &other.def.foreign_keys {
            if fk.parent == table && fk.parent_columns.contains(&at) && other.def.name != table {
                return Err(SqlError::new(
                    "2BP01",
                    format!("cannot drop column {name} of table {table} because other objects depend on it"),
                )
                .with_detail(format!(
                    "constraint {} on table {} depends on column {name} of table {table}",
                    fk.name, other.def.name
                ))
                .into());
            }
        }
    }
    if let Some(g) = def
        .columns
        .iter()
        .find(|c| c.generated.as_ref().is_some_and(|e| names(e, name)))
    {
        return Err(SqlError::new(
            "2BP01",
            format!(
                "cannot drop column {name} of table {table} because other objects depend on it"
            ),
        )
        .with_detail(format!(
            "column {} of table {table} depends on column {name}",
            g.name
        ))
        .into());
    }
    let t = ctx.engine.table_mut(table)?;
    let def = &mut t.def;
    let column = &mut def.columns[at];
    column.name = format!("{DROPPED_PREFIX}{}........", at + 1);
    column.dropped = true;
    column.not_null = false;
    column.default = None;
    column.serial = false;
    column.generated = None;
    // Its indexes (and the keys they enforce) and constraints go with it.
    def.indexes.retain(|i| !i.columns.contains(&at));
    def.foreign_keys.retain(|f| !f.columns.contains(&at));
    def.checks.retain(|c| !names(&c.expr, name));
    t.rebuild_indexes();
    Ok(())
}

/// Does `e` name column `column`? (Over its identifiers, by tokens.)
pub(super) fn names(e: &Expr, column: &str) -> bool {
    Tokenizer::new(&PostgreSqlDialect {}, &e.to_string())
        .tokenize()
        .unwrap_or_default()
        .iter()
        .any(|t| matches!(t, Token::Word(w) if word_is(w, column)))
}

fn word_is(w: &sqlparser::tokenizer::Word, column: &str) -> bool {
    if w.quote_style.is_some() {
        w.value == column
    } else {
        w.value.to_lowercase() == column
    }
}

/// `e` with every reference to column `from` renamed to `to`.
fn rename_in(e: &Expr, from: &str, to: &str) -> Expr {
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, &e.to_string()).tokenize() else {
        return e.clone();
    };
    let text: String = tokens
        .iter()
        .map(|t| match t {
            Token::Word(w) if word_is(w, from) => format!("\"{}\"", to.replace('"', "\"\"")),
            other => other.to_string(),
        })
        .collect();
    crate::parse::expression(&text).unwrap_or_else(|_| e.clone())
}

fn rename_column(engine: &mut Engine, table: &str, from: &str, to: &str) -> Result<()> {
    let t = engine.table_mut(table)?;
    let at = t.def.column_or_err(from)?;
    if t.def.column(to).is_some() {
        return Err(SqlError::new(
            "42701",
            format!("column \"{to}\" of relation \"{table}\" already exists"),
        )
        .into());
    }
    t.def.columns[at].name = to.to_string();
    // Expressions name columns by name here (PostgreSQL stores them by number).
    for c in &mut t.def.checks {
        c.expr = rename_in(&c.expr, from, to);
    }
    for c in &mut t.def.columns {
        if let Some(g) = &c.generated {
            c.generated = Some(rename_in(g, from, to));
        }
    }
    Ok(())
}

/// Renames a table in the catalog, and in the foreign keys that reference it.
pub fn rename_table(engine: &mut Engine, from: &str, to: &str) {
    let Some(mut t) = engine.tables.remove(from) else {
        return;
    };
    t.def.name = to.to_string();
    for fk in &mut t.def.foreign_keys {
        if fk.parent == from {
            fk.parent = to.to_string();
        }
    }
    for other in engine.tables.values_mut() {
        for fk in &mut other.def.foreign_keys {
            if fk.parent == from {
                fk.parent = to.to_string();
            }
        }
    }
    engine.tables.insert(to.to_string(), t);
}

fn add_constraint(
    ctx: &mut Ctx<'_>,
    table: &str,
    constraint: &ast::TableConstraint,
    not_valid: bool,
) -> Result<()> {
    let engine = &*ctx.engine;
    let mut def = engine.table(table)?.def.clone();
    catalog::add_constraint(&mut def, constraint, &|p| {
        engine.tables.get(p).map(|t| t.def.clone())
    })?;
    match constraint {
        ast::TableConstraint::PrimaryKey(_) | ast::TableConstraint::Unique(_) => {
            let Some(index) = def.indexes.last().cloned() else {
                return Ok(());
            };
            // The rows are read where they lie: a copy of each (a million, for
            // pgbench's accounts) would cost more than the check.
            let t = ctx.engine.table(table)?;
            let rows = t.heap.scan(&ctx.snapshot, &ctx.engine.clog);
            check_unique(&def, &index, rows.map(|(_, v)| v.values.as_slice()))?;
            let t = ctx.engine.table_mut(table)?;
            let tree = t.heap.build_index(&index.columns);
            t.heap.indexes.push(tree);
            t.def = def;
        }
        ast::TableConstraint::Check(_) => {
            let Some(check) = def.checks.last().cloned() else {
                return Ok(());
            };
            if !not_valid {
                let rows = visible_rows(ctx, table)?;
                let scope = ctx.engine.table(table)?.scope(table);
                check_holds(table, &check, &scope, &rows)?;
            }
            set_def(ctx.engine, table, def)?;
        }
        ast::TableConstraint::ForeignKey(_) => {
            set_def(ctx.engine, table, def)?;
            if !not_valid {
                // The write path's own check, for each row: the parent key must exist.
                let rows = visible_rows(ctx, table)?;
                for (id, v) in &rows {
                    ctx.engine.check_row(ctx.tx, table, v, Some(*id))?;
                }
            }
        }
        _ => set_def(ctx.engine, table, def)?,
    }
    Ok(())
}

/// Refuses a unique (or primary key) index whose key `rows` already repeat, or, for a
/// primary key, leave NULL. Duplicates are found by sorting the keys and comparing
/// neighbours — as PostgreSQL's index build finds them, while sorting — which on a
/// million rows is several times cheaper than hashing each key into a set.
pub(super) fn check_unique<'a>(
    def: &TableDef,
    index: &catalog::IndexDef,
    rows: impl Iterator<Item = &'a [Value]>,
) -> Result<()> {
    let table = &def.name;
    let mut keys = Vec::with_capacity(rows.size_hint().0);
    for v in rows {
        if index.primary
            && let Some(&c) = index.columns.iter().find(|&&c| v[c].is_null())
        {
            return Err(SqlError::new(
                "23502",
                format!(
                    "column \"{}\" of relation \"{table}\" contains null values",
                    def.columns[c].name
                ),
            )
            .into());
        }
        let key = IndexKey::new(key_of(v, &index.columns));
        if !key.as_slice().iter().any(Value::is_null) {
            keys.push(key); // NULLs are distinct: never a duplicate
        }
    }
    keys.sort_unstable();
    let duplicate = keys.windows(2).find(|pair| pair[0] == pair[1]);
    if let Some(pair) = duplicate {
        let key = pair[0].as_slice();
        return Err(SqlError::new(
            "23505",
            format!("could not create unique index \"{}\"", index.name),
        )
        .with_detail(format!(
            "Key ({})=({}) is duplicated.",
            index
                .columns
                .iter()
                .map(|&c| def.columns[c].name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            key.iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into());
    }
    Ok(())
}

/// Refuses a CHECK constraint that one of `rows` violates.
pub(super) fn check_holds(
    table: &str,
    check: &catalog::Check,
    scope: &Scope,
    rows: &[(RowId, Vec<Value>)],
) -> Result<()> {
    for (_, v) in rows {
        if eval(&check.expr, &env(scope, v, &[]))?.truthy()? == Some(false) {
            return Err(SqlError::new(
                "23514",
                format!(
                    "check constraint \"{}\" of relation \"{table}\" is violated by some row",
                    check.name
                ),
            )
            .into());
        }
    }
    Ok(())
}

fn set_def(engine: &mut Engine, table: &str, def: TableDef) -> Result<()> {
    engine.table_mut(table)?.def = def;
    Ok(())
}

fn drop_constraint(engine: &mut Engine, table: &str, name: &str, if_exists: bool) -> Result<()> {
    let t = engine.table(table)?;
    if let Some(at) = t
        .def
        .indexes
        .iter()
        .position(|i| i.name == name && i.constraint)
    {
        let columns = t.def.indexes[at].columns.clone();
        if let Some((child, fk)) = engine.tables.values().find_map(|o| {
            o.def
                .foreign_keys
                .iter()
                .find(|f| f.parent == table && f.parent_columns == columns)
                .map(|f| (o.def.name.clone(), f.name.clone()))
        }) && t
            .def
            .indexes
            .iter()
            .filter(|i| i.unique && i.columns == columns)
            .count()
            == 1
        {
            return Err(SqlError::new(
                "2BP01",
                format!("cannot drop constraint {name} on table {table} because other objects depend on it"),
            )
            .with_detail(format!(
                "constraint {fk} on table {child} depends on index {name}"
            ))
            .into());
        }
        let t = engine.table_mut(table)?;
        t.def.indexes.remove(at);
        t.heap.indexes.remove(at);
        return Ok(());
    }
    let t = engine.table_mut(table)?;
    let before = t.def.checks.len() + t.def.foreign_keys.len();
    t.def.checks.retain(|c| c.name != name);
    t.def.foreign_keys.retain(|f| f.name != name);
    if t.def.checks.len() + t.def.foreign_keys.len() == before && !if_exists {
        return Err(SqlError::new(
            "42704",
            format!("constraint \"{name}\" of relation \"{table}\" does not exist"),
        )
        .into());
    }
    Ok(())
}

fn alter_column(
    ctx: &mut Ctx<'_>,
    table: &str,
    column: &str,
    op: &AlterColumnOperation,
) -> Result<()> {
    let def = &ctx.engine.table(table)?.def;
    let at = def.column_or_err(column)?;
    let in_primary_key = def.primary_key().is_some_and(|pk| pk.columns.contains(&at));
    if let AlterColumnOperation::SetDataType {
        data_type, using, ..
    } = op
    {
        return super::alter_type::set_data_type(ctx, table, at, data_type, using.as_ref());
    }
    match op {
        AlterColumnOperation::SetNotNull => {
            check_no_nulls(ctx, table, at)?;
        }
        AlterColumnOperation::DropNotNull if in_primary_key => {
            return Err(
                SqlError::new("42P16", format!("column \"{column}\" is in a primary key")).into(),
            );
        }
        AlterColumnOperation::SetDefault { .. } | AlterColumnOperation::DropDefault
            if def.columns[at].generated.is_some() =>
        {
            return Err(SqlError::syntax(
                format!("column \"{column}\" of relation \"{table}\" is a generated column"),
                None,
            )
            .into());
        }
        AlterColumnOperation::DropNotNull
        | AlterColumnOperation::SetDefault { .. }
        | AlterColumnOperation::DropDefault => {}
        other => return Err(SqlError::unsupported(format!("ALTER COLUMN {other}")).into()),
    }
    let t = ctx.engine.table_mut(table)?;
    let c = &mut t.def.columns[at];
    match op {
        AlterColumnOperation::SetNotNull => c.not_null = true,
        AlterColumnOperation::DropNotNull => c.not_null = false,
        AlterColumnOperation::SetDefault { value } => {
            c.default = Some(value.clone());
            c.serial = false;
        }
        AlterColumnOperation::DropDefault => {
            c.default = None;
            c.serial = false;
        }
        _ => {}
    }
    Ok(())
}

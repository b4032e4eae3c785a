//! INSERT, UPDATE, DELETE (and COPY's rows): find the target rows as a query would,
//! then hand each to the engine's write path, which locks it and checks constraints.

use sqlparser::ast::{self, Expr, SelectItem, SetExpr, TableFactor};

use crate::catalog::{ident, object_name};
use crate::engine::{Halt, Result, Table};
use crate::error::SqlError;
use crate::expr::{Scope, eval, infer_type};
use crate::planner::plan_table;
use crate::storage::RowId;
use crate::types::Value;

use super::upsert::Upsert;
use super::{Ctx, Output, env, projection, query, scan_table, with_subqueries};

// ---- INSERT / UPDATE / DELETE ----

pub(super) fn insert_table(ins: &ast::Insert) -> std::result::Result<String, SqlError> {
    match &ins.table {
        ast::TableObject::TableName(n) => Ok(object_name(n)),
        _ => Err(SqlError::unsupported("INSERT into a table function")),
    }
}

pub(super) fn target_table(f: &TableFactor) -> std::result::Result<(String, String), SqlError> {
    match f {
        TableFactor::Table { name, alias, .. } => {
            let t = object_name(name);
            let a = alias
                .as_ref()
                .map(|a| ident(&a.name))
                .unwrap_or_else(|| t.clone());
            Ok((t, a))
        }
        other => Err(SqlError::unsupported(format!("target {other}"))),
    }
}

pub(super) fn delete_table(d: &ast::Delete) -> std::result::Result<(String, String), SqlError> {
    let from = match &d.from {
        ast::FromTable::WithFromKeyword(f) | ast::FromTable::WithoutKeyword(f) => f,
    };
    match from.first() {
        Some(t) if from.len() == 1 && t.joins.is_empty() && d.using.is_none() => {
            target_table(&t.relation)
        }
        _ => Err(SqlError::unsupported("DELETE with several tables or USING")),
    }
}

fn returning(
    table: &Table,
    items: &Option<Vec<SelectItem>>,
    rows: &[Vec<Value>],
    params: &[Value],
    tag: String,
) -> Result<Output> {
    let Some(items) = items else {
        return Ok(Output {
            tag,
            ..Output::default()
        });
    };
    let scope = table.scope(&table.def.name);
    let items = projection(items, &scope)?;
    let out: Vec<Vec<Value>> = rows
        .iter()
        .map(|r| {
            items
                .iter()
                .map(|(e, _)| eval(e, &env(&scope, r, params)))
                .collect()
        })
        .collect::<std::result::Result<_, _>>()?;
    Ok(Output {
        columns: items
            .iter()
            .map(|(e, n)| (n.clone(), infer_type(e, &scope)))
            .collect(),
        rows: out,
        tag,
        returns_rows: true,
        copy_in: None,
    })
}

pub(super) fn insert(ctx: &mut Ctx<'_>, ins: &ast::Insert) -> Result<Output> {
    let table = insert_table(ins)?;
    let def = ctx.engine.table(&table)?.def.clone();
    writable(&def)?;
    let mut upsert = Upsert::of(ins, &def)?;
    let targets: Vec<usize> = if ins.columns.is_empty() {
        def.live_columns()
    } else {
        ins.columns
            .iter()
            .map(|c| def.column_or_err(&object_name(c)))
            .collect::<std::result::Result<_, _>>()?
    };
    let source_rows: Vec<Vec<Option<Value>>> = match ins.source.as_deref().map(|q| q.body.as_ref())
    {
        Some(SetExpr::Values(v)) => {
            let empty = Scope::default();
            let mut rows = Vec::with_capacity(v.rows.len());
            for r in &v.rows {
                let mut row = Vec::with_capacity(r.len());
                for e in r.iter() {
                    // `DEFAULT` in a VALUES list parses as an identifier.
                    if crate::generated::is_default(e) {
                        row.push(None);
                    } else {
                        row.push(Some(eval(e, &env(&empty, &[], ctx.params))?));
                    }
                }
                rows.push(row);
            }
            rows
        }
        Some(_) => {
            let q = ins
                .source
                .as_deref()
                .ok_or_else(|| SqlError::syntax("INSERT without values", None))?;
            query(ctx, q)?
                .rows
                .into_iter()
                .map(|r| r.into_iter().map(Some).collect())
                .collect()
        }
        None => vec![Vec::new()],
    };
    let mut written = Vec::new();
    let mut count = 0usize;
    for src in source_rows {
        if src.len() > targets.len() {
            return Err(
                SqlError::syntax("INSERT has more expressions than target columns", None).into(),
            );
        }
        let mut values = vec![None; def.columns.len()];
        for (v, &col) in src.into_iter().zip(&targets) {
            if v.is_some() && def.columns[col].generated.is_some() {
                return Err(crate::generated::not_writable(&def.columns[col].name, false).into());
            }
            values[col] = v;
        }
        let mut row = Vec::with_capacity(values.len());
        for (i, (v, col)) in values.into_iter().zip(&def.columns).enumerate() {
            let v = match v {
                Some(v) => v,
                None if col.serial => Value::Int(ctx.engine.next_serial(ctx.tx, &table, i)?),
                None => match &col.default {
                    Some(d) => eval(d, &env(&Scope::default(), &[], ctx.params))?,
                    None => Value::Null,
                },
            };
            row.push(v.cast(col.ty)?);
        }
        match &mut upsert {
            // Without RETURNING the rows written are only counted: `INSERT ... SELECT`
            // of a million rows keeps no second copy of them.
            None if ins.returning.is_none() => {
                ctx.engine.insert(ctx.tx, &table, row)?;
                count += 1;
            }
            None => {
                ctx.engine.insert(ctx.tx, &table, row.clone())?;
                written.push(row);
            }
            Some(upsert) => written.extend(upsert.write(ctx, &table, row)?),
        }
    }
    let tag = format!("INSERT 0 {}", count + written.len());
    returning(
        ctx.engine.table(&table)?,
        &ins.returning,
        &written,
        ctx.params,
        tag,
    )
}

/// Rows of `table` matching `filter` in the snapshot, with their ids.
fn targets(
    ctx: &Ctx<'_>,
    table: &str,
    alias: &str,
    filter: Option<&Expr>,
) -> Result<Vec<(RowId, Vec<Value>)>> {
    let plan = plan_table(ctx.engine, table.into(), alias.into(), filter)?;
    let scope = ctx.engine.table(table)?.scope(alias);
    let rows = scan_table(ctx, &plan)?;
    // Matches in the snapshot, then (read committed) again on the newest version.
    let newest =
        |id, values| crate::isolation::newest_for_write(ctx.engine, ctx.tx, table, id, values);
    let Some(f) = filter else {
        let mut out = Vec::with_capacity(rows.len());
        for (id, values) in rows {
            crate::cancel::check_for_interrupts()?;
            if let Some(v) = newest(id, values)? {
                out.push((id, v));
            }
        }
        return Ok(out);
    };
    with_subqueries(ctx, |sub| {
        let matches = |values: &[Value]| -> Result<bool> {
            let e = crate::expr::Env {
                scope: &scope,
                row: values,
                params: ctx.params,
                aggregates: None,
                subquery: Some(sub),
                outer: None,
            };
            Ok(eval(f, &e)?.truthy()? == Some(true))
        };
        let mut out = Vec::new();
        for (id, values) in rows {
            crate::cancel::check_for_interrupts()?;
            if !matches(&values)? {
                continue;
            }
            match newest(id, values.clone())? {
                Some(v) if v == values => out.push((id, values)),
                Some(v) if matches(&v)? => out.push((id, v)),
                _ => {}
            }
        }
        Ok(out)
    })
}

pub(super) fn update(ctx: &mut Ctx<'_>, up: &ast::Update) -> Result<Output> {
    if up.from.is_some() || !up.table.joins.is_empty() {
        return Err(SqlError::unsupported("UPDATE ... FROM").into());
    }
    let (table, alias) = target_table(&up.table.relation)?;
    let t = ctx.engine.table(&table)?;
    writable(&t.def)?;
    let scope = t.scope(&alias);
    let mut sets = Vec::new();
    for a in &up.assignments {
        let name = match &a.target {
            ast::AssignmentTarget::ColumnName(n) => object_name(n),
            _ => return Err(SqlError::unsupported("tuple assignment").into()),
        };
        let col = t.def.column_or_err(&name)?;
        let column = &t.def.columns[col];
        let value = if crate::generated::is_default(&a.value) {
            // SET c = DEFAULT: the column's default (a generated column is recomputed).
            if column.generated.is_some() {
                continue;
            }
            column
                .default
                .clone()
                .unwrap_or(Expr::Value(ast::Value::Null.into()))
        } else if column.generated.is_some() {
            return Err(crate::generated::not_writable(&name, true).into());
        } else {
            a.value.clone()
        };
        sets.push((col, column.ty, value));
    }
    let rows = targets(ctx, &table, &alias, up.selection.as_ref())?;
    let mut written = Vec::with_capacity(rows.len());
    for (id, old) in rows {
        // `SET x = (SELECT ... WHERE other.k = t.k)`: a subquery may read the old row.
        let new = with_subqueries(ctx, |sub| -> Result<Vec<Value>> {
            let e = crate::expr::Env {
                subquery: Some(sub),
                ..env(&scope, &old, ctx.params)
            };
            let mut new = old.clone();
            for (col, ty, x) in &sets {
                new[*col] = eval(x, &e)?.cast(*ty)?;
            }
            Ok(new)
        })?;
        if ctx.engine.update(ctx.tx, &table, id, new.clone())? {
            written.push(new);
        }
    }
    let tag = format!("UPDATE {}", written.len());
    returning(
        ctx.engine.table(&table)?,
        &up.returning,
        &written,
        ctx.params,
        tag,
    )
}

pub(super) fn delete(ctx: &mut Ctx<'_>, del: &ast::Delete) -> Result<Output> {
    let (table, alias) = delete_table(del)?;
    writable(&ctx.engine.table(&table)?.def)?;
    let rows = targets(ctx, &table, &alias, del.selection.as_ref())?;
    let mut deleted = Vec::with_capacity(rows.len());
    for (id, old) in rows {
        if ctx.engine.delete(ctx.tx, &table, id)? {
            deleted.push(old);
        }
    }
    let tag = format!("DELETE {}", deleted.len());
    returning(
        ctx.engine.table(&table)?,
        &del.returning,
        &deleted,
        ctx.params,
        tag,
    )
}

/// Only tables take INSERT, UPDATE, DELETE and COPY: a materialized view changes by
/// `REFRESH MATERIALIZED VIEW` alone (42809, as PostgreSQL).
pub(crate) fn writable(def: &crate::catalog::TableDef) -> std::result::Result<(), SqlError> {
    if def.view.is_some() {
        return Err(SqlError::new(
            "42809",
            format!("cannot change materialized view \"{}\"", def.name),
        ));
    }
    Ok(())
}

/// Inserts rows given as text fields for `columns` (COPY): the other columns get their
/// defaults, and every field is converted to its column's type as an INSERT would.
/// `on_error` turns a failing row's error and its position in `rows` into the error
/// reported (COPY adds the line number). The table's definition is read once for the
/// whole batch, not once per row.
pub fn insert_text_rows(
    ctx: &mut Ctx<'_>,
    table: &str,
    columns: &[usize],
    rows: &[Vec<Option<String>>],
    on_error: impl Fn(SqlError, usize) -> SqlError,
) -> Result<()> {
    let def = ctx.engine.table(table)?.def.clone();
    writable(&def)?;
    if let Some(&c) = columns
        .iter()
        .find(|&&c| def.columns[c].generated.is_some())
    {
        return Err(crate::generated::not_writable(&def.columns[c].name, false).into());
    }
    let mut slot_of: Vec<Option<usize>> = vec![None; def.columns.len()];
    for (k, &c) in columns.iter().enumerate() {
        slot_of[c] = Some(k);
    }
    for (n, fields) in rows.iter().enumerate() {
        insert_text_row(ctx, &def, &slot_of, fields).map_err(|h| match h {
            Halt::Error(e) => Halt::Error(on_error(e, n)),
            wait => wait,
        })?;
    }
    Ok(())
}

/// One COPY row: `slot_of[column]` is the field that holds the column, if one does.
fn insert_text_row(
    ctx: &mut Ctx<'_>,
    def: &crate::catalog::TableDef,
    slot_of: &[Option<usize>],
    fields: &[Option<String>],
) -> Result<()> {
    let width = slot_of.iter().flatten().count();
    if fields.len() != width {
        return Err(SqlError::new(
            "22P04",
            format!(
                "expected {width} columns in a COPY row, found {}",
                fields.len()
            ),
        )
        .into());
    }
    let table = def.name.as_str();
    let mut row = Vec::with_capacity(def.columns.len());
    for (i, (slot, col)) in slot_of.iter().zip(&def.columns).enumerate() {
        let v = match slot.map(|k| &fields[k]) {
            Some(Some(text)) => {
                row.push(Value::from_text(text, col.ty)?);
                continue;
            }
            Some(None) => Value::Null,
            None if col.serial => Value::Int(ctx.engine.next_serial(ctx.tx, table, i)?),
            None => match &col.default {
                Some(d) => eval(d, &env(&Scope::default(), &[], &[]))?,
                None => Value::Null,
            },
        };
        row.push(v.cast(col.ty)?);
    }
    // COPY does not go through `execute`: its rows fire their triggers here.
    let result = ctx
        .engine
        .insert(ctx.tx, table, row)
        .and_then(|_| crate::triggers::fire(ctx));
    if result.is_err() {
        ctx.tx.events.clear();
    }
    result
}

//! `ALTER TABLE t ALTER COLUMN c [SET DATA] TYPE type [USING expr]`: changing a column's
//! type rewrites every row.
//!
//! Each stored value is converted to the new type — by the `USING` expression, which
//! sees the row as it was (so `USING amount * 100` or `USING trim(code)::int` work), or
//! without one by the *assignment cast* from the old type, the same conversion an INSERT
//! of an old-typed value into the new column would make. PostgreSQL only allows a
//! conversion without `USING` where that cast exists: any type to text, and between the
//! numeric types (rounding or refusing out-of-range values); text to integer, or integer
//! to boolean, need an explicit `USING` (42804, with the hint PostgreSQL gives). A value
//! that the conversion refuses fails the statement (22P02, 22003, 22001) and nothing
//! changes.
//!
//! After the rewrite the column's indexes are rebuilt (the keys changed type, so their
//! order may change too), and unique indexes and CHECK constraints are checked against
//! the converted rows. The old values are the undo record: a rollback puts them back.

use sqlparser::ast::{self, Expr};

use crate::engine::{Result, Undo};
use crate::error::SqlError;
use crate::expr::{eval, infer_type};
use crate::storage::RowId;
use crate::types::{DataType, Value};

use super::{Ctx, env};

/// Can a value of type `from` be stored in a column of type `to` without an explicit
/// cast (PostgreSQL's assignment casts between the types this server has)?
fn assignment_cast(from: DataType, to: DataType) -> bool {
    use DataType::*;
    let numeric = |t: DataType| matches!(t, SmallInt | Int | BigInt | Double | Numeric(_));
    let textual = |t: DataType| matches!(t, Text | Varchar(_));
    from == to
        || textual(to)
        || (numeric(from) && numeric(to))
        || matches!((from, to), (Timestamp, Timestamp) | (Bool, Bool))
}

pub(super) fn set_data_type(
    ctx: &mut Ctx<'_>,
    table: &str,
    at: usize,
    data_type: &ast::DataType,
    using: Option<&Expr>,
) -> Result<()> {
    let (ty, serial) = crate::catalog::data_type(data_type)?;
    if serial {
        // SERIAL is shorthand for a default and a sequence, not a type.
        return Err(SqlError::new(
            "42704",
            format!(
                "type \"{}\" does not exist",
                data_type.to_string().to_lowercase()
            ),
        )
        .into());
    }
    let type_name = crate::catalog::type_name(data_type, ty);
    let t = ctx.engine.table(table)?;
    let def = &t.def;
    let column = def.columns[at].name.clone();
    if let Some(g) = def.columns.iter().find(|c| {
        c.generated
            .as_ref()
            .is_some_and(|e| super::alter::names(e, &column))
    }) {
        return Err(SqlError::new(
            "0A000",
            "cannot alter type of a column used by a generated column",
        )
        .with_detail(format!(
            "Column \"{column}\" is used by generated column \"{}\".",
            g.name
        ))
        .into());
    }
    let in_foreign_key = ctx.engine.tables.values().any(|o| {
        o.def.foreign_keys.iter().any(|f| {
            (o.def.name == table && f.columns.contains(&at))
                || (f.parent == table && f.parent_columns.contains(&at))
        })
    });
    if in_foreign_key {
        return Err(SqlError::unsupported("ALTER COLUMN TYPE of a foreign key column").into());
    }
    let scope = t.scope(table);
    let from = match using {
        Some(e) => infer_type(e, &scope),
        None => def.columns[at].ty,
    };
    if !assignment_cast(from, ty) {
        let error = match using {
            Some(_) => SqlError::new(
                "42804",
                format!(
                    "result of USING clause for column \"{column}\" cannot be cast automatically to type {type_name}"
                ),
            )
            .with_hint("You might need to add an explicit cast."),
            None => SqlError::new(
                "42804",
                format!("column \"{column}\" cannot be cast automatically to type {type_name}"),
            )
            .with_hint(format!(
                "You might need to specify \"USING {column}::{type_name}\"."
            )),
        };
        return Err(error.into());
    }

    // Convert every version of every row; a conversion error fails the statement. The
    // versions this transaction cannot see are converted too (an old snapshot may still
    // read them), but their errors are not the statement's: they become NULL.
    let mut converted: Vec<(RowId, Vec<Value>)> = Vec::with_capacity(t.heap.rows.len());
    for (&row, chain) in &t.heap.rows {
        let mut values = Vec::with_capacity(chain.len());
        for version in chain {
            let old = &version.values;
            let new = match using {
                Some(e) => eval(e, &env(&scope, old, ctx.params)).and_then(|v| v.cast(ty)),
                None => old[at].clone().cast(ty),
            };
            let seen = ctx
                .snapshot
                .visible(version.xmin, version.xmax, &ctx.engine.clog);
            values.push(match new {
                Ok(v) => v,
                Err(e) if seen || crate::cancel::ran_long(&e) => return Err(e.into()),
                Err(_) => Value::Null,
            });
        }
        converted.push((row, values));
    }

    let t = ctx.engine.table_mut(table)?;
    let mut before = Vec::with_capacity(converted.len());
    for (row, values) in converted {
        let Some(chain) = t.heap.rows.get_mut(&row) else {
            continue;
        };
        let old: Vec<Value> = chain
            .iter_mut()
            .zip(values)
            .map(|(version, v)| std::mem::replace(&mut version.values[at], v))
            .collect();
        before.push((row, old));
    }
    ctx.tx.undo.push(Undo::RewroteColumn {
        table: table.to_string(),
        column: at,
        values: before,
    });
    let c = &mut t.def.columns[at];
    c.ty = ty;
    c.type_name = type_name;
    t.rebuild_indexes();

    // Keys that were distinct may now be equal (1.2 and 1.4 as integers), and a CHECK
    // may read the column differently.
    let rows = super::alter::visible_rows(ctx, table)?;
    let t = ctx.engine.table(table)?;
    for index in t.def.indexes.iter().filter(|i| i.unique) {
        super::alter::check_unique(&t.def, index, rows.iter().map(|(_, v)| v.as_slice()))?;
    }
    let scope = t.scope(table);
    for check in &t.def.checks {
        super::alter::check_holds(table, check, &scope, &rows)?;
    }
    Ok(())
}

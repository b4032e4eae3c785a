//! `INSERT ... ON CONFLICT`: insert a row, or — when a row with the same key already
//! exists — skip it (`DO NOTHING`) or update the existing row instead (`DO UPDATE`, the
//! "upsert").
//!
//! ```sql
//! INSERT INTO counters (name, hits) VALUES ('home', 1)
//!     ON CONFLICT (name) DO UPDATE SET hits = counters.hits + EXCLUDED.hits;
//! ```
//!
//! - The **conflict target** `(name)` names the columns of a unique index (or `ON
//!   CONSTRAINT counters_pkey` names it): that index is the *arbiter*, the one whose
//!   duplicates are resolved. A duplicate in any other unique index is still an error
//!   (23505). `DO NOTHING` may omit the target: then every unique index is an arbiter.
//! - `EXCLUDED` is the row that was proposed for insertion (after defaults); the plain
//!   table name (or its alias) is the existing row. An unqualified column in `SET` or
//!   `WHERE` is the existing row's, exactly as a subquery's own column shadows the outer
//!   query's (`EXCLUDED` is looked up as an outer row: [`crate::expr::Outer`]).
//! - `DO UPDATE ... WHERE cond` updates only when `cond` holds; otherwise the row is
//!   left as it is, and counts as neither inserted nor updated.
//!
//! Why it is atomic: the arbiter is probed for the newest live version of the key, as a
//! unique check is, and a key another running transaction is inserting or deleting makes
//! the statement wait for it and run again (see `engine`). So two sessions upserting the
//! same new key never both insert it, and neither fails with 23505: the second one sees
//! the first's committed row and updates it.

use std::collections::HashSet;

use sqlparser::ast::{self, Expr};

use crate::catalog::{TableDef, ident, object_name};
use crate::engine::{Engine, Result};
use crate::error::SqlError;
use crate::expr::{Env, Outer, eval};
use crate::storage::{RowId, key_of};
use crate::types::{DataType, Value};

use super::{Ctx, with_subqueries};

/// What to do with a proposed row whose key an arbiter index already holds.
enum Action<'q> {
    Nothing,
    Update {
        /// (column, its type, new value expression).
        sets: Vec<(usize, DataType, &'q Expr)>,
        filter: Option<&'q Expr>,
    },
}

/// An INSERT's `ON CONFLICT` clause, resolved against its table.
pub(super) struct Upsert<'q> {
    /// Indexes (positions in the table's index list) whose duplicates are resolved.
    arbiters: Vec<usize>,
    action: Action<'q>,
    /// The name the existing row goes by in `SET` and `WHERE`: the alias or the table.
    alias: String,
    /// Rows this statement inserted or updated: a second proposal for one of them is an
    /// error for `DO UPDATE` (which version should win?), as in PostgreSQL.
    touched: HashSet<RowId>,
}

impl<'q> Upsert<'q> {
    /// The clause of `ins` (`None` without `ON CONFLICT`).
    pub(super) fn of(ins: &'q ast::Insert, def: &TableDef) -> Result<Option<Upsert<'q>>> {
        let Some(ast::OnInsert::OnConflict(on)) = &ins.on else {
            return match &ins.on {
                None => Ok(None),
                Some(_) => Err(SqlError::unsupported("ON DUPLICATE KEY UPDATE").into()),
            };
        };
        let unique: Vec<usize> = (0..def.indexes.len())
            .filter(|&i| def.indexes[i].unique)
            .collect();
        let arbiters = match &on.conflict_target {
            None if matches!(on.action, ast::OnConflictAction::DoUpdate(_)) => {
                return Err(SqlError::syntax(
                    "ON CONFLICT DO UPDATE requires inference specification or constraint name",
                    None,
                )
                .into());
            }
            None => unique,
            Some(ast::ConflictTarget::Columns {
                predicate: Some(_), ..
            }) => {
                return Err(
                    SqlError::unsupported("ON CONFLICT (...) WHERE (partial indexes)").into(),
                );
            }
            Some(ast::ConflictTarget::Columns { columns, .. }) => {
                let mut wanted: Vec<usize> = columns
                    .iter()
                    .map(|c| def.column_or_err(&ident(c)))
                    .collect::<std::result::Result<_, _>>()?;
                wanted.sort_unstable();
                wanted.dedup();
                let matching: Vec<usize> = unique
                    .into_iter()
                    .filter(|&i| {
                        let mut cols = def.indexes[i].columns.clone();
                        cols.sort_unstable();
                        cols == wanted
                    })
                    .collect();
                if matching.is_empty() {
                    return Err(SqlError::new(
                        "42P10",
                        "there is no unique or exclusion constraint matching the ON CONFLICT specification",
                    )
                    .into());
                }
                matching
            }
            Some(ast::ConflictTarget::OnConstraint(name)) => {
                let name = object_name(name);
                let found = unique.into_iter().find(|&i| def.indexes[i].name == name);
                vec![found.ok_or_else(|| {
                    SqlError::new(
                        "42704",
                        format!(
                            "constraint \"{name}\" for table \"{}\" does not exist",
                            def.name
                        ),
                    )
                })?]
            }
        };
        let action = match &on.action {
            ast::OnConflictAction::DoNothing => Action::Nothing,
            ast::OnConflictAction::DoUpdate(update) => {
                let mut sets = Vec::with_capacity(update.assignments.len());
                for a in &update.assignments {
                    let ast::AssignmentTarget::ColumnName(name) = &a.target else {
                        return Err(SqlError::unsupported("tuple assignment").into());
                    };
                    let col = def.column_or_err(&object_name(name))?;
                    if def.columns[col].generated.is_some() {
                        // A generated column is recomputed from the row (see `generated`).
                        return Err(
                            crate::generated::not_writable(&def.columns[col].name, true).into()
                        );
                    }
                    sets.push((col, def.columns[col].ty, &a.value));
                }
                Action::Update {
                    sets,
                    filter: update.selection.as_ref(),
                }
            }
        };
        let alias = ins
            .table_alias
            .as_ref()
            .map(|a| ident(&a.alias))
            .unwrap_or_else(|| def.name.clone());
        Ok(Some(Upsert {
            arbiters,
            action,
            alias,
            touched: HashSet::new(),
        }))
    }

    /// Inserts `row` into `table`, or resolves its conflict. Returns the row as written
    /// (inserted or updated) for RETURNING and the command tag; `None` when nothing was.
    pub(super) fn write(
        &mut self,
        ctx: &mut Ctx<'_>,
        table: &str,
        row: Vec<Value>,
    ) -> Result<Option<Vec<Value>>> {
        let Some((existing_id, existing)) = self.conflict(ctx.engine, ctx.tx.id, table, &row)?
        else {
            let id = ctx.engine.insert(ctx.tx, table, row.clone())?;
            self.touched.insert(id);
            return Ok(Some(row));
        };
        let Action::Update { sets, filter } = &self.action else {
            return Ok(None);
        };
        if !self.touched.insert(existing_id) {
            return Err(SqlError::new(
                "21000",
                "ON CONFLICT DO UPDATE command cannot affect row a second time",
            )
            .with_detail(
                "Ensure that no rows proposed for insertion within the same command have duplicate constrained values.",
            )
            .into());
        }
        let t = ctx.engine.table(table)?;
        let (scope, excluded_scope) = (t.scope(&self.alias), t.scope("excluded"));
        let new = with_subqueries(ctx, |sub| -> Result<Option<Vec<Value>>> {
            let excluded = Env {
                scope: &excluded_scope,
                row: &row,
                params: ctx.params,
                aggregates: None,
                subquery: Some(sub),
                outer: None,
            };
            let outer = Outer::new(&excluded);
            let env = Env {
                scope: &scope,
                row: &existing,
                params: ctx.params,
                aggregates: None,
                subquery: Some(sub),
                outer: Some(&outer),
            };
            if let Some(f) = filter
                && eval(f, &env)?.truthy()? != Some(true)
            {
                return Ok(None);
            }
            let mut new = existing.clone();
            for (col, ty, e) in sets {
                new[*col] = eval(e, &env)?.cast(*ty)?;
            }
            Ok(Some(new))
        })?;
        let Some(new) = new else { return Ok(None) };
        Ok(ctx
            .engine
            .update(ctx.tx, table, existing_id, new.clone())?
            .then_some(new))
    }

    /// The live row holding `row`'s key in an arbiter index, with its values. Like a
    /// unique check it reads the newest version, not the snapshot, and waits for a
    /// running transaction that is writing that key.
    fn conflict(
        &self,
        engine: &Engine,
        me: crate::mvcc::TxId,
        table: &str,
        row: &[Value],
    ) -> Result<Option<(RowId, Vec<Value>)>> {
        let t = engine.table(table)?;
        for &i in &self.arbiters {
            let columns = &t.def.indexes[i].columns;
            let key = key_of(row, columns);
            if key.iter().any(Value::is_null) {
                continue; // NULLs never conflict
            }
            for id in t.heap.lookup(i, &key) {
                if let Some(v) = Engine::live_newest(&engine.clog, &t.heap, id, me)?
                    && key_of(&v.values, columns) == key
                {
                    return Ok(Some((id, v.values.clone())));
                }
            }
        }
        Ok(None)
    }
}

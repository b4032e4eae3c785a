//! The point lookup: `SELECT a, b FROM t WHERE key = $1`, where `key` is a unique index's
//! columns — the most common query an application sends (pgbench's select-only
//! transaction is exactly this), so it gets a path of its own.
//!
//! The general pipeline (see `select_rows`) copies every visible row it scans out of the
//! table, evaluates WHERE on the copy, then evaluates each select item as an expression.
//! For a point lookup all of that is known in advance: the index finds at most one row,
//! the select list is a list of column positions, so the row is read *in place* and only
//! the columns asked for are copied (pgbench's `abalance`, not its 84-byte `filler`).
//! The WHERE clause is still evaluated on the row, as every index scan's caller does: the
//! index finds candidates, the predicate decides.
//!
//! [`PointQuery::compile`] recognises the shape (anything else returns `None` and takes
//! the general path); a prepared statement keeps the compiled form in its plan cache.

use sqlparser::ast::{self, Expr, GroupByExpr, SetExpr, Statement};

use super::{Ctx, Output, env, lookup_key, projection, read_lock};
use crate::engine::{Engine, Result};
use crate::expr::{Scope, eval, infer_type};
use crate::planner::{Plan, conjuncts, is_constant, plan_table};
use crate::types::{DataType, Value};

/// A compiled point lookup, valid for the catalog it was compiled against.
#[derive(Debug)]
pub struct PointQuery {
    table: String,
    /// The unique index looked up, and the expressions (literals, parameters) giving its
    /// key, one per indexed column.
    index: usize,
    key: Vec<Expr>,
    /// Rechecked on the row found.
    filter: Expr,
    scope: Scope,
    /// The row's columns the select list names, in output order.
    project: Vec<usize>,
    columns: Vec<(String, DataType)>,
}

impl PointQuery {
    /// `stmt` as a point lookup, if it is one: a plain SELECT of columns from one table
    /// whose WHERE clause is only `column = constant` terms that pin a unique index.
    pub fn compile(engine: &Engine, stmt: &Statement) -> Option<PointQuery> {
        let Statement::Query(q) = stmt else {
            return None;
        };
        let plain_query = q.with.is_none()
            && q.order_by.is_none()
            && q.limit_clause.is_none()
            && q.fetch.is_none()
            && q.locks.is_empty()
            && q.for_clause.is_none()
            && q.settings.is_none()
            && q.format_clause.is_none()
            && q.pipe_operators.is_empty();
        let SetExpr::Select(s) = q.body.as_ref() else {
            return None;
        };
        let plain_select = s.distinct.is_none()
            && s.select_modifiers.is_none()
            && s.top.is_none()
            && s.exclude.is_none()
            && s.into.is_none()
            && s.lateral_views.is_empty()
            && s.prewhere.is_none()
            && s.connect_by.is_empty()
            && matches!(&s.group_by, GroupByExpr::Expressions(g, m) if g.is_empty() && m.is_empty())
            && s.cluster_by.is_empty()
            && s.distribute_by.is_empty()
            && s.sort_by.is_empty()
            && s.having.is_none()
            && s.named_window.is_empty()
            && s.qualify.is_none()
            && s.value_table_mode.is_none()
            && matches!(s.flavor, ast::SelectFlavor::Standard);
        let filter = s.selection.as_ref()?;
        let [from] = s.from.as_slice() else {
            return None;
        };
        if !plain_query || !plain_select || !from.joins.is_empty() {
            return None;
        }
        // Every WHERE term pins a column to a constant: nothing is left for a subquery
        // or a function to do.
        let only_pins = conjuncts(filter).into_iter().all(|c| match c {
            Expr::BinaryOp {
                left,
                op: ast::BinaryOperator::Eq,
                right,
            } => is_constant(left) || is_constant(right),
            _ => false,
        });
        let ast::TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } = &from.relation
        else {
            return None;
        };
        if !only_pins {
            return None;
        }
        let table = crate::catalog::object_name(name);
        let alias = alias
            .as_ref()
            .map(|a| crate::catalog::ident(&a.name))
            .unwrap_or_else(|| table.clone());
        let t = engine.table(&table).ok()?;
        let Plan::IndexScan { index, key, .. } =
            plan_table(engine, table.clone(), alias.clone(), Some(filter)).ok()?
        else {
            return None;
        };
        if !t.def.indexes.get(index)?.unique {
            return None;
        }
        let scope = t.scope(&alias);
        let items = projection(&s.projection, &scope).ok()?;
        let project = items
            .iter()
            .map(|(e, _)| scope.column_of(e))
            .collect::<Option<Vec<usize>>>()?;
        let columns = items
            .iter()
            .map(|(e, name)| (name.clone(), infer_type(e, &scope)))
            .collect();
        Some(PointQuery {
            table,
            index,
            key,
            filter: filter.clone(),
            scope,
            project,
            columns,
        })
    }

    /// Runs the lookup in `ctx`'s snapshot; `None` when the key cannot be looked up (a
    /// parameter its column's type cannot hold exactly): the general path then scans.
    pub fn run(&self, ctx: &Ctx<'_>) -> Option<Result<Output>> {
        let t = match ctx.engine.table(&self.table) {
            Ok(t) => t,
            Err(e) => return Some(Err(e.into())),
        };
        let key = match lookup_key(ctx, t, self.index, &self.key) {
            Ok(Some(key)) => key,
            Ok(None) => return None,
            Err(e) => return Some(Err(e)),
        };
        Some(self.read(ctx, t, &key))
    }

    fn read(&self, ctx: &Ctx<'_>, t: &crate::engine::Table, key: &[Value]) -> Result<Output> {
        read_lock(ctx, t, Some((self.index, key)))?;
        let mut rows = Vec::with_capacity(1);
        for id in t.heap.lookup(self.index, key) {
            let Some(version) = t.heap.visible(id, &ctx.snapshot, &ctx.engine.clog) else {
                continue;
            };
            let row = &version.values;
            if eval(&self.filter, &env(&self.scope, row, ctx.params))?.truthy()? == Some(true) {
                rows.push(
                    self.project
                        .iter()
                        .map(|&c| row.get(c).cloned().unwrap_or(Value::Null))
                        .collect(),
                );
            }
        }
        Ok(Output {
            tag: format!("SELECT {}", rows.len()),
            columns: self.columns.clone(),
            rows,
            returns_rows: true,
            copy_in: None,
        })
    }
}

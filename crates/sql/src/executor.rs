//! The executor: runs one parsed statement inside a transaction.
//!
//! Queries run the planner's scan/join tree, then the classic pipeline:
//! WHERE -> GROUP BY/aggregates -> HAVING -> SELECT list -> DISTINCT -> ORDER BY ->
//! OFFSET/LIMIT. Writes find their target rows the same way (with row ids), then call the
//! engine's write path, which locks rows and checks constraints.

use std::collections::HashMap;

use sqlparser::ast::{
    self, Expr, GroupByExpr, LimitClause, ObjectType, OrderByKind, SelectItem, SetExpr, Statement,
};

use crate::cancel::check_for_interrupts;
use crate::catalog::ident;
use crate::engine::{Engine, Halt, Result, TxState};
use crate::error::SqlError;
use crate::expr::{Env, Outer, Scope, Subquery, eval, function_name, infer_type};
use crate::mvcc::Snapshot;
use crate::planner::{Plan, plan_from};
use crate::storage::RowId;
use crate::types::{DataType, Value};

mod aggregate;
mod alter;
mod alter_type;
mod ddl;
mod dml;
mod explain;
mod matview;
mod order;
mod point;
mod subquery;
mod upsert;

pub use alter::rename_table;
pub use matview::relations;
pub use point::PointQuery;

use aggregate::{aggregate, collect_aggregates};

pub use dml::insert_text_rows;
use dml::{delete_table, insert_table, target_table};
pub(crate) use subquery::with_subqueries;

/// A statement's result: rows (possibly none) and the command tag.
#[derive(Debug, Default)]
pub struct Output {
    pub columns: Vec<(String, DataType)>,
    pub rows: Vec<Vec<Value>>,
    pub tag: String,
    /// Whether this statement returns rows (SELECT, RETURNING) even if there are none.
    pub returns_rows: bool,
    /// `COPY ... FROM STDIN` started, with this many columns.
    pub copy_in: Option<usize>,
}

pub struct Ctx<'a> {
    pub engine: &'a mut Engine,
    pub tx: &'a mut TxState,
    pub snapshot: Snapshot,
    pub params: &'a [Value],
    /// A subquery that had to wait for a lock (serializable reads): subqueries report
    /// errors as `SqlError`, so the wait is left here for the session to find.
    pub waited_in_subquery: std::cell::Cell<Option<crate::mvcc::TxId>>,
}

pub(crate) fn env<'a>(scope: &'a Scope, row: &'a [Value], params: &'a [Value]) -> Env<'a> {
    Env {
        scope,
        row,
        params,
        aggregates: None,
        subquery: None,
        outer: None,
    }
}

/// Runs one statement, then the AFTER ROW triggers its row changes queued (see
/// `triggers`). On failure the queued events are dropped with the statement's work.
pub fn execute(ctx: &mut Ctx<'_>, stmt: &Statement) -> Result<Output> {
    let result = statement(ctx, stmt).and_then(|out| {
        crate::triggers::fire(ctx)?;
        Ok(out)
    });
    if result.is_err() {
        ctx.tx.events.clear();
    }
    result
}

/// One statement without firing triggers (the trigger runner calls this for the
/// statements of a trigger function, and fires what they queue itself).
pub(crate) fn statement(ctx: &mut Ctx<'_>, stmt: &Statement) -> Result<Output> {
    match stmt {
        Statement::Query(q) => query(ctx, q),
        Statement::Insert(ins) => dml::insert(ctx, ins),
        Statement::Update(up) => dml::update(ctx, up),
        Statement::Delete(del) => dml::delete(ctx, del),
        Statement::CreateTable(create) => ddl::create_table(ctx, create, stmt),
        Statement::CreateIndex(create) => ddl::create_index(ctx, create, stmt),
        Statement::Drop {
            object_type: ObjectType::Table,
            if_exists,
            names,
            cascade,
            ..
        } => ddl::drop_tables(ctx, names, *if_exists, *cascade, stmt, false),
        Statement::Drop {
            object_type: ObjectType::MaterializedView,
            if_exists,
            names,
            cascade,
            ..
        } => ddl::drop_tables(ctx, names, *if_exists, *cascade, stmt, true),
        Statement::Drop {
            object_type: ObjectType::Index,
            if_exists,
            names,
            ..
        } => ddl::drop_indexes(ctx, names, *if_exists, stmt),
        Statement::CreateView(view) if view.materialized => matview::create(ctx, view, stmt),
        Statement::RefreshMaterializedView(r) => matview::refresh(ctx, r),
        Statement::CreateFunction(f) => crate::triggers::create_function(ctx, f, stmt),
        Statement::CreateTrigger(t) => crate::triggers::create_trigger(ctx, t, stmt),
        Statement::DropTrigger(d) => crate::triggers::drop_trigger(ctx, d, stmt),
        Statement::DropFunction(d) => crate::triggers::drop_function(ctx, d, stmt),
        Statement::Explain { statement, .. } => explain::explain(ctx, statement),
        Statement::Truncate(t) => ddl::truncate(ctx, t, stmt),
        Statement::AlterTable(alter) => alter::alter_table(ctx, alter, stmt),
        other => Err(SqlError::unsupported(
            other
                .to_string()
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" "),
        )
        .into()),
    }
}

/// The most rows one `generate_series` may produce (results are built in memory).
const MAX_SERIES_ROWS: i64 = 10_000_000;

// ---- scans ----

/// Runs a single-table plan, returning row ids with the visible values.
pub(crate) fn scan_table(ctx: &Ctx<'_>, plan: &Plan) -> Result<Vec<(RowId, Vec<Value>)>> {
    let (table, index_key) = match plan {
        Plan::SeqScan { table, .. } => (table, None),
        Plan::IndexScan {
            table, index, key, ..
        } => (table, Some((index, key))),
        _ => return Err(SqlError::unsupported("this plan shape").into()),
    };
    let t = ctx.engine.table(table)?;
    let clog = &ctx.engine.clog;
    let key = match index_key {
        Some((index, key)) => lookup_key(ctx, t, *index, key)?.map(|k| (*index, k)),
        None => None,
    };
    let Some((index, key)) = key else {
        read_lock(ctx, t, None)?;
        return Ok(t
            .heap
            .scan(&ctx.snapshot, clog)
            .map(|(id, v)| (id, v.values.clone()))
            .collect());
    };
    read_lock(ctx, t, Some((index, &key)))?;
    Ok(t.heap
        .lookup(index, &key)
        .into_iter()
        .filter_map(|id| {
            t.heap
                .visible(id, &ctx.snapshot, clog)
                .map(|v| (id, v.values.clone()))
        })
        .collect())
}

/// The key an index scan looks up: `key`'s expressions evaluated, in the indexed
/// columns' types. `None` when a value cannot be held exactly by its column's type (1.5
/// or 2^40 against an INT column): such a key cannot be looked up, so the caller reads
/// every row instead and lets the WHERE clause, which every caller rechecks, decide.
pub(crate) fn lookup_key(
    ctx: &Ctx<'_>,
    t: &crate::engine::Table,
    index: usize,
    key: &[Expr],
) -> Result<Option<Vec<Value>>> {
    let empty = Scope::default();
    let mut values = Vec::with_capacity(key.len());
    for (e, &c) in key.iter().zip(&t.def.indexes[index].columns) {
        let v = eval(e, &env(&empty, &[], ctx.params))?;
        match v.clone().cast(t.def.columns[c].ty) {
            Ok(cast) if cast == v => values.push(cast),
            _ => return Ok(None),
        }
    }
    Ok(Some(values))
}

/// Serializable reads leave a predicate lock on what they read (the key looked up, or
/// the whole table for a scan); the other levels read without one.
pub(crate) fn read_lock(
    ctx: &Ctx<'_>,
    t: &crate::engine::Table,
    index_key: Option<(usize, &[Value])>,
) -> Result<()> {
    if !ctx.tx.isolation.locking_reads() {
        return Ok(());
    }
    crate::predicate_locks::before_read(
        &ctx.engine.predicate_locks,
        &ctx.engine.clog,
        ctx.tx.id,
        t,
        index_key,
    )
}

fn run(ctx: &Ctx<'_>, plan: &Plan) -> Result<Vec<Vec<Value>>> {
    Ok(match plan {
        Plan::Empty => vec![Vec::new()],
        Plan::Series { args, .. } => {
            let empty = Scope::default();
            let mut v = Vec::with_capacity(3);
            for a in args {
                v.push(eval(a, &env(&empty, &[], ctx.params))?.cast(DataType::BigInt)?);
            }
            let (start, stop, step) = match v.as_slice() {
                [Value::Int(a), Value::Int(b)] => (*a, *b, 1),
                [Value::Int(a), Value::Int(b), Value::Int(c)] => (*a, *b, *c),
                _ if v.iter().any(Value::is_null) => return Ok(Vec::new()),
                _ => {
                    return Err(SqlError::undefined_function(
                        "function generate_series takes 2 or 3 integers",
                    )
                    .into());
                }
            };
            if step == 0 {
                return Err(SqlError::new("22023", "step size cannot equal zero").into());
            }
            let count = if (step > 0 && stop < start) || (step < 0 && stop > start) {
                0
            } else {
                (stop as i128 - start as i128) / step as i128 + 1
            };
            if count > MAX_SERIES_ROWS as i128 {
                return Err(SqlError::new(
                    "54000",
                    format!("generate_series would produce more than {MAX_SERIES_ROWS} rows"),
                )
                .into());
            }
            let mut rows = Vec::with_capacity(count.min(1 << 16) as usize);
            for i in 0..count as i64 {
                check_for_interrupts()?;
                rows.push(vec![Value::Int(start + i * step)]);
            }
            rows
        }
        Plan::SeqScan { .. } | Plan::IndexScan { .. } => {
            scan_table(ctx, plan)?.into_iter().map(|(_, v)| v).collect()
        }
        Plan::HashJoin {
            left,
            right,
            left_keys,
            right_keys,
            on,
            outer,
        } => {
            let (ls, rs) = (left.scope(ctx.engine)?, right.scope(ctx.engine)?);
            let mut scope = ls.clone();
            scope.columns.extend(rs.columns.iter().cloned());
            let right_rows = run(ctx, right)?;
            let right_width = rs.columns.len();
            let mut table: HashMap<Vec<Value>, Vec<usize>> = HashMap::new();
            for (i, r) in right_rows.iter().enumerate() {
                check_for_interrupts()?;
                let key: Vec<Value> = right_keys
                    .iter()
                    .map(|k| eval(k, &env(&rs, r, ctx.params)))
                    .collect::<std::result::Result<_, _>>()?;
                if !key.iter().any(Value::is_null) {
                    table.entry(key).or_default().push(i);
                }
            }
            let mut out = Vec::new();
            for l in run(ctx, left)? {
                check_for_interrupts()?;
                let key: Vec<Value> = left_keys
                    .iter()
                    .map(|k| eval(k, &env(&ls, &l, ctx.params)))
                    .collect::<std::result::Result<_, _>>()?;
                let mut matched = false;
                for &i in table.get(&key).map(Vec::as_slice).unwrap_or(&[]) {
                    let mut row = l.clone();
                    row.extend(right_rows[i].iter().cloned());
                    if eval(on, &env(&scope, &row, ctx.params))?.truthy()? == Some(true) {
                        matched = true;
                        out.push(row);
                    }
                }
                if *outer && !matched {
                    let mut row = l;
                    row.extend(std::iter::repeat_n(Value::Null, right_width));
                    out.push(row);
                }
            }
            out
        }
        Plan::NestedLoop {
            left,
            right,
            on,
            outer,
        } => {
            let mut scope = left.scope(ctx.engine)?;
            let rs = right.scope(ctx.engine)?;
            let right_width = rs.columns.len();
            scope.columns.extend(rs.columns);
            let right_rows = run(ctx, right)?;
            let mut out = Vec::new();
            for l in run(ctx, left)? {
                let mut matched = false;
                for r in &right_rows {
                    check_for_interrupts()?;
                    let mut row = l.clone();
                    row.extend(r.iter().cloned());
                    let keep = match on {
                        Some(on) => {
                            eval(on, &env(&scope, &row, ctx.params))?.truthy()? == Some(true)
                        }
                        None => true,
                    };
                    if keep {
                        matched = true;
                        out.push(row);
                    }
                }
                if *outer && !matched {
                    let mut row = l;
                    row.extend(std::iter::repeat_n(Value::Null, right_width));
                    out.push(row);
                }
            }
            out
        }
    })
}

// ---- SELECT ----

/// The select list's (expression, output name); `*` expanded.
pub(crate) fn projection(items: &[SelectItem], scope: &Scope) -> Result<Vec<(Expr, String)>> {
    let mut out = Vec::new();
    for item in items {
        match item {
            SelectItem::UnnamedExpr(e) => out.push((e.clone(), column_name(e))),
            SelectItem::ExprWithAlias { expr, alias } => out.push((expr.clone(), ident(alias))),
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                let qualifier = match item {
                    SelectItem::QualifiedWildcard(kind, _) => Some(kind.to_string().to_lowercase()),
                    _ => None,
                };
                for (t, c, _) in &scope.columns {
                    if qualifier.as_ref().is_none_or(|q| q == t)
                        && !c.starts_with(crate::catalog::DROPPED_PREFIX)
                    {
                        out.push((
                            Expr::CompoundIdentifier(vec![
                                ast::Ident::with_quote('"', t),
                                ast::Ident::with_quote('"', c),
                            ]),
                            c.clone(),
                        ));
                    }
                }
            }
            other => return Err(SqlError::unsupported(format!("select item {other}")).into()),
        }
    }
    Ok(out)
}

fn column_name(e: &Expr) -> String {
    match e {
        Expr::Identifier(i) => ident(i),
        Expr::CompoundIdentifier(parts) => parts.last().map(ident).unwrap_or_default(),
        Expr::Function(f) => function_name(f),
        Expr::Cast { expr, .. } => column_name(expr),
        Expr::Nested(e) => column_name(e),
        _ => "?column?".into(),
    }
}

fn const_usize(e: &Expr, params: &[Value]) -> Result<usize> {
    let empty = Scope::default();
    match eval(e, &env(&empty, &[], params))?.cast(DataType::BigInt)? {
        Value::Int(n) if n >= 0 => Ok(n as usize),
        Value::Null => Ok(usize::MAX),
        _ => Err(SqlError::new("2201W", "LIMIT must not be negative").into()),
    }
}

/// One output unit of a query: a representative row and, when grouped, its aggregates.
type Unit = (Vec<Value>, Option<HashMap<String, Value>>);

pub(crate) fn query(ctx: &Ctx<'_>, q: &ast::Query) -> Result<Output> {
    query_with(ctx, q, None)
}

/// Runs a query; `outer` is the enclosing query's row when this is a subquery (a name
/// not found in this query's FROM items is looked up there: see [`Outer`]).
pub(crate) fn query_with(
    ctx: &Ctx<'_>,
    q: &ast::Query,
    outer: Option<&Outer<'_>>,
) -> Result<Output> {
    let select = match q.body.as_ref() {
        SetExpr::Select(s) => s,
        SetExpr::Values(v) => return values_query(ctx, v),
        SetExpr::SetOperation {
            left,
            op: ast::SetOperator::Union,
            set_quantifier,
            right,
        } => return union(ctx, q, left, right, *set_quantifier, outer),
        other => {
            return Err(SqlError::unsupported(format!(
                "query {}",
                other.to_string().chars().take(40).collect::<String>()
            ))
            .into());
        }
    };
    let plan = plan_from(ctx.engine, &select.from, select.selection.as_ref())?;
    let scope = plan.scope(ctx.engine)?;
    let items = projection(&select.projection, &scope)?;
    let columns: Vec<(String, DataType)> = items
        .iter()
        .map(|(e, name)| (name.clone(), infer_type(e, &scope)))
        .collect();
    with_subqueries(ctx, |sub| {
        select_rows(ctx, q, select, &plan, &scope, &items, columns, sub, outer)
    })
}

/// `left UNION [ALL] right`, then the query's ORDER BY (by output column name or
/// position) and LIMIT/OFFSET. Without ALL, duplicate rows are removed.
fn union(
    ctx: &Ctx<'_>,
    q: &ast::Query,
    left: &SetExpr,
    right: &SetExpr,
    quantifier: ast::SetQuantifier,
    outer: Option<&Outer<'_>>,
) -> Result<Output> {
    let part = |body: &SetExpr| {
        let mut sub = q.clone();
        *sub.body = body.clone();
        sub.order_by = None;
        sub.limit_clause = None;
        query_with(ctx, &sub, outer)
    };
    let mut out = part(left)?;
    let more = part(right)?;
    if more.columns.len() != out.columns.len() {
        return Err(SqlError::syntax(
            "each UNION query must have the same number of columns",
            None,
        )
        .into());
    }
    out.rows.extend(more.rows);
    if !matches!(quantifier, ast::SetQuantifier::All) {
        let mut seen = std::collections::HashSet::new();
        out.rows.retain(|r| seen.insert(r.clone()));
    }
    if let Some(OrderByKind::Expressions(order)) = q.order_by.as_ref().map(|o| &o.kind) {
        let mut keys = Vec::with_capacity(order.len());
        for o in order {
            let at = match &o.expr {
                Expr::Value(v) => match &v.value {
                    ast::Value::Number(n, _) => {
                        n.parse::<usize>().ok().and_then(|k| k.checked_sub(1))
                    }
                    _ => None,
                },
                Expr::Identifier(i) => out.columns.iter().position(|(name, _)| *name == ident(i)),
                _ => None,
            }
            .filter(|&k| k < out.columns.len())
            .ok_or_else(|| SqlError::unsupported(format!("ORDER BY {} on a UNION", o.expr)))?;
            keys.push((at, matches!(o.options.sort, Some(ast::OrderBySort::Desc))));
        }
        out.rows.sort_by(|a, b| {
            keys.iter()
                .map(|&(k, desc)| {
                    if desc {
                        b[k].cmp(&a[k])
                    } else {
                        a[k].cmp(&b[k])
                    }
                })
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
    }
    let (limit, offset) = match &q.limit_clause {
        Some(LimitClause::LimitOffset { limit, offset, .. }) => (
            limit
                .as_ref()
                .map(|l| const_usize(l, ctx.params))
                .transpose()?,
            offset
                .as_ref()
                .map(|o| const_usize(&o.value, ctx.params))
                .transpose()?,
        ),
        _ => (None, None),
    };
    out.rows = std::mem::take(&mut out.rows)
        .into_iter()
        .skip(offset.unwrap_or(0))
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    out.tag = format!("SELECT {}", out.rows.len());
    Ok(out)
}

/// The pipeline after the scan: WHERE, grouping, projection, DISTINCT, ORDER BY, LIMIT.
#[allow(clippy::too_many_arguments)]
fn select_rows(
    ctx: &Ctx<'_>,
    q: &ast::Query,
    select: &ast::Select,
    plan: &Plan,
    scope: &Scope,
    items: &[(Expr, String)],
    columns: Vec<(String, DataType)>,
    sub: &Subquery<'_>,
    outer: Option<&Outer<'_>>,
) -> Result<Output> {
    let mut rows = run(ctx, plan)?;
    if let Some(w) = &select.selection {
        let mut kept = Vec::with_capacity(rows.len());
        for r in rows {
            check_for_interrupts()?;
            let e = Env {
                scope,
                row: &r,
                params: ctx.params,
                aggregates: None,
                subquery: Some(sub),
                outer,
            };
            if eval(w, &e)?.truthy()? == Some(true) {
                kept.push(r);
            }
        }
        rows = kept;
    }
    let group_by: Vec<Expr> = match &select.group_by {
        GroupByExpr::Expressions(e, _) => e.clone(),
        GroupByExpr::All(_) => return Err(SqlError::unsupported("GROUP BY ALL").into()),
    };
    let order: Vec<ast::OrderByExpr> = match q.order_by.as_ref().map(|o| &o.kind) {
        Some(OrderByKind::Expressions(e)) => e.clone(),
        Some(OrderByKind::All(_)) => return Err(SqlError::unsupported("ORDER BY ALL").into()),
        None => Vec::new(),
    };
    let mut aggs = Vec::new();
    for (e, _) in items {
        collect_aggregates(e, &mut aggs);
    }
    if let Some(h) = &select.having {
        collect_aggregates(h, &mut aggs);
    }
    for o in &order {
        collect_aggregates(&o.expr, &mut aggs);
    }
    let grouped = !group_by.is_empty() || !aggs.is_empty();
    // Each output unit: a representative row and, when grouped, its aggregate values.
    let mut units: Vec<Unit> = Vec::new();
    if grouped {
        let mut groups: Vec<(Vec<Value>, Vec<&Vec<Value>>)> = Vec::new();
        let mut index: HashMap<Vec<Value>, usize> = HashMap::new();
        for r in &rows {
            check_for_interrupts()?;
            let key: Vec<Value> = group_by
                .iter()
                .map(|g| eval(g, &env(scope, r, ctx.params)))
                .collect::<std::result::Result<_, _>>()?;
            let at = *index.entry(key.clone()).or_insert_with(|| {
                groups.push((key, Vec::new()));
                groups.len() - 1
            });
            groups[at].1.push(r);
        }
        if groups.is_empty() && group_by.is_empty() {
            groups.push((Vec::new(), Vec::new()));
        }
        for (_, members) in groups {
            let mut values = HashMap::new();
            for a in &aggs {
                values.insert(a.to_string(), aggregate(a, &members, scope, ctx.params)?);
            }
            let representative = members
                .first()
                .map(|r| (*r).clone())
                .unwrap_or_else(|| vec![Value::Null; scope.columns.len()]);
            if let Some(h) = &select.having {
                let e = Env {
                    scope,
                    row: &representative,
                    params: ctx.params,
                    aggregates: Some(&values),
                    subquery: Some(sub),
                    outer,
                };
                if eval(h, &e)?.truthy()? != Some(true) {
                    continue;
                }
            }
            units.push((representative, Some(values)));
        }
    } else {
        units = rows.into_iter().map(|r| (r, None)).collect();
    }
    let distinct_on: &[Expr] = match &select.distinct {
        Some(ast::Distinct::On(on)) => on,
        _ => &[],
    };
    order::check_distinct_on(distinct_on, &order)?;
    // Project, computing sort keys (and DISTINCT ON keys) alongside.
    let mut out: Vec<(Vec<Value>, Vec<Value>)> = Vec::with_capacity(units.len());
    let mut on_keys: Vec<Vec<Value>> = Vec::new();
    for (row, aggs) in &units {
        check_for_interrupts()?;
        let e = Env {
            scope,
            row,
            params: ctx.params,
            aggregates: aggs.as_ref(),
            subquery: Some(sub),
            outer,
        };
        let projected: Vec<Value> = items
            .iter()
            .map(|(x, _)| eval(x, &e))
            .collect::<std::result::Result<_, _>>()?;
        // A sort key may name an output column (by name or position), as may a
        // DISTINCT ON key.
        let key = |expr: &Expr| -> Result<Value> {
            let by_output = match expr {
                Expr::Value(v) => match &v.value {
                    ast::Value::Number(n, _) => n
                        .parse::<usize>()
                        .ok()
                        .and_then(|k| projected.get(k.wrapping_sub(1)).cloned()),
                    _ => None,
                },
                Expr::Identifier(i) if scope.column_of(expr).is_none() => items
                    .iter()
                    .position(|(_, name)| *name == ident(i))
                    .and_then(|k| projected.get(k).cloned()),
                _ => None,
            };
            Ok(match by_output {
                Some(v) => v,
                None => eval(expr, &e)?,
            })
        };
        let keys = order
            .iter()
            .map(|o| key(&o.expr))
            .collect::<Result<Vec<_>>>()?;
        if !distinct_on.is_empty() {
            // Kept beside the row: the index of `out` is the row's until the sort.
            let on = distinct_on.iter().map(key).collect::<Result<Vec<_>>>()?;
            on_keys.push(on);
        }
        out.push((projected, keys));
    }
    if !distinct_on.is_empty() {
        // Carry each row's DISTINCT ON key through the sort in its sort keys' tail.
        for ((_, keys), on) in out.iter_mut().zip(on_keys) {
            keys.extend(on);
        }
    }
    if select.distinct == Some(ast::Distinct::Distinct) {
        let mut seen = std::collections::HashSet::new();
        out.retain(|(r, _)| seen.insert(r.clone()));
    }
    order::sort(&mut out, &order);
    if !distinct_on.is_empty() {
        order::first_of_each(&mut out, order.len());
    }
    let (limit, offset) = match &q.limit_clause {
        Some(LimitClause::LimitOffset { limit, offset, .. }) => (
            limit
                .as_ref()
                .map(|l| const_usize(l, ctx.params))
                .transpose()?,
            offset
                .as_ref()
                .map(|o| const_usize(&o.value, ctx.params))
                .transpose()?,
        ),
        Some(LimitClause::OffsetCommaLimit { offset, limit }) => (
            Some(const_usize(limit, ctx.params)?),
            Some(const_usize(offset, ctx.params)?),
        ),
        None => (None, None),
    };
    let rows: Vec<Vec<Value>> = out
        .into_iter()
        .map(|(r, _)| r)
        .skip(offset.unwrap_or(0))
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    Ok(Output {
        tag: format!("SELECT {}", rows.len()),
        columns,
        rows,
        returns_rows: true,
        copy_in: None,
    })
}

fn values_query(ctx: &Ctx<'_>, v: &ast::Values) -> Result<Output> {
    let empty = Scope::default();
    let rows: Vec<Vec<Value>> = v
        .rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|e| eval(e, &env(&empty, &[], ctx.params)))
                .collect()
        })
        .collect::<std::result::Result<_, _>>()?;
    let width = rows.first().map_or(0, Vec::len);
    Ok(Output {
        tag: format!("SELECT {}", rows.len()),
        columns: (1..=width)
            .map(|i| (format!("column{i}"), DataType::Text))
            .collect(),
        rows,
        returns_rows: true,
        copy_in: None,
    })
}

/// The output columns of a query, without running it (Describe in the extended protocol).
pub fn describe(
    engine: &Engine,
    stmt: &Statement,
) -> std::result::Result<Vec<(String, DataType)>, SqlError> {
    let returning = |table: &str,
                     items: &Option<Vec<SelectItem>>|
     -> std::result::Result<Vec<(String, DataType)>, SqlError> {
        let Some(items) = items else {
            return Ok(Vec::new());
        };
        let scope = engine.table(table)?.scope(table);
        let items = projection(items, &scope).map_err(halt_error)?;
        Ok(items
            .iter()
            .map(|(e, n)| (n.clone(), infer_type(e, &scope)))
            .collect())
    };
    match stmt {
        Statement::Query(q) => describe_body(engine, &q.body),
        Statement::Insert(i) => returning(&insert_table(i)?, &i.returning),
        Statement::Update(u) => returning(&target_table(&u.table.relation)?.0, &u.returning),
        Statement::Delete(d) => returning(&delete_table(d)?.0, &d.returning),
        Statement::Explain { .. } => Ok(vec![("QUERY PLAN".into(), DataType::Text)]),
        _ => Ok(Vec::new()),
    }
}

fn describe_body(
    engine: &Engine,
    body: &SetExpr,
) -> std::result::Result<Vec<(String, DataType)>, SqlError> {
    match body {
        SetExpr::Select(s) => {
            let plan = plan_from(engine, &s.from, s.selection.as_ref())?;
            let scope = plan.scope(engine)?;
            let items = projection(&s.projection, &scope).map_err(halt_error)?;
            Ok(items
                .iter()
                .map(|(e, n)| (n.clone(), infer_type(e, &scope)))
                .collect())
        }
        SetExpr::SetOperation { left, .. } => describe_body(engine, left),
        SetExpr::Values(v) => Ok((1..=v.rows.first().map_or(0, |r| r.len()))
            .map(|i| (format!("column{i}"), DataType::Text))
            .collect()),
        SetExpr::Query(q) => describe_body(engine, &q.body),
        _ => Ok(Vec::new()),
    }
}

fn halt_error(h: Halt) -> SqlError {
    match h {
        Halt::Error(e) => e,
        Halt::Wait(_) => SqlError::new("XX000", "unexpected wait while describing"),
    }
}

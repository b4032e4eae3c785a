//! The executor: runs one parsed statement inside a transaction.
//!
//! Queries run the planner's scan/join tree, then the classic pipeline:
//! WHERE -> GROUP BY/aggregates -> HAVING -> SELECT list -> DISTINCT -> ORDER BY ->
//! OFFSET/LIMIT. Writes find their target rows the same way (with row ids), then call the
//! engine's write path, which locks rows and checks constraints.

use std::collections::HashMap;

use rust_decimal::Decimal;
use sqlparser::ast::{
    self, Expr, FunctionArguments, GroupByExpr, LimitClause, ObjectType, OrderByKind, SelectItem,
    SetExpr, Statement, TableFactor,
};

use crate::catalog::{self, ident, object_name};
use crate::engine::{Engine, Halt, Result, Table, TxState, Undo};
use crate::error::SqlError;
use crate::expr::{
    AGGREGATES, Env, Scope, eval, function_args, function_name, infer_type, is_aggregate,
};
use crate::mvcc::Snapshot;
use crate::planner::{Plan, plan_from, plan_table};
use crate::storage::RowId;
use crate::types::{DataType, Value};
use crate::wal::Change;

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
}

fn env<'a>(scope: &'a Scope, row: &'a [Value], params: &'a [Value]) -> Env<'a> {
    Env {
        scope,
        row,
        params,
        aggregates: None,
    }
}

pub fn execute(ctx: &mut Ctx<'_>, stmt: &Statement) -> Result<Output> {
    match stmt {
        Statement::Query(q) => query(ctx, q),
        Statement::Insert(ins) => insert(ctx, ins),
        Statement::Update(up) => update(ctx, up),
        Statement::Delete(del) => delete(ctx, del),
        Statement::CreateTable(create) => create_table(ctx, create, stmt),
        Statement::CreateIndex(create) => create_index(ctx, create, stmt),
        Statement::Drop {
            object_type: ObjectType::Table,
            if_exists,
            names,
            cascade,
            ..
        } => drop_tables(ctx, names, *if_exists, *cascade, stmt),
        Statement::Explain { statement, .. } => explain(ctx, statement),
        Statement::Truncate(t) => truncate(ctx, t, stmt),
        Statement::AlterTable(alter) => alter_table(ctx, alter, stmt),
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

// ---- scans ----

/// Runs a single-table plan, returning row ids with the visible values.
fn scan_table(ctx: &Ctx<'_>, plan: &Plan) -> Result<Vec<(RowId, Vec<Value>)>> {
    let (table, index_key) = match plan {
        Plan::SeqScan { table, .. } => (table, None),
        Plan::IndexScan {
            table, index, key, ..
        } => (table, Some((index, key))),
        _ => return Err(SqlError::unsupported("this plan shape").into()),
    };
    let t = ctx.engine.table(table)?;
    let clog = &ctx.engine.clog;
    Ok(match index_key {
        None => t
            .heap
            .scan(&ctx.snapshot, clog)
            .map(|(id, v)| (id, v.values.clone()))
            .collect(),
        Some((index, key)) => {
            let empty = Scope::default();
            let key: Vec<Value> = key
                .iter()
                .zip(&t.def.indexes[*index].columns)
                .map(|(e, &c)| eval(e, &env(&empty, &[], ctx.params))?.cast(t.def.columns[c].ty))
                .collect::<std::result::Result<_, _>>()?;
            t.heap
                .lookup(*index, &key)
                .into_iter()
                .filter_map(|id| {
                    t.heap
                        .visible(id, &ctx.snapshot, clog)
                        .map(|v| (id, v.values.clone()))
                })
                .collect()
        }
    })
}

fn run(ctx: &Ctx<'_>, plan: &Plan) -> Result<Vec<Vec<Value>>> {
    Ok(match plan {
        Plan::Empty => vec![Vec::new()],
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
fn projection(items: &[SelectItem], scope: &Scope) -> Result<Vec<(Expr, String)>> {
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
                    if qualifier.as_ref().is_none_or(|q| q == t) {
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

/// Every aggregate call inside `e`.
fn collect_aggregates(e: &Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::Function(f)
            if AGGREGATES.contains(&function_name(f).as_str()) && !out.contains(e) =>
        {
            out.push(e.clone());
        }
        Expr::Function(f) if AGGREGATES.contains(&function_name(f).as_str()) => {}
        Expr::Function(f) => {
            for a in function_args(f).into_iter().flatten() {
                collect_aggregates(a, out);
            }
        }
        Expr::BinaryOp { left, right, .. } => {
            collect_aggregates(left, out);
            collect_aggregates(right, out);
        }
        Expr::Nested(e)
        | Expr::UnaryOp { expr: e, .. }
        | Expr::Cast { expr: e, .. }
        | Expr::IsNull(e)
        | Expr::IsNotNull(e) => collect_aggregates(e, out),
        Expr::Case {
            conditions,
            else_result,
            ..
        } => {
            for w in conditions {
                collect_aggregates(&w.condition, out);
                collect_aggregates(&w.result, out);
            }
            if let Some(e) = else_result {
                collect_aggregates(e, out);
            }
        }
        _ => {}
    }
}

fn aggregate(call: &Expr, rows: &[&Vec<Value>], scope: &Scope, params: &[Value]) -> Result<Value> {
    let Expr::Function(f) = call else {
        return Ok(Value::Null);
    };
    let name = function_name(f);
    let distinct = matches!(&f.args, FunctionArguments::List(l) if l.duplicate_treatment == Some(ast::DuplicateTreatment::Distinct));
    let arg = function_args(f).first().copied().flatten();
    let mut values: Vec<Value> = match arg {
        None => return Ok(Value::Int(rows.len() as i64)), // count(*)
        Some(a) => rows
            .iter()
            .map(|r| eval(a, &env(scope, r, params)))
            .collect::<std::result::Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|v| !v.is_null())
            .collect(),
    };
    if distinct {
        values.sort();
        values.dedup();
    }
    Ok(match name.as_str() {
        "count" => Value::Int(values.len() as i64),
        "min" => values.into_iter().min().unwrap_or(Value::Null),
        "max" => values.into_iter().max().unwrap_or(Value::Null),
        "sum" | "avg" => {
            if values.is_empty() {
                return Ok(Value::Null);
            }
            let n = values.len();
            let mut total = Value::Int(0);
            for v in values {
                total = match crate::expr::arithmetic(
                    &ast::BinaryOperator::Plus,
                    total.clone(),
                    v.clone(),
                ) {
                    Ok(t) => t,
                    // bigint overflow: continue in numeric, as PostgreSQL's sum(bigint)
                    Err(_) => crate::expr::arithmetic(
                        &ast::BinaryOperator::Plus,
                        total.cast(DataType::Numeric(None))?,
                        v,
                    )?,
                };
            }
            if name == "sum" {
                total
            } else {
                match total {
                    Value::Double(x) => Value::Double(x / n as f64),
                    t => crate::expr::arithmetic(
                        &ast::BinaryOperator::Divide,
                        t.cast(DataType::Numeric(None))?,
                        Value::Numeric(Decimal::from(n as i64)),
                    )?,
                }
            }
        }
        _ => Value::Null,
    })
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

fn query(ctx: &mut Ctx<'_>, q: &ast::Query) -> Result<Output> {
    let select = match q.body.as_ref() {
        SetExpr::Select(s) => s,
        SetExpr::Values(v) => return values_query(ctx, v),
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
    let mut rows = run(ctx, &plan)?;
    if let Some(w) = &select.selection {
        let mut kept = Vec::with_capacity(rows.len());
        for r in rows {
            if eval(w, &env(&scope, &r, ctx.params))?.truthy()? == Some(true) {
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
    for (e, _) in &items {
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
            let key: Vec<Value> = group_by
                .iter()
                .map(|g| eval(g, &env(&scope, r, ctx.params)))
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
                values.insert(a.to_string(), aggregate(a, &members, &scope, ctx.params)?);
            }
            let representative = members
                .first()
                .map(|r| (*r).clone())
                .unwrap_or_else(|| vec![Value::Null; scope.columns.len()]);
            if let Some(h) = &select.having {
                let e = Env {
                    scope: &scope,
                    row: &representative,
                    params: ctx.params,
                    aggregates: Some(&values),
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
    // Project, computing sort keys alongside.
    let mut out: Vec<(Vec<Value>, Vec<Value>)> = Vec::with_capacity(units.len());
    for (row, aggs) in &units {
        let e = Env {
            scope: &scope,
            row,
            params: ctx.params,
            aggregates: aggs.as_ref(),
        };
        let projected: Vec<Value> = items
            .iter()
            .map(|(x, _)| eval(x, &e))
            .collect::<std::result::Result<_, _>>()?;
        let mut keys = Vec::with_capacity(order.len());
        for o in &order {
            let by_output = match &o.expr {
                Expr::Value(v) => match &v.value {
                    ast::Value::Number(n, _) => n
                        .parse::<usize>()
                        .ok()
                        .and_then(|k| projected.get(k.wrapping_sub(1)).cloned()),
                    _ => None,
                },
                Expr::Identifier(i) if scope.column_of(&o.expr).is_none() => items
                    .iter()
                    .position(|(_, name)| *name == ident(i))
                    .and_then(|k| projected.get(k).cloned()),
                _ => None,
            };
            keys.push(match by_output {
                Some(v) => v,
                None => eval(&o.expr, &e)?,
            });
        }
        out.push((projected, keys));
    }
    if select.distinct.is_some() {
        let mut seen = std::collections::HashSet::new();
        out.retain(|(r, _)| seen.insert(r.clone()));
    }
    if !order.is_empty() {
        out.sort_by(|(_, a), (_, b)| {
            for (i, o) in order.iter().enumerate() {
                let desc = matches!(o.options.sort, Some(ast::OrderBySort::Desc));
                let nulls_first = o.options.nulls_first.unwrap_or(desc);
                let (x, y) = (&a[i], &b[i]);
                let ord = match (x.is_null(), y.is_null()) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) => {
                        if nulls_first {
                            std::cmp::Ordering::Less
                        } else {
                            std::cmp::Ordering::Greater
                        }
                    }
                    (false, true) => {
                        if nulls_first {
                            std::cmp::Ordering::Greater
                        } else {
                            std::cmp::Ordering::Less
                        }
                    }
                    _ => {
                        if desc {
                            y.cmp(x)
                        } else {
                            x.cmp(y)
                        }
                    }
                };
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
            }
            std::cmp::Ordering::Equal
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
        Statement::Query(q) => match q.body.as_ref() {
            SetExpr::Select(s) => {
                let plan = plan_from(engine, &s.from, s.selection.as_ref())?;
                let scope = plan.scope(engine)?;
                let items = projection(&s.projection, &scope).map_err(halt_error)?;
                Ok(items
                    .iter()
                    .map(|(e, n)| (n.clone(), infer_type(e, &scope)))
                    .collect())
            }
            _ => Ok(Vec::new()),
        },
        Statement::Insert(i) => returning(&insert_table(i)?, &i.returning),
        Statement::Update(u) => returning(&target_table(&u.table.relation)?.0, &u.returning),
        Statement::Delete(d) => returning(&delete_table(d)?.0, &d.returning),
        Statement::Explain { .. } => Ok(vec![("QUERY PLAN".into(), DataType::Text)]),
        _ => Ok(Vec::new()),
    }
}

fn halt_error(h: Halt) -> SqlError {
    match h {
        Halt::Error(e) => e,
        Halt::Wait(_) => SqlError::new("XX000", "unexpected wait while describing"),
    }
}

// ---- INSERT / UPDATE / DELETE ----

fn insert_table(ins: &ast::Insert) -> std::result::Result<String, SqlError> {
    match &ins.table {
        ast::TableObject::TableName(n) => Ok(object_name(n)),
        _ => Err(SqlError::unsupported("INSERT into a table function")),
    }
}

fn target_table(f: &TableFactor) -> std::result::Result<(String, String), SqlError> {
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

fn delete_table(d: &ast::Delete) -> std::result::Result<(String, String), SqlError> {
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

fn insert(ctx: &mut Ctx<'_>, ins: &ast::Insert) -> Result<Output> {
    if ins.on.is_some() {
        return Err(SqlError::unsupported("INSERT ... ON CONFLICT").into());
    }
    let table = insert_table(ins)?;
    let def = ctx.engine.table(&table)?.def.clone();
    let targets: Vec<usize> = if ins.columns.is_empty() {
        (0..def.columns.len()).collect()
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
                    if matches!(e, Expr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default"))
                    {
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
    let mut written = Vec::with_capacity(source_rows.len());
    for src in source_rows {
        if src.len() > targets.len() {
            return Err(
                SqlError::syntax("INSERT has more expressions than target columns", None).into(),
            );
        }
        let mut values = vec![None; def.columns.len()];
        for (v, &col) in src.into_iter().zip(&targets) {
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
        ctx.engine.insert(ctx.tx, &table, row.clone())?;
        written.push(row);
    }
    let tag = format!("INSERT 0 {}", written.len());
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
    let mut out = Vec::new();
    for (id, values) in scan_table(ctx, &plan)? {
        let keep = match filter {
            Some(f) => eval(f, &env(&scope, &values, ctx.params))?.truthy()? == Some(true),
            None => true,
        };
        if keep {
            out.push((id, values));
        }
    }
    Ok(out)
}

fn update(ctx: &mut Ctx<'_>, up: &ast::Update) -> Result<Output> {
    if up.from.is_some() || !up.table.joins.is_empty() {
        return Err(SqlError::unsupported("UPDATE ... FROM").into());
    }
    let (table, alias) = target_table(&up.table.relation)?;
    let t = ctx.engine.table(&table)?;
    let scope = t.scope(&alias);
    let mut sets = Vec::new();
    for a in &up.assignments {
        let name = match &a.target {
            ast::AssignmentTarget::ColumnName(n) => object_name(n),
            _ => return Err(SqlError::unsupported("tuple assignment").into()),
        };
        let col = t.def.column_or_err(&name)?;
        sets.push((col, t.def.columns[col].ty, a.value.clone()));
    }
    let rows = targets(ctx, &table, &alias, up.selection.as_ref())?;
    let mut written = Vec::with_capacity(rows.len());
    for (id, old) in rows {
        let mut new = old.clone();
        for (col, ty, e) in &sets {
            new[*col] = eval(e, &env(&scope, &old, ctx.params))?.cast(*ty)?;
        }
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

fn delete(ctx: &mut Ctx<'_>, del: &ast::Delete) -> Result<Output> {
    let (table, alias) = delete_table(del)?;
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

// ---- DDL ----

fn create_table(ctx: &mut Ctx<'_>, create: &ast::CreateTable, stmt: &Statement) -> Result<Output> {
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

fn create_index(ctx: &mut Ctx<'_>, create: &ast::CreateIndex, stmt: &Statement) -> Result<Output> {
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

fn drop_tables(
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

fn explain(ctx: &mut Ctx<'_>, stmt: &Statement) -> Result<Output> {
    let Statement::Query(q) = stmt else {
        return Err(SqlError::unsupported("EXPLAIN of a statement other than SELECT").into());
    };
    let SetExpr::Select(s) = q.body.as_ref() else {
        return Err(SqlError::unsupported("EXPLAIN of this query").into());
    };
    let plan = plan_from(ctx.engine, &s.from, s.selection.as_ref())?;
    let mut lines = Vec::new();
    let grouped = !matches!(&s.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
        || s.projection.iter().any(|i| matches!(i, SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } if is_aggregate(e)));
    let mut depth = 0;
    if q.limit_clause.is_some() {
        lines.push("Limit".to_string());
        depth += 1;
    }
    if q.order_by.is_some() {
        lines.push(format!("{}Sort", if depth > 0 { "  ->  " } else { "" }));
        depth += 1;
    }
    if grouped {
        lines.push(format!(
            "{}{}Aggregate",
            "      ".repeat(depth.max(1) - 1),
            if depth > 0 { "->  " } else { "" }
        ));
        depth += 1;
    }
    let mut plan_lines = Vec::new();
    plan.explain(ctx.engine, depth, &mut plan_lines);
    if let Some(w) = &s.selection
        && let Some(first) = plan_lines.first().cloned()
    {
        // After the node's own detail line (an index scan's Index Cond).
        let at = if matches!(plan, Plan::IndexScan { .. }) {
            2
        } else {
            1
        };
        plan_lines.insert(
            at.min(plan_lines.len()),
            format!(
                "{}  Filter: ({w})",
                " ".repeat(first.len() - first.trim_start().len())
            ),
        );
    }
    lines.extend(plan_lines);
    Ok(Output {
        columns: vec![("QUERY PLAN".into(), DataType::Text)],
        tag: "EXPLAIN".into(),
        rows: lines.into_iter().map(|l| vec![Value::Text(l)]).collect(),
        returns_rows: true,
        copy_in: None,
    })
}

/// One field of COPY's text format: `\N` is NULL; backslash escapes are decoded.
pub fn copy_field(raw: &str) -> Option<String> {
    if raw == "\\N" {
        return None;
    }
    if !raw.contains('\\') {
        return Some(raw.to_string());
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    Some(out)
}

/// Inserts one row given as text fields for `columns` (COPY): the other columns get
/// their defaults, every value is cast to its column's type.
pub fn insert_text_row(
    ctx: &mut Ctx<'_>,
    table: &str,
    columns: &[usize],
    fields: &[Option<String>],
) -> Result<()> {
    let def = ctx.engine.table(table)?.def.clone();
    if fields.len() != columns.len() {
        return Err(SqlError::new(
            "22P04",
            format!(
                "expected {} columns in a COPY row, found {}",
                columns.len(),
                fields.len()
            ),
        )
        .into());
    }
    let mut given: Vec<Option<Option<&String>>> = vec![None; def.columns.len()];
    for (f, &c) in fields.iter().zip(columns) {
        given[c] = Some(f.as_ref());
    }
    let mut row = Vec::with_capacity(def.columns.len());
    for (i, (g, col)) in given.into_iter().zip(&def.columns).enumerate() {
        let v = match g {
            Some(Some(text)) => Value::Text(text.clone()),
            Some(None) => Value::Null,
            None if col.serial => Value::Int(ctx.engine.next_serial(ctx.tx, table, i)?),
            None => match &col.default {
                Some(d) => eval(d, &env(&Scope::default(), &[], &[]))?,
                None => Value::Null,
            },
        };
        row.push(v.cast(col.ty)?);
    }
    ctx.engine.insert(ctx.tx, table, row)?;
    Ok(())
}

fn truncate(ctx: &mut Ctx<'_>, t: &ast::Truncate, _stmt: &Statement) -> Result<Output> {
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

fn alter_table(ctx: &mut Ctx<'_>, alter: &ast::AlterTable, stmt: &Statement) -> Result<Output> {
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

//! The planner: how to get the rows a query's FROM and WHERE ask for.
//!
//! Two choices are made here, the two that decide most queries' cost:
//!
//! - **Access path.** A table is read by a *sequential scan* (every row) unless the WHERE
//!   clause pins every column of an index with `column = constant`; then an *index scan*
//!   looks the key up in the B-tree and reads only the matching rows.
//! - **Join method.** `a JOIN b ON a.x = b.y` is a *hash join*: build a hash table of
//!   one side keyed by its join columns, then probe it with each row of the other —
//!   linear in both inputs. A join without an equality falls back to a *nested loop*
//!   (every pair), quadratic, as every database must for such a condition.
//!
//! `EXPLAIN` prints the plan this module chose.

use sqlparser::ast::{
    BinaryOperator, Expr, JoinConstraint, JoinOperator, TableFactor, TableWithJoins,
};

use crate::catalog::{ident, object_name};
use crate::engine::Engine;
use crate::error::SqlError;
use crate::expr::Scope;

#[derive(Debug, Clone)]
pub enum Plan {
    /// `SELECT` without `FROM`: one row with no columns.
    Empty,
    /// `generate_series(start, stop [, step])` in FROM: one integer column.
    Series {
        alias: String,
        column: String,
        args: Vec<Expr>,
    },
    SeqScan {
        table: String,
        alias: String,
    },
    IndexScan {
        table: String,
        alias: String,
        index: usize,
        index_name: String,
        key: Vec<Expr>,
    },
    HashJoin {
        left: Box<Plan>,
        right: Box<Plan>,
        left_keys: Vec<Expr>,
        right_keys: Vec<Expr>,
        on: Expr,
        outer: bool,
    },
    NestedLoop {
        left: Box<Plan>,
        right: Box<Plan>,
        on: Option<Expr>,
        outer: bool,
    },
}

/// How EXPLAIN starts a line at `depth`, as PostgreSQL lays it out: a child's line starts
/// "->  ", six columns right of its parent's; detail lines sit two columns right of the
/// node's name.
pub fn arrow(depth: usize) -> String {
    if depth == 0 {
        String::new()
    } else {
        format!("{}->  ", " ".repeat(2 + 6 * (depth - 1)))
    }
}

/// `a AND b AND c` as `[a, b, c]`.
pub fn conjuncts(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            let mut v = conjuncts(left);
            v.extend(conjuncts(right));
            v
        }
        Expr::Nested(inner) => conjuncts(inner),
        other => vec![other],
    }
}

/// Does `e` read no column (a literal, a parameter, arithmetic on those)?
pub(crate) fn is_constant(e: &Expr) -> bool {
    match e {
        Expr::Value(_) => true,
        Expr::Nested(e) | Expr::UnaryOp { expr: e, .. } | Expr::Cast { expr: e, .. } => {
            is_constant(e)
        }
        Expr::BinaryOp { left, right, .. } => is_constant(left) && is_constant(right),
        _ => false,
    }
}

impl Plan {
    pub fn scope(&self, engine: &Engine) -> Result<Scope, SqlError> {
        Ok(match self {
            Plan::Empty => Scope::default(),
            Plan::Series { alias, column, .. } => Scope {
                columns: vec![(alias.clone(), column.clone(), crate::types::DataType::Int)],
            },
            Plan::SeqScan { table, alias } | Plan::IndexScan { table, alias, .. } => {
                engine.table(table)?.scope(alias)
            }
            Plan::HashJoin { left, right, .. } | Plan::NestedLoop { left, right, .. } => {
                let mut s = left.scope(engine)?;
                s.columns.extend(right.scope(engine)?.columns);
                s
            }
        })
    }

    /// The plan as `EXPLAIN` prints it, one line per node.
    pub fn explain(&self, engine: &Engine, depth: usize, out: &mut Vec<String>) {
        // PostgreSQL's layout: a child's line starts "->  ", six columns right of its
        // parent's; a node's detail lines sit two columns right of its name.
        let pad = arrow(depth);
        match self {
            Plan::Empty => out.push(format!("{pad}Result")),
            Plan::Series { alias, .. } => {
                out.push(format!("{pad}Function Scan on generate_series {alias}"))
            }
            Plan::SeqScan { table, alias } => out.push(format!(
                "{pad}Seq Scan on {table}{}",
                if alias != table {
                    format!(" {alias}")
                } else {
                    String::new()
                }
            )),
            Plan::IndexScan {
                table,
                alias,
                index,
                index_name,
                key,
            } => {
                out.push(format!(
                    "{pad}Index Scan using {index_name} on {table}{}",
                    if alias != table {
                        format!(" {alias}")
                    } else {
                        String::new()
                    }
                ));
                let cols = engine
                    .table(table)
                    .ok()
                    .and_then(|t| t.def.indexes.get(*index).map(|i| (t, i)))
                    .map(|(t, i)| {
                        i.columns
                            .iter()
                            .zip(key)
                            .map(|(&c, k)| format!("({} = {k})", t.def.columns[c].name))
                            .collect::<Vec<_>>()
                            .join(" AND ")
                    })
                    .unwrap_or_default();
                out.push(format!("{}  Index Cond: {cols}", " ".repeat(pad.len())));
            }
            Plan::HashJoin {
                left,
                right,
                on,
                outer,
                ..
            } => {
                out.push(format!(
                    "{pad}Hash {}Join",
                    if *outer { "Left " } else { "" }
                ));
                out.push(format!("{}  Hash Cond: ({on})", " ".repeat(pad.len())));
                left.explain(engine, depth + 1, out);
                out.push(format!("{}Hash", arrow(depth + 1)));
                right.explain(engine, depth + 2, out);
            }
            Plan::NestedLoop {
                left,
                right,
                on,
                outer,
            } => {
                out.push(format!(
                    "{pad}Nested Loop{}",
                    if *outer { " Left Join" } else { "" }
                ));
                if let Some(on) = on {
                    out.push(format!("{}  Join Filter: ({on})", " ".repeat(pad.len())));
                }
                left.explain(engine, depth + 1, out);
                right.explain(engine, depth + 1, out);
            }
        }
    }
}

/// `generate_series(...) [AS alias[(column)]]`, if that is what `factor` is.
fn series(factor: &TableFactor) -> Option<Plan> {
    let TableFactor::Table {
        name,
        alias,
        args: Some(args),
        ..
    } = factor
    else {
        return None;
    };
    if object_name(name) != "generate_series" {
        return None;
    }
    let alias_name = alias
        .as_ref()
        .map(|a| ident(&a.name))
        .unwrap_or_else(|| "generate_series".into());
    let column = alias
        .as_ref()
        .and_then(|a| a.columns.first())
        .map(|c| ident(&c.name))
        .unwrap_or_else(|| alias_name.clone());
    let args = args
        .args
        .iter()
        .filter_map(|a| match a {
            sqlparser::ast::FunctionArg::Unnamed(sqlparser::ast::FunctionArgExpr::Expr(e)) => {
                Some(e.clone())
            }
            _ => None,
        })
        .collect();
    Some(Plan::Series {
        alias: alias_name,
        column,
        args,
    })
}

/// The plan for one FROM item without a WHERE clause to use.
fn scan_of(engine: &Engine, factor: &TableFactor) -> Result<Plan, SqlError> {
    if let Some(plan) = series(factor) {
        return Ok(plan);
    }
    let (table, alias) = base_table(engine, factor)?;
    Ok(Plan::SeqScan { table, alias })
}

fn base_table(engine: &Engine, factor: &TableFactor) -> Result<(String, String), SqlError> {
    match factor {
        TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } => {
            let table = object_name(name);
            engine.table(&table)?;
            let alias = alias
                .as_ref()
                .map(|a| ident(&a.name))
                .unwrap_or_else(|| table.clone());
            Ok((table, alias))
        }
        other => Err(SqlError::unsupported(format!("FROM item {other}"))),
    }
}

/// The access path for one table given the WHERE clause.
pub fn plan_table(
    engine: &Engine,
    table: String,
    alias: String,
    filter: Option<&Expr>,
) -> Result<Plan, SqlError> {
    let t = engine.table(&table)?;
    let scope = t.scope(&alias);
    let mut pinned: Vec<(usize, Expr)> = Vec::new();
    for c in filter.map(conjuncts).unwrap_or_default() {
        if let Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } = c
        {
            if let (Some(col), true) = (scope.column_of(left), is_constant(right)) {
                pinned.push((col, (**right).clone()));
            } else if let (Some(col), true) = (scope.column_of(right), is_constant(left)) {
                pinned.push((col, (**left).clone()));
            }
        }
    }
    // Prefer unique indexes (at most one row), then the one pinning most columns.
    let best = t
        .def
        .indexes
        .iter()
        .enumerate()
        .filter_map(|(i, idx)| {
            let key: Option<Vec<Expr>> = idx
                .columns
                .iter()
                .map(|c| pinned.iter().find(|(p, _)| p == c).map(|(_, e)| e.clone()))
                .collect();
            key.map(|k| (i, idx, k))
        })
        .max_by_key(|(_, idx, k)| (idx.unique, k.len()));
    Ok(match best {
        Some((index, idx, key)) => Plan::IndexScan {
            table,
            alias,
            index,
            index_name: idx.name.clone(),
            key,
        },
        None => Plan::SeqScan { table, alias },
    })
}

/// Plans a FROM clause (with the WHERE clause, for index choice on a single table).
pub fn plan_from(
    engine: &Engine,
    from: &[TableWithJoins],
    filter: Option<&Expr>,
) -> Result<Plan, SqlError> {
    let mut plan: Option<Plan> = None;
    let single = from.len() == 1 && from.first().is_some_and(|f| f.joins.is_empty());
    for item in from {
        let mut current = match series(&item.relation) {
            Some(plan) => plan,
            None if single => {
                let (table, alias) = base_table(engine, &item.relation)?;
                plan_table(engine, table, alias, filter)?
            }
            None => scan_of(engine, &item.relation)?,
        };
        for join in &item.joins {
            let right = scan_of(engine, &join.relation)?;
            let (constraint, outer) = match &join.join_operator {
                JoinOperator::Join(c) | JoinOperator::Inner(c) => (c, false),
                JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (c, true),
                JoinOperator::CrossJoin(c) => (c, false),
                other => {
                    return Err(SqlError::unsupported(
                        format!("join {other:?}")
                            .chars()
                            .take(60)
                            .collect::<String>(),
                    ));
                }
            };
            let on = match constraint {
                JoinConstraint::On(e) => Some(e.clone()),
                JoinConstraint::None => None,
                _ => return Err(SqlError::unsupported("JOIN USING/NATURAL")),
            };
            current = join_plan(engine, current, right, on, outer)?;
        }
        plan = Some(match plan {
            None => current,
            Some(left) => Plan::NestedLoop {
                left: Box::new(left),
                right: Box::new(current),
                on: None,
                outer: false,
            },
        });
    }
    Ok(plan.unwrap_or(Plan::Empty))
}

fn join_plan(
    engine: &Engine,
    left: Plan,
    right: Plan,
    on: Option<Expr>,
    outer: bool,
) -> Result<Plan, SqlError> {
    let (ls, rs) = (left.scope(engine)?, right.scope(engine)?);
    let mut left_keys = Vec::new();
    let mut right_keys = Vec::new();
    if let Some(on) = &on {
        for c in conjuncts(on) {
            if let Expr::BinaryOp {
                left: a,
                op: BinaryOperator::Eq,
                right: b,
            } = c
            {
                if ls.column_of(a).is_some() && rs.column_of(b).is_some() {
                    left_keys.push((**a).clone());
                    right_keys.push((**b).clone());
                } else if ls.column_of(b).is_some() && rs.column_of(a).is_some() {
                    left_keys.push((**b).clone());
                    right_keys.push((**a).clone());
                }
            }
        }
    }
    Ok(match on {
        Some(on) if !left_keys.is_empty() => Plan::HashJoin {
            left: Box::new(left),
            right: Box::new(right),
            left_keys,
            right_keys,
            on,
            outer,
        },
        on => Plan::NestedLoop {
            left: Box::new(left),
            right: Box::new(right),
            on,
            outer,
        },
    })
}

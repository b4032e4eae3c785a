//! Aggregates: finding the aggregate calls in a grouped query's expressions, and
//! computing count/sum/avg/min/max over one group's rows (NULLs ignored, DISTINCT
//! deduplicated, `FILTER (WHERE ...)` keeping only the rows it accepts; sum of integers
//! continues in numeric past bigint, as PostgreSQL's).

use rust_decimal::Decimal;
use sqlparser::ast::{self, Expr, FunctionArguments};

use crate::engine::Result;
use crate::error::SqlError;
use crate::expr::{AGGREGATES, Scope, eval, function_args, function_name};
use crate::types::{DataType, Value};

use super::env;

/// Every aggregate call inside `e`.
pub(super) fn collect_aggregates(e: &Expr, out: &mut Vec<Expr>) {
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

pub(super) fn aggregate(
    call: &Expr,
    rows: &[&Vec<Value>],
    scope: &Scope,
    params: &[Value],
) -> Result<Value> {
    let Expr::Function(f) = call else {
        return Ok(Value::Null);
    };
    let name = function_name(f);
    if f.over.is_some() {
        return Err(SqlError::unsupported("window functions (OVER)").into());
    }
    if !f.within_group.is_empty() {
        return Err(SqlError::unsupported("WITHIN GROUP").into());
    }
    // `FILTER (WHERE cond)`: only the group's rows where cond is true are aggregated.
    let filtered: Vec<&Vec<Value>>;
    let rows = match &f.filter {
        Some(cond) => {
            let mut kept = Vec::with_capacity(rows.len());
            for r in rows {
                if eval(cond, &env(scope, r, params))?.truthy()? == Some(true) {
                    kept.push(*r);
                }
            }
            filtered = kept;
            &filtered[..]
        }
        None => rows,
    };
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

//! Expression evaluation: a sqlparser `Expr` against one row, with SQL's three-valued
//! logic (`NULL AND false` is false, `NULL AND true` is NULL).

use std::collections::HashMap;

use rust_decimal::Decimal;
use sqlparser::ast::{
    BinaryOperator as B, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, InTarget,
    UnaryOperator, Value as Lit,
};

use crate::catalog::{data_type, ident};
use crate::error::SqlError;
use crate::types::{DataType, Value};

/// The columns a row has, by (table alias, column name), with their types.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub columns: Vec<(String, String, DataType)>,
}

impl Scope {
    pub fn resolve(&self, qualifier: Option<&str>, name: &str) -> Result<usize, SqlError> {
        let mut found = self
            .columns
            .iter()
            .enumerate()
            .filter(|(_, (t, c, _))| c == name && qualifier.is_none_or(|q| q == t));
        match (found.next(), found.next()) {
            (Some((i, _)), None) => Ok(i),
            (Some(_), Some(_)) => Err(SqlError::new(
                "42702",
                format!("column reference \"{name}\" is ambiguous"),
            )),
            (None, _) => Err(match qualifier {
                Some(q) if !self.columns.iter().any(|(t, _, _)| t == q) => SqlError::new(
                    "42P01",
                    format!("missing FROM-clause entry for table \"{q}\""),
                ),
                Some(q) => SqlError::undefined_column(&format!("{q}.{name}")),
                None => SqlError::undefined_column(name),
            }),
        }
    }

    /// The column an expression names, if it is a plain column reference.
    pub fn column_of(&self, e: &Expr) -> Option<usize> {
        match e {
            Expr::Identifier(i) => self.resolve(None, &ident(i)).ok(),
            Expr::CompoundIdentifier(parts) if parts.len() == 2 => self
                .resolve(Some(&ident(&parts[0])), &ident(&parts[1]))
                .ok(),
            Expr::Nested(e) => self.column_of(e),
            _ => None,
        }
    }
}

/// What an expression is evaluated against.
pub struct Env<'a> {
    pub scope: &'a Scope,
    pub row: &'a [Value],
    pub params: &'a [Value],
    /// In a grouped query: each aggregate call's value for this group, by its text.
    pub aggregates: Option<&'a HashMap<String, Value>>,
    /// Runs a subquery (in IN, EXISTS or scalar position); `None` where none may run
    /// (CHECK constraints). It is given this environment, which becomes the subquery's
    /// [`Outer`]: that is how a *correlated* subquery reads the current outer row.
    pub subquery: Option<&'a Subquery<'a>>,
    /// The enclosing query's row, when this is a subquery's environment (or, for
    /// `ON CONFLICT DO UPDATE`, the `EXCLUDED` row): see [`Outer`].
    pub outer: Option<&'a Outer<'a>>,
}

/// The environment around a subquery: SQL's scoping rule for names.
///
/// A column name is looked up in the subquery's own FROM items first; only when it is not
/// found there is it looked up in the enclosing query's row, then that query's enclosing
/// one, outwards. In `SELECT * FROM customers c WHERE EXISTS (SELECT 1 FROM orders o
/// WHERE o.customer_id = c.id)`, `c.id` is not a column of `orders`, so it is read from
/// the outer row: the subquery is *correlated*, its result depends on which customer is
/// being filtered, and it must run again for each one. A subquery that never reached
/// outwards gives the same rows for every outer row, so it runs once per statement and
/// its rows are reused (`used` records which case this is).
pub struct Outer<'a> {
    pub env: &'a Env<'a>,
    /// Set when a name was resolved in `env` (or further out).
    pub used: std::cell::Cell<bool>,
}

impl<'a> Outer<'a> {
    pub fn new(env: &'a Env<'a>) -> Outer<'a> {
        Outer {
            env,
            used: std::cell::Cell::new(false),
        }
    }
}

/// Runs a subquery to its rows, given the environment of the row it is evaluated for.
pub type Subquery<'a> =
    dyn Fn(&sqlparser::ast::Query, &Env<'_>) -> Result<Vec<Vec<Value>>, SqlError> + 'a;

fn run_subquery(q: &sqlparser::ast::Query, env: &Env<'_>) -> Result<Vec<Vec<Value>>, SqlError> {
    let run = env
        .subquery
        .ok_or_else(|| SqlError::unsupported("a subquery here"))?;
    let rows = run(q, env)?;
    if rows.first().is_some_and(|r| r.len() != 1) {
        return Err(SqlError::syntax(
            "subquery must return only one column",
            None,
        ));
    }
    Ok(rows)
}

pub const AGGREGATES: [&str; 5] = ["count", "sum", "avg", "min", "max"];

pub fn function_name(f: &sqlparser::ast::Function) -> String {
    crate::catalog::object_name(&f.name)
}

pub fn is_aggregate(e: &Expr) -> bool {
    matches!(e, Expr::Function(f) if AGGREGATES.contains(&function_name(f).as_str()))
}

/// The plain argument expressions of a call (`None` for `*`).
pub fn function_args(f: &sqlparser::ast::Function) -> Vec<Option<&Expr>> {
    match &f.args {
        FunctionArguments::List(list) => list
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

pub fn literal(v: &Lit) -> Result<Value, SqlError> {
    Ok(match v {
        Lit::Number(n, _) => {
            if let Ok(i) = n.parse::<i64>() {
                Value::Int(i)
            } else {
                Value::Numeric(n.parse::<Decimal>().map_err(|_| {
                    SqlError::invalid_text(format!(
                        "invalid input syntax for type numeric: \"{n}\""
                    ))
                })?)
            }
        }
        Lit::SingleQuotedString(s) | Lit::EscapedStringLiteral(s) => Value::Text(s.clone()),
        Lit::DollarQuotedString(s) => Value::Text(s.value.clone()),
        Lit::Boolean(b) => Value::Bool(*b),
        Lit::Null => Value::Null,
        other => return Err(SqlError::unsupported(format!("literal {other}"))),
    })
}

fn and(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn or(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

fn bool_value(b: Option<bool>) -> Value {
    b.map_or(Value::Null, Value::Bool)
}

pub fn arithmetic(op: &B, l: Value, r: Value) -> Result<Value, SqlError> {
    if l.is_null() || r.is_null() {
        return Ok(Value::Null);
    }
    let overflow = || SqlError::new("22003", "integer out of range");
    Ok(match (l, r) {
        (Value::Int(a), Value::Int(b)) => Value::Int(match op {
            B::Plus => a.checked_add(b).ok_or_else(overflow)?,
            B::Minus => a.checked_sub(b).ok_or_else(overflow)?,
            B::Multiply => a.checked_mul(b).ok_or_else(overflow)?,
            B::Divide if b == 0 => return Err(SqlError::division_by_zero()),
            B::Divide => a.checked_div(b).ok_or_else(overflow)?,
            B::Modulo if b == 0 => return Err(SqlError::division_by_zero()),
            B::Modulo => a.checked_rem(b).ok_or_else(overflow)?,
            _ => return Err(SqlError::unsupported(format!("operator {op}"))),
        }),
        (a @ (Value::Double(_) | Value::Int(_) | Value::Numeric(_)), b @ Value::Double(_))
        | (a @ Value::Double(_), b @ (Value::Int(_) | Value::Numeric(_))) => {
            let (a, b) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
            Value::Double(match op {
                B::Plus => a + b,
                B::Minus => a - b,
                B::Multiply => a * b,
                B::Divide if b == 0.0 => return Err(SqlError::division_by_zero()),
                B::Divide => a / b,
                B::Modulo => a % b,
                _ => return Err(SqlError::unsupported(format!("operator {op}"))),
            })
        }
        (a @ (Value::Int(_) | Value::Numeric(_)), b @ (Value::Int(_) | Value::Numeric(_))) => {
            let to_d = |v: Value| match v {
                Value::Int(n) => Decimal::from(n),
                Value::Numeric(d) => d,
                _ => Decimal::ZERO,
            };
            let (a, b) = (to_d(a), to_d(b));
            let overflow = || SqlError::new("22003", "value overflows numeric format");
            Value::Numeric(match op {
                B::Plus => a.checked_add(b).ok_or_else(overflow)?,
                B::Minus => a.checked_sub(b).ok_or_else(overflow)?,
                B::Multiply => a.checked_mul(b).ok_or_else(overflow)?,
                B::Divide if b.is_zero() => return Err(SqlError::division_by_zero()),
                B::Divide => a.checked_div(b).ok_or_else(overflow)?,
                B::Modulo if b.is_zero() => return Err(SqlError::division_by_zero()),
                B::Modulo => a.checked_rem(b).ok_or_else(overflow)?,
                _ => return Err(SqlError::unsupported(format!("operator {op}"))),
            })
        }
        (l, r) => {
            return Err(SqlError::undefined_function(format!(
                "operator does not exist: {} {op} {}",
                l.type_name(),
                r.type_name()
            )));
        }
    })
}

fn like(text: &str, pattern: &str, fold: bool) -> bool {
    let (t, p): (Vec<char>, Vec<char>) = if fold {
        (
            text.to_lowercase().chars().collect(),
            pattern.to_lowercase().chars().collect(),
        )
    } else {
        (text.chars().collect(), pattern.chars().collect())
    };
    // Iterative wildcard match with backtracking to the last '%': linear-ish, no recursion.
    let (mut ti, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || (p[pi] != '%' && p[pi] == t[ti])) {
            ti += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '%')
}

/// Values hold every integer as an `i64`, but in PostgreSQL `integer + integer` is an
/// `integer` and overflows past 2^31 (22003 "integer out of range"), as `smallint +
/// smallint` does past 2^15. Only a result outside smallint's range can be one, so the
/// operands' types are looked up only then.
fn check_integer_range(
    result: &Value,
    left: &Expr,
    right: &Expr,
    scope: &Scope,
) -> Result<(), SqlError> {
    let Value::Int(n) = *result else {
        return Ok(());
    };
    if i16::try_from(n).is_ok() {
        return Ok(());
    }
    let ty = match (infer_type(left, scope), infer_type(right, scope)) {
        (DataType::SmallInt, DataType::SmallInt) => DataType::SmallInt,
        (DataType::SmallInt | DataType::Int, DataType::SmallInt | DataType::Int) => DataType::Int,
        _ => return Ok(()),
    };
    result.clone().cast(ty).map(|_| ())
}

thread_local! {
    /// The start of the transaction whose statement this thread is running: see
    /// [`at_transaction_start`].
    static TRANSACTION_START: std::cell::Cell<Option<std::time::SystemTime>> =
        const { std::cell::Cell::new(None) };
}

thread_local! {
    /// The types of the running prepared statement's parameters: see [`with_param_types`].
    static PARAM_TYPES: std::cell::RefCell<Vec<DataType>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` (a statement's work, synchronous under the engine lock) with `now()` and
/// `current_timestamp` reading `start` — in PostgreSQL they are the transaction's start
/// time, the same value for every call in the transaction — and `$n` typed as
/// `param_types` (see [`with_param_types`]). Thread-locals rather than fields of [`Env`]
/// and [`Scope`], which are built in a dozen places that all run inside such a call.
pub fn in_statement<R>(
    start: std::time::SystemTime,
    param_types: &[DataType],
    f: impl FnOnce() -> R,
) -> R {
    let before = TRANSACTION_START.replace(Some(start));
    let result = with_param_types(param_types, f);
    TRANSACTION_START.set(before);
    result
}

/// Runs `f` with [`infer_type`] typing `$n` as `types[n - 1]`: the type the client
/// declared (or we inferred) for it, so `SELECT $1` with a boolean is a boolean column
/// and `SELECT $1 + 1` with 1.5 a double one, in the Describe answer and in the result
/// alike. Outside such a call a parameter's type is unknown (text).
pub fn with_param_types<R>(types: &[DataType], f: impl FnOnce() -> R) -> R {
    if types.is_empty() {
        return f();
    }
    PARAM_TYPES.with_borrow_mut(|p| p.extend_from_slice(types));
    let result = f();
    PARAM_TYPES.with_borrow_mut(Vec::clear);
    result
}

fn param_type(placeholder: &str) -> Option<DataType> {
    let n: usize = placeholder.trim_start_matches('$').parse().ok()?;
    PARAM_TYPES.with_borrow(|types| types.get(n.checked_sub(1)?).copied())
}

/// `now()`: the running transaction's start, or the clock outside any.
fn transaction_start() -> chrono::NaiveDateTime {
    match TRANSACTION_START.get() {
        Some(start) => {
            crate::types::to_microseconds(chrono::DateTime::<chrono::Utc>::from(start).naive_utc())
        }
        None => crate::types::current_timestamp(),
    }
}

/// Evaluation recurses once per level of the expression tree, and in a debug build this
/// function's frame is about 20 KiB: 100 levels (`1 + 1 + ...`) overflowed a 2 MiB
/// thread. [`crate::parse`] bounds the depth at [`crate::parse::MAX_DEPTH`]; on top of
/// that, when less than [`STACK_RED_ZONE`] of the stack is left the evaluation continues
/// on a freshly allocated segment (`stacker`), which costs a comparison per call.
pub fn eval(e: &Expr, env: &Env<'_>) -> Result<Value, SqlError> {
    stacker::maybe_grow(STACK_RED_ZONE, STACK_SEGMENT, || eval_node(e, env))
}

/// Stack that must be left for an evaluation level and what it calls before recursing
/// (a subquery runs a whole executor between two levels).
pub const STACK_RED_ZONE: usize = 256 << 10;
/// Size of each extra stack segment.
pub const STACK_SEGMENT: usize = 4 << 20;

fn eval_node(e: &Expr, env: &Env<'_>) -> Result<Value, SqlError> {
    Ok(match e {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {
            let (q, name) = match e {
                Expr::Identifier(i) => (None, ident(i)),
                Expr::CompoundIdentifier(parts) if parts.len() == 2 => {
                    (Some(ident(&parts[0])), ident(&parts[1]))
                }
                Expr::CompoundIdentifier(parts) => match parts.last() {
                    Some(last) => (parts.get(parts.len() - 2).map(ident), ident(last)),
                    None => return Err(SqlError::syntax("empty identifier", None)),
                },
                _ => unreachable_expr()?,
            };
            match env.scope.resolve(q.as_deref(), &name) {
                Ok(i) => env.row.get(i).cloned().unwrap_or(Value::Null),
                // Not a column here: the enclosing query's (see `Outer`).
                Err(err) if matches!(err.code, "42703" | "42P01") => match env.outer {
                    Some(outer) => {
                        outer.used.set(true);
                        eval(e, outer.env).map_err(|_| err)?
                    }
                    None => return Err(err),
                },
                Err(err) => return Err(err),
            }
        }
        Expr::Value(v) => match &v.value {
            Lit::Placeholder(p) => {
                let n: usize = p.trim_start_matches('$').parse().unwrap_or(0);
                env.params
                    .get(n.wrapping_sub(1))
                    .cloned()
                    .ok_or_else(|| SqlError::new("42P02", format!("there is no parameter {p}")))?
            }
            other => literal(other)?,
        },
        Expr::Nested(e) => eval(e, env)?,
        Expr::IsNull(e) => Value::Bool(eval(e, env)?.is_null()),
        Expr::IsNotNull(e) => Value::Bool(!eval(e, env)?.is_null()),
        Expr::IsTrue(e) => Value::Bool(eval(e, env)?.truthy()? == Some(true)),
        Expr::IsFalse(e) => Value::Bool(eval(e, env)?.truthy()? == Some(false)),
        Expr::UnaryOp { op, expr } => {
            let v = eval(expr, env)?;
            match op {
                UnaryOperator::Not => bool_value(v.truthy()?.map(|b| !b)),
                UnaryOperator::Minus => arithmetic(&B::Minus, Value::Int(0), v)?,
                UnaryOperator::Plus => v,
                other => return Err(SqlError::unsupported(format!("operator {other}"))),
            }
        }
        Expr::BinaryOp { left, op, right } => {
            let l = eval(left, env)?;
            match op {
                B::And => {
                    let lb = l.truthy()?;
                    if lb == Some(false) {
                        return Ok(Value::Bool(false));
                    }
                    bool_value(and(lb, eval(right, env)?.truthy()?))
                }
                B::Or => {
                    let lb = l.truthy()?;
                    if lb == Some(true) {
                        return Ok(Value::Bool(true));
                    }
                    bool_value(or(lb, eval(right, env)?.truthy()?))
                }
                B::Eq | B::NotEq | B::Lt | B::LtEq | B::Gt | B::GtEq => {
                    let r = eval(right, env)?;
                    bool_value(l.sql_cmp(&r)?.map(|o| match op {
                        B::Eq => o.is_eq(),
                        B::NotEq => o.is_ne(),
                        B::Lt => o.is_lt(),
                        B::LtEq => o.is_le(),
                        B::Gt => o.is_gt(),
                        _ => o.is_ge(),
                    }))
                }
                B::StringConcat => {
                    let r = eval(right, env)?;
                    if l.is_null() || r.is_null() {
                        Value::Null
                    } else {
                        Value::Text(format!("{l}{r}"))
                    }
                }
                _ => {
                    let result = arithmetic(op, l, eval(right, env)?)?;
                    check_integer_range(&result, left, right, env.scope)?;
                    result
                }
            }
        }
        Expr::Between {
            expr,
            negated,
            low,
            high,
        } => {
            let v = eval(expr, env)?;
            let ge = v.sql_cmp(&eval(low, env)?)?.map(|o| o.is_ge());
            let le = v.sql_cmp(&eval(high, env)?)?.map(|o| o.is_le());
            let r = and(ge, le);
            bool_value(if *negated { r.map(|b| !b) } else { r })
        }
        Expr::In {
            expr,
            target: InTarget::List(list),
            negated,
            ..
        } => {
            let v = eval(expr, env)?;
            let mut result = Some(false);
            for item in list {
                let eq = v.sql_cmp(&eval(item, env)?)?.map(|o| o.is_eq());
                result = or(result, eq);
            }
            bool_value(if *negated { result.map(|b| !b) } else { result })
        }
        Expr::In {
            expr,
            target: InTarget::Subquery(q),
            negated,
            ..
        } => {
            let v = eval(expr, env)?;
            let mut result = Some(false);
            for row in run_subquery(q, env)? {
                let eq = v.sql_cmp(&row[0])?.map(|o| o.is_eq());
                result = or(result, eq);
            }
            bool_value(if *negated { result.map(|b| !b) } else { result })
        }
        Expr::Exists { subquery, negated } => {
            let run = env
                .subquery
                .ok_or_else(|| SqlError::unsupported("a subquery here"))?;
            Value::Bool(run(subquery, env)?.is_empty() == *negated)
        }
        Expr::Subquery(q) => {
            let mut rows = run_subquery(q, env)?;
            if rows.len() > 1 {
                return Err(SqlError::new(
                    "21000",
                    "more than one row returned by a subquery used as an expression",
                ));
            }
            rows.pop().and_then(|mut r| r.pop()).unwrap_or(Value::Null)
        }
        Expr::Like {
            negated,
            expr,
            pattern,
            ..
        }
        | Expr::ILike {
            negated,
            expr,
            pattern,
            ..
        } => {
            let (v, p) = (eval(expr, env)?, eval(pattern, env)?);
            if v.is_null() || p.is_null() {
                Value::Null
            } else {
                let m = like(
                    &v.to_string(),
                    &p.to_string(),
                    matches!(e, Expr::ILike { .. }),
                );
                Value::Bool(m != *negated)
            }
        }
        Expr::Cast {
            expr, data_type: t, ..
        } => {
            let (ty, _) = data_type(t)?;
            eval(expr, env)?.cast(ty)?
        }
        Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            let subject = operand.as_ref().map(|o| eval(o, env)).transpose()?;
            for w in conditions {
                let hit = match &subject {
                    Some(s) => s
                        .sql_cmp(&eval(&w.condition, env)?)?
                        .is_some_and(|o| o.is_eq()),
                    None => eval(&w.condition, env)?.truthy()? == Some(true),
                };
                if hit {
                    return eval(&w.result, env);
                }
            }
            match else_result {
                Some(e) => eval(e, env)?,
                None => Value::Null,
            }
        }
        Expr::Function(f) => {
            let name = function_name(f);
            if AGGREGATES.contains(&name.as_str()) {
                return env
                    .aggregates
                    .and_then(|a| a.get(&e.to_string()).cloned())
                    .ok_or_else(|| {
                        SqlError::new(
                            "42803",
                            "aggregate functions are not allowed here".to_string(),
                        )
                    });
            }
            if f.filter.is_some() || f.over.is_some() {
                let clause = if f.filter.is_some() { "FILTER" } else { "OVER" };
                return Err(SqlError::new(
                    "42809",
                    format!("{clause} specified, but {name} is not an aggregate function"),
                ));
            }
            let args: Vec<Value> = function_args(f)
                .into_iter()
                .map(|a| a.map_or(Ok(Value::Null), |a| eval(a, env)))
                .collect::<Result<_, _>>()?;
            scalar_function(&name, args)?
        }
        Expr::TypedString(ts) => {
            let (ty, _) = data_type(&ts.data_type)?;
            literal(&ts.value.value)?.cast(ty)?
        }
        other => return Err(SqlError::unsupported(format!("expression {other}"))),
    })
}

fn unreachable_expr() -> Result<(Option<String>, String), SqlError> {
    Err(SqlError::syntax("unexpected expression", None))
}

fn scalar_function(name: &str, args: Vec<Value>) -> Result<Value, SqlError> {
    let arg = |i: usize| args.get(i).cloned().unwrap_or(Value::Null);
    Ok(match name {
        "coalesce" => args
            .into_iter()
            .find(|v| !v.is_null())
            .unwrap_or(Value::Null),
        "now" | "current_timestamp" | "localtimestamp" | "transaction_timestamp" => {
            Value::Timestamp(transaction_start())
        }
        "statement_timestamp" | "clock_timestamp" => {
            Value::Timestamp(crate::types::current_timestamp())
        }
        "lower" => text_fn(arg(0), |s| s.to_lowercase()),
        "upper" => text_fn(arg(0), |s| s.to_uppercase()),
        "length" | "char_length" => match arg(0) {
            Value::Null => Value::Null,
            v => Value::Int(v.to_string().chars().count() as i64),
        },
        "abs" => match arg(0) {
            Value::Int(n) => Value::Int(
                n.checked_abs()
                    .ok_or_else(|| SqlError::new("22003", "integer out of range"))?,
            ),
            Value::Double(f) => Value::Double(f.abs()),
            Value::Numeric(d) => Value::Numeric(d.abs()),
            v => v,
        },
        "round" => match (arg(0), arg(1)) {
            (Value::Numeric(d), Value::Int(s)) => Value::Numeric(d.round_dp_with_strategy(
                s.clamp(0, 28) as u32,
                rust_decimal::RoundingStrategy::MidpointAwayFromZero,
            )),
            (Value::Numeric(d), _) => Value::Numeric(
                d.round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero),
            ),
            (Value::Double(f), _) => Value::Double(f.round()),
            (v, _) => v,
        },
        "version" => Value::Text(format!(
            "PostgreSQL 15.0 (infralab sql {})",
            env!("CARGO_PKG_VERSION")
        )),
        "current_database" => Value::Text("infralab".into()),
        "current_schema" => Value::Text("public".into()),
        "current_user" | "session_user" | "user" => Value::Text("infralab".into()),
        _ => {
            return Err(SqlError::undefined_function(format!(
                "function {name}() does not exist"
            )));
        }
    })
}

fn text_fn(v: Value, f: impl Fn(&str) -> String) -> Value {
    match v {
        Value::Null => Value::Null,
        v => Value::Text(f(&v.to_string())),
    }
}

/// The type an expression produces, for RowDescription (before any row exists). Recurses
/// like [`eval`], so it grows the stack the same way.
pub fn infer_type(e: &Expr, scope: &Scope) -> DataType {
    stacker::maybe_grow(STACK_RED_ZONE, STACK_SEGMENT, || infer_node(e, scope))
}

fn infer_node(e: &Expr, scope: &Scope) -> DataType {
    match e {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => scope
            .column_of(e)
            .and_then(|i| scope.columns.get(i))
            .map_or(DataType::Text, |c| c.2),
        Expr::Nested(e) => infer_type(e, scope),
        Expr::Value(v) => match &v.value {
            Lit::Number(n, _) => match n.parse::<i64>() {
                Ok(i) if i32::try_from(i).is_ok() => DataType::Int,
                Ok(_) => DataType::BigInt,
                Err(_) => DataType::Numeric(None),
            },
            Lit::Boolean(_) => DataType::Bool,
            Lit::Placeholder(p) => param_type(p).unwrap_or(DataType::Text),
            _ => DataType::Text,
        },
        Expr::Cast { data_type: t, .. } => data_type(t).map_or(DataType::Text, |(t, _)| t),
        Expr::BinaryOp { left, op, right } => match op {
            B::Plus | B::Minus | B::Multiply | B::Divide | B::Modulo => {
                let (l, r) = (infer_type(left, scope), infer_type(right, scope));
                match (l, r) {
                    (DataType::Double, _) | (_, DataType::Double) => DataType::Double,
                    (DataType::Numeric(_), _) | (_, DataType::Numeric(_)) => {
                        DataType::Numeric(None)
                    }
                    (DataType::BigInt, _) | (_, DataType::BigInt) => DataType::BigInt,
                    _ => DataType::Int,
                }
            }
            B::StringConcat => DataType::Text,
            _ => DataType::Bool,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            ..
        }
        | Expr::IsNull(_)
        | Expr::IsNotNull(_)
        | Expr::In { .. }
        | Expr::Between { .. }
        | Expr::Like { .. }
        | Expr::ILike { .. }
        | Expr::IsTrue(_)
        | Expr::IsFalse(_)
        | Expr::Exists { .. } => DataType::Bool,
        Expr::UnaryOp { expr, .. } => infer_type(expr, scope),
        Expr::Case { conditions, .. } => conditions
            .first()
            .map_or(DataType::Text, |w| infer_type(&w.result, scope)),
        Expr::Function(f) => {
            let first = function_args(f)
                .first()
                .copied()
                .flatten()
                .map(|a| infer_type(a, scope));
            match function_name(f).as_str() {
                "count" | "length" | "char_length" => DataType::BigInt,
                "sum" => match first {
                    Some(DataType::Double) => DataType::Double,
                    Some(DataType::SmallInt | DataType::Int) => DataType::BigInt,
                    _ => DataType::Numeric(None),
                },
                "avg" => match first {
                    Some(DataType::Double) => DataType::Double,
                    _ => DataType::Numeric(None),
                },
                "min" | "max" | "coalesce" | "abs" | "round" => first.unwrap_or(DataType::Text),
                "now"
                | "current_timestamp"
                | "localtimestamp"
                | "statement_timestamp"
                | "clock_timestamp"
                | "transaction_timestamp" => DataType::Timestamp,
                _ => DataType::Text,
            }
        }
        Expr::TypedString(ts) => data_type(&ts.data_type).map_or(DataType::Text, |(t, _)| t),
        _ => DataType::Text,
    }
}

#[cfg(test)]
mod tests {
    use super::like;

    #[test]
    fn like_patterns() {
        assert!(like("hello", "h%o", false));
        assert!(like("hello", "_ello", false));
        assert!(!like("hello", "h%x", false));
        assert!(like("HeLLo", "hello", true));
        assert!(like("", "%", false));
    }
}

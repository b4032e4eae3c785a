//! Parameters of the extended protocol: inferring `$n`'s type from where it appears
//! (clients such as tokio-postgres encode arguments by the type the server announces),
//! and decoding a bound value, text or binary.

use pgwire::error::PgWireResult;
use sqlparser::ast::{BinaryOperator, Expr, LimitClause, SetExpr, Statement, Value as Lit};

use crate::catalog::object_name;
use crate::engine::Engine;
use crate::error::SqlError;
use crate::expr::Scope;
use crate::types::{DataType, Value};

fn placeholder(e: &Expr) -> Option<usize> {
    match e {
        Expr::Value(v) => match &v.value {
            Lit::Placeholder(p) => p
                .trim_start_matches('$')
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0),
            _ => None,
        },
        Expr::Nested(e) => placeholder(e),
        _ => None,
    }
}

fn note(types: &mut Vec<DataType>, n: usize, ty: DataType) {
    if types.len() < n {
        types.resize(n, DataType::Text);
    }
    types[n - 1] = ty;
}

/// Walks an expression: `col <op> $n` gives `$n` the column's type, `$n::type` the type.
fn walk(e: &Expr, scope: &Scope, types: &mut Vec<DataType>) {
    match e {
        Expr::BinaryOp { left, op, right } => {
            for (a, b) in [(left, right), (right, left)] {
                if let Some(n) = placeholder(b) {
                    let ty = match op {
                        BinaryOperator::And | BinaryOperator::Or => DataType::Bool,
                        _ => crate::expr::infer_type(a, scope),
                    };
                    note(types, n, ty);
                }
            }
            walk(left, scope, types);
            walk(right, scope, types);
        }
        Expr::Cast {
            expr, data_type, ..
        } => {
            if let (Some(n), Ok((ty, _))) =
                (placeholder(expr), crate::catalog::data_type(data_type))
            {
                note(types, n, ty);
            }
            walk(expr, scope, types);
        }
        Expr::Nested(e) | Expr::UnaryOp { expr: e, .. } | Expr::IsNull(e) | Expr::IsNotNull(e) => {
            walk(e, scope, types)
        }
        Expr::Between {
            expr, low, high, ..
        } => {
            let ty = crate::expr::infer_type(expr, scope);
            for x in [low, high] {
                if let Some(n) = placeholder(x) {
                    note(types, n, ty);
                }
            }
        }
        Expr::In {
            expr,
            target: sqlparser::ast::InTarget::List(list),
            ..
        } => {
            let ty = crate::expr::infer_type(expr, scope);
            for x in list {
                if let Some(n) = placeholder(x) {
                    note(types, n, ty);
                }
            }
        }
        Expr::Value(_) => {
            if let Some(n) = placeholder(e)
                && types.len() < n
            {
                types.resize(n, DataType::Text);
            }
        }
        _ => {}
    }
}

fn walk_limit(limit: &Option<LimitClause>, scope: &Scope, types: &mut Vec<DataType>) {
    if let Some(LimitClause::LimitOffset { limit, offset, .. }) = limit {
        for e in limit.iter().chain(offset.iter().map(|o| &o.value)) {
            if let Some(n) = placeholder(e) {
                note(types, n, DataType::BigInt);
            }
            walk(e, scope, types);
        }
    }
}

/// Parameters in a query body: each SELECT of a UNION in its own scope.
fn walk_body(engine: &Engine, body: &SetExpr, types: &mut Vec<DataType>) {
    match body {
        SetExpr::Select(s) => {
            let scope = crate::planner::plan_from(engine, &s.from, None)
                .and_then(|p| p.scope(engine))
                .unwrap_or_default();
            if let Some(w) = &s.selection {
                walk(w, &scope, types);
            }
            for item in &s.projection {
                if let sqlparser::ast::SelectItem::UnnamedExpr(e)
                | sqlparser::ast::SelectItem::ExprWithAlias { expr: e, .. } = item
                {
                    walk(e, &scope, types);
                }
            }
        }
        SetExpr::SetOperation { left, right, .. } => {
            walk_body(engine, left, types);
            walk_body(engine, right, types);
        }
        SetExpr::Query(q) => walk_body(engine, &q.body, types),
        _ => {}
    }
}

/// The type of each `$n` in `stmt`, as far as its context says (text otherwise).
pub fn param_types(engine: &Engine, stmt: &Statement) -> Vec<DataType> {
    let mut types = Vec::new();
    match stmt {
        Statement::Query(q) => {
            walk_body(engine, &q.body, &mut types);
            walk_limit(&q.limit_clause, &Scope::default(), &mut types);
        }
        Statement::Insert(ins) => {
            let table = match &ins.table {
                sqlparser::ast::TableObject::TableName(n) => object_name(n),
                _ => return types,
            };
            let Ok(t) = engine.table(&table) else {
                return types;
            };
            let targets: Vec<usize> = if ins.columns.is_empty() {
                t.def.live_columns()
            } else {
                ins.columns
                    .iter()
                    .filter_map(|c| t.def.column(&object_name(c)))
                    .collect()
            };
            if let Some(SetExpr::Values(v)) = ins.source.as_deref().map(|q| q.body.as_ref()) {
                for row in &v.rows {
                    for (e, &col) in row.iter().zip(&targets) {
                        if let Some(n) = placeholder(e) {
                            note(&mut types, n, t.def.columns[col].ty);
                        } else {
                            walk(e, &t.scope(&table), &mut types);
                        }
                    }
                }
            }
        }
        Statement::Update(up) => {
            if let sqlparser::ast::TableFactor::Table { name, .. } = &up.table.relation {
                let table = object_name(name);
                let Ok(t) = engine.table(&table) else {
                    return types;
                };
                let scope = t.scope(&table);
                for a in &up.assignments {
                    if let (sqlparser::ast::AssignmentTarget::ColumnName(c), Some(n)) =
                        (&a.target, placeholder(&a.value))
                    {
                        if let Some(col) = t.def.column(&object_name(c)) {
                            note(&mut types, n, t.def.columns[col].ty);
                        }
                    } else {
                        walk(&a.value, &scope, &mut types);
                    }
                }
                if let Some(w) = &up.selection {
                    walk(w, &scope, &mut types);
                }
            }
        }
        Statement::Delete(del) => {
            let from = match &del.from {
                sqlparser::ast::FromTable::WithFromKeyword(f)
                | sqlparser::ast::FromTable::WithoutKeyword(f) => f,
            };
            if let Some(sqlparser::ast::TableFactor::Table { name, .. }) =
                from.first().map(|f| &f.relation)
            {
                let table = object_name(name);
                if let (Ok(t), Some(w)) = (engine.table(&table), &del.selection) {
                    walk(w, &t.scope(&table), &mut types);
                }
            }
        }
        _ => {}
    }
    types
}

/// Decodes one bound parameter for a statement that needs it as `ty`. A binary value is
/// laid out as the type the client `declared` for it at Parse, when it declared one:
/// decoded as that, then cast (a `date` becomes a timestamp at midnight, an `int2` an
/// `int8`).
pub fn decode_param(
    raw: Option<&[u8]>,
    ty: DataType,
    binary: bool,
    declared: Option<&pgwire::api::Type>,
) -> PgWireResult<Value> {
    let Some(raw) = raw else {
        return Ok(Value::Null);
    };
    if binary && let Some(declared) = declared {
        if *declared == pgwire::api::Type::DATE {
            let days = <[u8; 4]>::try_from(raw)
                .map(i32::from_be_bytes)
                .map_err(|_| {
                    SqlError::new(
                        "22P03",
                        "incorrect binary data format in bind parameter of type date",
                    )
                })?;
            let epoch = chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default();
            let day = epoch + chrono::TimeDelta::days(i64::from(days));
            return Ok(Value::Timestamp(day.and_time(chrono::NaiveTime::MIN)).cast(ty)?);
        }
        if let Some(wire) = DataType::from_pg_type(declared)
            && wire != ty
        {
            return Ok(decode_param(Some(raw), wire, true, None)?.cast(ty)?);
        }
    }
    if !binary {
        let text = std::str::from_utf8(raw)
            .map_err(|_| SqlError::new("22021", "invalid byte sequence for encoding \"UTF8\""))?;
        return Ok(Value::Text(text.to_string()).cast(ty)?);
    }
    let bad = || {
        SqlError::new(
            "22P03",
            format!(
                "incorrect binary data format in bind parameter of type {}",
                ty.pg_name()
            ),
        )
    };
    let int = |n: usize| -> Result<i64, SqlError> {
        match (n, raw.len()) {
            (2, 2) => Ok(i16::from_be_bytes([raw[0], raw[1]]) as i64),
            (4, 4) => Ok(i32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) as i64),
            (8, 8) => Ok(i64::from_be_bytes(raw.try_into().map_err(|_| bad())?)),
            _ => Err(bad()),
        }
    };
    Ok(match ty {
        DataType::SmallInt => Value::Int(int(2)?),
        DataType::Int => Value::Int(int(4)?),
        DataType::BigInt => Value::Int(int(8)?),
        DataType::Double => match raw.len() {
            8 => Value::Double(f64::from_be_bytes(raw.try_into().map_err(|_| bad())?)),
            4 => Value::Double(f32::from_be_bytes(raw.try_into().map_err(|_| bad())?) as f64),
            _ => return Err(bad().into()),
        },
        DataType::Bool => Value::Bool(raw.first().is_some_and(|&b| b != 0)),
        DataType::Text | DataType::Varchar(_) => {
            Value::Text(String::from_utf8(raw.to_vec()).map_err(|_| bad())?).cast(ty)?
        }
        DataType::Numeric(_) => {
            use postgres_types::FromSql;
            let d = rust_decimal::Decimal::from_sql(&pgwire::api::Type::NUMERIC, raw)
                .map_err(|_| bad())?;
            Value::Numeric(d).cast(ty)?
        }
        DataType::Timestamp => {
            use postgres_types::FromSql;
            let t = chrono::NaiveDateTime::from_sql(&pgwire::api::Type::TIMESTAMP, raw)
                .map_err(|_| bad())?;
            Value::Timestamp(t)
        }
    })
}

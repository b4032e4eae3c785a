//! SQL values and their types: what a column holds, how values compare, convert and print.
//!
//! A row is a `Vec<Value>`. `NULL` is a value of every type; comparisons with it yield
//! `NULL` ("unknown"), which is why SQL has three-valued logic: `WHERE x = NULL` selects
//! nothing and `IS NULL` exists. For sorting and for index keys, though, we need a *total*
//! order, so [`Value`]'s `Ord` puts `NULL` last (as PostgreSQL sorts `ASC`) and orders
//! numbers of different kinds by value.

use std::cmp::Ordering;
use std::fmt;

use chrono::NaiveDateTime;
use rust_decimal::{Decimal, RoundingStrategy};

use crate::error::SqlError;

/// A column's declared type. Integer widths are kept so that out-of-range values fail
/// as in PostgreSQL (22003) and clients get the type they declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    SmallInt,
    Int,
    BigInt,
    Double,
    /// Exact decimal arithmetic; `NUMERIC(p,s)` (precision, scale) rounds to `s` places and
    /// refuses a value with more than `p - s` digits before the point (22003).
    Numeric(Option<(u32, u32)>),
    Text,
    /// `VARCHAR(n)`/`CHAR(n)`: text with a length limit.
    Varchar(Option<u32>),
    Bool,
    Timestamp,
}

impl DataType {
    /// PostgreSQL's name for the type, as `\d` and errors show it.
    pub fn pg_name(self) -> String {
        match self {
            DataType::SmallInt => "smallint".into(),
            DataType::Int => "integer".into(),
            DataType::BigInt => "bigint".into(),
            DataType::Double => "double precision".into(),
            DataType::Numeric(Some((p, s))) => format!("numeric({p},{s})"),
            DataType::Numeric(None) => "numeric".into(),
            DataType::Text => "text".into(),
            DataType::Varchar(Some(n)) => format!("character varying({n})"),
            DataType::Varchar(None) => "character varying".into(),
            DataType::Bool => "boolean".into(),
            DataType::Timestamp => "timestamp without time zone".into(),
        }
    }

    /// The wire type reported to clients in RowDescription.
    pub fn pg_type(self) -> pgwire::api::Type {
        use pgwire::api::Type;
        match self {
            DataType::SmallInt => Type::INT2,
            DataType::Int => Type::INT4,
            DataType::BigInt => Type::INT8,
            DataType::Double => Type::FLOAT8,
            DataType::Numeric(_) => Type::NUMERIC,
            DataType::Text => Type::TEXT,
            DataType::Varchar(_) => Type::VARCHAR,
            DataType::Bool => Type::BOOL,
            DataType::Timestamp => Type::TIMESTAMP,
        }
    }

    /// The type of a client-declared parameter type (extended protocol), if we have it.
    pub fn from_pg_type(t: &pgwire::api::Type) -> Option<DataType> {
        use pgwire::api::Type;
        Some(match *t {
            Type::INT2 => DataType::SmallInt,
            Type::INT4 => DataType::Int,
            Type::INT8 => DataType::BigInt,
            Type::FLOAT4 | Type::FLOAT8 => DataType::Double,
            Type::NUMERIC => DataType::Numeric(None),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => DataType::Text,
            Type::BOOL => DataType::Bool,
            Type::TIMESTAMP | Type::TIMESTAMPTZ => DataType::Timestamp,
            _ => return None,
        })
    }
}

/// One SQL value.
#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Bool(bool),
    /// Every integer width, held as i64; the column type says how it is sent.
    Int(i64),
    Double(f64),
    Numeric(Decimal),
    Text(String),
    Timestamp(NaiveDateTime),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value as a condition: `NULL` is "unknown", which `WHERE` treats as false.
    pub fn truthy(&self) -> Result<Option<bool>, SqlError> {
        match self {
            Value::Null => Ok(None),
            Value::Bool(b) => Ok(Some(*b)),
            other => Err(SqlError::datatype_mismatch(format!(
                "argument of WHERE must be type boolean, not {}",
                other.type_name()
            ))),
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "unknown",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::Double(_) => "double precision",
            Value::Numeric(_) => "numeric",
            Value::Text(_) => "text",
            Value::Timestamp(_) => "timestamp without time zone",
        }
    }

    /// SQL comparison: `None` when either side is `NULL`.
    pub fn sql_cmp(&self, other: &Value) -> Result<Option<Ordering>, SqlError> {
        if self.is_null() || other.is_null() {
            return Ok(None);
        }
        let comparable = matches!(
            (self, other),
            (Value::Bool(_), Value::Bool(_))
                | (Value::Text(_), Value::Text(_))
                | (Value::Timestamp(_), Value::Timestamp(_))
                | (Value::Timestamp(_), Value::Text(_))
                | (Value::Text(_), Value::Timestamp(_))
        ) || (self.is_number() && other.is_number());
        if !comparable {
            return Err(SqlError::undefined_function(format!(
                "operator does not exist: {} = {}",
                self.type_name(),
                other.type_name()
            )));
        }
        Ok(Some(self.cmp(other)))
    }

    fn is_number(&self) -> bool {
        matches!(self, Value::Int(_) | Value::Double(_) | Value::Numeric(_))
    }

    /// The value converted to `ty` (an implicit assignment cast or an explicit `CAST`).
    /// The value a column of type `ty` holds for `text` (a COPY field): the cast from
    /// text, without first copying the text into a `Value::Text` for the types parsed
    /// straight from it (integers: every column a bulk load like pgbench's fills).
    pub fn from_text(text: &str, ty: DataType) -> Result<Value, SqlError> {
        if matches!(ty, DataType::SmallInt | DataType::Int | DataType::BigInt)
            && let Ok(n) = text.parse::<i64>()
        {
            // In range: the same value the cast makes. Out of range, the cast's error.
            return Value::Int(n).cast(ty);
        }
        Value::Text(text.to_string()).cast(ty)
    }

    pub fn cast(self, ty: DataType) -> Result<Value, SqlError> {
        let invalid = |v: &Value| {
            SqlError::invalid_text(format!(
                "invalid input syntax for type {}: \"{}\"",
                ty.pg_name(),
                v
            ))
        };
        Ok(match (ty, self) {
            (_, Value::Null) => Value::Null,
            (DataType::SmallInt | DataType::Int | DataType::BigInt, v) => {
                let n: i64 = match &v {
                    Value::Int(n) => *n,
                    Value::Double(f) => {
                        // PostgreSQL rounds a float to the nearest even integer (rint),
                        // and a numeric half away from zero: 2.5::float8::int is 2,
                        // 2.5::numeric::int is 3.
                        let r = f.round_ties_even();
                        if !r.is_finite() || r.abs() > 9.2e18 {
                            return Err(SqlError::out_of_range(ty));
                        }
                        r as i64
                    }
                    Value::Numeric(d) => {
                        let r = d.round_dp_with_strategy(
                            0,
                            rust_decimal::RoundingStrategy::MidpointAwayFromZero,
                        );
                        i64::try_from(r).map_err(|_| SqlError::out_of_range(ty))?
                    }
                    Value::Text(s) => s.trim().parse().map_err(|_| invalid(&v))?,
                    Value::Bool(b) if ty == DataType::Int => i64::from(*b),
                    _ => return Err(SqlError::cannot_cast(&v, ty)),
                };
                let (lo, hi) = match ty {
                    DataType::SmallInt => (i16::MIN as i64, i16::MAX as i64),
                    DataType::Int => (i32::MIN as i64, i32::MAX as i64),
                    _ => (i64::MIN, i64::MAX),
                };
                if n < lo || n > hi {
                    return Err(SqlError::out_of_range(ty));
                }
                Value::Int(n)
            }
            (DataType::Double, v) => Value::Double(match &v {
                Value::Int(n) => *n as f64,
                Value::Double(f) => *f,
                Value::Numeric(d) => d.to_string().parse().unwrap_or(f64::NAN),
                Value::Text(s) => s.trim().parse().map_err(|_| invalid(&v))?,
                _ => return Err(SqlError::cannot_cast(&v, ty)),
            }),
            (DataType::Numeric(typmod), v) => {
                let d = match &v {
                    Value::Int(n) => Decimal::from(*n),
                    Value::Double(f) => Decimal::try_from(*f).map_err(|_| invalid(&v))?,
                    Value::Numeric(d) => *d,
                    Value::Text(s) => s.trim().parse().map_err(|_| invalid(&v))?,
                    _ => return Err(SqlError::cannot_cast(&v, ty)),
                };
                Value::Numeric(match typmod {
                    Some((p, s)) => to_precision(d, p, s)?,
                    None => d,
                })
            }
            (DataType::Text, v) => Value::Text(v.to_string()),
            (DataType::Varchar(limit), v) => {
                let s = v.to_string();
                if let Some(n) = limit
                    && s.chars().count() > n as usize
                {
                    return Err(SqlError::new(
                        "22001",
                        format!("value too long for type character varying({n})"),
                    ));
                }
                Value::Text(s)
            }
            (DataType::Bool, v) => match &v {
                Value::Bool(b) => Value::Bool(*b),
                Value::Int(n) => Value::Bool(*n != 0),
                Value::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
                    "t" | "true" | "yes" | "y" | "on" | "1" => Value::Bool(true),
                    "f" | "false" | "no" | "n" | "off" | "0" => Value::Bool(false),
                    _ => return Err(invalid(&v)),
                },
                _ => return Err(SqlError::cannot_cast(&v, ty)),
            },
            (DataType::Timestamp, v) => match &v {
                Value::Timestamp(t) => Value::Timestamp(*t),
                Value::Text(s) => Value::Timestamp(parse_timestamp(s).ok_or_else(|| invalid(&v))?),
                _ => return Err(SqlError::cannot_cast(&v, ty)),
            },
        })
    }
}

/// `d` as a `NUMERIC(p,s)` holds it: rounded (half away from zero) to exactly `s` places —
/// 100 is stored as 100.00 — and refused with PostgreSQL's 22003 when more than `p - s`
/// digits remain before the point.
fn to_precision(d: Decimal, p: u32, s: u32) -> Result<Decimal, SqlError> {
    let mut r = d.round_dp_with_strategy(s, RoundingStrategy::MidpointAwayFromZero);
    r.rescale(s);
    let integer_digits = p.saturating_sub(s);
    // rust_decimal holds at most 28 digits: a wider field cannot overflow.
    if integer_digits < 28 {
        let limit = Decimal::from_i128_with_scale(10i128.pow(integer_digits), 0);
        if r.abs() >= limit {
            return Err(SqlError::new("22003", "numeric field overflow").with_detail(format!(
                "A field with precision {p}, scale {s} must round to an absolute value less than {}.",
                if integer_digits == 0 { "1".to_string() } else { format!("10^{integer_digits}") }
            )));
        }
    }
    Ok(r)
}

/// `t` rounded to the microsecond. PostgreSQL's timestamps have microsecond precision —
/// in storage, in text and in binary — and clients rely on it: psycopg parses the text
/// form's fraction into Python's `datetime`, which holds microseconds only, and failed on
/// the nine digits of a nanosecond clock.
pub fn to_microseconds(t: NaiveDateTime) -> NaiveDateTime {
    use chrono::Timelike;
    let below = i64::from(t.nanosecond() % 1000);
    let rounded = t - chrono::TimeDelta::nanoseconds(below);
    if below >= 500 {
        rounded + chrono::TimeDelta::microseconds(1)
    } else {
        rounded
    }
}

/// The clock, as a timestamp PostgreSQL could store (UTC, microseconds).
pub fn current_timestamp() -> NaiveDateTime {
    to_microseconds(chrono::Utc::now().naive_utc())
}

fn parse_timestamp(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Some(to_microseconds(t));
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
}

/// PostgreSQL's text form of a timestamp: seconds, then the microseconds without their
/// trailing zeros (`19.5`, `19.500691`, no fraction at all for whole seconds).
fn write_timestamp(f: &mut fmt::Formatter<'_>, t: &NaiveDateTime) -> fmt::Result {
    use chrono::Timelike;
    write!(f, "{}", t.format("%Y-%m-%d %H:%M:%S"))?;
    let micros = to_microseconds(*t).nanosecond() / 1000;
    if micros == 0 {
        return Ok(());
    }
    let digits = format!("{micros:06}");
    write!(f, ".{}", digits.trim_end_matches('0'))
}

/// The text form PostgreSQL sends (`t`/`f` for booleans).
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => Ok(()),
            Value::Bool(b) => f.write_str(if *b { "t" } else { "f" }),
            Value::Int(n) => write!(f, "{n}"),
            Value::Double(x) => write!(f, "{x}"),
            Value::Numeric(d) => write!(f, "{d}"),
            Value::Text(s) => f.write_str(s),
            Value::Timestamp(t) => write_timestamp(f, t),
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Value {}
impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The total order used by sorts and index keys: numbers by value across kinds, `NULL`
/// after everything, values of unrelated types by a fixed type rank.
impl Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        use Value::*;
        match (self, other) {
            (Null, Null) => Ordering::Equal,
            (Null, _) => Ordering::Greater,
            (_, Null) => Ordering::Less,
            (Int(a), Int(b)) => a.cmp(b),
            (Numeric(a), Numeric(b)) => a.cmp(b),
            (Int(a), Numeric(b)) => Decimal::from(*a).cmp(b),
            (Numeric(a), Int(b)) => a.cmp(&Decimal::from(*b)),
            (Double(a), Double(b)) => a.total_cmp(b),
            (Double(a), Int(b)) => a.total_cmp(&(*b as f64)),
            (Int(a), Double(b)) => (*a as f64).total_cmp(b),
            (Double(a), Numeric(b)) => a.total_cmp(&b.to_string().parse().unwrap_or(f64::NAN)),
            (Numeric(a), Double(b)) => a.to_string().parse().unwrap_or(f64::NAN).total_cmp(b),
            (Text(a), Text(b)) => a.cmp(b),
            (Bool(a), Bool(b)) => a.cmp(b),
            (Timestamp(a), Timestamp(b)) => a.cmp(b),
            (Timestamp(a), Text(b)) => parse_timestamp(b).map_or(Ordering::Less, |b| a.cmp(&b)),
            (Text(a), Timestamp(b)) => parse_timestamp(a).map_or(Ordering::Greater, |a| a.cmp(b)),
            (a, b) => a.rank().cmp(&b.rank()),
        }
    }
}

impl Value {
    /// A number as f64 (for hashing and float arithmetic).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(n) => Some(*n as f64),
            Value::Double(f) => Some(*f),
            Value::Numeric(d) => d.to_string().parse().ok(),
            _ => None,
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Value::Bool(_) => 0,
            Value::Int(_) | Value::Double(_) | Value::Numeric(_) => 1,
            Value::Text(_) => 2,
            Value::Timestamp(_) => 3,
            Value::Null => 4,
        }
    }
}

impl std::hash::Hash for Value {
    /// Consistent with `Eq`: equal numbers of different kinds hash alike (hash joins,
    /// `GROUP BY`, `DISTINCT`).
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            Value::Null => 0u8.hash(state),
            Value::Bool(b) => b.hash(state),
            Value::Int(_) | Value::Numeric(_) | Value::Double(_) => {
                // Equal numbers have equal f64 images; unequal ones may collide, which a
                // hash allows.
                let f = self.as_f64().unwrap_or(0.0);
                (if f == 0.0 { 0.0f64 } else { f }).to_bits().hash(state)
            }
            Value::Text(s) => s.hash(state),
            Value::Timestamp(t) => t.hash(state),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_by_value_across_kinds_and_null_sorts_last() {
        assert_eq!(Value::Int(2), Value::Numeric(Decimal::from(2)));
        assert!(Value::Int(1) < Value::Double(1.5));
        assert!(Value::Int(i64::MAX) < Value::Null);
        assert_eq!(Value::Null.sql_cmp(&Value::Int(1)).ok(), Some(None));
    }

    #[test]
    fn casts_check_ranges_and_syntax() {
        assert_eq!(
            Value::Text("42".into()).cast(DataType::Int).ok(),
            Some(Value::Int(42))
        );
        assert_eq!(
            Value::Int(70000)
                .cast(DataType::SmallInt)
                .err()
                .map(|e| e.code),
            Some("22003")
        );
        assert_eq!(
            Value::Text("x".into())
                .cast(DataType::Int)
                .err()
                .map(|e| e.code),
            Some("22P02")
        );
        let n = Value::Text("1.005".into()).cast(DataType::Numeric(Some((10, 2))));
        assert_eq!(n.ok().map(|v| v.to_string()), Some("1.01".to_string()));
    }
}

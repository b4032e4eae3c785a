//! Errors as PostgreSQL reports them: a five-character SQLSTATE, its wording, and for
//! syntax errors the 1-based character position in the statement.
//!
//! Clients branch on the SQLSTATE (a retry loop on 40P01/40001, a form that shows
//! "already taken" on 23505), so the code matters more than the text; both follow
//! PostgreSQL.

use pgwire::error::{ErrorInfo, PgWireError};

use crate::types::DataType;

#[derive(Debug, Clone, PartialEq)]
pub struct SqlError {
    pub code: &'static str,
    pub message: String,
    /// 1-based character offset into the query text (syntax errors).
    pub position: Option<usize>,
    pub detail: Option<String>,
    /// PostgreSQL's HINT line: what the user might do about it.
    pub hint: Option<String>,
}

impl SqlError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        SqlError {
            code,
            message: message.into(),
            position: None,
            detail: None,
            hint: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn syntax(message: impl Into<String>, position: Option<usize>) -> Self {
        SqlError {
            position,
            ..SqlError::new("42601", message)
        }
    }
    pub fn undefined_table(name: &str) -> Self {
        SqlError::new("42P01", format!("relation \"{name}\" does not exist"))
    }
    pub fn undefined_column(name: &str) -> Self {
        SqlError::new("42703", format!("column \"{name}\" does not exist"))
    }
    pub fn undefined_function(message: impl Into<String>) -> Self {
        SqlError::new("42883", message)
    }
    pub fn datatype_mismatch(message: impl Into<String>) -> Self {
        SqlError::new("42804", message)
    }
    pub fn invalid_text(message: impl Into<String>) -> Self {
        SqlError::new("22P02", message)
    }
    pub fn out_of_range(ty: DataType) -> Self {
        SqlError::new("22003", format!("{} out of range", ty.pg_name()))
    }
    pub fn cannot_cast(v: &crate::types::Value, ty: DataType) -> Self {
        SqlError::new(
            "42846",
            format!("cannot cast type {} to {}", v.type_name(), ty.pg_name()),
        )
    }
    pub fn unsupported(what: impl Into<String>) -> Self {
        SqlError::new("0A000", format!("{} is not supported", what.into()))
    }
    pub fn division_by_zero() -> Self {
        SqlError::new("22012", "division by zero")
    }
    pub fn in_failed_transaction() -> Self {
        SqlError::new(
            "25P02",
            "current transaction is aborted, commands ignored until end of transaction block",
        )
    }
    pub fn deadlock() -> Self {
        SqlError::new("40P01", "deadlock detected")
    }
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for SqlError {}

impl From<SqlError> for ErrorInfo {
    fn from(e: SqlError) -> ErrorInfo {
        let mut info = ErrorInfo::new("ERROR".to_owned(), e.code.to_owned(), e.message);
        info.position = e.position.map(|p| p.to_string());
        info.detail = e.detail;
        info.hint = e.hint;
        info
    }
}

impl From<SqlError> for PgWireError {
    fn from(e: SqlError) -> PgWireError {
        PgWireError::UserError(Box::new(e.into()))
    }
}

/// A sqlparser error as PostgreSQL's 42601, with the position computed from the
/// parser's "Line: L, Column: C".
pub fn from_parser(sql: &str, err: sqlparser::parser::ParserError) -> SqlError {
    let text = err.to_string();
    let position = line_column(&text).map(|(line, column)| {
        let before: usize = sql
            .split_inclusive('\n')
            .take(line.saturating_sub(1))
            .map(|l| l.chars().count())
            .sum();
        before + column
    });
    // Errors at the end of the input carry no line/column: point just past the end.
    let position = position.or_else(|| text.contains("EOF").then(|| sql.chars().count() + 1));
    let message = text
        .trim_start_matches("sql parser error: ")
        .split(" at Line:")
        .next()
        .unwrap_or("syntax error")
        .to_string();
    let near = position.and_then(|p| {
        sql.chars()
            .skip(p.saturating_sub(1))
            .collect::<String>()
            .split_whitespace()
            .next()
            .map(str::to_owned)
    });
    let message = match near {
        Some(word) => format!(
            "syntax error at or near \"{}\" ({message})",
            word.trim_end_matches(';')
        ),
        None => format!("syntax error at end of input ({message})"),
    };
    SqlError::syntax(message, position)
}

fn line_column(text: &str) -> Option<(usize, usize)> {
    let rest = text.split("Line: ").nth(1)?;
    let (line, rest) = rest.split_once(", Column: ")?;
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((line.trim().parse().ok()?, column.parse().ok()?))
}

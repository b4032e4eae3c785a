//! Generated (computed) columns: `total NUMERIC GENERATED ALWAYS AS (price * qty) STORED`.
//!
//! A stored generated column is the simplest form of the course's "database caching":
//! a value derived from the row is computed once, when the row is written, and stored
//! with it, so every read gets it for free. The price is paid on writes — every INSERT
//! and UPDATE recomputes it — and the database, not the application, keeps it right.
//!
//! The rules PostgreSQL applies, and this module with them:
//! - the expression sees only the row being written (no subqueries, no other rows, no
//!   other generated columns), and must be deterministic (no `now()`);
//! - clients cannot write the column: INSERT may only give it `DEFAULT`, UPDATE may only
//!   SET it to `DEFAULT` (SQLSTATE 428C9);
//! - it is computed after the row's other values are final and before the constraints
//!   are checked, so a CHECK or a UNIQUE index can use it.

use sqlparser::ast::Expr;

use crate::catalog::TableDef;
use crate::error::SqlError;
use crate::expr::{Env, eval};
use crate::types::Value;

/// Fills every generated column of `values` (a row about to be written to `def`). The
/// engine calls this on every insert and update, whoever the writer is.
pub fn compute(def: &TableDef, values: &mut [Value]) -> Result<(), SqlError> {
    if def.columns.iter().all(|c| c.generated.is_none()) {
        return Ok(());
    }
    let scope = def_scope(def);
    for (i, c) in def.columns.iter().enumerate() {
        let Some(e) = &c.generated else { continue };
        let env = Env {
            scope: &scope,
            row: values,
            params: &[],
            aggregates: None,
            subquery: None,
            outer: None,
        };
        let v = eval(e, &env)?.cast(c.ty)?;
        if let Some(slot) = values.get_mut(i) {
            *slot = v;
        }
    }
    Ok(())
}

/// Checks generation expressions when a table is defined: they may name only the
/// table's ordinary columns and must not call volatile functions.
pub fn check_definitions(def: &TableDef) -> Result<(), SqlError> {
    for c in &def.columns {
        let Some(e) = &c.generated else { continue };
        let text = e.to_string().to_lowercase();
        for volatile in ["now(", "current_timestamp", "random(", "nextval("] {
            if text.contains(volatile) {
                return Err(SqlError::new(
                    "42P17",
                    "generation expression is not immutable",
                ));
            }
        }
        if let Some(other) = def
            .columns
            .iter()
            .find(|o| o.generated.is_some() && o.name != c.name && names_column(e, &o.name))
        {
            return Err(SqlError::syntax(
                format!(
                    "cannot use generated column \"{}\" in column generation expression",
                    other.name
                ),
                None,
            ));
        }
        // Evaluating against a row of NULLs finds unknown columns (42703) now rather
        // than on the first insert.
        let scope = def_scope(def);
        let row = vec![Value::Null; def.columns.len()];
        let env = Env {
            scope: &scope,
            row: &row,
            params: &[],
            aggregates: None,
            subquery: None,
            outer: None,
        };
        if let Err(err) = eval(e, &env)
            && err.code == "42703"
        {
            return Err(err);
        }
    }
    Ok(())
}

/// 428C9 for a client that gives a generated column a value.
pub fn not_writable(column: &str, update: bool) -> SqlError {
    if update {
        SqlError::new(
            "428C9",
            format!("column \"{column}\" can only be updated to DEFAULT"),
        )
        .with_detail(format!("Column \"{column}\" is a generated column."))
    } else {
        SqlError::new(
            "428C9",
            format!("cannot insert a non-DEFAULT value into column \"{column}\""),
        )
        .with_detail(format!("Column \"{column}\" is a generated column."))
    }
}

/// Is this the `DEFAULT` keyword (which parses as an identifier in VALUES and SET)?
pub fn is_default(e: &Expr) -> bool {
    matches!(e, Expr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default"))
}

fn names_column(e: &Expr, column: &str) -> bool {
    // A conservative textual test over the expression's identifiers.
    e.to_string()
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .any(|w| w.eq_ignore_ascii_case(column))
}

fn def_scope(def: &TableDef) -> crate::expr::Scope {
    crate::expr::Scope {
        columns: def
            .columns
            .iter()
            .map(|c| (def.name.clone(), c.name.clone(), c.ty))
            .collect(),
    }
}

//! ORDER BY and DISTINCT ON over a query's projected rows. Each row travels with its
//! sort keys (ORDER BY's values, then DISTINCT ON's), computed once before sorting.

use std::cmp::Ordering;
use std::collections::HashSet;

use sqlparser::ast::{self, Expr};

use crate::engine::Result;
use crate::error::SqlError;
use crate::types::Value;

/// A projected row and its keys.
pub(super) type Keyed = (Vec<Value>, Vec<Value>);

/// Sorts by the first `order.len()` keys: ASC/DESC, NULLS FIRST/LAST (NULLs sort last
/// ascending, first descending, by default), stable for equal keys.
pub(super) fn sort(out: &mut [Keyed], order: &[ast::OrderByExpr]) {
    if order.is_empty() {
        return;
    }
    out.sort_by(|(_, a), (_, b)| {
        for (i, o) in order.iter().enumerate() {
            let desc = matches!(o.options.sort, Some(ast::OrderBySort::Desc));
            let nulls_first = o.options.nulls_first.unwrap_or(desc);
            let (x, y) = (&a[i], &b[i]);
            let ord = match (x.is_null(), y.is_null()) {
                (true, true) => Ordering::Equal,
                (true, false) => {
                    if nulls_first {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    }
                }
                (false, true) => {
                    if nulls_first {
                        Ordering::Greater
                    } else {
                        Ordering::Less
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
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    });
}

/// DISTINCT ON: keeps the first row (in the sorted order) of each set of rows whose keys
/// past the first `sort_keys` (the DISTINCT ON values) are equal, and drops those keys.
pub(super) fn first_of_each(out: &mut Vec<Keyed>, sort_keys: usize) {
    let mut seen = HashSet::new();
    out.retain_mut(|(_, keys)| seen.insert(keys.split_off(sort_keys)));
}

/// PostgreSQL's rule (42P10): ORDER BY, if present, must begin with the DISTINCT ON
/// expressions (in any order among themselves), so that "the first row of each set" is
/// defined by the sort.
pub(super) fn check_distinct_on(on: &[Expr], order: &[ast::OrderByExpr]) -> Result<()> {
    if on.is_empty() || order.is_empty() {
        return Ok(());
    }
    let leading: Vec<String> = order
        .iter()
        .take(on.len())
        .map(|o| o.expr.to_string())
        .collect();
    let matches = order.len() >= on.len() && on.iter().all(|e| leading.contains(&e.to_string()));
    if !matches {
        return Err(SqlError::new(
            "42P10",
            "SELECT DISTINCT ON expressions must match initial ORDER BY expressions",
        )
        .into());
    }
    Ok(())
}

//! Subqueries in IN, EXISTS and scalar position: uncorrelated ones run once, correlated
//! ones once per outer row.
//!
//! ```sql
//! SELECT name FROM customers WHERE id IN (SELECT customer_id FROM orders);      -- uncorrelated
//! SELECT name FROM customers c
//!  WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id);           -- correlated
//! SELECT name, (SELECT max(total) FROM orders o WHERE o.customer_id = c.id)
//!   FROM customers c;                                                           -- correlated
//! ```
//!
//! The first subquery's rows are the same whichever customer is being tested, so running
//! it once per statement and reusing its rows is enough. The others read `c.id`, a column
//! of the *outer* row (the name is not found among the subquery's own FROM items, so it is
//! looked up outwards: [`crate::expr::Outer`]); their result differs per customer, so they
//! run again for every outer row — the "nested loop" a correlated subquery implies, which
//! is why databases try to rewrite them into joins (PostgreSQL turns EXISTS into a *semi
//! join*; this executor does not, and `EXPLAIN` shows the plan of the outer query only).
//!
//! Which kind a subquery is is not worked out from its text: it is observed. Its first run
//! records whether any name was resolved in the outer row; one that never reached outwards
//! did exactly the same work it would do for any other outer row, so its rows are kept for
//! the rest of the statement.

use std::cell::RefCell;
use std::collections::HashMap;

use sqlparser::ast;

use crate::engine::Halt;
use crate::error::SqlError;
use crate::expr::{Env, Outer, Subquery};
use crate::types::Value;

use super::{Ctx, query_with};

/// Runs `f` with the subquery runner for one query level of this statement. Subqueries
/// read the statement's snapshot, so a reused result is exactly what a rerun would give.
pub(crate) fn with_subqueries<R>(ctx: &Ctx<'_>, f: impl FnOnce(&Subquery<'_>) -> R) -> R {
    // Keyed by the subquery's place in the statement's syntax tree, which does not move
    // while the statement runs.
    let uncorrelated: RefCell<HashMap<usize, Vec<Vec<Value>>>> = RefCell::default();
    let run = |q: &ast::Query, env: &Env<'_>| -> Result<Vec<Vec<Value>>, SqlError> {
        let key = std::ptr::from_ref(q) as usize;
        if let Some(rows) = uncorrelated.borrow().get(&key) {
            return Ok(rows.clone());
        }
        let outer = Outer::new(env);
        let rows = match query_with(ctx, q, Some(&outer)) {
            Ok(out) => out.rows,
            // A serializable read had to wait for a lock: subqueries report errors as
            // `SqlError`, so the wait is left in the context for the session to find.
            Err(Halt::Wait(holder)) => {
                ctx.waited_in_subquery.set(Some(holder));
                return Err(SqlError::new("55P03", "waiting for a lock in a subquery"));
            }
            Err(Halt::Error(e)) => return Err(e),
        };
        if !outer.used.get() {
            uncorrelated.borrow_mut().insert(key, rows.clone());
        }
        Ok(rows)
    };
    f(&run)
}

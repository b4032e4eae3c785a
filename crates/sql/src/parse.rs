//! Parsing SQL text into statements without letting one query overflow the stack.
//!
//! sqlparser's recursion limit counts nested *parentheses* (and subqueries), but infix and
//! postfix operators (`a OR b OR ...`, `1 + 1 + ...`, `x::int::int...`, `x IS NULL IS
//! NULL ...`) are parsed in a loop into a left-deep tree as deep as the chain is long.
//! Everything that later walks that tree recurses: our planner and evaluator, and the
//! derived `Clone`, `Drop`, `Display` and `PartialEq` of sqlparser's `Expr`. A 100,000-term
//! chain overflowed the tokio worker's stack and aborted the whole process — every server
//! of `infralab up` with it. PostgreSQL answers such a query, or at worst fails it with
//! SQLSTATE 54001 "stack depth limit exceeded" and keeps serving; so do we:
//!
//! 1. Before parsing, [`depth_bound`] reads the tokens once (a loop, no recursion) and
//!    computes an upper bound on the depth of any expression tree they can parse into.
//!    Above [`MAX_TOKEN_DEPTH`] the query fails with 54001 and no tree is ever built —
//!    not even a partial one the parser would drop recursively on a syntax error.
//! 2. At or below [`MAX_DEPTH`] nothing can be deep: the query is parsed as before.
//! 3. In between, the parse runs on a separately allocated large stack
//!    (`stacker::grow`, the same thread — nothing about the session moves), where a
//!    deep tree can be built, rebalanced and, if need be, dropped safely. There every
//!    chain of `AND` or of `OR` (what ORMs generate: `id = $1 OR id = $2 OR ...` with
//!    thousands of terms) is rebuilt as a balanced tree — both operators are associative
//!    in SQL's three-valued logic, and SQL does not promise an evaluation order — so
//!    3,000 terms become 12 levels. The tree is then measured; deeper than [`MAX_DEPTH`]
//!    (a long `1 + 1 + ...`, whose type and overflow rules depend on the order) fails
//!    with 54001 and is dropped on the large stack.
//!
//! Whatever leaves this module is at most [`MAX_DEPTH`] expressions deep, which the rest
//! of the server handles within a 2 MiB stack even in a debug build.

use std::ops::ControlFlow;

use sqlparser::ast::{BinaryOperator, Expr, Statement, VisitMut, VisitorMut};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{SqlError, from_parser};

/// The deepest expression tree the server accepts (after balancing AND/OR chains).
pub const MAX_DEPTH: usize = 200;

/// The largest [`depth_bound`] parsed at all (on the large stack).
pub const MAX_TOKEN_DEPTH: usize = 50_000;

/// The stack the deep parses run on: enough to drop a tree [`MAX_TOKEN_DEPTH`] deep in a
/// debug build (measured: about 1 KiB a level there). Reserved address space; only the
/// pages a parse touches are ever backed by memory.
const LARGE_STACK: usize = 256 << 20;

/// Nesting of parentheses and subqueries, as sqlparser counts it.
const RECURSION_LIMIT: usize = 64;

/// An `AND`/`OR` chain longer than this is rebalanced (a balanced tree's leftmost path
/// is never this long, so a chain is rebuilt at most once).
const CHAIN_REBALANCED: usize = 64;

/// The statements in `sql`.
pub fn statements(sql: &str) -> Result<Vec<Statement>, SqlError> {
    guarded(sql, |p| p.parse_statements())
}

/// The one expression in `sql`.
pub fn expression(sql: &str) -> Result<Expr, SqlError> {
    guarded(sql, |p| p.parse_expr())
}

fn too_deep() -> SqlError {
    SqlError::new("54001", "stack depth limit exceeded")
        .with_detail(format!(
            "An expression nests more than {MAX_DEPTH} operators deep (a chain of AND or of OR \
             counts as the logarithm of its length)."
        ))
        .with_hint("Use IN (...) or = ANY($1) for long lists, or parenthesise long sums.")
}

fn guarded<T: VisitMut>(
    sql: &str,
    parse: impl FnOnce(&mut Parser) -> Result<T, ParserError>,
) -> Result<T, SqlError> {
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| from_parser(sql, e.into()))?;
    let bound = depth_bound(tokens.iter().map(|t| &t.token));
    if bound > MAX_TOKEN_DEPTH {
        return Err(too_deep());
    }
    let run = move || {
        let mut parser = Parser::new(&dialect)
            .with_recursion_limit(RECURSION_LIMIT)
            .with_tokens_with_locations(tokens);
        let mut parsed = parse(&mut parser).map_err(|e| from_parser(sql, e))?;
        if bound > MAX_DEPTH && parsed.visit(&mut Balance::default()).is_break() {
            return Err(too_deep());
        }
        Ok(parsed)
    };
    if bound <= MAX_DEPTH {
        run()
    } else {
        stacker::grow(LARGE_STACK, run)
    }
}

/// An upper bound on the depth of any expression the tokens parse into.
///
/// An expression never spans a comma or semicolon outside its own parentheses or brackets,
/// and every level of an expression tree comes from a token of its own (an operator, a
/// keyword, a name) or from a pair of brackets. So within each bracketed group, a
/// comma-separated segment is at most (its own tokens + its deepest inner group) deep, and
/// the group one more than its deepest segment. Counting every token, operands included,
/// over-counts (about twice, for `a = 1 OR b = 2 ...`), never under-counts.
pub fn depth_bound<'a>(tokens: impl Iterator<Item = &'a Token>) -> usize {
    /// One open group: the current segment's tokens and deepest inner group, and the
    /// deepest finished segment.
    #[derive(Default)]
    struct Group {
        tokens: usize,
        inner: usize,
        deepest: usize,
    }
    impl Group {
        fn end_segment(&mut self) {
            self.deepest = self.deepest.max(self.tokens + self.inner);
            self.tokens = 0;
            self.inner = 0;
        }
    }
    let mut open = vec![Group::default()];
    for token in tokens {
        match token {
            Token::Whitespace(_) | Token::EOF => {}
            Token::Comma | Token::SemiColon => open.last_mut().map_or((), Group::end_segment),
            Token::LParen | Token::LBracket | Token::LBrace => open.push(Group::default()),
            Token::RParen | Token::RBracket | Token::RBrace if open.len() > 1 => {
                let mut group = open.pop().unwrap_or_default();
                group.end_segment();
                if let Some(outer) = open.last_mut() {
                    outer.inner = outer.inner.max(group.deepest + 1);
                }
            }
            _ => open.last_mut().map_or((), |g| g.tokens += 1),
        }
    }
    // Unclosed groups (a syntax error, but the parser still builds up to it).
    let mut depth = 0;
    while let Some(mut group) = open.pop() {
        group.inner = group.inner.max(depth);
        group.end_segment();
        depth = group.deepest + 1;
    }
    depth
}

/// Rebalances every long AND/OR chain, then measures depth: breaks out when an
/// expression is nested deeper than [`MAX_DEPTH`], before recursing any further.
#[derive(Default)]
struct Balance {
    depth: usize,
}

impl VisitorMut for Balance {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::BinaryOp { op, .. } = expr
            && matches!(op, BinaryOperator::And | BinaryOperator::Or)
        {
            let op = op.clone();
            let chain = std::mem::replace(expr, Expr::value(sqlparser::ast::Value::Null));
            *expr = rebalance(chain, &op);
        }
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _expr: &mut Expr) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}

/// `chain` (a left-deep `a op b op c ...`) as a balanced tree of the same operands in the
/// same order, if it is longer than [`CHAIN_REBALANCED`]; unchanged otherwise.
fn rebalance(chain: Expr, op: &BinaryOperator) -> Expr {
    let mut operands = Vec::new();
    let mut rest = chain;
    loop {
        match rest {
            Expr::BinaryOp { left, op: o, right } if o == *op => {
                operands.push(*right);
                rest = *left;
            }
            leftmost => {
                operands.push(leftmost);
                break;
            }
        }
    }
    operands.reverse();
    if operands.len() <= CHAIN_REBALANCED {
        return left_deep(operands, op);
    }
    balanced(operands, op)
}

fn left_deep(operands: Vec<Expr>, op: &BinaryOperator) -> Expr {
    let mut operands = operands.into_iter();
    let first = operands
        .next()
        .unwrap_or(Expr::value(sqlparser::ast::Value::Null));
    operands.fold(first, |left, right| Expr::BinaryOp {
        left: Box::new(left),
        op: op.clone(),
        right: Box::new(right),
    })
}

/// Recursion as deep as log2 of the operand count.
fn balanced(mut operands: Vec<Expr>, op: &BinaryOperator) -> Expr {
    if operands.len() <= 2 {
        return left_deep(operands, op);
    }
    let right = operands.split_off(operands.len() / 2);
    Expr::BinaryOp {
        left: Box::new(balanced(operands, op)),
        op: op.clone(),
        right: Box::new(balanced(right, op)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(sql: &str) -> usize {
        let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
            .tokenize()
            .expect("tokens");
        depth_bound(tokens.iter())
    }

    #[test]
    fn the_bound_follows_chains_not_lists() {
        assert_eq!(bound("select 1"), 3);
        let list = format!("select x in ({})", vec!["1"; 10_000].join(", "));
        assert!(bound(&list) < 10, "{}", bound(&list));
        let chain = format!("select {}", vec!["1"; 1000].join(" + "));
        assert!(bound(&chain) > 1000);
        // A chain inside nested parentheses counts at every level it is under.
        assert!(bound("select ((a + b) + c) * d") >= 5);
    }

    #[test]
    fn a_long_or_chain_is_accepted_balanced_and_a_long_sum_is_refused() {
        let ors: Vec<String> = (0..3000).map(|i| format!("id = {i}")).collect();
        let sql = format!("select * from t where {}", ors.join(" or "));
        let parsed = statements(&sql).expect("accepted");
        // Same operands, same order.
        let text = parsed[0].to_string();
        assert!(
            text.contains("id = 0 OR id = 1 OR id = 2"),
            "{}",
            &text[..80]
        );
        assert!(text.ends_with("id = 2999"));

        let sum = format!("select {}", vec!["1"; 1000].join(" + "));
        assert_eq!(statements(&sum).expect_err("too deep").code, "54001");
        let huge = format!("select {} +", vec!["1"; 100_000].join(" + "));
        assert_eq!(statements(&huge).expect_err("too deep").code, "54001");
        // A syntax error after a long chain: the partial tree is dropped safely.
        let broken = format!("select {} +", vec!["1"; 24_000].join(" + "));
        assert_eq!(statements(&broken).expect_err("syntax").code, "42601");
    }
}

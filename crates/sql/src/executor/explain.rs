//! EXPLAIN: the plan of a SELECT laid out as PostgreSQL's — Limit, Sort, Aggregate
//! above the scan/join tree the planner chose (index scan vs sequential scan, hash join
//! vs nested loop).

use sqlparser::ast::{GroupByExpr, SelectItem, SetExpr, Statement};

use crate::engine::Result;
use crate::error::SqlError;
use crate::expr::is_aggregate;
use crate::planner::{Plan, plan_from};
use crate::types::{DataType, Value};

use super::{Ctx, Output};

pub(super) fn explain(ctx: &mut Ctx<'_>, stmt: &Statement) -> Result<Output> {
    let Statement::Query(q) = stmt else {
        return Err(SqlError::unsupported("EXPLAIN of a statement other than SELECT").into());
    };
    let SetExpr::Select(s) = q.body.as_ref() else {
        return Err(SqlError::unsupported("EXPLAIN of this query").into());
    };
    let plan = plan_from(ctx.engine, &s.from, s.selection.as_ref())?;
    let mut lines = Vec::new();
    let grouped = !matches!(&s.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
        || s.projection.iter().any(|i| matches!(i, SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } if is_aggregate(e)));
    let mut depth = 0;
    if q.limit_clause.is_some() {
        lines.push("Limit".to_string());
        depth += 1;
    }
    if q.order_by.is_some() {
        lines.push(format!("{}Sort", crate::planner::arrow(depth)));
        depth += 1;
    }
    if grouped {
        lines.push(format!("{}Aggregate", crate::planner::arrow(depth)));
        depth += 1;
    }
    let mut plan_lines = Vec::new();
    plan.explain(ctx.engine, depth, &mut plan_lines);
    if let Some(w) = &s.selection
        && !plan_lines.is_empty()
    {
        // After the node's own detail line (an index scan's Index Cond).
        let at = if matches!(plan, Plan::IndexScan { .. }) {
            2
        } else {
            1
        };
        plan_lines.insert(
            at.min(plan_lines.len()),
            format!(
                "{}  Filter: ({w})",
                " ".repeat(crate::planner::arrow(depth).len())
            ),
        );
    }
    lines.extend(plan_lines);
    Ok(Output {
        columns: vec![("QUERY PLAN".into(), DataType::Text)],
        tag: "EXPLAIN".into(),
        rows: lines.into_iter().map(|l| vec![Value::Text(l)]).collect(),
        returns_rows: true,
        copy_in: None,
    })
}

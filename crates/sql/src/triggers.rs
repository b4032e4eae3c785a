//! Triggers: `CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON accounts FOR EACH
//! ROW EXECUTE FUNCTION log_change()`.
//!
//! A trigger is consistency the database keeps on its own: whoever changes a row — a
//! client, a cascade, another trigger — the trigger's SQL runs too, *in the same
//! transaction*, so the audit row and the change commit or roll back together.
//!
//! How it runs, as in PostgreSQL: the write path ([`crate::engine`]) records each
//! changed row of a table with triggers as a [`RowEvent`] (the OLD and NEW values) in
//! the transaction. When the statement ends, [`fire`] runs the trigger function once per
//! event ("AFTER ROW" triggers fire at the end of the statement, from the after-trigger
//! queue). Statements a trigger runs may queue more events; they fire in turn, up to a
//! depth that stops a trigger that keeps triggering itself (54001).
//!
//! The function language is a small, honest subset of PL/pgSQL:
//!
//! ```sql
//! CREATE FUNCTION log_change() RETURNS trigger LANGUAGE plpgsql AS $$
//! BEGIN
//!   INSERT INTO audit (account, old_balance, new_balance) VALUES (NEW.id, OLD.balance, NEW.balance);
//!   RETURN NEW;
//! END $$;
//! ```
//!
//! The body is `BEGIN`, SQL statements, an optional `RETURN NEW|OLD|NULL`, `END`. Inside
//! the statements `NEW.column` and `OLD.column` are the row's values — PL/pgSQL turns
//! such variable references into query parameters, and so does [`parse_body`]. No
//! variables, IF, loops or RAISE; BEFORE, INSTEAD OF, FOR EACH STATEMENT and WHEN get
//! 0A000. (The return value of an AFTER trigger is ignored, in PostgreSQL too.)

use sqlparser::ast::{self, Statement};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::catalog::{TableDef, ident, object_name};
use crate::engine::{Result, TxState, Undo};
use crate::error::SqlError;
use crate::executor::{Ctx, Output};
use crate::types::Value;
use crate::wal::Change;

/// How many rounds of triggers firing triggers a statement may run.
const MAX_DEPTH: usize = 16;

/// A row change a trigger can fire on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Insert,
    Update,
    Delete,
}

impl Event {
    fn sql(self) -> &'static str {
        match self {
            Event::Insert => "INSERT",
            Event::Update => "UPDATE",
            Event::Delete => "DELETE",
        }
    }
}

/// `CREATE TRIGGER name AFTER <events> ON table FOR EACH ROW EXECUTE FUNCTION f()`.
#[derive(Debug, Clone)]
pub struct TriggerDef {
    pub name: String,
    pub events: Vec<Event>,
    pub function: String,
}

impl TriggerDef {
    /// The statement that creates it (checkpoints, `\d`).
    pub fn sql(&self, table: &str) -> String {
        format!(
            "CREATE TRIGGER {} AFTER {} ON {table} FOR EACH ROW EXECUTE FUNCTION {}()",
            self.name,
            self.events
                .iter()
                .map(|e| e.sql())
                .collect::<Vec<_>>()
                .join(" OR "),
            self.function
        )
    }
}

/// A trigger function: its statements, each with the `NEW.x`/`OLD.x` references that
/// became its parameters `$1, $2, ...`.
#[derive(Debug, Clone)]
pub struct Function {
    pub name: String,
    /// The CREATE FUNCTION statement (checkpoints replay it).
    pub sql: String,
    pub body: Vec<(Statement, Vec<RowRef>)>,
}

/// `NEW.column` (new = true) or `OLD.column`.
#[derive(Debug, Clone, PartialEq)]
pub struct RowRef {
    pub new: bool,
    pub column: String,
}

/// One changed row, waiting for the end of its statement.
#[derive(Debug, Clone)]
pub struct RowEvent {
    pub table: String,
    pub event: Event,
    pub old: Option<Vec<Value>>,
    pub new: Option<Vec<Value>>,
}

/// Called by the write path for every row it changes: queue the change if the table
/// has a trigger for it.
pub fn queue(def: &TableDef, tx: &mut TxState, old: Option<&[Value]>, new: Option<&[Value]>) {
    if def.triggers.is_empty() {
        return;
    }
    let event = match (old, new) {
        (None, _) => Event::Insert,
        (Some(_), Some(_)) => Event::Update,
        (Some(_), None) => Event::Delete,
    };
    if def.triggers.iter().any(|t| t.events.contains(&event)) {
        tx.events.push(RowEvent {
            table: def.name.clone(),
            event,
            old: old.map(<[Value]>::to_vec),
            new: new.map(<[Value]>::to_vec),
        });
    }
}

/// Fires the queued events' triggers, and those their statements queue, in rounds.
pub fn fire(ctx: &mut Ctx<'_>) -> Result<()> {
    let mut depth = 0;
    while !ctx.tx.events.is_empty() {
        depth += 1;
        if depth > MAX_DEPTH {
            return Err(SqlError::new(
                "54001",
                format!("triggers fired triggers more than {MAX_DEPTH} levels deep"),
            )
            .with_detail("A trigger probably changes a table whose trigger fires it again.")
            .into());
        }
        let events = std::mem::take(&mut ctx.tx.events);
        for ev in events {
            let Some(table) = ctx.engine.tables.get(&ev.table) else {
                continue;
            };
            let def = table.def.clone();
            for trigger in def.triggers.iter().filter(|t| t.events.contains(&ev.event)) {
                let function = ctx
                    .engine
                    .functions
                    .get(&trigger.function)
                    .cloned()
                    .ok_or_else(|| {
                        SqlError::undefined_function(format!(
                            "function {}() does not exist",
                            trigger.function
                        ))
                    })?;
                for (stmt, refs) in &function.body {
                    let mut params = Vec::with_capacity(refs.len());
                    for r in refs {
                        let row = if r.new { &ev.new } else { &ev.old };
                        let Some(row) = row else {
                            params.push(Value::Null); // OLD in INSERT, NEW in DELETE
                            continue;
                        };
                        let at = def.column(&r.column).ok_or_else(|| {
                            SqlError::new(
                                "42703",
                                format!(
                                    "record \"{}\" has no field \"{}\"",
                                    if r.new { "new" } else { "old" },
                                    r.column
                                ),
                            )
                        })?;
                        params.push(row[at].clone());
                    }
                    // Each statement of the function reads as a statement of the
                    // transaction at its isolation level would (one snapshot for all of
                    // them under repeatable read).
                    let snapshot = crate::isolation::statement_snapshot(ctx.engine, ctx.tx, None);
                    let mut inner = Ctx {
                        engine: &mut *ctx.engine,
                        tx: &mut *ctx.tx,
                        snapshot,
                        params: &params,
                        waited_in_subquery: Default::default(),
                    };
                    let result = crate::executor::statement(&mut inner, stmt);
                    if let Some(holder) = inner.waited_in_subquery.take() {
                        ctx.waited_in_subquery.set(Some(holder));
                    }
                    result?;
                }
            }
        }
    }
    Ok(())
}

/// Splits a PL/pgSQL body into its SQL statements, turning `NEW.x`/`OLD.x` into
/// parameters. Anything else PL/pgSQL has gets 0A000.
pub fn parse_body(body: &str) -> std::result::Result<Vec<(Statement, Vec<RowRef>)>, SqlError> {
    let unsupported = |what: &str| {
        SqlError::unsupported(format!(
            "{what} in a trigger function (the body is BEGIN, SQL statements, RETURN, END)"
        ))
    };
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, body)
        .tokenize()
        .map_err(|e| SqlError::syntax(e.to_string(), None))?;
    let tokens: Vec<Token> = tokens
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    let word = |t: Option<&Token>, w: &str| matches!(t, Some(Token::Word(x)) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w));
    let mut inner: &[Token] = &tokens;
    if !word(inner.first(), "begin") {
        return Err(unsupported("a body not starting with BEGIN (DECLARE, ...)"));
    }
    inner = &inner[1..];
    while matches!(inner.last(), Some(Token::SemiColon)) {
        inner = &inner[..inner.len() - 1];
    }
    if !word(inner.last(), "end") {
        return Err(SqlError::syntax(
            "a trigger function body must end with END",
            None,
        ));
    }
    inner = &inner[..inner.len() - 1];
    let mut out = Vec::new();
    let mut returned = false;
    for part in inner.split(|t| matches!(t, Token::SemiColon)) {
        if part.is_empty() {
            continue;
        }
        if returned {
            return Err(unsupported("statements after RETURN"));
        }
        if word(part.first(), "return") {
            let ok = part.len() == 2
                && (word(part.get(1), "new")
                    || word(part.get(1), "old")
                    || word(part.get(1), "null"));
            if !ok {
                return Err(unsupported("RETURN of something but NEW, OLD or NULL"));
            }
            returned = true;
            continue;
        }
        for keyword in [
            "if", "raise", "for", "loop", "while", "perform", "declare", "case",
        ] {
            if word(part.first(), keyword) {
                return Err(unsupported(&keyword.to_uppercase()));
            }
        }
        // NEW . column  ->  $k
        let mut refs: Vec<RowRef> = Vec::new();
        let mut text = String::new();
        let mut i = 0;
        while i < part.len() {
            let is_row = (word(part.get(i), "new") || word(part.get(i), "old"))
                && matches!(part.get(i + 1), Some(Token::Period))
                && matches!(part.get(i + 2), Some(Token::Word(_)));
            if is_row && let Some(Token::Word(col)) = part.get(i + 2) {
                let r = RowRef {
                    new: word(part.get(i), "new"),
                    column: if col.quote_style.is_some() {
                        col.value.clone()
                    } else {
                        col.value.to_lowercase()
                    },
                };
                let k = match refs.iter().position(|x| *x == r) {
                    Some(k) => k,
                    None => {
                        refs.push(r);
                        refs.len() - 1
                    }
                };
                text.push_str(&format!(" ${} ", k + 1));
                i += 3;
                continue;
            }
            text.push_str(&part[i].to_string());
            text.push(' ');
            i += 1;
        }
        let mut statements = crate::parse::statements(&text)
            .map_err(|e| unsupported(&format!("\"{}\" ({})", text.trim(), e.message)))?;
        match (statements.pop(), statements.is_empty()) {
            (Some(stmt), true) => out.push((stmt, refs)),
            _ => return Err(unsupported("this statement")),
        }
    }
    Ok(out)
}

/// `CREATE [OR REPLACE] FUNCTION name() RETURNS trigger LANGUAGE plpgsql AS $$...$$`.
pub fn create_function(
    ctx: &mut Ctx<'_>,
    f: &ast::CreateFunction,
    stmt: &Statement,
) -> Result<Output> {
    ctx.engine.begin_ddl(ctx.tx.id);
    let name = object_name(&f.name);
    let returns_trigger =
        matches!(&f.return_type, Some(t) if t.to_string().eq_ignore_ascii_case("trigger"));
    if !returns_trigger {
        return Err(SqlError::unsupported("functions other than trigger functions").into());
    }
    if f.args.as_ref().is_some_and(|a| !a.is_empty()) {
        return Err(
            SqlError::new("42P13", "trigger functions cannot have declared arguments").into(),
        );
    }
    if f.language.as_ref().is_none_or(|l| ident(l) != "plpgsql") {
        return Err(
            SqlError::unsupported("trigger functions in a language other than plpgsql").into(),
        );
    }
    let body = match &f.function_body {
        Some(ast::CreateFunctionBody::AsBeforeOptions { body, .. })
        | Some(ast::CreateFunctionBody::AsAfterOptions(body)) => match body {
            ast::Expr::Value(v) => match &v.value {
                ast::Value::DollarQuotedString(s) => s.value.clone(),
                ast::Value::SingleQuotedString(s) => s.clone(),
                _ => return Err(SqlError::syntax("function body must be a string", None).into()),
            },
            _ => return Err(SqlError::syntax("function body must be a string", None).into()),
        },
        _ => return Err(SqlError::syntax("function body missing (AS $$ ... $$)", None).into()),
    };
    let function = Function {
        name: name.clone(),
        sql: stmt.to_string(),
        body: parse_body(&body)?,
    };
    if ctx.engine.functions.contains_key(&name) && !f.or_replace {
        return Err(SqlError::new(
            "42723",
            format!("function \"{name}\" already exists with same argument types"),
        )
        .into());
    }
    let before = ctx.engine.functions.insert(name.clone(), function);
    ctx.tx.undo.push(Undo::Function {
        name,
        before: before.map(Box::new),
    });
    ctx.tx.redo.push(Change::Ddl(stmt.to_string()));
    Ok(Output {
        tag: "CREATE FUNCTION".into(),
        ..Output::default()
    })
}

/// `DROP FUNCTION [IF EXISTS] name[()]`: refused while a trigger uses it (2BP01).
pub fn drop_function(ctx: &mut Ctx<'_>, d: &ast::DropFunction, stmt: &Statement) -> Result<Output> {
    ctx.engine.begin_ddl(ctx.tx.id);
    for desc in &d.func_desc {
        let name = object_name(&desc.name);
        if !ctx.engine.functions.contains_key(&name) {
            if d.if_exists {
                continue;
            }
            return Err(
                SqlError::undefined_function(format!("function {name}() does not exist")).into(),
            );
        }
        if let Some(t) = ctx
            .engine
            .tables
            .values()
            .find(|t| t.def.triggers.iter().any(|tr| tr.function == name))
        {
            return Err(SqlError::new(
                "2BP01",
                format!("cannot drop function {name}() because other objects depend on it"),
            )
            .with_detail(format!(
                "a trigger on table {} depends on function {name}()",
                t.def.name
            ))
            .into());
        }
        let before = ctx.engine.functions.remove(&name);
        ctx.tx.undo.push(Undo::Function {
            name,
            before: before.map(Box::new),
        });
    }
    ctx.tx.redo.push(Change::Ddl(stmt.to_string()));
    Ok(Output {
        tag: "DROP FUNCTION".into(),
        ..Output::default()
    })
}

/// `CREATE TRIGGER name AFTER INSERT [OR UPDATE] [OR DELETE] ON table FOR EACH ROW
/// EXECUTE FUNCTION f()`.
pub fn create_trigger(
    ctx: &mut Ctx<'_>,
    t: &ast::CreateTrigger,
    stmt: &Statement,
) -> Result<Output> {
    ctx.engine.begin_ddl(ctx.tx.id);
    let name = object_name(&t.name);
    let table = object_name(&t.table_name);
    if !matches!(t.period, Some(ast::TriggerPeriod::After)) {
        return Err(SqlError::unsupported("triggers other than AFTER (BEFORE, INSTEAD OF)").into());
    }
    if !matches!(
        t.trigger_object,
        Some(ast::TriggerObjectKind::ForEach(ast::TriggerObject::Row))
            | Some(ast::TriggerObjectKind::For(ast::TriggerObject::Row))
    ) {
        return Err(SqlError::unsupported("FOR EACH STATEMENT triggers").into());
    }
    if t.condition.is_some() || !t.referencing.is_empty() || t.is_constraint {
        return Err(SqlError::unsupported("WHEN, REFERENCING and constraint triggers").into());
    }
    let mut events = Vec::new();
    for e in &t.events {
        events.push(match e {
            ast::TriggerEvent::Insert => Event::Insert,
            ast::TriggerEvent::Update(cols) if cols.is_empty() => Event::Update,
            ast::TriggerEvent::Delete => Event::Delete,
            other => return Err(SqlError::unsupported(format!("trigger event {other}")).into()),
        });
    }
    let function = match &t.exec_body {
        Some(body) => object_name(&body.func_desc.name),
        None => return Err(SqlError::syntax("EXECUTE FUNCTION missing", None).into()),
    };
    if !ctx.engine.functions.contains_key(&function) {
        return Err(
            SqlError::undefined_function(format!("function {function}() does not exist")).into(),
        );
    }
    let tab = ctx
        .engine
        .tables
        .get_mut(&table)
        .ok_or_else(|| SqlError::undefined_table(&table))?;
    if tab.def.view.is_some() {
        return Err(SqlError::new("42809", format!("\"{table}\" is not a table")).into());
    }
    if tab.def.triggers.iter().any(|x| x.name == name) {
        return Err(SqlError::new(
            "42710",
            format!("trigger \"{name}\" for relation \"{table}\" already exists"),
        )
        .into());
    }
    let before = Box::new(tab.def.clone());
    tab.def.triggers.push(TriggerDef {
        name,
        events,
        function,
    });
    ctx.tx.undo.push(Undo::AlteredTable { table, def: before });
    ctx.tx.redo.push(Change::Ddl(stmt.to_string()));
    Ok(Output {
        tag: "CREATE TRIGGER".into(),
        ..Output::default()
    })
}

/// `DROP TRIGGER [IF EXISTS] name ON table`.
pub fn drop_trigger(ctx: &mut Ctx<'_>, d: &ast::DropTrigger, stmt: &Statement) -> Result<Output> {
    ctx.engine.begin_ddl(ctx.tx.id);
    let name = object_name(&d.trigger_name);
    let table = d
        .table_name
        .as_ref()
        .map(object_name)
        .ok_or_else(|| SqlError::syntax("DROP TRIGGER needs ON table", None))?;
    let tab = ctx
        .engine
        .tables
        .get_mut(&table)
        .ok_or_else(|| SqlError::undefined_table(&table))?;
    match tab.def.triggers.iter().position(|t| t.name == name) {
        Some(at) => {
            let before = Box::new(tab.def.clone());
            tab.def.triggers.remove(at);
            ctx.tx.undo.push(Undo::AlteredTable { table, def: before });
            ctx.tx.redo.push(Change::Ddl(stmt.to_string()));
        }
        None if d.if_exists => {}
        None => {
            return Err(SqlError::new(
                "42704",
                format!("trigger \"{name}\" for table \"{table}\" does not exist"),
            )
            .into());
        }
    }
    Ok(Output {
        tag: "DROP TRIGGER".into(),
        ..Output::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_becomes_statements_with_new_and_old_as_parameters() {
        let body =
            " BEGIN INSERT INTO audit VALUES (NEW.id, OLD.balance, NEW.id); RETURN NEW; END ";
        let parsed = parse_body(body).expect("parses");
        assert_eq!(parsed.len(), 1);
        let (stmt, refs) = &parsed[0];
        assert_eq!(stmt.to_string(), "INSERT INTO audit VALUES ($1, $2, $1)");
        assert_eq!(
            refs,
            &vec![
                RowRef {
                    new: true,
                    column: "id".into()
                },
                RowRef {
                    new: false,
                    column: "balance".into()
                },
            ]
        );
    }

    #[test]
    fn plpgsql_beyond_the_subset_is_refused() {
        for body in [
            "DECLARE x int; BEGIN RETURN NEW; END",
            "BEGIN IF NEW.x > 1 THEN RETURN NEW; END IF; END",
            "BEGIN RETURN NEW; INSERT INTO t VALUES (1); END",
        ] {
            let err = parse_body(body).expect_err(body);
            assert_eq!(err.code, "0A000", "{body}");
        }
    }
}

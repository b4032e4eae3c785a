//! `PREPARE`, `EXECUTE`, `DEALLOCATE` and `DISCARD`: SQL commands over the connection's
//! prepared statements.
//!
//! In PostgreSQL the protocol's named statements (Parse) and SQL's `PREPARE` share one
//! namespace per connection, and drivers rely on it: psycopg 3 prepares a query once it
//! has run it five times (`prepare_threshold`), and on `rollback()` or `close()` sends
//! `DEALLOCATE ALL` — which, answered with an error, made every rollback after any error
//! fail. Here both kinds live in pgwire's statement store; the names Parse and PREPARE
//! created are listed in [`SqlParser`] because the store cannot enumerate itself.
//!
//! These commands run only in the simple query protocol (where psycopg and psql send
//! them); in the extended protocol they fall through to the executor's 0A000.

use std::collections::BTreeSet;
use std::sync::Arc;

use pgwire::api::stmt::StoredStatement;
use pgwire::api::store::{Entry, MemPortalStore, PortalStore};
use sqlparser::ast::{DiscardObject, Expr, Ident, ObjectName, Statement};

use super::{Prepared, SqlParser};
use crate::error::SqlError;
use crate::executor::{Output, env};
use crate::expr::{Scope, eval};
use crate::params::param_types;
use crate::session::{Block, Session, TxEffect};
use crate::types::Value;

/// The names of the connection's named prepared statements.
#[derive(Debug, Default)]
pub struct Names(std::sync::Mutex<BTreeSet<String>>);

impl Names {
    /// Parse or PREPARE created `name` (the unnamed statement is not listed).
    pub fn add(&self, name: &str) {
        if !name.is_empty() {
            self.lock().insert(name.to_owned());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take_all(&self) -> BTreeSet<String> {
        std::mem::take(&mut *self.lock())
    }
}

/// Runs `stmt` if it is one of these commands (`None` otherwise). `store` is the
/// connection's statement store (pgwire's `MemPortalStore`; `None` if pgwire ever hands
/// another kind, and then the commands fall through to 0A000).
pub(super) async fn run(
    stmt: &Statement,
    store: Option<&MemPortalStore<Prepared>>,
    parser: &SqlParser,
    session: &mut Session,
) -> Option<Result<(Output, TxEffect), SqlError>> {
    let store = store?;
    let is_ours = matches!(
        stmt,
        Statement::Deallocate { .. }
            | Statement::Discard { .. }
            | Statement::Prepare { .. }
            | Statement::Execute { name: Some(_), .. }
    );
    if !is_ours {
        return None;
    }
    if session.block == Block::Failed {
        return Some(Err(SqlError::in_failed_transaction()));
    }
    let result = match stmt {
        Statement::Deallocate { name, .. } => deallocate(name, store, &parser.names),
        Statement::Discard { object_type } => discard(*object_type, store, parser, session),
        Statement::Prepare {
            name,
            data_types,
            statement,
        } => prepare(name, data_types, statement, store, parser),
        Statement::Execute {
            name: Some(name),
            parameters,
            ..
        } => return Some(execute(name, parameters, store, session).await),
        _ => return None,
    };
    Some(result.map(|tag| {
        let out = Output {
            tag: tag.to_owned(),
            ..Output::default()
        };
        (out, TxEffect::None)
    }))
}

fn not_found(name: &str) -> SqlError {
    SqlError::new(
        "26000",
        format!("prepared statement \"{name}\" does not exist"),
    )
}

/// `DEALLOCATE [PREPARE] name | ALL`.
fn deallocate(
    name: &Ident,
    store: &MemPortalStore<Prepared>,
    names: &Names,
) -> Result<&'static str, SqlError> {
    if name.quote_style.is_none() && name.value.eq_ignore_ascii_case("all") {
        deallocate_all(store, names);
        return Ok("DEALLOCATE ALL");
    }
    if store.get_statement(&name.value).is_none() {
        return Err(not_found(&name.value));
    }
    store.rm_statement(&name.value);
    names.lock().remove(&name.value);
    Ok("DEALLOCATE")
}

fn deallocate_all(store: &MemPortalStore<Prepared>, names: &Names) {
    for name in names.take_all() {
        store.rm_statement(&name);
    }
}

/// `DISCARD ALL | PLANS | SEQUENCES | TEMP`. `ALL` is PostgreSQL's: outside a transaction
/// block only (25001), it deallocates every prepared statement and resets every setting.
/// Plans are kept per prepared statement and dropped with them (and re-made whenever the
/// catalog changes), so `PLANS` has nothing else to drop; there are no sequence caches or
/// temporary tables for `SEQUENCES`/`TEMP` to drop.
fn discard(
    object: DiscardObject,
    store: &MemPortalStore<Prepared>,
    parser: &SqlParser,
    session: &mut Session,
) -> Result<&'static str, SqlError> {
    Ok(match object {
        DiscardObject::ALL => {
            if session.block != Block::None {
                return Err(SqlError::new(
                    "25001",
                    "DISCARD ALL cannot run inside a transaction block",
                ));
            }
            deallocate_all(store, &parser.names);
            session.reset_all();
            "DISCARD ALL"
        }
        DiscardObject::PLANS => "DISCARD PLANS",
        DiscardObject::SEQUENCES => "DISCARD SEQUENCES",
        DiscardObject::TEMP => "DISCARD TEMP",
    })
}

/// `PREPARE name [(types)] AS statement`: parameter types as declared, the rest inferred
/// from where each `$n` appears (as for Parse).
fn prepare(
    name: &Ident,
    declared: &[sqlparser::ast::DataType],
    statement: &Statement,
    store: &MemPortalStore<Prepared>,
    parser: &SqlParser,
) -> Result<&'static str, SqlError> {
    if store.get_statement(&name.value).is_some() {
        return Err(SqlError::new(
            "42P05",
            format!("prepared statement \"{}\" already exists", name.value),
        ));
    }
    let mut types = param_types(&parser.db.engine(), statement);
    for (i, t) in declared.iter().enumerate() {
        let (ty, _) = crate::catalog::data_type(t)?;
        if types.len() <= i {
            types.resize(i + 1, ty);
        }
        types[i] = ty;
    }
    let prepared = Prepared::new(statement.clone(), types);
    store.put_statement(Arc::new(StoredStatement::new(
        name.value.clone(),
        prepared,
        Vec::new(),
    )));
    parser.names.add(&name.value);
    Ok("PREPARE")
}

/// `EXECUTE name [(arguments)]`: each argument is evaluated as a constant and cast to its
/// parameter's type, then the statement runs with its kept plan.
async fn execute(
    name: &ObjectName,
    arguments: &[Expr],
    store: &MemPortalStore<Prepared>,
    session: &mut Session,
) -> Result<(Output, TxEffect), SqlError> {
    let name = name.to_string();
    let Some(Entry::Value(stored)) = store.get_statement(&name) else {
        return Err(not_found(&name));
    };
    let prepared = &stored.statement;
    if arguments.len() != prepared.param_types.len() {
        return Err(SqlError::new(
            "42601",
            format!("wrong number of parameters for prepared statement \"{name}\"",),
        )
        .with_detail(format!(
            "Expected {} parameters but got {}.",
            prepared.param_types.len(),
            arguments.len()
        )));
    }
    let scope = Scope::default();
    let params = arguments
        .iter()
        .zip(&prepared.param_types)
        .map(|(a, ty)| eval(a, &env(&scope, &[], &[]))?.cast(*ty))
        .collect::<Result<Vec<Value>, SqlError>>()?;
    prepared.run(session, &params).await
}

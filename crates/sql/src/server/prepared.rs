//! Prepared statements of the extended protocol: Parse turns SQL into a [`Prepared`]
//! statement (parsed once, with its parameter types inferred from where each `$n`
//! appears); Describe and every Execute reuse it. What a prepared statement derives from
//! the catalog — its result columns — is kept until the catalog changes, because libpq
//! describes the portal before every Execute.

use std::sync::Arc;

use async_trait::async_trait;
use pgwire::api::portal::Format;
use pgwire::api::results::FieldInfo;
use pgwire::api::stmt::QueryParser;
use pgwire::api::{ClientInfo, Type};
use pgwire::error::PgWireResult;
use sqlparser::ast::Statement;
use tokio::sync::Mutex;

use super::{parse, schema};
use crate::database::Database;
use crate::error::SqlError;
use crate::executor::{Output, describe};
use crate::params::param_types;
use crate::plancache::PlanCache;
use crate::session::Session;
use crate::types::DataType;

/// A parsed statement kept by Parse, for Bind/Describe/Execute.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub stmt: Statement,
    pub param_types: Vec<DataType>,
    /// The parameter types the client declared at Parse (`None` where it left one to
    /// us): how a binary parameter is laid out on the wire, which can differ from the
    /// type the statement needs (psycopg sends a Python `date` as a 4-byte `date`).
    pub declared: Vec<Option<pgwire::api::Type>>,
    /// Whether it reads a system view (`pg_locks`, `pg_catalog...`): only then can it
    /// be one of the queries answered outside the executor.
    pub(super) system_view: bool,
    /// Its result columns, and the catalog version they were computed at: libpq
    /// describes the portal before every Execute, and the answer only changes with the
    /// catalog (a table altered or dropped).
    columns: Arc<std::sync::Mutex<Option<(u64, Columns)>>>,
    /// Its plan, kept between executions while the catalog stays the same.
    pub plans: Arc<PlanCache>,
}

/// A statement's result columns: name and type.
type Columns = Vec<(String, DataType)>;

impl Prepared {
    pub(super) fn new(stmt: Statement, param_types: Vec<DataType>) -> Prepared {
        Prepared {
            system_view: crate::pg_catalog::reads_system_view(&stmt),
            stmt,
            param_types,
            declared: Vec::new(),
            columns: Arc::default(),
            plans: Arc::default(),
        }
    }

    /// One execution with `params`, with the plan it keeps.
    pub(super) async fn run(
        &self,
        session: &mut Session,
        params: &[crate::types::Value],
    ) -> Result<(Output, crate::session::TxEffect), SqlError> {
        session
            .run_prepared(&self.stmt, params, &self.param_types, &self.plans)
            .await
    }

    /// The result columns, computed again only when the catalog has changed.
    fn columns(&self, db: &Database) -> Result<Columns, SqlError> {
        let version = db.catalog_version();
        let mut cached = self.columns.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, columns)) = cached.as_ref()
            && *at == version
        {
            return Ok(columns.clone());
        }
        let columns = match crate::pg_locks::columns(&self.stmt)
            .or_else(|| crate::pg_catalog::columns(&self.stmt))
        {
            Some(c) => c,
            None => crate::expr::with_param_types(&self.param_types, || {
                describe(&db.engine(), &self.stmt)
            })?,
        };
        *cached = Some((version, columns.clone()));
        Ok(columns)
    }
}

pub struct SqlParser {
    pub(super) db: Arc<Database>,
    /// The connection's session: a statement that fails to parse inside a transaction
    /// block aborts the block, as any other error does.
    pub(super) session: Arc<Mutex<Session>>,
    /// The connection's named prepared statements, for `DEALLOCATE ALL`.
    pub(super) names: super::sql_prepared::Names,
}

#[async_trait]
impl QueryParser for SqlParser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut statements = match parse(sql) {
            Ok(s) => s,
            Err(e) => {
                self.session.lock().await.abort_block();
                return Err(e.into());
            }
        };
        if statements.len() > 1 {
            return Err(SqlError::new(
                "42601",
                "cannot insert multiple commands into a prepared statement",
            )
            .into());
        }
        let Some(stmt) = statements.pop() else {
            return Ok(None);
        };
        let mut param_types = {
            let engine = self.db.engine();
            param_types(&engine, &stmt)
        };
        for (i, t) in types.iter().enumerate() {
            if let Some(t) = t.as_ref().and_then(DataType::from_pg_type) {
                if param_types.len() <= i {
                    param_types.resize(i + 1, DataType::Text);
                }
                param_types[i] = t;
            }
        }
        let mut prepared = Prepared::new(stmt, param_types);
        prepared.declared = types.to_vec();
        Ok(Some(prepared))
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        Ok(stmt.param_types.iter().map(|t| t.pg_type()).collect())
    }

    fn get_result_schema(
        &self,
        stmt: &Prepared,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let columns = stmt.columns(&self.db)?;
        let out = Output {
            columns,
            ..Output::default()
        };
        Ok(schema(&out, format.unwrap_or(&Format::UnifiedText)))
    }
}

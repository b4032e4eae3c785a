//! Wiring: the PostgreSQL protocol (framing by `pgwire`) onto sessions.
//!
//! Each accepted connection gets its own handler object holding its [`Session`], so
//! per-connection state needs no lookup; when the connection ends the handler (and the
//! session, rolling back any open transaction) is dropped. The simple query protocol
//! runs every statement of the query string (several in one implicit transaction); the
//! extended protocol parses once (Parse), binds parameters (Bind, text or binary),
//! describes and executes.
//!
//! The transaction status in each ReadyForQuery ('I' idle, 'T' in a block, 'E' failed
//! block) is read from the session, the one place that knows it: pgwire infers it from
//! the replies, which cannot express `ROLLBACK TO SAVEPOINT` taking a failed block back
//! to 'T'.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, stream};
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::sasl::scram::{ScramAuth, gen_salted_password};
use pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use pgwire::api::copy::{
    CopyHandler, send_copy_both_response, send_copy_in_response, send_copy_out_response,
};
use pgwire::api::portal::Format;
use pgwire::api::query::{
    ExtendedQueryHandler, SimpleQueryHandler, send_execution_response, send_query_response,
    send_ready_for_query,
};
use pgwire::api::results::{DataRowEncoder, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::store::{MemPortalStore, PortalStore};
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireConnectionState, PgWireServerHandlers};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::response::EmptyQueryResponse;
use pgwire::messages::simplequery::Query;
use sqlparser::ast::Statement;
use tokio::sync::Mutex;

use crate::cancel::{BackendKey, Backends};
use crate::database::Database;
use crate::error::SqlError;
use crate::executor::Output;
use crate::session::{Session, TxEffect};
use crate::types::{DataType, Value};

mod extended;
mod prepared;
mod sql_prepared;

pub use prepared::{Prepared, SqlParser};

/// Longest statement text accepted, in bytes (a bound on parse work and memory).
pub const MAX_STATEMENT_LEN: usize = 16 * 1024 * 1024;

pub fn parse(sql: &str) -> Result<Vec<Statement>, SqlError> {
    if sql.len() > MAX_STATEMENT_LEN {
        return Err(SqlError::new("54000", "statement is too long"));
    }
    crate::parse::statements(&crate::isolation::mysql_session_syntax(sql))
}

/// One connection's handlers.
pub struct Connection {
    session: Arc<Mutex<Session>>,
    parser: Arc<SqlParser>,
    password: Option<String>,
    /// The pid and secret key this connection is given at startup, for CancelRequest.
    key: Arc<BackendKey>,
    backends: Arc<Backends>,
}

impl Connection {
    /// The query, startup and COPY handler pgwire asks for: this connection's session.
    fn handler(&self) -> Arc<Handler> {
        Arc::new(Handler {
            session: self.session.clone(),
            parser: self.parser.clone(),
            key: self.key.clone(),
        })
    }

    /// Where CancelRequests (which arrive on connections of their own) are looked up.
    fn cancel_requests(&self) -> Arc<CancelRequests> {
        Arc::new(CancelRequests(self.backends.clone()))
    }

    pub fn new(db: Arc<Database>, password: Option<String>) -> Connection {
        let session = Session::new(db.clone());
        let key = Arc::new(BackendKey::new(
            db.backends.clone(),
            session.backend().clone(),
        ));
        let backends = db.backends.clone();
        let session = Arc::new(Mutex::new(session));
        Connection {
            key,
            backends,
            parser: Arc::new(SqlParser {
                db,
                session: session.clone(),
                names: Default::default(),
            }),
            session,
            password,
        }
    }
}

/// Open access: no password configured.
pub struct Open(pub Connection);
/// SCRAM-SHA-256 password authentication.
pub struct Secured(pub Connection);

#[derive(Debug)]
struct OnePassword(String);

#[async_trait]
impl AuthSource for OnePassword {
    async fn get_password(&self, _login: &LoginInfo) -> PgWireResult<Password> {
        let salt: Vec<u8> = (0..16).map(|_| rand_byte()).collect();
        let hash = gen_salted_password(&self.0, &salt, 4096);
        Ok(Password::new(Some(salt), hash))
    }
}

fn rand_byte() -> u8 {
    service::client::random_u64() as u8
}

/// The PostgreSQL version this server reports (`server_version`, and `SHOW
/// server_version`): the protocol and catalog queries it answers are PostgreSQL 15's, the
/// version psql and pgbench in the course come from. Clients choose their catalog
/// queries by it (psql's `\d`).
pub const SERVER_VERSION: &str = "15.0";

/// The ParameterStatus values sent at startup.
fn server_parameters() -> DefaultServerParameterProvider {
    let mut p = DefaultServerParameterProvider::default();
    p.server_version = SERVER_VERSION.to_string();
    p
}

#[async_trait]
impl NoopStartupHandler for Handler {
    /// pgwire's no-password startup sends its default parameters (server_version
    /// 16.6-pgwire); a second ParameterStatus replaces the value, as a server may send one
    /// at any time.
    async fn post_startup<C>(
        &self,
        client: &mut C,
        _message: pgwire::messages::PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        use futures::SinkExt;
        client
            .send(PgWireBackendMessage::ParameterStatus(
                pgwire::messages::startup::ParameterStatus::new(
                    "server_version".into(),
                    SERVER_VERSION.into(),
                ),
            ))
            .await?;
        Ok(())
    }

    fn pid_secret_key_generator(&self) -> &dyn pgwire::api::PidSecretKeyGenerator {
        &*self.key
    }
}

/// The shared handler type for queries.
pub struct Handler {
    session: Arc<Mutex<Session>>,
    parser: Arc<SqlParser>,
    key: Arc<BackendKey>,
}

/// Answers CancelRequests: see `cancel`.
pub struct CancelRequests(Arc<Backends>);

#[async_trait]
impl pgwire::api::cancel::CancelHandler for CancelRequests {
    async fn on_cancel_request(&self, request: pgwire::messages::cancel::CancelRequest) {
        let found = self.0.cancel_request(request.pid, &request.secret_key);
        tracing::debug!("cancel request for pid {}: {found}", request.pid);
    }
}

impl PgWireServerHandlers for Open {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.0.handler()
    }
    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.0.handler()
    }
    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.0.handler()
    }
    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        self.0.handler()
    }
    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        self.0.cancel_requests()
    }
}

impl PgWireServerHandlers for Secured {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.0.handler()
    }
    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.0.handler()
    }
    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        self.0.handler()
    }
    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        self.0.cancel_requests()
    }
    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        let source = Arc::new(OnePassword(self.0.password.clone().unwrap_or_default()));
        let mut scram = ScramAuth::new(source);
        scram.set_iterations(4096);
        Arc::new(
            SASLAuthStartupHandler::new(Arc::new(server_parameters()))
                .with_scram(scram)
                .with_pid_secret_key_generator(self.0.key.clone()),
        )
    }
}

fn schema(out: &Output, format: &Format) -> Vec<FieldInfo> {
    out.columns
        .iter()
        .enumerate()
        .map(|(i, (name, ty))| {
            FieldInfo::new(name.clone(), None, None, ty.pg_type(), format.format_for(i))
        })
        .collect()
}

fn encode(
    row: &[Value],
    schema: &Arc<Vec<FieldInfo>>,
    types: &[DataType],
) -> PgWireResult<pgwire::messages::data::DataRow> {
    let mut enc = DataRowEncoder::new(schema.clone());
    for (i, v) in row.iter().enumerate() {
        let ty = types.get(i).copied().unwrap_or(DataType::Text);
        // Text format: PostgreSQL's own text forms (`10` for a float8 ten, `t`/`f`).
        if schema
            .get(i)
            .is_some_and(|f| f.format() == pgwire::api::results::FieldFormat::Text)
        {
            enc.encode_field(&crate::copy::text_form(v, ty))?;
            continue;
        }
        let v = v
            .clone()
            .cast(ty)
            .unwrap_or_else(|_| Value::Text(v.to_string()));
        match (v, ty) {
            (Value::Null, _) => enc.encode_field(&None::<i32>)?,
            (Value::Int(n), DataType::SmallInt) => enc.encode_field(&(n as i16))?,
            (Value::Int(n), DataType::Int) => enc.encode_field(&(n as i32))?,
            (Value::Int(n), _) => enc.encode_field(&n)?,
            (Value::Double(f), _) => enc.encode_field(&f)?,
            (Value::Numeric(d), _) => enc.encode_field(&d)?,
            (Value::Bool(b), _) => enc.encode_field(&b)?,
            (Value::Timestamp(t), _) => enc.encode_field(&t)?,
            (Value::Text(s), _) => enc.encode_field(&s)?,
        }
    }
    Ok(enc.take_row())
}

/// `COPY ... TO STDOUT`: runs its query in the session and sends the rows as CopyData,
/// one message per row (`None` for any other statement). A statement that cannot run
/// (binary format, a file target) fails like any other, aborting an open block.
async fn copy_out(
    session: &mut Session,
    stmt: &Statement,
    params: &[Value],
) -> Option<Result<Response, SqlError>> {
    let (query, options) = match crate::copy::copy_out(stmt) {
        Ok(None) => return None,
        Ok(Some(found)) => found,
        Err(e) => {
            session.abort_block();
            return Some(Err(e));
        }
    };
    Some(session.run(&query, params).await.map(|(out, _)| {
        let types: Vec<DataType> = out.columns.iter().map(|c| c.1).collect();
        let mut lines: Vec<Vec<u8>> = out
            .rows
            .iter()
            .map(|r| options.encode_row(r, &types))
            .collect();
        if options.header {
            // In the first message, so that pgwire's count of messages (the `COPY n`
            // tag) stays the count of rows.
            let names: Vec<&str> = out.columns.iter().map(|c| c.0.as_str()).collect();
            let mut header = options.header_line(&names);
            match lines.first_mut() {
                Some(first) => {
                    header.append(first);
                    *first = header;
                }
                None => lines.push(header),
            }
        }
        let data = lines
            .into_iter()
            .map(|l| Ok(pgwire::messages::copy::CopyData::new(l.into())));
        Response::CopyOut(pgwire::api::results::CopyResponse::new(
            0,
            out.columns.len(),
            stream::iter(data),
        ))
    }))
}

fn to_response(out: Output, effect: TxEffect, format: &Format) -> PgWireResult<Response> {
    if let Some(columns) = out.copy_in {
        return Ok(Response::CopyIn(pgwire::api::results::CopyResponse::new(
            0,
            columns,
            stream::empty(),
        )));
    }
    if out.returns_rows {
        let fields = Arc::new(schema(&out, format));
        let types: Vec<DataType> = out.columns.iter().map(|c| c.1).collect();
        let rows: Vec<_> = out
            .rows
            .iter()
            .map(|r| encode(r, &fields, &types))
            .collect();
        let mut response = QueryResponse::new(fields, stream::iter(rows));
        let command = out.tag.split_whitespace().next().unwrap_or("SELECT");
        response.set_command_tag(if command == "INSERT" {
            "INSERT 0"
        } else {
            command
        });
        return Ok(Response::Query(response));
    }
    let mut words = out.tag.split_whitespace();
    let command = words.next().unwrap_or("");
    let numbers: Vec<usize> = words.filter_map(|w| w.parse().ok()).collect();
    let tag = match (command, numbers.as_slice()) {
        ("INSERT", [oid, rows]) => Tag::new("INSERT").with_oid(*oid as u32).with_rows(*rows),
        (_, [rows]) => Tag::new(command).with_rows(*rows),
        _ => Tag::new(&out.tag),
    };
    Ok(match effect {
        TxEffect::Began => Response::TransactionStart(tag),
        TxEffect::Ended => Response::TransactionEnd(tag),
        TxEffect::None => Response::Execution(tag),
    })
}

#[async_trait]
impl SimpleQueryHandler for Handler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut session = self.session.lock().await;
        if let Some(vacuum) = crate::vacuum::parse(query) {
            return Ok(vec![run_vacuum(&mut session, client, vacuum).await?]);
        }
        let described = query
            .contains("pg_catalog.")
            .then(|| crate::describe::answer(query, &session.db().engine()))
            .flatten();
        if let Some(out) = described {
            return Ok(vec![to_response(
                out,
                TxEffect::None,
                &Format::UnifiedText,
            )?]);
        }
        if let Some(canned) = crate::pg_catalog::canned(query) {
            return Ok(vec![to_response(
                canned,
                TxEffect::None,
                &Format::UnifiedText,
            )?]);
        }
        let query = crate::pg_catalog::rewrite(query);
        let statements = match parse(&query) {
            Ok(s) => s,
            Err(e) => {
                session.abort_block();
                return Ok(vec![Response::Error(Box::new(e.into()))]);
            }
        };
        let mut responses = Vec::with_capacity(statements.len());
        let implicit = statements.len() > 1;
        for stmt in &statements {
            if implicit {
                session.begin_implicit();
            }
            if let Some(r) = crate::pg_locks::answer(stmt, &session)
                .or_else(|| crate::pg_catalog::answer(stmt, &session))
            {
                responses.push(to_response(r, TxEffect::None, &Format::UnifiedText)?);
                continue;
            }
            let store = client
                .portal_store()
                .as_any()
                .downcast_ref::<MemPortalStore<Prepared>>();
            match sql_prepared::run(stmt, store, &self.parser, &mut session).await {
                Some(Ok((out, effect))) => {
                    responses.push(to_response(out, effect, &Format::UnifiedText)?);
                    continue;
                }
                Some(Err(e)) => {
                    session.abort_block();
                    responses.push(Response::Error(Box::new(e.into())));
                    break;
                }
                None => {}
            }
            match copy_out(&mut session, stmt, &[]).await {
                Some(Ok(r)) => {
                    responses.push(r);
                    continue;
                }
                Some(Err(e)) => {
                    responses.push(Response::Error(Box::new(e.into())));
                    break;
                }
                None => {}
            }
            match session.run(stmt, &[]).await {
                Ok((out, effect)) => {
                    responses.push(to_response(out, effect, &Format::UnifiedText)?)
                }
                Err(e) => {
                    responses.push(Response::Error(Box::new(e.into())));
                    break;
                }
            }
        }
        if let Err(e) = session.end_implicit().await {
            responses.push(Response::Error(Box::new(e.into())));
        }
        Ok(responses)
    }

    /// pgwire's `_on_query`, with the ReadyForQuery status taken from the session.
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        use futures::SinkExt;
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        client.set_state(PgWireConnectionState::QueryInProgress);
        let responses = if query.query.chars().all(|c| c == ';' || c.is_whitespace()) {
            vec![Response::EmptyQuery]
        } else {
            SimpleQueryHandler::do_query(self, client, &query.query).await?
        };
        for r in responses {
            match r {
                Response::EmptyQuery => {
                    client
                        .feed(PgWireBackendMessage::EmptyQueryResponse(
                            EmptyQueryResponse::new(),
                        ))
                        .await?;
                }
                Response::Query(results) => send_query_response(client, results, true).await?,
                Response::Execution(tag)
                | Response::TransactionStart(tag)
                | Response::TransactionEnd(tag) => send_execution_response(client, tag).await?,
                Response::Error(e) => {
                    client
                        .feed(PgWireBackendMessage::ErrorResponse((*e).into()))
                        .await?;
                }
                Response::CopyIn(result) => {
                    send_copy_in_response(client, result).await?;
                    client.set_state(PgWireConnectionState::CopyInProgress(false));
                }
                Response::CopyOut(result) => send_copy_out_response(client, result).await?,
                Response::CopyBoth(result) => {
                    send_copy_both_response(client, result).await?;
                    client.set_state(PgWireConnectionState::CopyInProgress(false));
                }
            }
        }
        let status = self.session.lock().await.status();
        client.set_transaction_status(status);
        if !matches!(client.state(), PgWireConnectionState::CopyInProgress(_)) {
            client.set_state(PgWireConnectionState::ReadyForQuery);
            send_ready_for_query(client, status).await?;
        }
        Ok(())
    }
}

/// `VACUUM [VERBOSE] [tables]`: outside a transaction block only (25001, as PostgreSQL);
/// with VERBOSE, what it removed from each table comes back as INFO notices.
async fn run_vacuum<C>(
    session: &mut Session,
    client: &mut C,
    vacuum: Result<crate::vacuum::Command, SqlError>,
) -> PgWireResult<Response>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    use futures::SinkExt;
    let result = vacuum.and_then(|v| {
        if session.block != crate::session::Block::None {
            session.abort_block();
            return Err(SqlError::new(
                "25001",
                "VACUUM cannot run inside a transaction block",
            ));
        }
        let reports = crate::vacuum::run(&mut session.db().engine(), &v)?;
        Ok((v.verbose, reports))
    });
    let (verbose, reports) = match result {
        Ok(r) => r,
        Err(e) => return Ok(Response::Error(Box::new(e.into()))),
    };
    if verbose {
        for r in &reports {
            for message in [format!("vacuuming \"public.{}\"", r.table), r.message()] {
                let notice = pgwire::error::ErrorInfo::new("INFO".into(), "00000".into(), message);
                client
                    .send(PgWireBackendMessage::NoticeResponse(notice.into()))
                    .await?;
            }
        }
    }
    Ok(Response::Execution(Tag::new("VACUUM")))
}

#[async_trait]
impl CopyHandler for Handler {
    async fn on_copy_data<C>(
        &self,
        _client: &mut C,
        copy_data: pgwire::messages::copy::CopyData,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.session.lock().await.copy_data(&copy_data.data).await;
        Ok(())
    }

    async fn on_copy_done<C>(
        &self,
        client: &mut C,
        _done: pgwire::messages::copy::CopyDone,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        use futures::SinkExt;
        let rows = self.session.lock().await.copy_done().await?;
        let tag = Tag::new("COPY").with_rows(rows as usize);
        client
            .send(PgWireBackendMessage::CommandComplete(tag.into()))
            .await?;
        Ok(())
    }

    async fn on_copy_fail<C>(
        &self,
        _client: &mut C,
        fail: pgwire::messages::copy::CopyFail,
    ) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.session.lock().await.copy_fail();
        SqlError::new("57014", format!("COPY from stdin failed: {}", fail.message)).into()
    }
}

//! The extended query protocol's handlers: Parse, Bind, Describe, Execute, Close, Sync.
//!
//! **Replies go out at Sync.** A client pipelines a whole round — libpq sends Bind,
//! Describe, Execute and Sync in one packet — and PostgreSQL answers it in one write:
//! each reply is queued in the connection's output buffer and the buffer is flushed by
//! Sync (or Flush). pgwire's default handlers `send` Parse/Bind/Close completions,
//! describe replies and the CommandComplete after rows, which flushes each one: a
//! `sendto` system call, a TCP segment and a wakeup of the client per message. The
//! overrides below are pgwire's defaults with `feed` (queue) in place of `send`; with
//! them a select-only transaction costs one write instead of four (profiled: the
//! writes were about a third of the server's time).

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, SinkExt, StreamExt};
use pgwire::api::portal::{Portal, PortalExecutionState};
use pgwire::api::query::{ExtendedQueryHandler, send_execution_response};
use pgwire::api::results::{
    DescribePortalResponse, DescribeResponse, DescribeStatementResponse, Response, Tag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{ClientInfo, ClientPortalStore, DEFAULT_NAME, PgWireConnectionState};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::data::{NoData, ParameterDescription, RowDescription};
use pgwire::messages::extendedquery::{
    Bind, BindComplete, Close, CloseComplete, Describe, Execute, Parse, ParseComplete,
    Sync as PgSync, TARGET_TYPE_BYTE_PORTAL, TARGET_TYPE_BYTE_STATEMENT,
};
use pgwire::messages::response::{EmptyQueryResponse, ReadyForQuery};

use super::{Handler, Prepared, SqlParser, copy_out, to_response};
use crate::params::decode_param;
use crate::session::TxEffect;
use crate::types::DataType;

/// Queues a Describe's answer: the parameter types (for a statement), then the row
/// description or NoData.
async fn feed_describe<C, R>(client: &mut C, described: &R) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    R: DescribeResponse,
{
    if let Some(types) = described.parameters() {
        client
            .feed(PgWireBackendMessage::ParameterDescription(
                ParameterDescription::new(types.iter().map(|t| t.oid()).collect()),
            ))
            .await?;
    }
    let reply = if described.is_no_data() {
        PgWireBackendMessage::NoData(NoData::new())
    } else {
        PgWireBackendMessage::RowDescription(RowDescription::new(
            described.fields().iter().map(Into::into).collect(),
        ))
    };
    client.feed(reply).await?;
    Ok(())
}

#[async_trait]
impl ExtendedQueryHandler for Handler {
    type Statement = Prepared;
    type QueryParser = SqlParser;

    fn query_parser(&self) -> Arc<SqlParser> {
        self.parser.clone()
    }

    /// pgwire's `on_parse`, queueing ParseComplete (see the module's doc).
    async fn on_parse<C>(&self, client: &mut C, message: Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME).to_owned();
        match StoredStatement::parse(client, &message, self.query_parser()).await? {
            Some(stmt) => {
                client.portal_store().put_statement(Arc::new(stmt));
                self.parser.names.add(&name);
            }
            None => client.portal_store().put_empty_statement(&name),
        }
        client
            .feed(PgWireBackendMessage::ParseComplete(ParseComplete::new()))
            .await?;
        Ok(())
    }

    /// pgwire's `on_bind`, queueing BindComplete.
    async fn on_bind<C>(&self, client: &mut C, message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statement = message.statement_name.as_deref().unwrap_or(DEFAULT_NAME);
        let portal = message.portal_name.as_deref().unwrap_or(DEFAULT_NAME);
        match client.portal_store().get_statement(statement) {
            Some(Entry::Value(stmt)) => {
                let bound = Portal::try_new(&message, stmt)?;
                client.portal_store().put_portal(Arc::new(bound));
            }
            Some(Entry::Empty) => {
                if !message.parameters.is_empty() {
                    return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                        "ERROR".to_owned(),
                        "08P01".to_owned(),
                        format!(
                            "bind message supplies {} parameters, but prepared statement {statement:?} requires 0",
                            message.parameters.len()
                        ),
                    ))));
                }
                client.portal_store().put_empty_portal(portal);
            }
            None => return Err(PgWireError::StatementNotFound(statement.to_owned())),
        }
        client
            .feed(PgWireBackendMessage::BindComplete(BindComplete::new()))
            .await?;
        Ok(())
    }

    /// pgwire's `on_describe`, queueing the answer.
    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        match message.target_type {
            TARGET_TYPE_BYTE_STATEMENT => match client.portal_store().get_statement(name) {
                Some(Entry::Value(stmt)) => {
                    let described = self.do_describe_statement(client, &stmt).await?;
                    feed_describe(client, &described).await
                }
                Some(Entry::Empty) => {
                    feed_describe(client, &DescribeStatementResponse::no_data()).await
                }
                None => Err(PgWireError::StatementNotFound(name.to_owned())),
            },
            TARGET_TYPE_BYTE_PORTAL => match client.portal_store().get_portal(name) {
                Some(Entry::Value(portal)) => {
                    let described = self.do_describe_portal(client, &portal).await?;
                    feed_describe(client, &described).await
                }
                Some(Entry::Empty) => {
                    feed_describe(client, &DescribePortalResponse::no_data()).await
                }
                None => Err(PgWireError::PortalNotFound(name.to_owned())),
            },
            other => Err(PgWireError::InvalidTargetType(other)),
        }
    }

    /// pgwire's `on_close`, queueing CloseComplete.
    async fn on_close<C>(&self, client: &mut C, message: Close) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        match message.target_type {
            TARGET_TYPE_BYTE_STATEMENT => client.portal_store().rm_statement(name),
            TARGET_TYPE_BYTE_PORTAL => client.portal_store().rm_portal(name),
            _ => {}
        }
        client
            .feed(PgWireBackendMessage::CloseComplete(CloseComplete::new()))
            .await?;
        Ok(())
    }

    /// An Execute of a fresh portal for all its rows (what every client but a cursor
    /// sends): runs it and queues the rows and CommandComplete. A portal fetched a few
    /// rows at a time, or executed again, takes pgwire's own path.
    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let Some(Entry::Value(portal)) = client.portal_store().get_portal(name) else {
            return self._on_execute(client, message).await;
        };
        let state = portal.state();
        let fresh = matches!(*state.lock().await, PortalExecutionState::Initial);
        if message.max_rows != 0
            || !fresh
            || !matches!(client.state(), PgWireConnectionState::ReadyForQuery)
        {
            return self._on_execute(client, message).await;
        }
        let mut status = client.transaction_status();
        client.set_state(PgWireConnectionState::QueryInProgress);
        let response = self.do_query(client, &portal, 0).await?;
        *state.lock().await = PortalExecutionState::Finished;
        match response {
            Response::Query(mut results) => {
                let tag = results.command_tag().to_owned();
                let mut rows = 0;
                let data = results.data_rows();
                while let Some(row) = data.next().await {
                    client.feed(PgWireBackendMessage::DataRow(row?)).await?;
                    rows += 1;
                }
                send_execution_response(client, Tag::new(&tag).with_rows(rows)).await?;
            }
            Response::EmptyQuery => {
                client
                    .feed(PgWireBackendMessage::EmptyQueryResponse(
                        EmptyQueryResponse::new(),
                    ))
                    .await?;
            }
            Response::Execution(tag) => send_execution_response(client, tag).await?,
            Response::TransactionStart(tag) => {
                send_execution_response(client, tag).await?;
                status = status.to_in_transaction_state();
            }
            Response::TransactionEnd(tag) => {
                send_execution_response(client, tag).await?;
                status = status.to_idle_state();
                client.portal_store().rm_portal(DEFAULT_NAME);
            }
            Response::Error(e) => {
                client
                    .send(PgWireBackendMessage::ErrorResponse((*e).into()))
                    .await?;
                status = status.to_error_state();
            }
            Response::CopyIn(result) => {
                client.set_state(PgWireConnectionState::CopyInProgress(true));
                pgwire::api::copy::send_copy_in_response(client, result).await?;
            }
            Response::CopyOut(result) => {
                pgwire::api::copy::send_copy_out_response(client, result).await?
            }
            Response::CopyBoth(result) => {
                client.set_state(PgWireConnectionState::CopyInProgress(true));
                pgwire::api::copy::send_copy_both_response(client, result).await?;
            }
        }
        if !matches!(client.state(), PgWireConnectionState::CopyInProgress(_)) {
            client.set_state(PgWireConnectionState::ReadyForQuery);
            client.set_transaction_status(status);
        }
        Ok(())
    }

    /// pgwire's `on_sync`, with the ReadyForQuery status taken from the session.
    async fn on_sync<C>(&self, client: &mut C, _message: PgSync) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        client.portal_store().rm_portal(pgwire::api::DEFAULT_NAME);
        let mut session = self.session.lock().await;
        // Sync ends the implicit transaction of the Executes before it: commit it now
        // (after an error it was rolled back already, and pgwire skipped to this Sync).
        if let Err(e) = session.end_implicit().await {
            let error: PgWireError = e.into();
            client
                .feed(PgWireBackendMessage::ErrorResponse(
                    pgwire::error::ErrorInfo::from(error).into(),
                ))
                .await?;
        }
        let status = session.status();
        drop(session);
        client.set_transaction_status(status);
        client
            .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                status,
            )))
            .await?;
        client.flush().await?;
        Ok(())
    }

    async fn do_describe_statement<C>(
        &self,
        _client: &mut C,
        target: &StoredStatement<Prepared>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let params = self.parser.get_parameter_types(&target.statement)?;
        let fields = self.parser.get_result_schema(&target.statement, None)?;
        Ok(DescribeStatementResponse::new(params, fields))
    }

    async fn do_describe_portal<C>(
        &self,
        _client: &mut C,
        portal: &Portal<Prepared>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let fields = self.parser.get_result_schema(
            &portal.statement.statement,
            Some(&portal.result_column_format),
        )?;
        Ok(DescribePortalResponse::new(fields))
    }

    async fn do_query<C>(
        &self,
        _client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = &portal.statement.statement;
        let mut session = self.session.lock().await;
        let mut params = Vec::with_capacity(portal.parameters.len());
        for (i, raw) in portal.parameters.iter().enumerate() {
            let ty = prepared
                .param_types
                .get(i)
                .copied()
                .unwrap_or(DataType::Text);
            let declared = prepared.declared.get(i).and_then(Option::as_ref);
            let binary = portal.parameter_format.is_binary(i);
            match decode_param(raw.as_deref(), ty, binary, declared) {
                Ok(v) => params.push(v),
                Err(e) => {
                    session.abort_block();
                    return Err(e);
                }
            }
        }
        if prepared.system_view
            && let Some(r) = crate::pg_locks::answer(&prepared.stmt, &session)
                .or_else(|| crate::pg_catalog::answer(&prepared.stmt, &session))
        {
            return to_response(r, TxEffect::None, &portal.result_column_format);
        }
        // Outside a block, the Executes up to the next Sync share one implicit
        // transaction, as in PostgreSQL: Sync commits it, and an error in any of them
        // rolls back the ones before (pgwire then skips to the Sync).
        session.begin_implicit();
        if let Some(r) = copy_out(&mut session, &prepared.stmt, &params).await {
            return r.map_err(Into::into);
        }
        match prepared.run(&mut session, &params).await {
            Ok((out, effect)) => to_response(out, effect, &portal.result_column_format),
            Err(e) => Err(e.into()),
        }
    }
}

//! A client session: its transaction state machine, and running one statement in it.
//!
//! ```text
//!   Idle --BEGIN--> InBlock --error--> Failed --ROLLBACK/COMMIT--> Idle
//!     ^               |  ^               |  (every other statement: 25P02)
//!     +---COMMIT------+  +--ROLLBACK TO--+
//! ```
//!
//! Outside a block each statement is its own transaction (autocommit), except that the
//! statements of one multi-statement simple query share one *implicit* transaction, as
//! in PostgreSQL (`INSERT ...; INSERT ...` commits both or neither; a BEGIN inside it
//! turns it into an ordinary block). A statement that fails is undone as a whole;
//! inside a block the transaction then refuses everything but ROLLBACK (or ROLLBACK TO
//! a savepoint), as PostgreSQL does. A session that ends (the client disconnects) rolls
//! its open transaction back. Transaction-control statements are in `control`; the
//! isolation level a transaction gets is fixed when its first statement runs.

use std::collections::BTreeMap;
use std::sync::Arc;

use sqlparser::ast::{Set, Statement};

use crate::cancel::{Backend, SessionCall};
use crate::database::Database;
use crate::engine::{Halt, TxState};
use crate::error::SqlError;
use crate::executor::{Ctx, Output, PointQuery, execute};
use crate::isolation::Isolation;
use crate::plancache::PlanCache;
use crate::types::{DataType, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// No BEGIN: each statement commits on its own.
    None,
    InBlock,
    /// An error happened in the block: only ROLLBACK (or COMMIT, which rolls back) helps.
    Failed,
    /// The implicit transaction of a multi-statement simple query: committed after its
    /// last statement, rolled back as a whole if one fails.
    Implicit,
}

mod control;

/// What a statement did to the transaction state, for the protocol's status byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxEffect {
    None,
    Began,
    Ended,
}

pub struct Session {
    db: Arc<Database>,
    tx: Option<TxState>,
    pub block: Block,
    settings: BTreeMap<String, String>,
    copy: Option<CopyIn>,
    /// The session's default isolation level (`SET SESSION CHARACTERISTICS ...`).
    characteristics: Isolation,
    /// The level chosen for the current block before its first query (`BEGIN ISOLATION
    /// LEVEL ...`, `SET TRANSACTION ...`).
    next_isolation: Option<Isolation>,
    /// Savepoints of the current block, oldest first: name and undo/redo position.
    savepoints: Vec<(String, (usize, usize))>,
    /// This connection's cancel flag and pid (see `cancel`).
    backend: Arc<Backend>,
    /// Whether the open transaction is in the lock table (others may wait for it).
    in_lock_table: bool,
    /// The running prepared statement's parameter types (empty for a simple query): what
    /// a bare `$n` in its select list is (see `expr::with_param_types`).
    param_types: Vec<DataType>,
}

/// COPY rows inserted at once: enough that the per-statement work (the engine lock, a
/// snapshot, the table's definition) is spread thin; bounded with the bytes below so a
/// batch of wide rows stays small.
const COPY_BATCH_ROWS: usize = 4096;
const COPY_BATCH_BYTES: usize = 4 << 20;

/// A `COPY ... FROM STDIN` in progress.
struct CopyIn {
    table: String,
    columns: Vec<usize>,
    /// Cuts the data into rows (and keeps an incomplete last one until the rest arrives).
    decoder: crate::copy::Decoder,
    /// Decoded rows not inserted yet: rows go into the table a batch at a time (one
    /// engine lock, one statement's bookkeeping), not one per CopyData message.
    batch: Vec<Vec<Option<String>>>,
    /// The bytes of text in `batch`, for its bound.
    batch_bytes: usize,
    rows: u64,
    /// The first error; the rest of the data is consumed and dropped.
    error: Option<SqlError>,
}

impl Session {
    pub fn new(db: Arc<Database>) -> Session {
        Session {
            tx: None,
            block: Block::None,
            settings: BTreeMap::new(),
            copy: None,
            characteristics: db.default_isolation,
            next_isolation: None,
            savepoints: Vec::new(),
            backend: Arc::default(),
            in_lock_table: false,
            param_types: Vec::new(),
            db,
        }
    }

    pub fn db(&self) -> &Arc<Database> {
        &self.db
    }

    /// `DISCARD ALL`'s `RESET ALL`: every setting back to its default, and the session's
    /// isolation level back to the server's.
    pub fn reset_all(&mut self) {
        self.settings.clear();
        self.characteristics = self.db.default_isolation;
        self.next_isolation = None;
    }

    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }

    /// An error outside `run` (a statement that did not parse, a parameter that did not
    /// decode): inside a block, the block is now aborted.
    pub fn abort_block(&mut self) {
        match self.block {
            Block::InBlock => {
                // The transaction is aborted now, as in PostgreSQL: its writes are undone
                // and its locks released (others stop waiting for it), back to the last
                // savepoint if there is one; the block stays until ROLLBACK.
                match self.savepoints.last() {
                    Some(&(_, mark)) => {
                        if let Some(tx) = &mut self.tx {
                            self.db.engine().undo_to(tx, mark);
                        }
                    }
                    None => self.end(false),
                }
                self.block = Block::Failed;
            }
            Block::Implicit => {
                self.end(false);
                self.block = Block::None;
            }
            Block::None => self.end(false),
            Block::Failed => {}
        }
    }

    /// A multi-statement simple query starts (or, after a COMMIT inside it, goes on):
    /// outside a block, its statements now share one implicit transaction.
    pub fn begin_implicit(&mut self) {
        if self.block == Block::None {
            self.block = Block::Implicit;
        }
    }

    /// The multi-statement query ended: commit its implicit transaction, if still open.
    pub async fn end_implicit(&mut self) -> Result<(), SqlError> {
        if self.block != Block::Implicit {
            return Ok(());
        }
        self.block = Block::None;
        self.savepoints.clear();
        self.commit().await
    }

    /// The protocol's transaction status: idle, in a block, or in a failed block.
    pub fn status(&self) -> pgwire::messages::response::TransactionStatus {
        use pgwire::messages::response::TransactionStatus;
        match self.block {
            Block::None | Block::Implicit => TransactionStatus::Idle,
            Block::InBlock => TransactionStatus::Transaction,
            Block::Failed => TransactionStatus::Error,
        }
    }

    /// Runs one statement; returns its output and its effect on the transaction. A
    /// failure is counted by cause here, where every statement's error passes
    /// (`infralab_stat_aborts`).
    pub async fn run(
        &mut self,
        stmt: &Statement,
        params: &[Value],
    ) -> Result<(Output, TxEffect), SqlError> {
        self.param_types.clear();
        self.run_planned(stmt, params, None).await
    }

    /// Runs one execution of a prepared statement, with the plan cache it keeps (see
    /// `plancache`).
    pub async fn run_prepared(
        &mut self,
        stmt: &Statement,
        params: &[Value],
        param_types: &[DataType],
        plans: &PlanCache,
    ) -> Result<(Output, TxEffect), SqlError> {
        self.param_types.clear();
        self.param_types.extend_from_slice(param_types);
        self.run_planned(stmt, params, Some(plans)).await
    }

    async fn run_planned(
        &mut self,
        stmt: &Statement,
        params: &[Value],
        plans: Option<&PlanCache>,
    ) -> Result<(Output, TxEffect), SqlError> {
        let result = self.run_statement(stmt, params, plans).await;
        if let Err(e) = &result {
            self.db.stats.failed(e.code, &e.message);
        }
        result
    }

    async fn run_statement(
        &mut self,
        stmt: &Statement,
        params: &[Value],
        plans: Option<&PlanCache>,
    ) -> Result<(Output, TxEffect), SqlError> {
        self.backend.begin_statement();
        if let Some(reply) = self.control(stmt).await {
            if reply.is_err() {
                self.abort_block();
            }
            return reply;
        }
        match stmt {
            _ if self.block == Block::Failed => return Err(SqlError::in_failed_transaction()),
            Statement::Set(set) => return self.set(set).map(|o| (o, TxEffect::None)),
            Statement::Copy {
                source:
                    sqlparser::ast::CopySource::Table {
                        table_name,
                        columns,
                    },
                to: false,
                target: sqlparser::ast::CopyTarget::Stdin,
                options,
                legacy_options,
                ..
            } => {
                let table = crate::catalog::object_name(table_name);
                let started = crate::copy::Options::of(options, legacy_options)
                    .and_then(|options| self.copy_from(&table, columns, options));
                if started.is_err() {
                    self.abort_block();
                }
                return started.map(|o| (o, TxEffect::None));
            }
            Statement::ShowVariable { variable } => {
                let name = variable
                    .iter()
                    .map(|i| i.value.to_lowercase())
                    .collect::<Vec<_>>()
                    .join(" ");
                let value = self.setting(&name);
                return Ok((
                    Output {
                        columns: vec![(name, DataType::Text)],
                        rows: vec![vec![Value::Text(value)]],
                        tag: "SHOW".into(),
                        returns_rows: true,
                        copy_in: None,
                    },
                    TxEffect::None,
                ));
            }
            _ => {}
        }
        if let Some(call) = SessionCall::of(stmt) {
            let result = self.session_call(call, params).await;
            if result.is_err() {
                self.abort_block();
            }
            return result.map(|o| (o, TxEffect::None));
        }
        let result = self.statement(stmt, params, plans).await;
        match result {
            Ok(out) => {
                if self.block == Block::None {
                    self.commit().await?;
                }
                Ok((out, TxEffect::None))
            }
            Err(e) => {
                self.abort_block();
                Err(e)
            }
        }
    }

    /// Runs a statement in the current transaction (starting one if needed). A statement
    /// that meets a locked row is undone, waits for the lock holder, and runs again.
    /// A point lookup (one row by its key) takes its own short path: from the prepared
    /// statement's plan cache, or recognised afresh for a statement without one.
    async fn statement(
        &mut self,
        stmt: &Statement,
        params: &[Value],
        plans: Option<&PlanCache>,
    ) -> Result<Output, SqlError> {
        self.in_tx(
            |ctx| {
                let point = match plans {
                    Some(plans) => plans.point(ctx.engine, stmt),
                    None => PointQuery::compile(ctx.engine, stmt).map(Arc::new),
                };
                match point.and_then(|p| p.run(ctx)) {
                    Some(result) => result,
                    None => execute(ctx, stmt),
                }
            },
            params,
        )
        .await
    }

    /// Runs `work` in the current transaction (starting one if needed). Work that meets
    /// a locked row is undone, waits for the lock holder, and runs again.
    async fn in_tx<F>(&mut self, mut work: F, params: &[Value]) -> Result<Output, SqlError>
    where
        F: FnMut(&mut Ctx<'_>) -> crate::engine::Result<Output>,
    {
        let started = std::time::Instant::now();
        let mut earlier = None;
        let deadline =
            duration_setting(&self.setting("statement_timeout")).map(|limit| started + limit);
        // No BEGIN: a read-only statement can end its transaction as soon as it ends.
        let autocommit = matches!(self.block, Block::None | Block::Implicit);
        loop {
            let waited_for = {
                let mut engine = self.db.engine();
                let tx = match &mut self.tx {
                    Some(tx) => tx,
                    None => {
                        let mut tx = engine.begin();
                        tx.isolation = self.next_isolation.unwrap_or(self.characteristics);
                        self.tx.insert(tx)
                    }
                };
                let mark = tx.mark();
                let tx_started = tx.started;
                let snapshot =
                    crate::isolation::statement_snapshot(&mut engine, tx, earlier.take());
                let mut ctx = Ctx {
                    engine: &mut engine,
                    tx,
                    snapshot,
                    params,
                    waited_in_subquery: Default::default(),
                };
                let param_types = &self.param_types;
                let mut work = |ctx: &mut Ctx<'_>| {
                    crate::expr::in_statement(tx_started, param_types, || work(ctx))
                };
                let mut result =
                    crate::cancel::running_inline(&self.backend, deadline, || work(&mut ctx));
                if matches!(&result, Err(Halt::Error(e)) if crate::cancel::ran_long(e)) {
                    // Too long to keep the async worker: undo the attempt and run it
                    // again off the worker. The engine lock is held throughout, so the
                    // second run sees exactly what the first saw.
                    ctx.engine.undo_to(ctx.tx, mark);
                    ctx.waited_in_subquery.take();
                    result = crate::cancel::running(&self.backend, deadline, || work(&mut ctx));
                }
                let waited_in_subquery = ctx.waited_in_subquery.take();
                // Kept for a retry after a lock wait (read committed runs it again in
                // the same snapshot).
                earlier = Some(ctx.snapshot);
                // A transaction joins the lock table — where others wait for it — once
                // it holds something they could wait for: a row it wrote or locked, or
                // (serializable) a read lock. Joining here, before the engine lock is
                // released, no other transaction can have met that row or lock yet. A
                // read-only transaction never joins: a SELECT outside a block saves two
                // trips through the lock table's mutex and a channel.
                if !self.in_lock_table
                    && (!tx.undo.is_empty() || !tx.redo.is_empty() || tx.isolation.locking_reads())
                {
                    self.db.locks.register(tx.id);
                    self.in_lock_table = true;
                }
                match result {
                    Ok(out) => {
                        crate::isolation::statement_done(&mut engine, tx);
                        if autocommit
                            && tx.undo.is_empty()
                            && tx.redo.is_empty()
                            && !tx.isolation.keeps_reads()
                        {
                            // Nothing written, nothing the next statement would share
                            // (it takes its own snapshot): end the transaction under this
                            // same lock instead of taking it again to commit.
                            engine.finish(tx, true);
                            let id = tx.id;
                            drop(engine);
                            self.tx = None;
                            self.leave_lock_table(id);
                        }
                        return Ok(out);
                    }
                    Err(halt) => {
                        engine.undo_to(tx, mark);
                        match (halt, waited_in_subquery) {
                            (Halt::Wait(holder), _) | (Halt::Error(_), Some(holder)) => {
                                if let Some(snapshot) = &earlier {
                                    crate::isolation::hold_for_retry(&mut engine, tx, snapshot);
                                }
                                (tx.id, holder)
                            }
                            (Halt::Error(e), None) => {
                                crate::isolation::statement_done(&mut engine, tx);
                                return Err(e);
                            }
                        }
                    }
                }
            };
            self.wait_for_lock(waited_for.0, waited_for.1, started)
                .await?;
        }
    }

    /// Waits for `holder` to end, within `lock_timeout` (55P03) and what is left of
    /// `statement_timeout` (57014). A statement runs under the engine lock without
    /// interruption; its waits for row locks are where the timeouts can cancel it.
    async fn wait_for_lock(
        &self,
        me: crate::mvcc::TxId,
        holder: crate::mvcc::TxId,
        started: std::time::Instant,
    ) -> Result<(), SqlError> {
        let lock = duration_setting(&self.setting("lock_timeout"));
        let statement = duration_setting(&self.setting("statement_timeout"))
            .map(|t| t.saturating_sub(started.elapsed()));
        let (limit, error) = match (lock, statement) {
            (Some(l), Some(s)) if s < l => (Some(s), statement_timeout()),
            (Some(l), _) => (Some(l), lock_timeout()),
            (None, Some(s)) => (Some(s), statement_timeout()),
            (None, None) => (None, lock_timeout()),
        };
        let wait = self.db.locks.wait(me, holder);
        let limited = async {
            match limit {
                None => wait.await,
                Some(limit) => match tokio::time::timeout(limit, wait).await {
                    Ok(result) => result,
                    Err(_) => {
                        self.db.locks.stop_waiting(me);
                        Err(error)
                    }
                },
            }
        };
        // A cancel (psql's Ctrl-C) ends the wait too.
        tokio::select! {
            result = limited => result,
            () = self.backend.cancelled() => {
                self.db.locks.stop_waiting(me);
                Err(crate::cancel::user_request())
            }
        }
    }

    /// `pg_sleep`, `pg_backend_pid`, `pg_cancel_backend`: run here, without the engine
    /// (see `cancel::SessionCall`). Outside a block they need no transaction.
    async fn session_call(
        &mut self,
        call: SessionCall,
        params: &[Value],
    ) -> Result<Output, SqlError> {
        let arg = |e: &sqlparser::ast::Expr| {
            let empty = crate::expr::Scope::default();
            crate::expr::eval(e, &crate::executor::env(&empty, &[], params))
        };
        let value = match &call {
            SessionCall::BackendPid => Value::Int(i64::from(self.backend.pid())),
            SessionCall::CancelBackend(pid) => match arg(pid)?.cast(DataType::Int)? {
                Value::Int(pid) => Value::Bool(
                    i32::try_from(pid).is_ok_and(|pid| self.db.backends.cancel_pid(pid)),
                ),
                _ => Value::Null,
            },
            SessionCall::Sleep(seconds) => {
                let seconds = match arg(seconds)?.cast(DataType::Double)? {
                    Value::Double(s) if s.is_finite() && s > 0.0 => s.min(1e9),
                    _ => 0.0,
                };
                let sleep = tokio::time::sleep(std::time::Duration::from_secs_f64(seconds));
                let limit = duration_setting(&self.setting("statement_timeout"));
                let timeout = async {
                    match limit {
                        Some(limit) => tokio::time::sleep(limit).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = sleep => {}
                    () = timeout => return Err(statement_timeout()),
                    () = self.backend.cancelled() => return Err(crate::cancel::user_request()),
                }
                Value::Text(String::new())
            }
        };
        let ty = match value {
            Value::Int(_) => DataType::Int,
            Value::Bool(_) => DataType::Bool,
            _ => DataType::Text,
        };
        Ok(Output {
            columns: vec![(call.column().to_string(), ty)],
            rows: vec![vec![value]],
            tag: "SELECT 1".into(),
            returns_rows: true,
            copy_in: None,
        })
    }

    /// `COPY table FROM STDIN` starts: remember the target; rows arrive as CopyData.
    fn copy_from(
        &mut self,
        table: &str,
        columns: &[sqlparser::ast::Ident],
        options: crate::copy::Options,
    ) -> Result<Output, SqlError> {
        let engine = self.db.engine();
        let t = engine.table(table)?;
        let columns: Vec<usize> = if columns.is_empty() {
            t.def
                .live_columns()
                .into_iter()
                .filter(|&c| t.def.columns[c].generated.is_none())
                .collect()
        } else {
            columns
                .iter()
                .map(|c| t.def.column_or_err(&crate::catalog::ident(c)))
                .collect::<Result<_, _>>()?
        };
        let width = columns.len();
        drop(engine);
        self.copy = Some(CopyIn {
            table: table.to_string(),
            columns,
            decoder: crate::copy::Decoder::new(options),
            batch: Vec::new(),
            batch_bytes: 0,
            rows: 0,
            error: None,
        });
        Ok(Output {
            tag: "COPY".into(),
            copy_in: Some(width),
            ..Output::default()
        })
    }

    /// A chunk of COPY data: its complete rows join the batch, which is inserted (in the
    /// transaction) once it holds [`COPY_BATCH_ROWS`] rows or [`COPY_BATCH_BYTES`].
    pub async fn copy_data(&mut self, data: &[u8]) {
        let Some(mut copy) = self.copy.take() else {
            return;
        };
        if copy.error.is_none() {
            match copy.decoder.feed(data) {
                Ok(rows) => {
                    copy.batch_bytes += rows
                        .iter()
                        .flatten()
                        .map(|f| f.as_ref().map_or(0, String::len))
                        .sum::<usize>();
                    copy.batch.extend(rows);
                    if copy.batch.len() >= COPY_BATCH_ROWS || copy.batch_bytes >= COPY_BATCH_BYTES {
                        self.copy_batch(&mut copy).await;
                    }
                }
                Err(e) => copy.error = Some(e),
            }
        }
        self.copy = Some(copy);
    }

    /// Inserts the batch of decoded COPY rows (remembering the first error).
    async fn copy_batch(&mut self, copy: &mut CopyIn) {
        let rows = std::mem::take(&mut copy.batch);
        copy.batch_bytes = 0;
        if rows.is_empty() || copy.error.is_some() {
            return;
        }
        // The decoder has counted every row decoded so far; the batch is the last ones.
        let line = copy.decoder.line - rows.len() as u64;
        let (table, columns) = (&copy.table, &copy.columns);
        let inserted = self
            .in_tx(
                |ctx| {
                    crate::executor::insert_text_rows(ctx, table, columns, &rows, |mut e, i| {
                        // PostgreSQL's CONTEXT line, folded into the message.
                        e.message =
                            format!("{} (COPY {table}, line {})", e.message, line + i as u64 + 1);
                        e
                    })?;
                    Ok(Output::default())
                },
                &[],
            )
            .await;
        match inserted {
            Ok(_) => copy.rows += rows.len() as u64,
            Err(e) => copy.error = Some(e),
        }
    }

    /// The end of COPY data: insert what is left, commit (outside a block) and report
    /// `COPY n`.
    pub async fn copy_done(&mut self) -> Result<u64, SqlError> {
        let Some(mut copy) = self.copy.take() else {
            return Err(SqlError::new("08P01", "no COPY in progress"));
        };
        if copy.error.is_none() {
            match copy.decoder.finish() {
                Ok(rows) => copy.batch.extend(rows),
                Err(e) => copy.error = Some(e),
            }
        }
        self.copy_batch(&mut copy).await;
        let mut result = match copy.error.take() {
            Some(e) => Err(e),
            None => Ok(copy.rows),
        };
        match (&result, self.block) {
            (Ok(_), Block::None) => {
                if let Err(e) = self.commit().await {
                    result = Err(e);
                }
            }
            (Err(_), _) => self.abort_block(),
            _ => {}
        }
        result
    }

    /// The client aborted the COPY.
    pub fn copy_fail(&mut self) {
        self.copy = None;
        self.abort_block();
    }

    /// Commits the open transaction: its record goes to the log (in commit order, under
    /// the engine lock), it becomes visible and its row locks are released; the reply
    /// waits until the log says the record is durable.
    async fn commit(&mut self) -> Result<(), SqlError> {
        let Some(mut tx) = self.tx.take() else {
            return Ok(());
        };
        let lsn = {
            let mut engine = self.db.engine();
            let lsn = match (&self.db.wal, tx.redo.is_empty()) {
                (Some(wal), false) => {
                    Some(wal.append_record(std::mem::take(&mut tx.redo).into_record()))
                }
                _ => None,
            };
            engine.finish(&mut tx, true);
            lsn
        };
        self.leave_lock_table(tx.id);
        if let (Some(wal), Some(lsn)) = (&self.db.wal, lsn) {
            wal.durable(lsn)
                .await
                .map_err(|e| SqlError::new("58030", e))?;
            self.db.maybe_checkpoint(lsn);
        }
        Ok(())
    }

    /// The transaction `id` ended: wake whoever waits for it (see `in_tx` for when a
    /// transaction is in the lock table at all).
    fn leave_lock_table(&mut self, id: crate::mvcc::TxId) {
        if std::mem::take(&mut self.in_lock_table) {
            self.db.locks.release(id);
        }
    }

    /// Rolls back (or, with `commit`, commits without logging: read-only) the open
    /// transaction.
    fn end(&mut self, commit: bool) {
        if let Some(mut tx) = self.tx.take() {
            self.db.engine().finish(&mut tx, commit);
            self.leave_lock_table(tx.id);
        }
    }

    fn set(&mut self, set: &Set) -> Result<Output, SqlError> {
        if let Set::SingleAssignment {
            variable, values, ..
        } = set
        {
            let name = crate::catalog::object_name(variable);
            let value = values
                .iter()
                .map(|v| match v {
                    sqlparser::ast::Expr::Value(v) => match &v.value {
                        sqlparser::ast::Value::SingleQuotedString(s) => s.clone(),
                        other => other.to_string(),
                    },
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", ");
            match name.as_str() {
                "default_transaction_isolation" => {
                    self.characteristics = Isolation::parse(&value)?;
                }
                "transaction_isolation" => {
                    self.set_transaction_level(Isolation::parse(&value)?)?;
                }
                _ => {
                    self.settings.insert(name, value);
                }
            }
        }
        // Other SET forms (SET TIME ZONE, SET NAMES...) are accepted and ignored.
        Ok(Output {
            tag: "SET".into(),
            ..Output::default()
        })
    }

    pub fn setting(&self, name: &str) -> String {
        match name {
            "transaction isolation level" | "transaction_isolation" => {
                return self.isolation().name().to_string();
            }
            "default_transaction_isolation" => return self.characteristics.name().to_string(),
            _ => {}
        }
        if let Some(v) = self.settings.get(name) {
            return v.clone();
        }
        match name {
            "server_version" => crate::server::SERVER_VERSION,
            "server_encoding" | "client_encoding" => "UTF8",
            "standard_conforming_strings" => "on",
            "datestyle" => "ISO, MDY",
            "timezone" => "UTC",
            "search_path" => "\"$user\", public",
            "max_identifier_length" => "63",
            _ => "",
        }
        .to_string()
    }
}

impl Drop for Session {
    /// A client that disconnects without COMMIT loses its transaction.
    fn drop(&mut self) {
        self.end(false);
    }
}

/// A duration setting as PostgreSQL reads it: a number of milliseconds, or with a unit
/// (`ms`, `s`, `min`); 0 or empty means no limit.
fn duration_setting(value: &str) -> Option<std::time::Duration> {
    let v = value.trim().trim_matches('\'').to_ascii_lowercase();
    let digits: String = v.chars().take_while(|c| c.is_ascii_digit()).collect();
    let n: u64 = digits.parse().ok()?;
    let unit = v[digits.len()..].trim();
    let ms = match unit {
        "" | "ms" => n,
        "s" => n.checked_mul(1000)?,
        "min" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    (ms > 0).then(|| std::time::Duration::from_millis(ms))
}

fn lock_timeout() -> SqlError {
    SqlError::new("55P03", "canceling statement due to lock timeout")
}

use crate::cancel::statement_timeout;

//! The transaction coordinator at work: the state machine of [`crate::transaction`], made
//! durable in [`crate::transaction_log`], acting on the partitions — writing the markers
//! that end a transaction and committing its offsets.
//!
//! Order is what makes it safe. EndTxn first makes the *decision* durable (the Prepare
//! record, fsynced as `--fsync` says), then writes a marker in each partition, then the
//! held-back consumer offsets, then Complete. A crash before the Prepare record is
//! durable leaves an Ongoing transaction, which times out and aborts; a crash after it is
//! finished on start by [`recover`], which writes the markers again — a partition whose
//! transaction already ended ignores the repeat (see [`crate::log::Log::append_marker`]).

use std::io;
use std::sync::{Mutex, MutexGuard};

use kafka_protocol::ResponseError;
use tracing::{info, warn};

use crate::log::{Appended, DiskOptions, LogError};
use crate::marker::Outcome;
use crate::record::BatchHeader;
use crate::server::StreamServer;
use crate::transaction::{
    End, Init, TransactionMetadata, Transactions, TxnError, TxnRecord, TxnState, outcome_of,
};
use crate::transaction_log::TransactionLog;

/// The coordinator's state and its log.
#[derive(Debug)]
pub struct TransactionCoordinator {
    state: Mutex<Transactions>,
    log: TransactionLog,
}

/// A refused request: Kafka's error code.
pub type Code = i16;

fn storage(e: impl std::fmt::Display) -> Code {
    warn!("transaction coordinator: {e}");
    ResponseError::KafkaStorageError.code()
}

impl TransactionCoordinator {
    /// Opens the transaction log; `max_producer_id` is the highest id in any partition.
    pub fn open(
        dir: &std::path::Path,
        disk: DiskOptions,
        now_ms: i64,
        max_producer_id: i64,
    ) -> io::Result<TransactionCoordinator> {
        let (log, records) = TransactionLog::open(dir, disk, now_ms)?;
        Ok(TransactionCoordinator {
            state: Mutex::new(Transactions::recover(records, max_producer_id)),
            log,
        })
    }

    pub fn state(&self) -> MutexGuard<'_, Transactions> {
        crate::lock(&self.state)
    }

    /// May this transactional batch be appended to `topic`/`partition`? Only by the
    /// current epoch of its transactional id, into a partition added to the open
    /// transaction: a zombie's late batch is refused here even in a partition the new
    /// instance has not written to yet.
    pub fn check_produce(
        &self,
        transactional_id: Option<&str>,
        batch: &BatchHeader,
        topic: &str,
        partition: u32,
    ) -> Result<(), Code> {
        let state = self.state();
        let Some(m) = transactional_id.and_then(|id| state.get(id)) else {
            return Err(ResponseError::InvalidTxnState.code());
        };
        if m.producer_id != batch.producer_id {
            return Err(ResponseError::InvalidProducerIdMapping.code());
        }
        if m.producer_epoch != batch.producer_epoch {
            return Err(ResponseError::InvalidProducerEpoch.code());
        }
        if m.state != TxnState::Ongoing || !m.partitions.contains(&(topic.to_string(), partition)) {
            return Err(ResponseError::InvalidTxnState.code());
        }
        Ok(())
    }

    /// A state change under the lock, its records appended to the log before the lock is
    /// released (so the log has them in the order they happened).
    fn change<T>(
        &self,
        now_ms: i64,
        f: impl FnOnce(&mut Transactions) -> Result<(T, Vec<TxnRecord>), TxnError>,
    ) -> Result<(T, Option<Appended>), Code> {
        let mut state = self.state();
        let (out, records) = f(&mut state).map_err(TxnError::code)?;
        let appended = self.log.append(&records, now_ms).map_err(storage)?;
        Ok((out, appended))
    }
}

async fn durable(server: &StreamServer, appended: Option<Appended>) -> Result<(), Code> {
    server
        .make_durable(appended.as_slice())
        .await
        .map_err(storage)
}

/// InitProducerId: a fresh producer id for an idempotent producer, or the transactional
/// id's producer id with a new epoch (aborting the previous instance's transaction).
/// `expected`: the producer id and epoch a running producer names to bump its own epoch
/// (v3+, see [`Transactions::init`](crate::transaction::Transactions::init)).
pub async fn init_producer_id(
    server: &StreamServer,
    transactional_id: Option<&str>,
    timeout_ms: i64,
    mut expected: Option<(i64, i16)>,
) -> Result<(i64, i16), Code> {
    let coordinator = &server.transactions;
    let Some(id) = transactional_id else {
        let (producer_id, appended) = coordinator.change(server.now_ms(), |t| {
            let (id, block) = t.allocate_producer_id();
            Ok((id, block.into_iter().collect()))
        })?;
        durable(server, appended).await?;
        return Ok((producer_id, 0));
    };
    loop {
        let (init, appended) = coordinator.change(server.now_ms(), |t| {
            t.init(id, timeout_ms, server.now_ms(), expected)
        })?;
        durable(server, appended).await?;
        match init {
            Init::Ready { producer_id, epoch } => return Ok((producer_id, epoch)),
            Init::AbortFirst(aborting) => {
                info!("transactional id {id}: a new instance; aborting the open transaction");
                finish(server, &aborting, Outcome::Abort).await?;
                // Aborting fenced the epoch named: the next round bumps past it.
                expected = None;
            }
        }
    }
}

/// AddPartitionsToTxn: every partition must exist (else the whole request fails).
pub async fn add_partitions(
    server: &StreamServer,
    id: &str,
    producer_id: i64,
    epoch: i16,
    partitions: &[(String, u32)],
) -> Result<(), Code> {
    let now = server.now_ms();
    let (_, appended) = server.transactions.change(now, |t| {
        let r = t.add_partitions(id, producer_id, epoch, partitions, now)?;
        Ok(((), vec![r]))
    })?;
    durable(server, appended).await
}

/// AddOffsetsToTxn.
pub async fn add_group(
    server: &StreamServer,
    id: &str,
    producer_id: i64,
    epoch: i16,
    group: &str,
) -> Result<(), Code> {
    let now = server.now_ms();
    let (_, appended) = server.transactions.change(now, |t| {
        let r = t.add_group(id, producer_id, epoch, group, now)?;
        Ok(((), vec![r]))
    })?;
    durable(server, appended).await
}

/// TxnOffsetCommit: held in the transaction (durably) until it commits.
pub async fn add_offsets(
    server: &StreamServer,
    id: &str,
    producer_id: i64,
    epoch: i16,
    group: &str,
    offsets: &[(String, u32, u64)],
) -> Result<(), Code> {
    let (_, appended) = server.transactions.change(server.now_ms(), |t| {
        let r = t.add_offsets(id, producer_id, epoch, group, offsets)?;
        Ok(((), vec![r]))
    })?;
    durable(server, appended).await
}

/// EndTxn.
pub async fn end(
    server: &StreamServer,
    id: &str,
    producer_id: i64,
    epoch: i16,
    outcome: Outcome,
) -> Result<(), Code> {
    let (end, appended) = server.transactions.change(server.now_ms(), |t| {
        let (end, record) = t.end(id, producer_id, epoch, outcome)?;
        Ok((end, record.into_iter().collect()))
    })?;
    durable(server, appended).await?;
    match end {
        End::Done => Ok(()),
        End::Markers(m, outcome) => finish(server, &m, outcome).await,
    }
}

/// Writes the markers of a decided transaction and its offsets (commit only), waits for
/// both to be durable at once, then records the transaction Complete.
///
/// Only the Prepare record (written before this) has to be durable on its own: it is the
/// decision, and after a crash [`recover`] writes the markers and offsets again from it.
/// The markers and the offsets need no order between them, so one fsync covers both
/// (`--fsync always`). The Complete record is not waited for: losing it costs a restart
/// the rewriting of markers the partitions already have (they ignore the repeat), and
/// the producer's next request writes after it in the same file, so whatever makes that
/// durable makes the Complete record durable first. So EndTxn's answer waits for the
/// Prepare record and the markers — as Kafka's waits for its Prepare record — and a
/// transaction costs two fsyncs there, not four.
async fn finish(
    server: &StreamServer,
    m: &TransactionMetadata,
    outcome: Outcome,
) -> Result<(), Code> {
    let now = server.now_ms();
    let mut appended = Vec::new();
    for (topic, p) in &m.partitions {
        let Some(partition) = server.topics.get(topic).and_then(|t| t.partition(*p)) else {
            continue; // deleted meanwhile: nothing to end there
        };
        match partition.append_marker(m.producer_id, m.producer_epoch, outcome, now) {
            Ok(a) => appended.extend(a),
            Err(LogError::Io(e)) => return Err(storage(e)),
            Err(e) => warn!(
                "transaction {}: marker in {topic}/{p}: {e}",
                m.transactional_id
            ),
        }
    }
    if outcome == Outcome::Commit {
        let commits = m.commits();
        if !commits.is_empty() {
            appended.push(server.write_offsets_unchecked(&commits).map_err(storage)?);
        }
    }
    server.make_durable(&appended).await.map_err(storage)?;
    let (_, complete) = server.transactions.change(now, |t| {
        Ok((
            (),
            t.complete(&m.transactional_id, now).into_iter().collect(),
        ))
    })?;
    server.written(complete.as_slice());
    Ok(())
}

/// Aborts transactions past their timeout (a background task calls this): their
/// producers are fenced by the bumped epoch.
pub async fn abort_expired(server: &StreamServer) {
    let now = server.now_ms();
    let expired = {
        let coordinator = &server.transactions;
        let mut state = coordinator.state();
        let expired = state.expire(now);
        let records: Vec<TxnRecord> = expired.iter().cloned().map(TxnRecord::Metadata).collect();
        match coordinator.log.append(&records, now) {
            Ok(appended) => Some((expired, appended)),
            Err(e) => {
                warn!("transaction timeout: {e}");
                None
            }
        }
    };
    let Some((expired, appended)) = expired else {
        return;
    };
    if durable(server, appended).await.is_err() {
        return;
    }
    for m in expired {
        info!(
            "transactional id {}: transaction timed out after {} ms; aborted, producer fenced",
            m.transactional_id, m.timeout_ms
        );
        if let Err(code) = finish(server, &m, Outcome::Abort).await {
            warn!("aborting {}: error {code}", m.transactional_id);
        }
    }
}

/// On start: finishes transactions that were decided before a crash.
pub async fn recover(server: &StreamServer) {
    let prepared = server.transactions.state().prepared();
    for m in prepared {
        let Some(outcome) = outcome_of(m.state) else {
            continue;
        };
        info!(
            "transactional id {}: finishing the {} decided before the restart",
            m.transactional_id,
            outcome.name()
        );
        if let Err(code) = finish(server, &m, outcome).await {
            warn!("recovering {}: error {code}", m.transactional_id);
        }
    }
}

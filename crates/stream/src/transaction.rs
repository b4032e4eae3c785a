//! Transactions: exactly once across partitions, and from input to output.
//!
//! An idempotent producer (see [`crate::producer_state`]) writes each record once into
//! *one* partition. A stream processor needs more: it reads records, writes results to
//! other topics, and commits how far it read — and a crash in between must leave either
//! all of it or none of it. That is a **transaction**: a producer with a
//! `transactional.id` (a name that outlives the process) does
//!
//! ```text
//! InitProducerId(transactional.id)   -> producer id, epoch+1: older instances are fenced
//! AddPartitionsToTxn(topic, p)       -> the coordinator notes each partition written to
//! Produce (transactional batches)    -> appended at once, interleaved with others' records
//! AddOffsetsToTxn(group)             -> the consumed offsets will be part of it
//! TxnOffsetCommit(group, offsets)    -> held back until the commit
//! EndTxn(commit | abort)             -> PrepareCommit/PrepareAbort written durably, then a
//!                                       marker in every partition (see `crate::marker`),
//!                                       the offsets committed (commit only), Complete
//! ```
//!
//! The *decision* is the durable Prepare record: after it, a crash changes nothing — on
//! start the coordinator finds the Prepare and writes the markers again (a partition
//! whose transaction already ended ignores the repeat). A transaction that is never ended
//! (its producer crashed) is aborted after `transaction.timeout.ms`, with the epoch bumped
//! so the zombie, if it comes back, is fenced (`PRODUCER_FENCED`).
//!
//! This module is the coordinator's state machine and its record format, without I/O;
//! `crate::transaction_log` keeps it durable and `crate::txn_coordinator` writes markers.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::marker::Outcome;
use crate::offsets::Commit;

/// Kafka's `transaction.max.timeout.ms` (15 minutes): a longer timeout is refused.
pub const MAX_TIMEOUT_MS: i64 = 15 * 60 * 1000;
/// A transactional id with no transaction for this long is forgotten, as Kafka's
/// `transactional.id.expiration.ms` (7 days): bounds the memory clients inventing ids
/// can take. Coming back later is like coming for the first time (a new producer id).
pub const EXPIRATION_MS: i64 = 7 * 24 * 3600 * 1000;
/// Producer ids are handed out in blocks; each block is written to the transaction log
/// before any of its ids is used, so no id is handed out twice, even after a crash.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

/// Where a transaction is (Kafka's `TransactionState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    /// No transaction yet since InitProducerId.
    Empty,
    /// Partitions or offsets added; not ended.
    Ongoing,
    /// Decided: the markers are being written.
    PrepareCommit,
    PrepareAbort,
    /// Ended; the next AddPartitionsToTxn starts the next one.
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    /// The name Kafka's admin tools show.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(code: u8) -> Option<TxnState> {
        [
            TxnState::Empty,
            TxnState::Ongoing,
            TxnState::PrepareCommit,
            TxnState::PrepareAbort,
            TxnState::CompleteCommit,
            TxnState::CompleteAbort,
        ]
        .get(usize::from(code))
        .copied()
    }
}

/// One `transactional.id`'s state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i64,
    pub state: TxnState,
    /// When the current transaction began (the first partition or group added).
    pub started_ms: i64,
    pub partitions: BTreeSet<(String, u32)>,
    pub groups: BTreeSet<String>,
    /// TxnOffsetCommit's offsets, committed with the transaction: `(group, topic,
    /// partition) → offset`.
    pub offsets: BTreeMap<(String, String, u32), u64>,
    /// The epoch before the last bump a producer asked for by naming its own (KIP-360),
    /// so a retry of that InitProducerId gets the same answer; -1 after any other bump.
    pub last_epoch: i16,
}

impl TransactionMetadata {
    /// The offsets to commit, as the offsets store takes them.
    pub fn commits(&self) -> Vec<Commit> {
        self.offsets
            .iter()
            .map(|((group, topic, partition), &offset)| Commit {
                group: group.clone(),
                topic: topic.clone(),
                partition: *partition,
                offset,
            })
            .collect()
    }
}

/// Why a transactional request was refused (each is a Kafka error code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnError {
    /// The producer id does not belong to this transactional id.
    InvalidProducerIdMapping,
    /// An older epoch: another instance took over (`PRODUCER_FENCED`).
    ProducerFenced,
    /// The previous transaction is still being completed: retry.
    ConcurrentTransactions,
    /// The request does not fit the state (commit after abort, ...).
    InvalidTxnState,
    InvalidTransactionTimeout,
}

impl TxnError {
    pub fn code(self) -> i16 {
        use kafka_protocol::ResponseError as E;
        match self {
            TxnError::InvalidProducerIdMapping => E::InvalidProducerIdMapping.code(),
            TxnError::ProducerFenced => E::ProducerFenced.code(),
            TxnError::ConcurrentTransactions => E::ConcurrentTransactions.code(),
            TxnError::InvalidTxnState => E::InvalidTxnState.code(),
            TxnError::InvalidTransactionTimeout => E::InvalidTransactionTimeout.code(),
        }
    }
}

/// What InitProducerId found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Init {
    /// The producer id and epoch to use.
    Ready { producer_id: i64, epoch: i16 },
    /// An ongoing transaction of the previous instance must be aborted first: the
    /// caller writes its markers (see [`Transactions::complete`]) and asks again.
    AbortFirst(TransactionMetadata),
}

/// What EndTxn decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Write the markers of this (now Prepare*) transaction, then complete it.
    Markers(TransactionMetadata, Outcome),
    /// Nothing to do: a retry of an end already done, or nothing was added.
    Done,
}

/// Every transactional id this broker coordinates, and the producer id allocator.
#[derive(Debug, Default)]
pub struct Transactions {
    by_id: HashMap<String, TransactionMetadata>,
    next_producer_id: i64,
    /// Ids below this are reserved by a durable block record.
    block_end: i64,
}

/// A change to write to the transaction log before it is acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnRecord {
    Metadata(TransactionMetadata),
    /// Producer ids below this are taken.
    ProducerIdBlock(i64),
}

impl Transactions {
    /// The state replayed from the transaction log, and the highest producer id found in
    /// the partitions' logs (ids are never reused).
    pub fn recover(records: Vec<TxnRecord>, max_seen_producer_id: i64) -> Transactions {
        let mut t = Transactions::default();
        for r in records {
            match r {
                TxnRecord::ProducerIdBlock(end) => t.block_end = t.block_end.max(end),
                TxnRecord::Metadata(m) => {
                    t.block_end = t.block_end.max(m.producer_id + 1);
                    t.by_id.insert(m.transactional_id.clone(), m);
                }
            }
        }
        // The rest of the last block may have been handed out before the crash.
        t.block_end = t.block_end.max(max_seen_producer_id + 1);
        t.next_producer_id = t.block_end;
        t
    }

    /// A new producer id; with the block record to write first when a block runs out.
    pub fn allocate_producer_id(&mut self) -> (i64, Option<TxnRecord>) {
        let mut record = None;
        if self.next_producer_id >= self.block_end {
            self.block_end = self.next_producer_id + PRODUCER_ID_BLOCK;
            record = Some(TxnRecord::ProducerIdBlock(self.block_end));
        }
        let id = self.next_producer_id;
        self.next_producer_id += 1;
        (id, record)
    }

    pub fn get(&self, transactional_id: &str) -> Option<&TransactionMetadata> {
        self.by_id.get(transactional_id)
    }

    pub fn all(&self) -> impl Iterator<Item = &TransactionMetadata> {
        self.by_id.values()
    }

    /// InitProducerId for a transactional id: a new id (epoch 0), or the same id with
    /// the epoch bumped, which fences every older instance. Returns the records to write.
    ///
    /// `expected` is the producer id and epoch a running producer names (InitProducerId
    /// v3+, KIP-360: it bumps its own epoch to recover from an error without a restart).
    /// Only the current epoch may do that — a zombie naming an older one is
    /// `PRODUCER_FENCED` instead of fencing its successor — and a retry whose answer was
    /// lost (naming the epoch before that bump) gets the same answer again.
    pub fn init(
        &mut self,
        transactional_id: &str,
        timeout_ms: i64,
        now_ms: i64,
        expected: Option<(i64, i16)>,
    ) -> Result<(Init, Vec<TxnRecord>), TxnError> {
        if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
            return Err(TxnError::InvalidTransactionTimeout);
        }
        let mut records = Vec::new();
        let existing = self.by_id.get(transactional_id).cloned();
        let mut last_epoch = -1;
        if let (Some(m), Some((producer_id, epoch))) = (&existing, expected) {
            if producer_id != m.producer_id {
                return Err(TxnError::ProducerFenced);
            }
            if matches!(
                m.state,
                TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
            ) {
                if epoch == m.last_epoch && epoch != m.producer_epoch {
                    let (producer_id, epoch) = (m.producer_id, m.producer_epoch);
                    return Ok((Init::Ready { producer_id, epoch }, records));
                }
                if epoch != m.producer_epoch {
                    return Err(TxnError::ProducerFenced);
                }
                last_epoch = epoch;
            }
        }
        let (producer_id, epoch) = match existing {
            Some(m) => match m.state {
                TxnState::PrepareCommit | TxnState::PrepareAbort => {
                    return Err(TxnError::ConcurrentTransactions);
                }
                TxnState::Ongoing => {
                    // Fence the old instance: abort its transaction under a new epoch.
                    let aborting = self.begin_end(transactional_id, Outcome::Abort, true)?;
                    records.push(TxnRecord::Metadata(aborting.clone()));
                    return Ok((Init::AbortFirst(aborting), records));
                }
                _ if m.producer_epoch >= i16::MAX - 1 => {
                    // Epochs are exhausted: a new producer id starts again at 0.
                    let (id, block) = self.allocate_producer_id();
                    records.extend(block);
                    (id, 0)
                }
                _ => (m.producer_id, m.producer_epoch + 1),
            },
            None => {
                let (id, block) = self.allocate_producer_id();
                records.extend(block);
                (id, 0)
            }
        };
        let metadata = TransactionMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id,
            producer_epoch: epoch,
            timeout_ms,
            state: TxnState::Empty,
            started_ms: now_ms,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            offsets: BTreeMap::new(),
            last_epoch,
        };
        records.push(TxnRecord::Metadata(metadata.clone()));
        self.by_id.insert(transactional_id.to_string(), metadata);
        Ok((Init::Ready { producer_id, epoch }, records))
    }

    /// The transaction a request of `producer_id`/`epoch` may change.
    fn current(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
    ) -> Result<&mut TransactionMetadata, TxnError> {
        let m = self
            .by_id
            .get_mut(transactional_id)
            .ok_or(TxnError::InvalidProducerIdMapping)?;
        if m.producer_id != producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if epoch != m.producer_epoch {
            return Err(TxnError::ProducerFenced);
        }
        Ok(m)
    }

    /// Makes the transaction Ongoing (starting it if it was not), after `change`.
    fn add(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        now_ms: i64,
        change: impl FnOnce(&mut TransactionMetadata),
    ) -> Result<TxnRecord, TxnError> {
        let m = self.current(transactional_id, producer_id, epoch)?;
        match m.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                return Err(TxnError::ConcurrentTransactions);
            }
            TxnState::Ongoing => {}
            _ => {
                m.state = TxnState::Ongoing;
                m.started_ms = now_ms;
            }
        }
        change(m);
        Ok(TxnRecord::Metadata(m.clone()))
    }

    /// AddPartitionsToTxn.
    pub fn add_partitions(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, u32)],
        now_ms: i64,
    ) -> Result<TxnRecord, TxnError> {
        self.add(transactional_id, producer_id, epoch, now_ms, |m| {
            m.partitions.extend(partitions.iter().cloned());
        })
    }

    /// AddOffsetsToTxn.
    pub fn add_group(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        group: &str,
        now_ms: i64,
    ) -> Result<TxnRecord, TxnError> {
        self.add(transactional_id, producer_id, epoch, now_ms, |m| {
            m.groups.insert(group.to_string());
        })
    }

    /// TxnOffsetCommit: the offsets are held until the transaction commits. The group
    /// must have been added (AddOffsetsToTxn).
    pub fn add_offsets(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        group: &str,
        offsets: &[(String, u32, u64)],
    ) -> Result<TxnRecord, TxnError> {
        let m = self.current(transactional_id, producer_id, epoch)?;
        if m.state != TxnState::Ongoing || !m.groups.contains(group) {
            return Err(TxnError::InvalidTxnState);
        }
        for (topic, partition, offset) in offsets {
            m.offsets
                .insert((group.to_string(), topic.clone(), *partition), *offset);
        }
        Ok(TxnRecord::Metadata(m.clone()))
    }

    /// EndTxn: the decision. Returns what to write (the Prepare record) and do.
    pub fn end(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        outcome: Outcome,
    ) -> Result<(End, Option<TxnRecord>), TxnError> {
        let m = self.current(transactional_id, producer_id, epoch)?;
        let done = match (m.state, outcome) {
            (TxnState::Ongoing, _) => false,
            (TxnState::PrepareCommit | TxnState::PrepareAbort, _) => {
                return Err(TxnError::ConcurrentTransactions);
            }
            // A retry whose answer was lost, or an abort of nothing.
            (TxnState::CompleteCommit, Outcome::Commit)
            | (TxnState::CompleteAbort | TxnState::Empty, Outcome::Abort) => true,
            _ => return Err(TxnError::InvalidTxnState),
        };
        if done {
            return Ok((End::Done, None));
        }
        let m = self.begin_end(transactional_id, outcome, false)?;
        Ok((
            End::Markers(m.clone(), outcome),
            Some(TxnRecord::Metadata(m)),
        ))
    }

    /// Moves an ongoing transaction to Prepare*; `bump` raises the epoch first (a
    /// timeout or a new instance: the old producer is fenced).
    fn begin_end(
        &mut self,
        transactional_id: &str,
        outcome: Outcome,
        bump: bool,
    ) -> Result<TransactionMetadata, TxnError> {
        let m = self
            .by_id
            .get_mut(transactional_id)
            .ok_or(TxnError::InvalidProducerIdMapping)?;
        if bump {
            m.producer_epoch = m.producer_epoch.saturating_add(1);
        }
        m.state = match outcome {
            Outcome::Commit => TxnState::PrepareCommit,
            Outcome::Abort => {
                m.offsets.clear();
                TxnState::PrepareAbort
            }
        };
        Ok(m.clone())
    }

    /// After the markers are written: Complete*, ready for the next transaction.
    pub fn complete(&mut self, transactional_id: &str, now_ms: i64) -> Option<TxnRecord> {
        let m = self.by_id.get_mut(transactional_id)?;
        m.started_ms = now_ms; // the last activity, for expiration
        m.state = match m.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            _ => return None,
        };
        m.partitions.clear();
        m.groups.clear();
        m.offsets.clear();
        Some(TxnRecord::Metadata(m.clone()))
    }

    /// Ongoing transactions past their timeout, moved to PrepareAbort with the epoch
    /// bumped; the caller writes their markers and completes them. Idle transactional ids
    /// past [`EXPIRATION_MS`] are forgotten.
    pub fn expire(&mut self, now_ms: i64) -> Vec<TransactionMetadata> {
        self.by_id.retain(|_, m| {
            matches!(
                m.state,
                TxnState::Ongoing | TxnState::PrepareCommit | TxnState::PrepareAbort
            ) || now_ms - m.started_ms < EXPIRATION_MS
        });
        let expired: Vec<String> = self
            .by_id
            .values()
            .filter(|m| m.state == TxnState::Ongoing && now_ms - m.started_ms > m.timeout_ms)
            .map(|m| m.transactional_id.clone())
            .collect();
        expired
            .iter()
            .filter_map(|id| self.begin_end(id, Outcome::Abort, true).ok())
            .collect()
    }

    /// Transactions decided but not completed (a crash between the Prepare record and
    /// the markers): their markers must be written (again).
    pub fn prepared(&self) -> Vec<TransactionMetadata> {
        self.by_id
            .values()
            .filter(|m| matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort))
            .cloned()
            .collect()
    }
}

/// The outcome a Prepare* state stands for.
pub fn outcome_of(state: TxnState) -> Option<Outcome> {
    match state {
        TxnState::PrepareCommit => Some(Outcome::Commit),
        TxnState::PrepareAbort => Some(Outcome::Abort),
        _ => None,
    }
}

/// The key of the producer-id block record (a transactional id is never empty).
const BLOCK_KEY: &[u8] = b"";

impl TxnRecord {
    /// `(key, value)` as stored in the transaction log: the key is the transactional id,
    /// so replay keeps the newest record per id.
    pub fn encode(&self) -> (Bytes, Bytes) {
        let mut v = BytesMut::new();
        match self {
            TxnRecord::ProducerIdBlock(end) => {
                v.put_i64(*end);
                (Bytes::from_static(BLOCK_KEY), v.freeze())
            }
            TxnRecord::Metadata(m) => {
                v.put_i64(m.producer_id);
                v.put_i16(m.producer_epoch);
                v.put_i64(m.timeout_ms);
                v.put_u8(m.state.code());
                v.put_i64(m.started_ms);
                v.put_u32(m.partitions.len() as u32);
                for (topic, p) in &m.partitions {
                    put_str(&mut v, topic);
                    v.put_u32(*p);
                }
                v.put_u32(m.groups.len() as u32);
                for g in &m.groups {
                    put_str(&mut v, g);
                }
                v.put_u32(m.offsets.len() as u32);
                for ((g, t, p), o) in &m.offsets {
                    put_str(&mut v, g);
                    put_str(&mut v, t);
                    v.put_u32(*p);
                    v.put_u64(*o);
                }
                v.put_i16(m.last_epoch);
                (
                    Bytes::copy_from_slice(m.transactional_id.as_bytes()),
                    v.freeze(),
                )
            }
        }
    }

    /// The record stored as `(key, value)`; `None` if it does not parse.
    pub fn decode(key: &[u8], mut v: &[u8]) -> Option<TxnRecord> {
        if key == BLOCK_KEY {
            return (v.len() >= 8).then(|| TxnRecord::ProducerIdBlock(v.get_i64()));
        }
        let transactional_id = std::str::from_utf8(key).ok()?.to_string();
        let fixed = 8 + 2 + 8 + 1 + 8 + 4;
        if v.len() < fixed {
            return None;
        }
        let producer_id = v.get_i64();
        let producer_epoch = v.get_i16();
        let timeout_ms = v.get_i64();
        let state = TxnState::from_code(v.get_u8())?;
        let started_ms = v.get_i64();
        let mut partitions = BTreeSet::new();
        for _ in 0..v.get_u32() {
            let topic = get_str(&mut v)?;
            partitions.insert((topic, get_u32(&mut v)?));
        }
        let mut groups = BTreeSet::new();
        for _ in 0..get_u32(&mut v)? {
            groups.insert(get_str(&mut v)?);
        }
        let mut offsets = BTreeMap::new();
        for _ in 0..get_u32(&mut v)? {
            let (g, t) = (get_str(&mut v)?, get_str(&mut v)?);
            let p = get_u32(&mut v)?;
            if v.len() < 8 {
                return None;
            }
            offsets.insert((g, t, p), v.get_u64());
        }
        // Absent from records written before KIP-360's check was implemented.
        let last_epoch = if v.len() >= 2 { v.get_i16() } else { -1 };
        Some(TxnRecord::Metadata(TransactionMetadata {
            transactional_id,
            producer_id,
            producer_epoch,
            timeout_ms,
            state,
            started_ms,
            partitions,
            groups,
            offsets,
            last_epoch,
        }))
    }
}

fn put_str(v: &mut BytesMut, s: &str) {
    v.put_u16(s.len() as u16);
    v.put_slice(s.as_bytes());
}

fn get_u32(v: &mut &[u8]) -> Option<u32> {
    (v.len() >= 4).then(|| v.get_u32())
}

fn get_str(v: &mut &[u8]) -> Option<String> {
    if v.len() < 2 {
        return None;
    }
    let len = usize::from(v.get_u16());
    let s = std::str::from_utf8(v.get(..len)?).ok()?.to_string();
    v.advance(len);
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(init: Init) -> (i64, i16) {
        match init {
            Init::Ready { producer_id, epoch } => (producer_id, epoch),
            other => panic!("expected Ready, got {other:?}"),
        }
    }

    #[test]
    fn re_init_bumps_the_epoch_and_fences_the_old_instance() {
        let mut t = Transactions::recover(Vec::new(), -1);
        let (pid, epoch) = ready(t.init("etl", 60_000, 0, None).unwrap().0);
        assert_eq!(epoch, 0);
        t.add_partitions("etl", pid, 0, &[("out".into(), 0)], 0)
            .unwrap();
        // A second instance: the first one's transaction is aborted under epoch 1 ...
        let (init, _) = t.init("etl", 60_000, 0, None).unwrap();
        let Init::AbortFirst(aborting) = init else {
            panic!("{init:?}")
        };
        assert_eq!(aborting.state, TxnState::PrepareAbort);
        assert_eq!(aborting.producer_epoch, 1);
        t.complete("etl", 0);
        // ... then it gets epoch 2, and the first instance is fenced.
        assert_eq!(ready(t.init("etl", 60_000, 0, None).unwrap().0), (pid, 2));
        assert_eq!(
            t.end("etl", pid, 0, Outcome::Commit),
            Err(TxnError::ProducerFenced)
        );
        assert_eq!(
            t.add_partitions("etl", pid + 1, 2, &[], 0),
            Err(TxnError::InvalidProducerIdMapping)
        );
    }

    #[test]
    fn a_producer_bumps_its_own_epoch_and_a_zombie_naming_an_old_one_is_fenced() {
        let mut t = Transactions::recover(Vec::new(), -1);
        let (pid, e0) = ready(t.init("etl", 60_000, 0, None).unwrap().0);
        // KIP-360: the running producer names its id and epoch; the epoch goes up by one.
        let (bumped, records) = t.init("etl", 60_000, 0, Some((pid, e0))).unwrap();
        assert_eq!(ready(bumped), (pid, e0 + 1));
        assert_eq!(records.len(), 1);
        // Its answer was lost: the retry names the old epoch and gets the same answer.
        let (again, records) = t.init("etl", 60_000, 0, Some((pid, e0))).unwrap();
        assert_eq!(ready(again), (pid, e0 + 1));
        assert!(records.is_empty());
        // A new instance (naming nothing) fences it; the fenced one may not bump back.
        assert_eq!(
            ready(t.init("etl", 60_000, 0, None).unwrap().0),
            (pid, e0 + 2)
        );
        assert_eq!(
            t.init("etl", 60_000, 0, Some((pid, e0 + 1))),
            Err(TxnError::ProducerFenced)
        );
        assert_eq!(
            t.init("etl", 60_000, 0, Some((pid, e0))),
            Err(TxnError::ProducerFenced)
        );
        assert_eq!(
            t.init("etl", 60_000, 0, Some((pid + 1, e0 + 2))),
            Err(TxnError::ProducerFenced)
        );
        // The last epoch survives the log (the retry rule holds after a restart).
        let (_, records) = t.init("etl", 60_000, 0, Some((pid, e0 + 2))).unwrap();
        let TxnRecord::Metadata(m) = &records[0] else {
            panic!("{records:?}")
        };
        let (k, v) = records[0].encode();
        assert_eq!(TxnRecord::decode(&k, &v), Some(records[0].clone()));
        assert_eq!(m.last_epoch, e0 + 2);
    }

    #[test]
    fn commit_holds_the_offsets_and_a_retried_end_is_done() {
        let mut t = Transactions::recover(Vec::new(), -1);
        let (pid, e) = ready(t.init("etl", 60_000, 0, None).unwrap().0);
        assert_eq!(
            t.add_offsets("etl", pid, e, "g", &[("in".into(), 0, 5)]),
            Err(TxnError::InvalidTxnState)
        );
        t.add_group("etl", pid, e, "g", 0).unwrap();
        t.add_offsets("etl", pid, e, "g", &[("in".into(), 0, 5)])
            .unwrap();
        let (end, record) = t.end("etl", pid, e, Outcome::Commit).unwrap();
        let End::Markers(m, Outcome::Commit) = end else {
            panic!("{end:?}")
        };
        assert_eq!(m.commits().len(), 1);
        assert!(record.is_some());
        assert_eq!(
            t.end("etl", pid, e, Outcome::Commit),
            Err(TxnError::ConcurrentTransactions)
        );
        t.complete("etl", 0);
        assert_eq!(t.end("etl", pid, e, Outcome::Commit).unwrap().0, End::Done);
        assert_eq!(
            t.end("etl", pid, e, Outcome::Abort),
            Err(TxnError::InvalidTxnState)
        );
    }

    #[test]
    fn a_timed_out_transaction_is_aborted_with_a_new_epoch() {
        let mut t = Transactions::recover(Vec::new(), -1);
        let (pid, e) = ready(t.init("etl", 1_000, 0, None).unwrap().0);
        t.add_partitions("etl", pid, e, &[("out".into(), 1)], 100)
            .unwrap();
        assert!(t.expire(1_000).is_empty());
        let expired = t.expire(1_101);
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].producer_epoch, e + 1);
        assert_eq!(expired[0].state, TxnState::PrepareAbort);
        assert_eq!(t.prepared().len(), 1);
        t.complete("etl", 2_000);
        // Idle for a week: forgotten.
        t.expire(2_000 + EXPIRATION_MS - 1);
        assert!(t.get("etl").is_some());
        t.expire(2_000 + EXPIRATION_MS);
        assert!(t.get("etl").is_none());
    }

    #[test]
    fn records_round_trip_and_recovery_never_reuses_producer_ids() {
        let mut t = Transactions::recover(Vec::new(), -1);
        let (init, records) = t.init("etl", 60_000, 7, None).unwrap();
        let (pid, e) = ready(init);
        let mut all = records;
        all.push(t.add_group("etl", pid, e, "g", 7).unwrap());
        all.push(
            t.add_offsets("etl", pid, e, "g", &[("in".into(), 3, 42)])
                .unwrap(),
        );
        let decoded: Vec<TxnRecord> = all
            .iter()
            .map(|r| {
                let (k, v) = r.encode();
                TxnRecord::decode(&k, &v).unwrap()
            })
            .collect();
        assert_eq!(decoded, all);
        let mut again = Transactions::recover(decoded, -1);
        assert_eq!(again.get("etl").unwrap().offsets.len(), 1);
        // The rest of the block may have been handed out: the next id is past it.
        assert!(again.allocate_producer_id().0 >= PRODUCER_ID_BLOCK);
        // Ids seen in the partitions' logs are never handed out again either.
        let mut t = Transactions::recover(Vec::new(), 5_000);
        assert_eq!(t.allocate_producer_id().0, 5_001);
    }
}

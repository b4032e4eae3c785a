//! Idempotent producers: how a retried batch is written once.
//!
//! The three delivery guarantees come from where a failure can fall:
//! - **at most once**: the producer never retries — a batch whose acknowledgement was lost
//!   may be lost too.
//! - **at least once**: the producer retries until acknowledged — but if the batch *was*
//!   written and only the answer was lost (a cut connection, a timeout), the retry writes
//!   it a second time.
//! - **exactly once** (into the log): the producer retries, and the broker recognises the
//!   retry. That is this module.
//!
//! An idempotent producer first asks for a *producer id* and *epoch* (InitProducerId) and
//! numbers its batches per partition: the batch header carries `producer_id`,
//! `producer_epoch` and `base_sequence` (the sequence number of its first record; the
//! next batch starts where this one ended). Each partition remembers, per producer, the
//! epoch and the last few batches it appended (Kafka keeps five: a producer has at most
//! five requests in flight per connection), and checks every new batch:
//!
//! - the same sequence range as a remembered batch: a **duplicate** (the retry of a batch
//!   whose answer was lost) — it is *not* appended, and is acknowledged with the offset
//!   the original got;
//! - the sequence right after the last batch: appended;
//! - anything else: a gap — an earlier batch was lost — `OUT_OF_ORDER_SEQUENCE_NUMBER`,
//!   so the producer never lets records pass one that failed;
//! - an epoch older than the partition has seen: a *zombie* (an old instance of a
//!   producer that was restarted, or whose transaction timed out) —
//!   `INVALID_PRODUCER_EPOCH`; a newer epoch starts again at sequence 0.
//!
//! None of this needs a separate file: the batch headers in the log *are* the record of
//! what each producer wrote, so on start the partition scans them and rebuilds this state
//! (Kafka does the same from its last snapshot). A retry that arrives after a crash and
//! restart is still recognised.
//!
//! The same per-partition state tracks **transactions** (see `crate::transaction`): the
//! first offset of each producer's open transaction, which bounds the *last stable
//! offset* a `read_committed` consumer may read up to, and the aborted transactions whose
//! records those consumers must drop.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::marker::{self, Outcome};
use crate::record::BatchHeader;

/// Batches remembered per producer and partition: Kafka's
/// `max.in.flight.requests.per.connection` limit for idempotence.
pub const REMEMBERED_BATCHES: usize = 5;

/// A producer silent this long (and with no open transaction) is forgotten, as Kafka's
/// `producer.id.expiration.ms` (one day): bounds the memory many short-lived producers
/// can take. A retry after that is treated as a new producer.
pub const PRODUCER_EXPIRATION_MS: i64 = 24 * 3600 * 1000;

/// Why a batch from an idempotent producer was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceError {
    /// A gap (or a replay older than the remembered batches): `OUT_OF_ORDER_SEQUENCE_NUMBER`.
    OutOfOrder {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    /// The producer was fenced by a newer epoch: `INVALID_PRODUCER_EPOCH`.
    StaleEpoch {
        producer_id: i64,
        current: i16,
        got: i16,
    },
}

impl std::fmt::Display for SequenceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SequenceError::OutOfOrder {
                producer_id,
                expected,
                got,
            } => write!(
                f,
                "producer {producer_id}: sequence {got} is out of order, expected {expected} \
                 (an earlier batch is missing)"
            ),
            SequenceError::StaleEpoch {
                producer_id,
                current,
                got,
            } => write!(
                f,
                "producer {producer_id}: epoch {got} is fenced, the current epoch is {current}"
            ),
        }
    }
}

/// What to do with a batch that passed the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// New: append it.
    Append,
    /// Already in the log (a retry): acknowledge with the original offsets.
    Duplicate { base_offset: u64, last_offset: u64 },
}

/// One batch a producer appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchMeta {
    first_sequence: i32,
    last_sequence: i32,
    base_offset: u64,
    last_offset: u64,
}

/// What a partition knows about one producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// Newest last.
    batches: VecDeque<BatchMeta>,
    /// The first offset of its open transaction in this partition.
    pub transaction_start: Option<u64>,
    /// The newest batch's max timestamp.
    pub last_timestamp: i64,
}

impl ProducerEntry {
    pub fn last_sequence(&self) -> i32 {
        self.batches.back().map_or(-1, |b| b.last_sequence)
    }
}

/// A transaction that ended with an ABORT marker: its records, from `first_offset` to
/// the marker at `last_offset`, are dropped by `read_committed` consumers (those of
/// `producer_id`; other producers' records in between are not its).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTransaction {
    pub producer_id: i64,
    pub first_offset: u64,
    pub last_offset: u64,
}

/// The producers of one partition, their open transactions and the aborted ones.
#[derive(Debug, Default)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions: first offset → producer id (the smallest key bounds the last
    /// stable offset).
    open: BTreeMap<u64, i64>,
    /// In marker order, so also by `last_offset`.
    aborted: VecDeque<AbortedTransaction>,
}

/// The sequence after `s` (sequences wrap to 0 after `i32::MAX`).
fn next_sequence(s: i32) -> i32 {
    if s == i32::MAX { 0 } else { s + 1 }
}

impl ProducerStates {
    /// Checks a batch before it is appended (see the module docs). Batches without a
    /// producer id and control batches (written by the coordinator) are not checked.
    pub fn check(&self, h: &BatchHeader) -> Result<Admission, SequenceError> {
        if h.producer_id < 0 || h.is_control() {
            return Ok(Admission::Append);
        }
        let Some(entry) = self.producers.get(&h.producer_id) else {
            // Unknown here: the producer's first batch to this partition, or its state
            // expired. Any sequence is accepted (Kafka since 2.4, KIP-360).
            return Ok(Admission::Append);
        };
        if h.producer_epoch < entry.epoch {
            return Err(SequenceError::StaleEpoch {
                producer_id: h.producer_id,
                current: entry.epoch,
                got: h.producer_epoch,
            });
        }
        if h.producer_epoch > entry.epoch {
            // A new epoch (the producer re-initialised) starts its sequences at 0.
            return if h.base_sequence == 0 {
                Ok(Admission::Append)
            } else {
                Err(SequenceError::OutOfOrder {
                    producer_id: h.producer_id,
                    expected: 0,
                    got: h.base_sequence,
                })
            };
        }
        let last = h.last_sequence();
        if let Some(b) = entry
            .batches
            .iter()
            .find(|b| b.first_sequence == h.base_sequence && b.last_sequence == last)
        {
            return Ok(Admission::Duplicate {
                base_offset: b.base_offset,
                last_offset: b.last_offset,
            });
        }
        let expected = next_sequence(entry.last_sequence());
        if entry.batches.is_empty() || h.base_sequence == expected {
            Ok(Admission::Append)
        } else {
            Err(SequenceError::OutOfOrder {
                producer_id: h.producer_id,
                expected,
                got: h.base_sequence,
            })
        }
    }

    /// Records a batch just appended (its base offset stamped); `batch` is its bytes,
    /// read only for a control batch's outcome. Also how the state is rebuilt from the
    /// log on start: the same call for every stored batch, oldest first.
    pub fn on_append(&mut self, h: &BatchHeader, batch: &[u8]) {
        if h.producer_id < 0 {
            return;
        }
        let entry = self
            .producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: h.producer_epoch,
                batches: VecDeque::new(),
                transaction_start: None,
                last_timestamp: h.max_timestamp,
            });
        if h.producer_epoch > entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        entry.last_timestamp = entry.last_timestamp.max(h.max_timestamp);
        if h.is_control() {
            if let Some(first) = entry.transaction_start.take() {
                self.open.remove(&first);
                if marker::outcome(batch) == Some(Outcome::Abort) {
                    self.aborted.push_back(AbortedTransaction {
                        producer_id: h.producer_id,
                        first_offset: first,
                        last_offset: h.base_offset,
                    });
                }
            }
            return;
        }
        if h.is_transactional() && entry.transaction_start.is_none() {
            entry.transaction_start = Some(h.base_offset);
            self.open.insert(h.base_offset, h.producer_id);
        }
        if h.base_sequence >= 0 {
            if entry.batches.len() == REMEMBERED_BATCHES {
                entry.batches.pop_front();
            }
            entry.batches.push_back(BatchMeta {
                first_sequence: h.base_sequence,
                last_sequence: h.last_sequence(),
                base_offset: h.base_offset,
                last_offset: h.last_offset(),
            });
        }
    }

    /// The *last stable offset*: the first offset of the oldest open transaction, or
    /// `end` (the log end offset) when none is open. `read_committed` consumers read up
    /// to here and no further: past it, whether a record counts is not decided yet.
    pub fn last_stable_offset(&self, end: u64) -> u64 {
        self.open.keys().next().map_or(end, |&first| first.min(end))
    }

    /// The aborted transactions a fetch of offsets `from..to` must report: those with
    /// records in that range.
    pub fn aborted_between(&self, from: u64, to: u64) -> Vec<AbortedTransaction> {
        self.aborted
            .iter()
            .filter(|a| a.last_offset >= from && a.first_offset < to)
            .copied()
            .collect()
    }

    /// The producer's open transaction in this partition, if any: its first offset.
    pub fn open_transaction(&self, producer_id: i64) -> Option<u64> {
        self.producers
            .get(&producer_id)
            .and_then(|e| e.transaction_start)
    }

    /// Every producer this partition knows (for DescribeProducers).
    pub fn producers(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(&id, e)| (id, e))
    }

    /// The highest producer id seen (producer ids are never reused: see
    /// `crate::transaction`).
    pub fn max_producer_id(&self) -> i64 {
        self.producers.keys().copied().max().unwrap_or(-1)
    }

    /// After retention moved the log start to `start`: aborted transactions wholly before
    /// it no longer matter; producers silent for [`PRODUCER_EXPIRATION_MS`] are forgotten.
    pub fn trim(&mut self, start: u64, now_ms: i64) {
        while self.aborted.front().is_some_and(|a| a.last_offset < start) {
            self.aborted.pop_front();
        }
        self.producers.retain(|_, e| {
            e.transaction_start.is_some() || now_ms - e.last_timestamp < PRODUCER_EXPIRATION_MS
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{CONTROL_FLAG, NO_PRODUCER_ID, TRANSACTIONAL_FLAG};

    fn batch(pid: i64, epoch: i16, seq: i32, records: u32, base: u64) -> BatchHeader {
        BatchHeader {
            base_offset: base,
            size: 100,
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            attributes: 0,
            records_count: records,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
        }
    }

    fn append(s: &mut ProducerStates, h: BatchHeader) -> Result<Admission, SequenceError> {
        let admission = s.check(&h)?;
        if admission == Admission::Append {
            s.on_append(&h, &[]);
        }
        Ok(admission)
    }

    #[test]
    fn a_retried_batch_is_acknowledged_with_its_original_offsets_and_not_appended() {
        let mut s = ProducerStates::default();
        assert_eq!(append(&mut s, batch(1, 0, 0, 3, 10)), Ok(Admission::Append));
        assert_eq!(append(&mut s, batch(1, 0, 3, 2, 13)), Ok(Admission::Append));
        // The first batch again (its answer was lost): offsets 10..=12, as the first time.
        assert_eq!(
            append(&mut s, batch(1, 0, 0, 3, 99)),
            Ok(Admission::Duplicate {
                base_offset: 10,
                last_offset: 12
            })
        );
        assert_eq!(append(&mut s, batch(1, 0, 5, 1, 15)), Ok(Admission::Append));
    }

    #[test]
    fn a_gap_is_out_of_order_and_an_old_epoch_is_fenced() {
        let mut s = ProducerStates::default();
        append(&mut s, batch(1, 2, 0, 3, 0)).unwrap();
        assert_eq!(
            append(&mut s, batch(1, 2, 4, 1, 3)),
            Err(SequenceError::OutOfOrder {
                producer_id: 1,
                expected: 3,
                got: 4
            })
        );
        assert_eq!(
            append(&mut s, batch(1, 1, 3, 1, 3)),
            Err(SequenceError::StaleEpoch {
                producer_id: 1,
                current: 2,
                got: 1
            })
        );
        // A new epoch starts at 0, and then the old one is fenced.
        assert!(append(&mut s, batch(1, 3, 5, 1, 3)).is_err());
        assert_eq!(append(&mut s, batch(1, 3, 0, 1, 3)), Ok(Admission::Append));
        assert!(matches!(
            append(&mut s, batch(1, 2, 3, 1, 4)),
            Err(SequenceError::StaleEpoch { .. })
        ));
        // Batches without a producer id are never checked.
        assert_eq!(
            append(&mut s, batch(NO_PRODUCER_ID, -1, -1, 1, 4)),
            Ok(Admission::Append)
        );
    }

    #[test]
    fn only_the_last_five_batches_are_remembered_and_sequences_wrap() {
        let mut s = ProducerStates::default();
        for i in 0..7 {
            append(&mut s, batch(1, 0, i, 1, i as u64)).unwrap();
        }
        assert!(matches!(
            append(&mut s, batch(1, 0, 1, 1, 7)),
            Err(SequenceError::OutOfOrder { .. })
        ));
        assert!(matches!(
            append(&mut s, batch(1, 0, 2, 1, 7)),
            Ok(Admission::Duplicate { .. })
        ));
        let mut s = ProducerStates::default();
        append(&mut s, batch(2, 0, i32::MAX - 1, 2, 0)).unwrap();
        assert_eq!(append(&mut s, batch(2, 0, 0, 1, 2)), Ok(Admission::Append));
    }

    #[test]
    fn open_transactions_bound_the_last_stable_offset_and_aborts_are_remembered() {
        let mut s = ProducerStates::default();
        let txn = |pid, seq, base| BatchHeader {
            attributes: TRANSACTIONAL_FLAG,
            ..batch(pid, 0, seq, 2, base)
        };
        let marker_header = |pid, base| BatchHeader {
            attributes: CONTROL_FLAG | TRANSACTIONAL_FLAG,
            base_sequence: -1,
            ..batch(pid, 0, -1, 1, base)
        };
        s.on_append(&batch(9, 0, 0, 5, 0), &[]);
        assert_eq!(s.last_stable_offset(5), 5);
        s.on_append(&txn(1, 0, 5), &[]);
        s.on_append(&txn(2, 0, 7), &[]);
        s.on_append(&txn(1, 2, 9), &[]);
        assert_eq!(s.last_stable_offset(11), 5);
        let abort = marker::encode(1, 0, Outcome::Abort, 0);
        s.on_append(&marker_header(1, 11), &abort);
        assert_eq!(s.last_stable_offset(12), 7);
        let commit = marker::encode(2, 0, Outcome::Commit, 0);
        s.on_append(&marker_header(2, 12), &commit);
        assert_eq!(s.last_stable_offset(13), 13);
        let aborted = AbortedTransaction {
            producer_id: 1,
            first_offset: 5,
            last_offset: 11,
        };
        assert_eq!(s.aborted_between(0, 13), [aborted]);
        assert_eq!(s.aborted_between(12, 13), []);
        assert_eq!(s.aborted_between(0, 5), []);
        s.trim(12, 0);
        assert_eq!(s.aborted_between(0, 13), []);
    }
}

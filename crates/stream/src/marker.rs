//! Transaction markers: how a transaction's outcome is written *into the log itself*.
//!
//! A transactional producer's records are appended to each partition as they are sent,
//! interleaved with everybody else's; nothing is held back. What makes them atomic is
//! what comes after: when the transaction ends, the coordinator appends one *control
//! batch* to every partition the transaction touched — a COMMIT or an ABORT marker for
//! that producer. A consumer reading with `isolation.level=read_committed` keeps a
//! transaction's records until it meets the marker, then delivers them (commit) or drops
//! them (abort); and the broker never lets it read past the *last stable offset* — the
//! first record of a transaction still open — so it never has to guess.
//!
//! A marker is an ordinary v2 batch with the *control* and *transactional* attribute bits
//! set, the producer's id and epoch, and one record:
//!
//! ```text
//! key:   version i16 (0), type i16 (0 = ABORT, 1 = COMMIT)
//! value: version i16 (0), coordinator_epoch i32
//! ```
//!
//! Consumers never see control records: clients skip control batches, and so does the
//! RESP `FETCH` (see [`crate::record::for_each_record`]).

use bytes::Bytes;

use crate::record::{self, BatchHeader, CONTROL_FLAG, Record, TRANSACTIONAL_FLAG};

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Commit,
    Abort,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Commit => "commit",
            Outcome::Abort => "abort",
        }
    }
}

/// Encodes the marker batch ending `producer_id`'s transaction in one partition (base
/// offset 0: the log stamps the real one).
pub fn encode(producer_id: i64, producer_epoch: i16, outcome: Outcome, now_ms: i64) -> Vec<u8> {
    let kind: i16 = match outcome {
        Outcome::Abort => 0,
        Outcome::Commit => 1,
    };
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&kind.to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&0i32.to_be_bytes());
    let records = [Record {
        key: Some(Bytes::from(key)),
        value: Some(Bytes::from(value)),
        timestamp: now_ms,
        headers: Vec::new(),
    }];
    let mut bodies = Vec::new();
    let mut out = Vec::new();
    if let Some(header) = record::batch_header(&records, 0, &mut bodies) {
        let header = BatchHeader {
            attributes: CONTROL_FLAG | TRANSACTIONAL_FLAG,
            producer_id,
            producer_epoch,
            base_sequence: -1,
            ..header
        };
        record::encode_batch_with_header(&mut out, &records, &header, &bodies);
    }
    out
}

/// The outcome a control batch records (`None`: not a transaction marker).
pub fn outcome(batch: &[u8]) -> Option<Outcome> {
    let key = record::first_record_key(batch)?;
    match key.get(..4)? {
        [_, _, 0, 0] => Some(Outcome::Abort),
        [_, _, 0, 1] => Some(Outcome::Commit),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_is_a_valid_control_batch_that_names_its_outcome() {
        for outcome in [Outcome::Commit, Outcome::Abort] {
            let batch = encode(7, 3, outcome, 1_000);
            let header = record::verify(&batch).unwrap();
            assert!(header.is_control() && header.is_transactional());
            assert_eq!((header.producer_id, header.producer_epoch), (7, 3));
            assert_eq!(header.records_count, 1);
            assert_eq!(super::outcome(&batch), Some(outcome));
        }
        // Consumers never see it.
        let batch = Bytes::from(encode(7, 3, Outcome::Commit, 1_000));
        assert!(record::decode_batches(&batch, 0, 10).unwrap().is_empty());
    }
}

//! The transaction coordinator's durable state, `__transaction_state`, kept as Kafka keeps
//! it: one record per change, key = transactional id, value = the whole new state (see
//! [`crate::transaction::TxnRecord`]); on start the newest record per key wins. The same
//! partition log as messages, so it gets the same CRCs, torn-tail recovery and `--fsync`.
//!
//! A transaction writes three or four records (Ongoing, Prepare, Complete), so the log
//! is compacted on start once most of it is superseded, as `__consumer_offsets` is (see
//! [`crate::offsets`]).

use std::io;
use std::path::Path;
use std::sync::Mutex;

use crate::lock;
use crate::log::{Appended, DiskOptions, Log, LogConfig, LogError};
use crate::offsets::{self, CompactedLog};
use crate::record::Record;
use crate::transaction::TxnRecord;

/// The transaction log.
#[derive(Debug)]
pub struct TransactionLog {
    log: Mutex<Log>,
}

impl TransactionLog {
    /// Opens `<dir>/__transaction_state` and replays it: the newest record per key.
    pub fn open(
        dir: &Path,
        disk: DiskOptions,
        now_ms: i64,
    ) -> io::Result<(TransactionLog, Vec<TxnRecord>)> {
        let CompactedLog { log, live } =
            offsets::open_compacted(dir, "__transaction_state", config(), disk, now_ms)?;
        let records = live
            .iter()
            .filter_map(|r| TxnRecord::decode(r.key.as_deref()?, r.value.as_deref()?))
            .collect();
        Ok((
            TransactionLog {
                log: Mutex::new(log),
            },
            records,
        ))
    }

    /// Appends records as one batch, written to the file on return.
    pub fn append(&self, records: &[TxnRecord], now_ms: i64) -> Result<Option<Appended>, LogError> {
        if records.is_empty() {
            return Ok(None);
        }
        let records: Vec<Record> = records
            .iter()
            .map(|r| {
                let (key, value) = r.encode();
                Record {
                    key: Some(key),
                    value: Some(value),
                    timestamp: now_ms,
                    headers: Vec::new(),
                }
            })
            .collect();
        lock(&self.log).append_records(&records, now_ms).map(Some)
    }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 20,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

//! Committed offsets, stored the way Kafka stores them: as records in a log.
//!
//! A commit is "group G has processed topic T partition P up to offset O". Kafka keeps
//! these in an internal topic, `__consumer_offsets`, one record per commit, key
//! `(group, topic, partition)` and value `offset`; on start the coordinator replays it and
//! the last record per key wins. This module does the same with the partition log of
//! `log.rs`, so commits get the same append, CRC, torn-tail recovery and `--fsync` path as
//! messages. (Kafka also *compacts* that topic — keeps only the newest record per key —
//! which this log does not do yet; it only grows with the number of commits.)

use std::io;
use std::path::Path;
use std::sync::Mutex;

use bytes::{BufMut, Bytes, BytesMut};

use crate::log::{Appended, Log, LogConfig, LogError};
use crate::record::{self, Record};

/// One committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub group: String,
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
}

/// The commit log.
#[derive(Debug)]
pub struct OffsetStore {
    log: Mutex<Log>,
}

impl OffsetStore {
    /// Opens `<dir>/__consumer_offsets` and replays it: every commit, oldest first.
    pub fn open(
        dir: &Path,
        sync_on_roll: bool,
        now_ms: i64,
    ) -> io::Result<(OffsetStore, Vec<Commit>)> {
        let config = LogConfig {
            segment_bytes: 64 << 20,
            retention_ms: -1,
            ..LogConfig::default()
        };
        let (log, _) = Log::open(
            &dir.join("__consumer_offsets"),
            config,
            sync_on_roll,
            now_ms,
        )?;
        let mut commits = Vec::new();
        let mut offset = log.start_offset();
        while offset < log.end_offset() {
            let bytes = log.read(offset, 1 << 20, u64::MAX).map_err(to_io)?;
            let records = record::decode_batches(&bytes, offset, usize::MAX).map_err(to_io)?;
            let Some(last) = records.last() else { break };
            offset = last.offset + 1;
            commits.extend(records.iter().filter_map(|r| decode(&r.record)));
        }
        Ok((
            OffsetStore {
                log: Mutex::new(log),
            },
            commits,
        ))
    }

    /// Appends commits as one batch: a multi-partition commit is all-or-nothing.
    pub fn append(&self, commits: &[Commit], now_ms: i64) -> Result<Appended, LogError> {
        let records: Vec<Record> = commits
            .iter()
            .map(|c| Record {
                key: Some(key(c)),
                value: Some(Bytes::copy_from_slice(&c.offset.to_be_bytes())),
                timestamp: now_ms,
                headers: Vec::new(),
            })
            .collect();
        let mut log = match self.log.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        log.append_records(&records, now_ms)
    }
}

/// Key: `u16 len, group, u16 len, topic, u32 partition`, so no separator can collide.
fn key(c: &Commit) -> Bytes {
    let mut b = BytesMut::with_capacity(8 + c.group.len() + c.topic.len());
    b.put_u16(c.group.len() as u16);
    b.put_slice(c.group.as_bytes());
    b.put_u16(c.topic.len() as u16);
    b.put_slice(c.topic.as_bytes());
    b.put_u32(c.partition);
    b.freeze()
}

fn decode(r: &Record) -> Option<Commit> {
    let k = r.key.as_deref()?;
    let v = r.value.as_deref()?;
    let glen = usize::from(u16::from_be_bytes([*k.first()?, *k.get(1)?]));
    let group = std::str::from_utf8(k.get(2..2 + glen)?).ok()?;
    let rest = k.get(2 + glen..)?;
    let tlen = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
    let topic = std::str::from_utf8(rest.get(2..2 + tlen)?).ok()?;
    let p = rest.get(2 + tlen..2 + tlen + 4)?;
    let offset = v.get(..8)?;
    let mut o = [0u8; 8];
    o.copy_from_slice(offset);
    Some(Commit {
        group: group.to_string(),
        topic: topic.to_string(),
        partition: u32::from_be_bytes([p[0], p[1], p[2], p[3]]),
        offset: u64::from_be_bytes(o),
    })
}

fn to_io(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_survive_reopen_last_wins_in_replay_order() {
        let dir = std::env::temp_dir().join(format!("infralab-offsets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (store, replay) = OffsetStore::open(&dir, false, 0).unwrap();
        assert!(replay.is_empty());
        let c = |group: &str, partition, offset| Commit {
            group: group.into(),
            topic: "t".into(),
            partition,
            offset,
        };
        store.append(&[c("g", 0, 5), c("g", 1, 7)], 0).unwrap();
        store.append(&[c("g", 0, 9), c("other", 0, 1)], 0).unwrap();
        drop(store);
        let (_, replay) = OffsetStore::open(&dir, false, 0).unwrap();
        assert_eq!(
            replay,
            [c("g", 0, 5), c("g", 1, 7), c("g", 0, 9), c("other", 0, 1)]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

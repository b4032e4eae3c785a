//! Committed offsets, stored the way Kafka stores them: as records in a log.
//!
//! A commit is "group G has processed topic T partition P up to offset O". Kafka keeps
//! these in an internal topic, `__consumer_offsets`, one record per commit, key
//! `(group, topic, partition)` and value `offset`; on start the coordinator replays it and
//! the last record per key wins. This module does the same with the partition log of
//! `log.rs`, so commits get the same append, CRC, torn-tail recovery and `--fsync` path as
//! messages.
//!
//! Only the newest commit per key matters, so the log is *compacted* — Kafka's cleaner
//! keeps only the newest record per key. Here that happens on start: when most replayed
//! records are superseded, the live ones are written to a fresh log, which then replaces
//! the old one by two renames (a crash at any point leaves one complete log to open).

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Mutex;

use bytes::{BufMut, Bytes, BytesMut};

use crate::lock;
use crate::log::{Appended, DiskOptions, Log, LogConfig, LogError};
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
    /// Opens `<dir>/__consumer_offsets` and replays it: the newest commit per key.
    pub fn open(
        dir: &Path,
        disk: DiskOptions,
        now_ms: i64,
    ) -> io::Result<(OffsetStore, Vec<Commit>)> {
        let config = LogConfig {
            segment_bytes: 64 << 20,
            retention_ms: -1,
            ..LogConfig::default()
        };
        let CompactedLog { log, live } =
            open_compacted(dir, "__consumer_offsets", config, disk, now_ms)?;
        Ok((
            OffsetStore {
                log: Mutex::new(log),
            },
            live.iter().filter_map(decode).collect(),
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
        lock(&self.log).append_records(&records, now_ms)
    }

    /// Forgets committed offsets (OffsetDelete): a *tombstone* per key, a record with no
    /// value — replay and compaction then drop the key, as Kafka's cleaner does.
    pub fn delete(
        &self,
        group: &str,
        partitions: &[(String, u32)],
        now_ms: i64,
    ) -> Result<Appended, LogError> {
        let records: Vec<Record> = partitions
            .iter()
            .map(|(topic, partition)| Record {
                key: Some(key(&Commit {
                    group: group.to_string(),
                    topic: topic.clone(),
                    partition: *partition,
                    offset: 0,
                })),
                value: None,
                timestamp: now_ms,
                headers: Vec::new(),
            })
            .collect();
        lock(&self.log).append_records(&records, now_ms)
    }
}

/// Compact on start only when there are at least this many records.
const COMPACT_MIN_RECORDS: usize = 10_000;

/// An internal keyed log after [`open_compacted`]: the log, and its live records (the
/// newest per key, in first-seen order).
#[derive(Debug)]
pub struct CompactedLog {
    pub log: Log,
    pub live: Vec<Record>,
}

/// Opens the internal log `<dir>/<name>` whose records are keyed states (the newest per
/// key is the state), replays it, and compacts it when most of it is superseded (see the
/// module docs). Used for committed offsets and for the transaction log.
pub fn open_compacted(
    dir: &Path,
    name: &str,
    config: LogConfig,
    disk: DiskOptions,
    now_ms: i64,
) -> io::Result<CompactedLog> {
    let live_dir = dir.join(name);
    let fresh_dir = dir.join(format!("{name}.compacted"));
    let old_dir = dir.join(format!("{name}.old"));
    // Finish or undo an interrupted compaction: the fresh log is complete whenever the
    // live one has already been renamed away.
    if !live_dir.exists() && fresh_dir.exists() {
        std::fs::rename(&fresh_dir, &live_dir)?;
    }
    for leftover in [&fresh_dir, &old_dir] {
        if leftover.exists() {
            std::fs::remove_dir_all(leftover)?;
        }
    }
    let (mut log, _) = Log::open(&live_dir, config, disk, now_ms)?;
    let (mut live, replayed) = replay(&mut log)?;
    // Tombstones (no value) only had to outlive the records they delete.
    live.retain(|r| r.value.is_some());
    if replayed > COMPACT_MIN_RECORDS && replayed > 2 * live.len() {
        drop(log);
        let (mut fresh, _) = Log::open(&fresh_dir, config, disk, now_ms)?;
        for chunk in live.chunks(1000) {
            fresh.append_records(chunk, now_ms).map_err(to_io)?;
        }
        fresh.sync()?;
        drop(fresh);
        std::fs::rename(&live_dir, &old_dir)?;
        std::fs::rename(&fresh_dir, &live_dir)?;
        crate::log::sync_dir(dir)?;
        std::fs::remove_dir_all(&old_dir)?;
        tracing::info!("compacted {name}: {replayed} records -> {}", live.len());
        log = Log::open(&live_dir, config, disk, now_ms)?.0;
    }
    Ok(CompactedLog { log, live })
}

/// Reads every keyed record in the log; returns the newest per key (in first-seen order)
/// and the number of records read.
fn replay(log: &mut Log) -> io::Result<(Vec<Record>, usize)> {
    let mut latest: Vec<Record> = Vec::new();
    let mut position: HashMap<Bytes, usize> = HashMap::new();
    let mut replayed = 0;
    let mut offset = log.start_offset();
    while offset < log.end_offset() {
        let bytes = log.read(offset, 1 << 20, u64::MAX).map_err(to_io)?;
        let records = record::decode_batches(&bytes, offset, usize::MAX).map_err(to_io)?;
        let Some(last) = records.last() else { break };
        offset = last.offset + 1;
        for r in records {
            let Some(key) = r.record.key.clone() else {
                continue;
            };
            replayed += 1;
            match position.get(&key) {
                Some(&i) => latest[i] = r.record,
                None => {
                    position.insert(key, latest.len());
                    latest.push(r.record);
                }
            }
        }
    }
    Ok((latest, replayed))
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
        let (store, replay) = OffsetStore::open(&dir, DiskOptions::default(), 0).unwrap();
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
        let (_, replay) = OffsetStore::open(&dir, DiskOptions::default(), 0).unwrap();
        assert_eq!(replay, [c("g", 0, 9), c("g", 1, 7), c("other", 0, 1)]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_mostly_superseded_log_is_compacted_on_open() {
        let dir =
            std::env::temp_dir().join(format!("infralab-offsets-compact-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (store, _) = OffsetStore::open(&dir, DiskOptions::default(), 0).unwrap();
        for i in 0..(COMPACT_MIN_RECORDS as u64 + 10) {
            let commit = Commit {
                group: "g".into(),
                topic: "t".into(),
                partition: (i % 3) as u32,
                offset: i,
            };
            store.append(&[commit], 0).unwrap();
        }
        drop(store);
        let size = |d: &Path| -> u64 {
            std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().metadata().unwrap().len())
                .sum()
        };
        let before = size(&dir.join("__consumer_offsets"));
        let (_, replay) = OffsetStore::open(&dir, DiskOptions::default(), 0).unwrap();
        let last = COMPACT_MIN_RECORDS as u64 + 9;
        let offsets: Vec<u64> = replay.iter().map(|c| c.offset).collect();
        assert_eq!(offsets, [last - 1, last, last - 2]);
        assert!(size(&dir.join("__consumer_offsets")) < before / 100);

        // A crash between the two renames: only the compacted log is left; it is used.
        std::fs::rename(
            dir.join("__consumer_offsets"),
            dir.join("__consumer_offsets.compacted"),
        )
        .unwrap();
        let (_, replay) = OffsetStore::open(&dir, DiskOptions::default(), 0).unwrap();
        assert_eq!(replay.len(), 3);
        assert!(!dir.join("__consumer_offsets.compacted").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

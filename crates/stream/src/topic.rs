//! Topics: named sets of partitions, each partition its own log in its own directory.
//!
//! ```text
//! <dir>/topics/<topic>/topic.properties     partitions=4, retention.ms=..., as Kafka names them
//! <dir>/topics/<topic>/<partition>/         one log: 00000000000000000000.log, .index, ...
//! <dir>/__consumer_offsets/                 committed offsets (see offsets.rs)
//! ```
//!
//! A partition is the unit of order and of parallelism: one log, appended by one writer at
//! a time (its mutex), read by any number of consumers at their own offsets. Readers
//! waiting at the end of a partition (a long-poll fetch) watch its end offset.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use bytes::Bytes;
use tokio::sync::watch;

use crate::durability::GroupCommit;
use crate::log::{Appended, DiskOptions, Log, LogConfig, LogError};
use crate::partitioner::RoundRobin;
use crate::producer_state::AbortedTransaction;
use crate::record::Encodable;

/// Longest topic name, as Kafka.
pub const MAX_NAME_LEN: usize = 249;
/// Most partitions a topic may have (a directory and open files each).
pub const MAX_PARTITIONS: u32 = 10_000;

/// A topic's partition count and log settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicConfig {
    pub partitions: u32,
    pub log: LogConfig,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            partitions: 1,
            log: LogConfig::default(),
        }
    }
}

impl TopicConfig {
    /// The settable names, as Kafka spells them.
    pub const KEYS: [&'static str; 5] = [
        "retention.ms",
        "retention.bytes",
        "segment.bytes",
        "segment.ms",
        "index.interval.bytes",
    ];

    /// Sets one setting by its Kafka name.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let number: i64 = value
            .parse()
            .map_err(|_| format!("invalid value '{value}' for {key}: not an integer"))?;
        let positive = |min: i64, max: i64| {
            if number < min || number > max {
                Err(format!(
                    "invalid value {number} for {key}: must be between {min} and {max}"
                ))
            } else {
                Ok(number)
            }
        };
        match key.to_ascii_lowercase().as_str() {
            "partitions" => self.partitions = positive(1, i64::from(MAX_PARTITIONS))? as u32,
            "retention.ms" => self.log.retention_ms = positive(-1, i64::MAX)?,
            "retention.bytes" => self.log.retention_bytes = positive(-1, i64::MAX)?,
            // Segment positions are 32-bit, as in Kafka.
            "segment.bytes" => self.log.segment_bytes = positive(1024, i64::from(i32::MAX))? as u64,
            "segment.ms" => self.log.segment_ms = positive(1, i64::MAX)?,
            "index.interval.bytes" => {
                self.log.index_interval_bytes = positive(0, i64::from(i32::MAX))? as u64
            }
            _ => return Err(format!("unknown topic config '{key}'")),
        }
        Ok(())
    }

    /// `(name, value)` pairs, partitions first.
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        vec![
            ("partitions", self.partitions.to_string()),
            ("retention.ms", self.log.retention_ms.to_string()),
            ("retention.bytes", self.log.retention_bytes.to_string()),
            ("segment.bytes", self.log.segment_bytes.to_string()),
            ("segment.ms", self.log.segment_ms.to_string()),
            (
                "index.interval.bytes",
                self.log.index_interval_bytes.to_string(),
            ),
        ]
    }

    fn to_properties(self) -> String {
        self.entries()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect()
    }

    fn from_properties(text: &str) -> Result<TopicConfig, String> {
        let mut config = TopicConfig::default();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| format!("bad line '{line}'"))?;
            config.set(k.trim(), v.trim())?;
        }
        Ok(config)
    }
}

/// Kafka's rule: 1 to 249 characters of `[a-zA-Z0-9._-]`, not `.` or `..` — safe as a
/// directory name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Why a topic operation failed.
#[derive(Debug)]
pub enum TopicError {
    Unknown(String),
    AlreadyExists(String),
    InvalidName(String),
    InvalidConfig(String),
    Io(io::Error),
}

impl TopicError {
    /// Kafka's error name, used as the RESP error code.
    pub fn code(&self) -> &'static str {
        match self {
            TopicError::Unknown(_) => "UNKNOWN_TOPIC_OR_PARTITION",
            TopicError::AlreadyExists(_) => "TOPIC_ALREADY_EXISTS",
            TopicError::InvalidName(_) => "INVALID_TOPIC_EXCEPTION",
            TopicError::InvalidConfig(_) => "INVALID_CONFIG",
            TopicError::Io(_) => "KAFKA_STORAGE_ERROR",
        }
    }
}

impl std::fmt::Display for TopicError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TopicError::Unknown(t) => write!(f, "topic '{t}' does not exist"),
            TopicError::AlreadyExists(t) => write!(f, "topic '{t}' already exists"),
            TopicError::InvalidName(t) => write!(
                f,
                "invalid topic name '{t}': use 1 to 249 characters of [a-zA-Z0-9._-]"
            ),
            TopicError::InvalidConfig(e) => f.write_str(e),
            TopicError::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for TopicError {}

impl From<io::Error> for TopicError {
    fn from(e: io::Error) -> Self {
        TopicError::Io(e)
    }
}

/// One partition: a log behind a mutex, and its end offset for waiting readers.
#[derive(Debug)]
pub struct Partition {
    pub id: u32,
    log: Mutex<Log>,
    end: watch::Sender<u64>,
    /// Which fsync covers which records, for `--fsync always` (see
    /// [`Partition::flush_for_durability`]). Locked only while `log` is.
    unsynced: Mutex<Unsynced>,
}

/// The writes of a partition that group commit has not synced yet: `(end, ticket)` per
/// flush — "records below offset `end` are in the file, and the fsync that covers `ticket`
/// makes them durable" — oldest first, and the highest `end` already synced.
#[derive(Debug, Default)]
struct Unsynced {
    writes: VecDeque<(u64, u64)>,
    synced_end: u64,
}

/// A snapshot of a partition's extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionInfo {
    pub id: u32,
    pub start_offset: u64,
    pub end_offset: u64,
    pub size: u64,
    pub segments: usize,
}

impl Partition {
    fn open(
        id: u32,
        dir: &Path,
        config: LogConfig,
        disk: DiskOptions,
        now_ms: i64,
    ) -> io::Result<Partition> {
        let (log, recovery) = Log::open(dir, config, disk, now_ms)?;
        if recovery.truncated_bytes > 0 || recovery.indexes_rebuilt > 0 {
            tracing::warn!(
                "recovered {}: truncated {} bytes of torn tail, rebuilt {} index(es)",
                dir.display(),
                recovery.truncated_bytes,
                recovery.indexes_rebuilt
            );
        }
        let end = watch::Sender::new(log.end_offset());
        Ok(Partition {
            id,
            log: Mutex::new(log),
            end,
            unsynced: Mutex::default(),
        })
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        crate::lock(&self.log)
    }

    /// Appends record batches (see [`Log::append`]), written to the file, and wakes
    /// waiting readers.
    pub fn append(&self, batches: &[u8], now_ms: i64) -> Result<Appended, LogError> {
        let mut log = self.log();
        let appended = log.append(batches, now_ms)?;
        self.end.send_replace(log.end_offset());
        Ok(appended)
    }

    /// Appends records without writing them yet (see [`Log::append_records_unwritten`]):
    /// the caller must [`Partition::flush`] before acknowledging them. Waiting readers
    /// are woken by the flush, once, not by every append.
    pub fn append_unwritten(
        &self,
        records: &[impl Encodable],
        now_ms: i64,
    ) -> Result<Appended, LogError> {
        self.log().append_records_unwritten(records, now_ms)
    }

    /// [`Partition::append_unwritten`] for an idempotent producer (see
    /// [`Log::append_records_from`]).
    pub fn append_unwritten_from(
        &self,
        records: &[impl Encodable],
        producer: Option<crate::log::ProducerStamp>,
        now_ms: i64,
    ) -> Result<Appended, LogError> {
        self.log().append_records_from(records, producer, now_ms)
    }

    /// Writes appended records to the file and, if the end offset moved since the last
    /// flush (whoever wrote the bytes: this flush, a reader's, a roll), wakes waiting
    /// readers and registers the write with group commit (`commit`), under the lock — so
    /// whoever finds its records already written knows the write's ticket is taken.
    pub fn flush(&self, commit: Option<&GroupCommit>) -> io::Result<()> {
        let mut log = self.log();
        self.flush_locked(&mut log, commit).map(|_| ())
    }

    /// Returns `Some((end, ticket))` when this flush registered a write.
    fn flush_locked(
        &self,
        log: &mut Log,
        commit: Option<&GroupCommit>,
    ) -> io::Result<Option<(u64, u64)>> {
        log.flush()?;
        let end = log.end_offset();
        let moved = self
            .end
            .send_if_modified(|e| std::mem::replace(e, end) != end);
        Ok(match commit {
            Some(commit) if moved => Some((end, commit.written(log.active_file()))),
            _ => None,
        })
    }

    /// Writes appended records (like [`Partition::flush`]) and returns the group-commit
    /// ticket whose fsync makes every record up to offset `last` durable — `None` if an
    /// fsync already did.
    ///
    /// This is what lets a *pipeline* of produces share one fsync under `--fsync always`:
    /// the first reply of the pipeline to settle writes every record the pipeline (and
    /// any other connection) appended, and waits for one fsync; the replies after it find
    /// their records written by that flush and synced by that fsync, and wait for
    /// nothing. Each flush notes `(end offset written, ticket)`, so a reply waits for the
    /// fsync of the write that carried *its* records, not for whatever was written since.
    pub fn flush_for_durability(&self, last: u64, commit: &GroupCommit) -> io::Result<Option<u64>> {
        let mut log = self.log();
        let written = self.flush_locked(&mut log, Some(commit))?;
        let mut unsynced = crate::lock(&self.unsynced);
        let synced = commit.synced();
        while let Some(&(end, _)) = unsynced.writes.front().filter(|w| w.1 <= synced) {
            unsynced.synced_end = unsynced.synced_end.max(end);
            unsynced.writes.pop_front();
        }
        unsynced.writes.extend(written);
        if unsynced.synced_end > last {
            return Ok(None);
        }
        if let Some(&(_, ticket)) = unsynced.writes.iter().find(|w| w.0 > last) {
            return Ok(Some(ticket));
        }
        // Written by a path that keeps no note (a Kafka produce, a flush of every
        // partition): register the file again; the next fsync covers it.
        let ticket = commit.written(log.active_file());
        unsynced.writes.push_back((log.end_offset(), ticket));
        Ok(Some(ticket))
    }

    /// Ends `producer_id`'s open transaction here with a marker (see
    /// [`Log::append_marker`]), written to the file, and wakes waiting readers (the last
    /// stable offset moved).
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        outcome: crate::marker::Outcome,
        now_ms: i64,
    ) -> Result<Option<Appended>, LogError> {
        let mut log = self.log();
        let appended = log.append_marker(producer_id, producer_epoch, outcome, now_ms)?;
        self.end.send_replace(log.end_offset());
        Ok(appended)
    }

    /// DeleteRecords (see [`Log::delete_records`]); returns the new start offset.
    pub fn delete_records(&self, before: u64, now_ms: i64) -> Result<u64, LogError> {
        self.log().delete_records(before, now_ms)
    }

    /// The last stable offset (see [`crate::producer_state`]).
    pub fn last_stable_offset(&self) -> u64 {
        self.log().last_stable_offset()
    }

    /// Aborted transactions with records in `from..to`.
    pub fn aborted_between(&self, from: u64, to: u64) -> Vec<AbortedTransaction> {
        self.log().aborted_between(from, to)
    }

    /// `(producer id, epoch, last sequence, last timestamp, open transaction's first
    /// offset)` of every producer of this partition.
    pub fn producers(&self) -> Vec<(i64, i16, i32, i64, Option<u64>)> {
        self.log()
            .producers()
            .producers()
            .map(|(id, e)| {
                (
                    id,
                    e.epoch,
                    e.last_sequence(),
                    e.last_timestamp,
                    e.transaction_start,
                )
            })
            .collect()
    }

    /// The highest producer id in this partition's log.
    pub fn max_producer_id(&self) -> i64 {
        self.log().producers().max_producer_id()
    }

    pub fn read(&self, offset: u64, max_bytes: usize, max_records: u64) -> Result<Bytes, LogError> {
        // Only the bookkeeping under the lock; the disk reads run without it, so readers
        // never hold up producers (or each other).
        let views = self.log().views(offset)?;
        crate::log::read_views(&views, offset, max_bytes, max_records)
    }

    /// Like [`Partition::read`], into a buffer the caller reuses across reads (see
    /// [`crate::segment::SegmentView::read_into`]); returns where in `buf` the batches are.
    pub fn read_into(
        &self,
        offset: u64,
        max_bytes: usize,
        max_records: u64,
        buf: &mut bytes::BytesMut,
    ) -> Result<std::ops::Range<usize>, LogError> {
        let views = self.log().views(offset)?;
        crate::log::read_views_into(&views, offset, max_bytes, max_records, buf)
    }

    /// See [`crate::log::Log::offset_for_timestamp`]: the offset and its record's time.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(u64, i64)>, LogError> {
        self.log().offset_for_timestamp(timestamp)
    }

    /// A receiver that changes whenever the end offset moves.
    pub fn watch_end(&self) -> watch::Receiver<u64> {
        self.end.subscribe()
    }

    pub fn info(&self) -> PartitionInfo {
        let log = self.log();
        PartitionInfo {
            id: self.id,
            start_offset: log.start_offset(),
            end_offset: log.end_offset(),
            size: log.size(),
            segments: log.segment_count(),
        }
    }

    pub fn start_offset(&self) -> u64 {
        self.log().start_offset()
    }

    pub fn end_offset(&self) -> u64 {
        self.log().end_offset()
    }

    pub fn segment_bases(&self) -> Vec<u64> {
        self.log().segment_bases()
    }

    pub fn sync(&self) -> io::Result<()> {
        self.log().sync()
    }

    fn apply_retention(&self, now_ms: i64) -> io::Result<usize> {
        self.log().apply_retention(now_ms).map(|d| d.len())
    }

    fn set_config(&self, config: LogConfig) {
        self.log().set_config(config);
    }
}

/// A topic and its partitions.
#[derive(Debug)]
pub struct Topic {
    pub name: String,
    dir: PathBuf,
    config: RwLock<TopicConfig>,
    partitions: RwLock<Vec<Arc<Partition>>>,
    round_robin: RoundRobin,
}

impl Topic {
    pub fn config(&self) -> TopicConfig {
        *read(&self.config)
    }

    pub fn partition_count(&self) -> u32 {
        read(&self.partitions).len() as u32
    }

    pub fn partition(&self, id: u32) -> Option<Arc<Partition>> {
        read(&self.partitions).get(id as usize).cloned()
    }

    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        read(&self.partitions).clone()
    }

    /// The partition for a message: Kafka's murmur2 of the key, or round-robin.
    pub fn choose_partition(&self, key: Option<&[u8]>) -> u32 {
        let n = self.partition_count();
        match key {
            Some(key) => crate::partitioner::partition_for_key(key, n),
            None => self.round_robin.next(n),
        }
    }
}

/// All topics of the server.
#[derive(Debug)]
pub struct Topics {
    dir: PathBuf,
    disk: DiskOptions,
    map: RwLock<BTreeMap<String, Arc<Topic>>>,
}

impl Topics {
    /// Opens every topic under `<dir>/topics`, recovering each partition's log.
    pub fn open(dir: &Path, disk: DiskOptions, now_ms: i64) -> io::Result<Topics> {
        let dir = dir.join("topics");
        std::fs::create_dir_all(&dir)?;
        let topics = Topics {
            dir: dir.clone(),
            disk,
            map: RwLock::new(BTreeMap::new()),
        };
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !valid_name(&name) {
                // Leftovers of an interrupted delete.
                if name.contains(".deleted") {
                    std::fs::remove_dir_all(entry.path())?;
                }
                continue;
            }
            let props = match std::fs::read_to_string(entry.path().join("topic.properties")) {
                Ok(p) => p,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let config = TopicConfig::from_properties(&props)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{name}: {e}")))?;
            let topic = topics.load(&name, config, now_ms)?;
            write(&topics.map).insert(name, topic);
        }
        Ok(topics)
    }

    fn load(&self, name: &str, config: TopicConfig, now_ms: i64) -> io::Result<Arc<Topic>> {
        let dir = self.dir.join(name);
        let mut partitions = Vec::with_capacity(config.partitions as usize);
        for id in 0..config.partitions {
            partitions.push(Arc::new(Partition::open(
                id,
                &dir.join(id.to_string()),
                config.log,
                self.disk,
                now_ms,
            )?));
        }
        Ok(Arc::new(Topic {
            name: name.to_string(),
            dir,
            config: RwLock::new(config),
            partitions: RwLock::new(partitions),
            round_robin: RoundRobin::default(),
        }))
    }

    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        read(&self.map).get(name).cloned()
    }

    /// Like `get`, with the error a command replies.
    pub fn require(&self, name: &str) -> Result<Arc<Topic>, TopicError> {
        self.get(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))
    }

    pub fn names(&self) -> Vec<String> {
        read(&self.map).keys().cloned().collect()
    }

    /// Partition count of a topic (what the group coordinator asks).
    pub fn partition_count(&self, name: &str) -> Option<u32> {
        self.get(name).map(|t| t.partition_count())
    }

    pub fn create(
        &self,
        name: &str,
        config: TopicConfig,
        now_ms: i64,
    ) -> Result<Arc<Topic>, TopicError> {
        if !valid_name(name) {
            return Err(TopicError::InvalidName(name.to_string()));
        }
        let mut map = write(&self.map);
        if map.contains_key(name) {
            return Err(TopicError::AlreadyExists(name.to_string()));
        }
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir)?;
        write_properties(&dir, config)?;
        let topic = self.load(name, config, now_ms)?;
        map.insert(name.to_string(), topic.clone());
        Ok(topic)
    }

    /// Deletes a topic and its data. `false` if it did not exist.
    pub fn delete(&self, name: &str) -> Result<bool, TopicError> {
        let Some(topic) = write(&self.map).remove(name) else {
            return Ok(false);
        };
        // Rename first (atomic), so a crash mid-delete never leaves half a topic that
        // loads; the renamed directory is removed now or at the next start.
        let trash = self.dir.join(format!("{name}.deleted"));
        let _ = std::fs::remove_dir_all(&trash);
        std::fs::rename(&topic.dir, &trash)?;
        std::fs::remove_dir_all(&trash)?;
        Ok(true)
    }

    /// Grows a topic to `total` partitions (never shrinks, as in Kafka).
    pub fn add_partitions(&self, name: &str, total: u32, now_ms: i64) -> Result<(), TopicError> {
        let topic = self.require(name)?;
        let mut partitions = write(&topic.partitions);
        let current = partitions.len() as u32;
        if total <= current || total > MAX_PARTITIONS {
            return Err(TopicError::InvalidConfig(format!(
                "topic '{name}' has {current} partitions; the new count must be larger (and at most {MAX_PARTITIONS})"
            )));
        }
        let mut config = *read(&topic.config);
        for id in current..total {
            partitions.push(Arc::new(Partition::open(
                id,
                &topic.dir.join(id.to_string()),
                config.log,
                self.disk,
                now_ms,
            )?));
        }
        config.partitions = total;
        write_properties(&topic.dir, config)?;
        *write(&topic.config) = config;
        Ok(())
    }

    /// Changes log settings of a topic (not its partition count).
    pub fn alter(
        &self,
        name: &str,
        changes: &[(String, String)],
    ) -> Result<TopicConfig, TopicError> {
        let topic = self.require(name)?;
        let mut config = topic.config();
        for (k, v) in changes {
            if k.eq_ignore_ascii_case("partitions") {
                return Err(TopicError::InvalidConfig(
                    "use TOPIC.ADDPARTITIONS to change the partition count".into(),
                ));
            }
            config.set(k, v).map_err(TopicError::InvalidConfig)?;
        }
        write_properties(&topic.dir, config)?;
        *write(&topic.config) = config;
        for p in topic.partitions() {
            p.set_config(config.log);
        }
        Ok(config)
    }

    /// Runs retention on every partition; returns the number of segments deleted.
    pub fn apply_retention(&self, now_ms: i64) -> io::Result<usize> {
        let topics: Vec<Arc<Topic>> = read(&self.map).values().cloned().collect();
        let mut deleted = 0;
        for topic in topics {
            for p in topic.partitions() {
                deleted += p.apply_retention(now_ms)?;
            }
        }
        Ok(deleted)
    }

    /// Fsyncs every partition's active segment.
    pub fn sync_all(&self) -> io::Result<()> {
        let topics: Vec<Arc<Topic>> = read(&self.map).values().cloned().collect();
        for topic in topics {
            for p in topic.partitions() {
                p.sync()?;
            }
        }
        Ok(())
    }
}

/// Writes `topic.properties` atomically (temp file, fsync, rename).
fn write_properties(dir: &Path, config: TopicConfig) -> io::Result<()> {
    let tmp = dir.join("topic.properties.tmp");
    std::fs::write(&tmp, config.to_properties())?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, dir.join("topic.properties"))?;
    crate::log::sync_dir(dir)
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    match l.read() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    match l.write() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("infralab-topics-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn create_reopen_grow_delete() {
        let dir = tmp("lifecycle");
        let topics = Topics::open(&dir, DiskOptions::default(), 0).unwrap();
        let mut config = TopicConfig::default();
        config.set("partitions", "3").unwrap();
        config.set("retention.ms", "1000").unwrap();
        topics.create("orders", config, 0).unwrap();
        assert!(matches!(
            topics.create("orders", config, 0),
            Err(TopicError::AlreadyExists(_))
        ));
        assert!(matches!(
            topics.create("../x", config, 0),
            Err(TopicError::InvalidName(_))
        ));
        topics.add_partitions("orders", 5, 0).unwrap();
        assert!(topics.add_partitions("orders", 4, 0).is_err());
        drop(topics);
        let topics = Topics::open(&dir, DiskOptions::default(), 0).unwrap();
        let t = topics.get("orders").unwrap();
        assert_eq!(t.partition_count(), 5);
        assert_eq!(t.config().log.retention_ms, 1000);
        assert!(topics.delete("orders").unwrap());
        assert!(!topics.delete("orders").unwrap());
        assert!(topics.names().is_empty());
        assert!(!dir.join("topics/orders").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn config_validation() {
        let mut c = TopicConfig::default();
        assert!(c.set("segment.bytes", "10").is_err());
        assert!(c.set("nope", "1").is_err());
        assert!(c.set("retention.bytes", "x").is_err());
        c.set("retention.bytes", "-1").unwrap();
        let round = TopicConfig::from_properties(&c.to_properties()).unwrap();
        assert_eq!(round, c);
    }
}

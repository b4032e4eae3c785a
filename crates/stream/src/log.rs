//! A partition's log: an ordered list of segments, the last one active.
//!
//! Everything a partition does happens here:
//! - **append**: batches get consecutive offsets and go to the end of the active segment;
//!   the segment *rolls* (a new file starts) when it would pass `segment.bytes` or is
//!   older than `segment.ms`.
//! - **read**: from any offset between the *log start offset* and the *log end offset*;
//!   reading does not delete anything — a log is read by many, each at its own offset.
//! - **retention**: whole segments are deleted from the front when older than
//!   `retention.ms` or while the log is larger than `retention.bytes`; the log start offset
//!   moves forward to the first remaining segment.
//! - **recovery**: on open, the newest segment's tail is validated batch by batch and a
//!   torn or corrupt tail (a crash mid-write) is cut off at the last whole batch.
//!
//! The log is synchronous and takes the time as an argument, so tests control the clock.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::marker::{self, Outcome};
use crate::producer_state::{AbortedTransaction, Admission, ProducerStates, SequenceError};
use crate::record::{self, BatchError, Encodable};
use crate::segment::{Segment, SegmentRecovery, SegmentView};

/// Unwritten bytes past which an append writes the tail at once instead of waiting for
/// the caller's flush: bounds the memory a long pipeline of produces holds.
pub const TAIL_LIMIT: usize = 256 * 1024;

/// Per-topic settings, named as Kafka names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll the active segment when it would grow past this many bytes.
    pub segment_bytes: u64,
    /// Roll the active segment when its first record is this old.
    pub segment_ms: i64,
    /// Delete segments whose newest record is older than this (-1: keep forever).
    pub retention_ms: i64,
    /// Delete old segments while the log is bigger than this (-1: no limit).
    pub retention_bytes: i64,
    /// Bytes of log between two sparse index entries.
    pub index_interval_bytes: u64,
}

impl Default for LogConfig {
    /// Kafka's defaults: 1 GiB segments, rolled weekly, kept for 7 days, no size limit.
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            index_interval_bytes: 4096,
        }
    }
}

/// Where appended data went, and the file to fsync before acknowledging it.
#[derive(Debug, Clone)]
pub struct Appended {
    pub base_offset: u64,
    pub last_offset: u64,
    pub file: Arc<File>,
}

/// Why an append or read failed.
#[derive(Debug)]
pub enum LogError {
    /// The batch bytes are not valid.
    InvalidBatch(BatchError),
    /// A single append larger than a segment may hold.
    TooLarge {
        size: usize,
        limit: u64,
    },
    /// A read outside `[start, end]`.
    OffsetOutOfRange {
        offset: u64,
        start: u64,
        end: u64,
    },
    /// An idempotent producer's batch out of sequence or from a fenced epoch (see
    /// [`crate::producer_state`]).
    Sequence(SequenceError),
    Io(io::Error),
}

impl std::fmt::Display for LogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogError::InvalidBatch(e) => write!(f, "{e}"),
            LogError::TooLarge { size, limit } => write!(
                f,
                "record batch of {size} bytes is larger than segment.bytes ({limit})"
            ),
            LogError::OffsetOutOfRange { offset, start, end } => write!(
                f,
                "offset {offset} is out of range: the log holds offsets {start} to {end} \
                 (the end offset is the next one to be written)"
            ),
            LogError::Sequence(e) => write!(f, "{e}"),
            LogError::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for LogError {}

impl From<io::Error> for LogError {
    fn from(e: io::Error) -> Self {
        LogError::Io(e)
    }
}

/// Who wrote a batch, for an idempotent producer's RESP `PRODUCE ... PRODUCER id epoch
/// sequence`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerStamp {
    pub producer_id: i64,
    pub epoch: i16,
    pub base_sequence: i32,
}

/// How logs are opened and kept: the server's flags, the same for every partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskOptions {
    /// Fsync a segment when it rolls (on with `--fsync always|everysec`).
    pub sync_on_roll: bool,
    /// `--load-truncated`: open a segment damaged in the middle anyway, cutting it at the
    /// damage (see [`Segment::open`]). Without it, opening refuses.
    pub load_truncated: bool,
}

/// What opening a log found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogRecovery {
    pub segments: usize,
    pub truncated_bytes: u64,
    pub indexes_rebuilt: usize,
}

/// One partition's log.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    /// Oldest first; never empty; the last is the active segment.
    segments: Vec<Segment>,
    /// Fsync a segment when it rolls (on with `--fsync always|everysec`).
    sync_on_roll: bool,
    /// The last flush failed: the tail still holds bytes the file does not.
    write_failed: bool,
    /// Scratch for [`record::batch_header`]'s record lengths, kept between appends.
    bodies: Vec<usize>,
    /// Idempotent producers' sequences and open/aborted transactions, rebuilt from the
    /// batch headers on open.
    producers: ProducerStates,
    /// A log start offset inside the first segment, set by DeleteRecords (kept in
    /// [`START_OFFSET_FILE`]); 0 when only whole segments were deleted.
    deleted_before: u64,
}

/// Where DeleteRecords' log start offset is kept (Kafka's `log-start-offset-checkpoint`).
const START_OFFSET_FILE: &str = "log-start-offset";

impl Log {
    /// Opens (or creates) the log in `dir`, recovering the newest segment.
    pub fn open(
        dir: &Path,
        config: LogConfig,
        disk: DiskOptions,
        now_ms: i64,
    ) -> io::Result<(Log, LogRecovery)> {
        std::fs::create_dir_all(dir)?;
        let mut bases = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(base) = name
                .strip_suffix(".log")
                .and_then(|b| b.parse::<u64>().ok())
            {
                bases.push(base);
            }
        }
        bases.sort_unstable();
        let mut recovery = LogRecovery::default();
        let mut segments = Vec::with_capacity(bases.len().max(1));
        for (i, &base) in bases.iter().enumerate() {
            let newest = i + 1 == bases.len();
            let (segment, r): (Segment, SegmentRecovery) =
                Segment::open(dir, base, config.index_interval_bytes, newest, disk, now_ms)?;
            recovery.truncated_bytes += r.truncated_bytes;
            recovery.indexes_rebuilt += usize::from(r.index_rebuilt);
            segments.push(segment);
        }
        if segments.is_empty() {
            segments.push(Segment::create(
                dir,
                0,
                now_ms,
                config.index_interval_bytes,
            )?);
            sync_dir(dir)?;
        }
        recovery.segments = segments.len();
        let deleted_before = match std::fs::read_to_string(dir.join(START_OFFSET_FILE)) {
            Ok(text) => text.trim().parse().unwrap_or(0),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let mut producers = ProducerStates::default();
        for segment in &segments {
            segment.scan_batches(|header, batch| producers.on_append(header, batch))?;
        }
        Ok((
            Log {
                dir: dir.to_path_buf(),
                config,
                segments,
                sync_on_roll: disk.sync_on_roll,
                write_failed: false,
                bodies: Vec::new(),
                producers,
                deleted_before,
            },
            recovery,
        ))
    }

    /// The producers writing to this log (see [`crate::producer_state`]).
    pub fn producers(&self) -> &ProducerStates {
        &self.producers
    }

    /// The last stable offset: how far `read_committed` consumers may read.
    pub fn last_stable_offset(&self) -> u64 {
        self.producers.last_stable_offset(self.end_offset())
    }

    /// Aborted transactions with records in `from..to`.
    pub fn aborted_between(&self, from: u64, to: u64) -> Vec<AbortedTransaction> {
        self.producers.aborted_between(from, to)
    }

    /// Ends `producer_id`'s open transaction in this log with a marker (see
    /// [`crate::marker`]); nothing if it has none here. Written to the file on return.
    pub fn append_marker(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        outcome: Outcome,
        now_ms: i64,
    ) -> Result<Option<Appended>, LogError> {
        if self.producers.open_transaction(producer_id).is_none() {
            return Ok(None);
        }
        let mut batch = marker::encode(producer_id, producer_epoch, outcome, now_ms);
        self.append(&mut batch, now_ms).map(Some)
    }

    pub fn config(&self) -> LogConfig {
        self.config
    }

    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    /// The first offset still in the log.
    pub fn start_offset(&self) -> u64 {
        self.segments
            .first()
            .map_or(0, Segment::base_offset)
            .max(self.deleted_before)
    }

    /// DeleteRecords: the log start offset moves to `before` (at most the end offset):
    /// segments wholly below it are deleted, the records left below it in the first
    /// segment are no longer served. Durable when this returns (the new start offset is
    /// written to a file and fsynced, then renamed into place). Returns the start offset.
    pub fn delete_records(&mut self, before: u64, now_ms: i64) -> Result<u64, LogError> {
        let (start, end) = (self.start_offset(), self.end_offset());
        if before > end {
            return Err(LogError::OffsetOutOfRange {
                offset: before,
                start,
                end,
            });
        }
        if before <= start {
            return Ok(start);
        }
        let path = self.dir.join(START_OFFSET_FILE);
        let temporary = self.dir.join(format!("{START_OFFSET_FILE}.tmp"));
        std::fs::write(&temporary, format!("{before}\n"))?;
        File::open(&temporary)?.sync_all()?;
        std::fs::rename(&temporary, &path)?;
        sync_dir(&self.dir)?;
        self.deleted_before = before;
        if before == end && !self.active().is_empty() {
            self.roll(now_ms)?;
        }
        while self.segments.len() > 1 && self.segments[0].next_offset() <= before {
            self.segments.remove(0).delete()?;
        }
        self.producers.trim(before, now_ms);
        Ok(before)
    }

    /// The offset the next record will get (one past the last record).
    pub fn end_offset(&self) -> u64 {
        self.active().next_offset()
    }

    /// Bytes on disk, all segments.
    pub fn size(&self) -> u64 {
        self.segments.iter().map(Segment::size).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_bases(&self) -> Vec<u64> {
        self.segments.iter().map(Segment::base_offset).collect()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn active(&self) -> &Segment {
        // `segments` is never empty: open() and roll() guarantee it.
        &self.segments[self.segments.len() - 1]
    }

    fn active_mut(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

    /// Encodes `records` as one batch and appends it; written to the file on return.
    pub fn append_records(
        &mut self,
        records: &[impl Encodable],
        now_ms: i64,
    ) -> Result<Appended, LogError> {
        let appended = self.append_records_unwritten(records, now_ms)?;
        self.flush()?;
        Ok(appended)
    }

    /// Encodes `records` as one batch straight into the active segment's tail, with its
    /// offsets assigned, but does not write it: the caller must [`Log::flush`] before it
    /// acknowledges the records (the RESP front-end flushes once per pipeline of
    /// requests; see `server.rs`). Reads flush first, so nobody ever reads around the
    /// tail. A tail past [`TAIL_LIMIT`] is written at once.
    pub fn append_records_unwritten(
        &mut self,
        records: &[impl Encodable],
        now_ms: i64,
    ) -> Result<Appended, LogError> {
        self.append_records_from(records, None, now_ms)
    }

    /// [`Log::append_records_unwritten`] for an idempotent producer: the batch carries
    /// its producer id, epoch and base sequence, and is checked as a Kafka producer's is
    /// (see [`crate::producer_state`]) — a retry is not appended again and gets the
    /// offsets of the first time.
    pub fn append_records_from(
        &mut self,
        records: &[impl Encodable],
        producer: Option<ProducerStamp>,
        now_ms: i64,
    ) -> Result<Appended, LogError> {
        // Flush a full tail; and after a failed write, try again before taking more: a
        // producer must get the storage error rather than an acknowledgement.
        if self.write_failed || self.active().unwritten() > TAIL_LIMIT {
            self.flush()?;
        }
        let mut bodies = std::mem::take(&mut self.bodies);
        let header = record::batch_header(records, self.end_offset(), &mut bodies)
            .ok_or(LogError::InvalidBatch(BatchError::Truncated))?;
        let size = header.size;
        if size as u64 > self.config.segment_bytes {
            return Err(LogError::TooLarge {
                size,
                limit: self.config.segment_bytes,
            });
        }
        if self.should_roll(size as u64, now_ms) {
            self.roll(now_ms)?;
        }
        let base_offset = self.end_offset();
        let mut header = record::BatchHeader {
            base_offset,
            ..header
        };
        if let Some(p) = producer {
            header.producer_id = p.producer_id;
            header.producer_epoch = p.epoch;
            header.base_sequence = p.base_sequence;
            let admission = self.producers.check(&header);
            if let Ok(Admission::Duplicate {
                base_offset,
                last_offset,
            }) = admission
            {
                self.bodies = bodies;
                return Ok(Appended {
                    base_offset,
                    last_offset,
                    file: self.active().file(),
                });
            }
            if let Err(e) = admission {
                self.bodies = bodies;
                return Err(LogError::Sequence(e));
            }
        }
        self.active_mut().append_with(&header, |tail| {
            record::encode_batch_with_header(tail, records, &header, &bodies);
        });
        self.producers.on_append(&header, &[]);
        self.bodies = bodies;
        Ok(Appended {
            base_offset,
            last_offset: self.end_offset() - 1,
            file: self.active().file(),
        })
    }

    /// The active segment's file (what an fsync of new appends must cover).
    pub fn active_file(&self) -> Arc<File> {
        self.active().file()
    }

    /// Writes what was appended but not yet written (one `write`); `true` if anything was.
    pub fn flush(&mut self) -> io::Result<bool> {
        let result = self.active_mut().flush();
        self.write_failed = result.is_err();
        result
    }

    /// Appends one or more concatenated record batches as they are (from a producer),
    /// after checking each one's CRC; only the base offsets are rewritten. Written to the
    /// file on return.
    pub fn append(&mut self, batches: &mut [u8], now_ms: i64) -> Result<Appended, LogError> {
        let headers = record::verify_all(batches).map_err(LogError::InvalidBatch)?;
        if headers.is_empty() {
            return Err(LogError::InvalidBatch(BatchError::Truncated));
        }
        if let [header] = headers.as_slice() {
            if let Admission::Duplicate {
                base_offset,
                last_offset,
            } = self.producers.check(header).map_err(LogError::Sequence)?
            {
                // A retry of a batch already here: acknowledged as the first time, and
                // durable once the fsync that covers the active segment is done.
                return Ok(Appended {
                    base_offset,
                    last_offset,
                    file: self.active().file(),
                });
            }
        } else if headers.iter().any(|h| h.producer_id >= 0) {
            // Sequence checks are per batch; Kafka refuses more than one batch per
            // partition from an idempotent producer too.
            return Err(LogError::InvalidBatch(BatchError::Malformed(
                "an idempotent producer sends one record batch per partition",
            )));
        }
        if batches.len() as u64 > self.config.segment_bytes {
            return Err(LogError::TooLarge {
                size: batches.len(),
                limit: self.config.segment_bytes,
            });
        }
        if self.should_roll(batches.len() as u64, now_ms) {
            self.roll(now_ms)?;
        }
        let base_offset = self.end_offset();
        let mut position = 0;
        for header in headers {
            let mut header = header;
            header.base_offset = self.end_offset();
            let bytes = &mut batches[position..position + header.size];
            record::stamp(bytes, header.base_offset);
            self.active_mut().append(bytes, &header);
            self.producers.on_append(&header, bytes);
            position += header.size;
        }
        self.flush()?;
        Ok(Appended {
            base_offset,
            last_offset: self.end_offset() - 1,
            file: self.active().file(),
        })
    }

    fn should_roll(&self, incoming: u64, now_ms: i64) -> bool {
        let active = self.active();
        !active.is_empty()
            && (active.size() + incoming > self.config.segment_bytes
                || now_ms - active.created_ms() >= self.config.segment_ms)
    }

    /// Starts a new active segment at the end offset.
    pub fn roll(&mut self, now_ms: i64) -> io::Result<()> {
        self.flush()?;
        self.active_mut().flush_with_index()?;
        if self.sync_on_roll {
            self.active_mut().sync()?;
        }
        let next = Segment::create(
            &self.dir,
            self.end_offset(),
            now_ms,
            self.config.index_interval_bytes,
        )?;
        self.segments.push(next);
        if self.sync_on_roll {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Whole batches from the one holding `offset`, about `max_bytes` of them, stopping
    /// once they hold `max_records` records (see [`SegmentView::read`]). Reading at the
    /// end offset gives nothing (the caller may wait for more); outside `[start, end]` is
    /// an error that names the valid range.
    pub fn read(
        &mut self,
        offset: u64,
        max_bytes: usize,
        max_records: u64,
    ) -> Result<Bytes, LogError> {
        read_views(&self.views(offset)?, offset, max_bytes, max_records)
    }

    /// The segments a read of `offset` may need, as views to read without the log's lock.
    /// Writes the tail first: a reader sees every record appended so far.
    pub fn views(&mut self, offset: u64) -> Result<Vec<SegmentView>, LogError> {
        self.flush()?;
        let (start, end) = (self.start_offset(), self.end_offset());
        if offset < start || offset > end {
            return Err(LogError::OffsetOutOfRange { offset, start, end });
        }
        // The segment holding `offset` is the last one whose base is at or before it; an
        // empty segment moves the read on to the next.
        let first = self.segments.partition_point(|s| s.base_offset() <= offset);
        Ok(self.segments[first.saturating_sub(1)..]
            .iter()
            .filter_map(|s| s.view(offset))
            .collect())
    }

    /// The earliest offset whose record timestamp is at or after `timestamp` (Kafka's
    /// ListOffsets by time), or `None` if every record is older.
    pub fn offset_for_timestamp(&mut self, timestamp: i64) -> Result<Option<u64>, LogError> {
        self.flush()?;
        for segment in &self.segments {
            let Some(batch) = segment.batch_at_or_after_time(timestamp)? else {
                continue;
            };
            return Ok(match record::decode_batches(&batch, 0, usize::MAX) {
                Ok(records) => records
                    .iter()
                    .find(|r| r.record.timestamp >= timestamp)
                    .map(|r| r.offset),
                // A compressed batch: its base offset is the right place to start reading.
                Err(_) => record::BatchHeader::parse(&batch)
                    .ok()
                    .map(|h| h.base_offset),
            });
        }
        Ok(None)
    }

    /// Applies retention: deletes old segments by time and by size, never the last
    /// remaining data (an expired active segment is rolled first, so the log stays
    /// writable). Returns the base offsets deleted.
    pub fn apply_retention(&mut self, now_ms: i64) -> io::Result<Vec<u64>> {
        let config = self.config;
        if config.retention_ms >= 0 {
            let active = self.active();
            if !active.is_empty() && active.max_timestamp() < now_ms - config.retention_ms {
                self.roll(now_ms)?;
            }
        }
        let mut deleted = Vec::new();
        let mut size = self.size();
        while self.segments.len() > 1 {
            let oldest = &self.segments[0];
            let expired =
                config.retention_ms >= 0 && oldest.max_timestamp() < now_ms - config.retention_ms;
            let oversized = config.retention_bytes >= 0
                && size.saturating_sub(oldest.size()) >= config.retention_bytes as u64;
            if !(expired || oversized) {
                break;
            }
            let segment = self.segments.remove(0);
            size -= segment.size();
            deleted.push(segment.base_offset());
            segment.delete()?;
        }
        let start = self.start_offset();
        self.producers.trim(start, now_ms);
        Ok(deleted)
    }

    /// Fsyncs the active segment (the others were synced when they rolled).
    pub fn sync(&mut self) -> io::Result<()> {
        self.active_mut().sync()
    }
}

/// Reads from the first view that has data at `offset` (see [`Log::views`]).
pub fn read_views(
    views: &[SegmentView],
    offset: u64,
    max_bytes: usize,
    max_records: u64,
) -> Result<Bytes, LogError> {
    let mut buf = BytesMut::new();
    let range = read_views_into(views, offset, max_bytes, max_records, &mut buf)?;
    Ok(buf.freeze().slice(range))
}

/// Like [`read_views`], into a reused buffer (see [`SegmentView::read_into`]); returns
/// where in `buf` the batches are (empty: nothing at `offset` yet).
pub fn read_views_into(
    views: &[SegmentView],
    offset: u64,
    max_bytes: usize,
    max_records: u64,
    buf: &mut BytesMut,
) -> Result<std::ops::Range<usize>, LogError> {
    for view in views {
        if let Some(range) = view.read_into(offset, max_bytes, max_records, buf)? {
            return Ok(range);
        }
    }
    Ok(0..0)
}

/// Fsyncs a directory so a file created or deleted in it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    fn rec(value: &str, ts: i64) -> Record {
        Record {
            key: None,
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            timestamp: ts,
            headers: vec![],
        }
    }

    fn small() -> LogConfig {
        LogConfig {
            segment_bytes: 1024,
            index_interval_bytes: 256,
            ..LogConfig::default()
        }
    }

    fn values(log: &mut Log, from: u64) -> Vec<(u64, String)> {
        let bytes = log.read(from, usize::MAX >> 1, u64::MAX).unwrap();
        record::decode_batches(&bytes, from, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|r| {
                (
                    r.offset,
                    String::from_utf8(r.record.value.unwrap().to_vec()).unwrap(),
                )
            })
            .collect()
    }

    fn read_all(log: &mut Log) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        let mut offset = log.start_offset();
        while offset < log.end_offset() {
            let got = values(log, offset);
            offset = got.last().unwrap().0 + 1;
            out.extend(got);
        }
        out
    }

    fn tmp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("infralab-stream-log-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn unwritten_appends_reach_the_file_in_one_flush_or_before_a_read() {
        let dir = tmp("tail");
        let (mut log, _) =
            Log::open(&dir, LogConfig::default(), DiskOptions::default(), 0).unwrap();
        let on_disk = || {
            std::fs::metadata(dir.join(format!("{:020}.log", 0)))
                .unwrap()
                .len()
        };
        let a = log.append_records_unwritten(&[rec("a", 0)], 0).unwrap();
        let b = log
            .append_records_unwritten(&[rec("b", 1), rec("c", 2)], 2)
            .unwrap();
        assert_eq!((a.base_offset, b.base_offset, b.last_offset), (0, 1, 2));
        assert_eq!(log.end_offset(), 3, "offsets are assigned at append");
        assert_eq!(on_disk(), 0, "nothing written yet");
        assert!(log.flush().unwrap());
        assert_eq!(on_disk(), log.size(), "both batches in one flush");
        assert!(!log.flush().unwrap(), "nothing left to write");
        log.append_records_unwritten(&[rec("d", 3)], 3).unwrap();
        // A reader never misses an appended record: reading writes the tail first.
        assert_eq!(values(&mut log, 2), [(2, "c".into()), (3, "d".into())]);
        assert_eq!(on_disk(), log.size());
        // A tail past TAIL_LIMIT is written by the next append, not held in memory.
        let big = "x".repeat(1000);
        for i in 0..(TAIL_LIMIT / 1000 + 2) {
            log.append_records_unwritten(&[rec(&big, 4 + i as i64)], 4)
                .unwrap();
        }
        assert!(on_disk() > (TAIL_LIMIT as u64), "{}", on_disk());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn appends_get_consecutive_offsets_and_segments_roll_by_size() {
        let dir = tmp("roll");
        let (mut log, _) = Log::open(&dir, small(), DiskOptions::default(), 0).unwrap();
        for i in 0..100 {
            let a = log.append_records(&[rec(&format!("m{i}"), i)], i).unwrap();
            assert_eq!((a.base_offset, a.last_offset), (i as u64, i as u64));
        }
        let batch = log
            .append_records(&[rec("x", 100), rec("y", 100), rec("z", 100)], 100)
            .unwrap();
        assert_eq!((batch.base_offset, batch.last_offset), (100, 102));
        assert!(log.segment_count() > 3, "rolled at 1 KiB");
        assert!(log.size() > 0);
        let all = read_all(&mut log);
        assert_eq!(all.len(), 103);
        for (i, (offset, value)) in all.iter().enumerate().take(100) {
            assert_eq!(
                (*offset, value.as_str()),
                (i as u64, format!("m{i}").as_str())
            );
        }
        // A record limit stops the read early: 3 single-record batches, not the segment.
        let three = log.read(10, 1 << 20, 3).unwrap();
        let got = record::decode_batches(&three, 10, usize::MAX).unwrap();
        assert_eq!(
            got.iter().map(|r| r.offset).collect::<Vec<_>>(),
            [10, 11, 12]
        );
        // Reading from the middle of a batch starts at that record.
        assert_eq!(values(&mut log, 101)[0], (101, "y".to_string()));
        // Each segment's file is named by its base offset.
        for base in log.segment_bases() {
            assert!(dir.join(format!("{base:020}.log")).exists());
        }
        // Reopening finds the same log.
        let end = log.end_offset();
        drop(log);
        let (mut log, recovery) = Log::open(&dir, small(), DiskOptions::default(), 0).unwrap();
        assert_eq!(recovery.truncated_bytes, 0);
        assert_eq!(log.end_offset(), end);
        assert_eq!(read_all(&mut log).len(), 103);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_scan_across_chunks_without_an_index() {
        let dir = tmp("scan");
        let config = LogConfig {
            index_interval_bytes: u64::MAX,
            ..LogConfig::default()
        };
        let (mut log, _) = Log::open(&dir, config, DiskOptions::default(), 0).unwrap();
        for i in 0..500 {
            // Odd sizes, so headers straddle the 8 KiB read chunks.
            log.append_records(&[rec(&"v".repeat(i % 97), i as i64)], 0)
                .unwrap();
        }
        for offset in [0, 1, 77, 250, 499] {
            let got = values(&mut log, offset);
            assert_eq!(got[0].0, offset);
            assert_eq!(got[0].1.len(), offset as usize % 97);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_into_a_reused_buffer_match_fresh_reads() {
        let dir = tmp("reuse");
        let (mut log, _) = Log::open(&dir, small(), DiskOptions::default(), 0).unwrap();
        for i in 0..300 {
            // Batches of 1 to 4 records of varied sizes.
            let batch: Vec<Record> = (0..=(i % 4))
                .map(|j| rec(&"r".repeat((i * 7 + j) % 150), i as i64))
                .collect();
            log.append_records(&batch, i as i64).unwrap();
        }
        // One buffer for every read, left dirty by the one before (big reads first).
        let mut buf = BytesMut::new();
        for (offset, max_bytes, count) in [
            (0, 1 << 20, u64::MAX),
            (5, 100, 1),
            (333, 1 << 20, 50),
            (100, 300, 7),
            (log.end_offset() - 1, 1 << 20, 100),
            (log.end_offset(), 1 << 20, 100),
            (17, 1 << 20, 3),
        ] {
            let fresh = log.read(offset, max_bytes, count).unwrap();
            let views = log.views(offset).unwrap();
            let range = read_views_into(&views, offset, max_bytes, count, &mut buf).unwrap();
            assert_eq!(&buf[range], &fresh[..], "offset {offset} count {count}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rolls_by_time() {
        let dir = tmp("roll-time");
        let config = LogConfig {
            segment_ms: 1000,
            ..LogConfig::default()
        };
        let (mut log, _) = Log::open(&dir, config, DiskOptions::default(), 0).unwrap();
        log.append_records(&[rec("a", 0)], 0).unwrap();
        log.append_records(&[rec("b", 999)], 999).unwrap();
        assert_eq!(log.segment_count(), 1);
        log.append_records(&[rec("c", 1000)], 1000).unwrap();
        assert_eq!(log.segment_bases(), [0, 2]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn out_of_range_reads_name_the_valid_range() {
        let dir = tmp("range");
        let (mut log, _) = Log::open(&dir, small(), DiskOptions::default(), 0).unwrap();
        log.append_records(&[rec("a", 0), rec("b", 0)], 0).unwrap();
        assert!(
            log.read(2, 100, u64::MAX).unwrap().is_empty(),
            "at the end: nothing yet"
        );
        let err = log.read(3, 100, u64::MAX).unwrap_err();
        assert_eq!(
            err.to_string(),
            "offset 3 is out of range: the log holds offsets 0 to 2 (the end offset is the next one to be written)"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn retention_by_size_and_time_deletes_whole_segments() {
        let dir = tmp("retention");
        let config = LogConfig {
            retention_bytes: 2048,
            retention_ms: 10_000,
            ..small()
        };
        let (mut log, _) = Log::open(&dir, config, DiskOptions::default(), 0).unwrap();
        for i in 0..200 {
            log.append_records(&[rec(&format!("{i:040}"), i)], i)
                .unwrap();
        }
        let before = log.segment_count();
        let deleted = log.apply_retention(200).unwrap();
        assert!(!deleted.is_empty());
        assert_eq!(log.segment_count(), before - deleted.len());
        assert!(log.size() <= 2048 + 1024, "size {}", log.size());
        let start = log.start_offset();
        assert!(start > 0);
        assert!(!dir.join(format!("{:020}.log", deleted[0])).exists());
        assert!(matches!(
            log.read(start - 1, 100, u64::MAX),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert_eq!(read_all(&mut log).first().unwrap().0, start);

        // Time: everything is older than 10 s at t=1_000_000: all data goes, the log
        // stays writable at the same end offset.
        let end = log.end_offset();
        log.apply_retention(1_000_000).unwrap();
        assert_eq!(log.segment_count(), 1);
        assert_eq!((log.start_offset(), log.end_offset()), (end, end));
        assert_eq!(log.size(), 0);
        let a = log
            .append_records(&[rec("new", 1_000_000)], 1_000_000)
            .unwrap();
        assert_eq!(a.base_offset, end);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn lookup_by_timestamp() {
        let dir = tmp("time");
        let (mut log, _) = Log::open(&dir, small(), DiskOptions::default(), 0).unwrap();
        for i in 0..100i64 {
            log.append_records(&[rec("v", i * 10), rec("w", i * 10 + 5)], i * 10)
                .unwrap();
        }
        assert_eq!(log.offset_for_timestamp(0).unwrap(), Some(0));
        assert_eq!(log.offset_for_timestamp(5).unwrap(), Some(1));
        assert_eq!(log.offset_for_timestamp(6).unwrap(), Some(2));
        assert_eq!(log.offset_for_timestamp(500).unwrap(), Some(100));
        assert_eq!(log.offset_for_timestamp(995).unwrap(), Some(199));
        assert_eq!(log.offset_for_timestamp(996).unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn recovery_truncates_a_torn_tail_and_rebuilds_the_index() {
        let dir = tmp("torn");
        let (mut log, _) =
            Log::open(&dir, LogConfig::default(), DiskOptions::default(), 0).unwrap();
        for i in 0..50 {
            log.append_records(&[rec(&format!("{i:0100}"), i)], i)
                .unwrap();
        }
        let good_size = log.size();
        drop(log);
        let path = dir.join(format!("{:020}.log", 0));
        // A torn write: half a batch header at the end.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 50, 0, 0, 1]);
        std::fs::write(&path, &bytes).unwrap();
        let (log, recovery) =
            Log::open(&dir, LogConfig::default(), DiskOptions::default(), 0).unwrap();
        assert_eq!(recovery.truncated_bytes, 11);
        assert_eq!(log.size(), good_size);
        assert_eq!(log.end_offset(), 50);
        drop(log);

        // A corrupt last batch (one flipped byte): the CRC catches it, the batch goes.
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        // And a mismatched index: garbage.
        std::fs::write(dir.join(format!("{:020}.index", 0)), [1u8; 16]).unwrap();
        let (mut log, recovery) =
            Log::open(&dir, LogConfig::default(), DiskOptions::default(), 0).unwrap();
        assert!(recovery.truncated_bytes > 0);
        assert_eq!(recovery.indexes_rebuilt, 1);
        assert_eq!(log.end_offset(), 49);
        let all = read_all(&mut log);
        assert_eq!(all.len(), 49);
        assert_eq!(all[48], (48, format!("{:0100}", 48)));
        // Appends continue from the truncation point.
        assert_eq!(
            log.append_records(&[rec("next", 0)], 0)
                .unwrap()
                .base_offset,
            49
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Index entries reach the index file 256 at a time, and all of them when the
    /// segment rolls; after a crash the held-back ones are rebuilt from the log without
    /// counting as a repair.
    #[test]
    fn index_entries_are_written_in_groups_and_whole_at_roll() {
        let dir = tmp("index-groups");
        let config = LogConfig {
            index_interval_bytes: 1,
            ..LogConfig::default()
        };
        let index_len = |log: &Log, i: usize| {
            let (_, index) = crate::segment::file_names(&dir, log.segments[i].base_offset());
            std::fs::metadata(index).unwrap().len() as usize
        };
        let (mut log, _) = Log::open(&dir, config, DiskOptions::default(), 0).unwrap();
        for i in 0..100 {
            log.append_records(&[rec("v", i)], i).unwrap();
        }
        assert_eq!(
            log.active().index_entries(),
            99,
            "one entry per batch but the first"
        );
        assert_eq!(index_len(&log, 0), 0, "held back");
        drop(log); // a crash: nothing synced
        let (mut log, recovery) = Log::open(&dir, config, DiskOptions::default(), 0).unwrap();
        assert_eq!(recovery.indexes_rebuilt, 0, "a lagging index is no repair");
        assert_eq!(index_len(&log, 0), 99 * 16, "rebuilt from the log");
        for i in 100..400 {
            log.append_records(&[rec("v", i)], i).unwrap();
        }
        assert_eq!(index_len(&log, 0), 99 * 16 + 4096, "one group of 256");
        log.roll(400).unwrap();
        assert_eq!(index_len(&log, 0), 399 * 16, "all of it at the roll");
        drop(log);
        let (mut log, recovery) = Log::open(&dir, config, DiskOptions::default(), 0).unwrap();
        assert_eq!(recovery.indexes_rebuilt, 0);
        assert_eq!(values(&mut log, 250)[0], (250, "v".to_string()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn older_segments_with_a_bad_index_are_rebuilt() {
        let dir = tmp("old-index");
        let (mut log, _) = Log::open(&dir, small(), DiskOptions::default(), 0).unwrap();
        for i in 0..100 {
            log.append_records(&[rec(&format!("{i:030}"), i)], i)
                .unwrap();
        }
        let bases = log.segment_bases();
        drop(log);
        std::fs::write(dir.join(format!("{:020}.index", bases[0])), [7u8; 32]).unwrap();
        let (mut log, recovery) = Log::open(&dir, small(), DiskOptions::default(), 0).unwrap();
        assert_eq!(recovery.indexes_rebuilt, 1);
        assert_eq!(read_all(&mut log).len(), 100);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn appends_batches_as_received_and_rejects_bad_ones() {
        let dir = tmp("raw");
        let (mut log, _) = Log::open(&dir, small(), DiskOptions::default(), 0).unwrap();
        let mut two = record::encode_batch(&[rec("a", 1), rec("b", 2)]);
        two.extend_from_slice(&record::encode_batch(&[rec("c", 3)]));
        let a = log.append(&mut two, 0).unwrap();
        assert_eq!((a.base_offset, a.last_offset), (0, 2));
        assert_eq!(values(&mut log, 0).len(), 3);
        let mut bad = record::encode_batch(&[rec("d", 4)]);
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert!(matches!(
            log.append(&mut bad, 0),
            Err(LogError::InvalidBatch(BatchError::CrcMismatch { .. }))
        ));
        let mut huge = record::encode_batch(&[rec(&"x".repeat(2000), 0)]);
        assert!(matches!(
            log.append(&mut huge, 0),
            Err(LogError::TooLarge { .. })
        ));
        assert_eq!(log.end_offset(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

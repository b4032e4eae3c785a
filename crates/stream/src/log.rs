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
        let batch = marker::encode(producer_id, producer_epoch, outcome, now_ms);
        self.append(&batch, now_ms).map(Some)
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
    /// after checking each one's CRC; only the base offsets are rewritten, in the copy the
    /// segment's tail takes (the request's bytes are not copied first). Written to the
    /// file on return.
    pub fn append(&mut self, batches: &[u8], now_ms: i64) -> Result<Appended, LogError> {
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
            let bytes = &batches[position..position + header.size];
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

    /// The earliest record whose timestamp is at or after `timestamp` (Kafka's
    /// ListOffsets by time): its offset and its own timestamp, which a client reports
    /// (`offsets_for_times`); `None` if every record is older.
    pub fn offset_for_timestamp(&mut self, timestamp: i64) -> Result<Option<(u64, i64)>, LogError> {
        self.flush()?;
        for segment in &self.segments {
            let Some(batch) = segment.batch_at_or_after_time(timestamp)? else {
                continue;
            };
            return Ok(match record::decode_batches(&batch, 0, usize::MAX) {
                Ok(records) => records
                    .iter()
                    .find(|r| r.record.timestamp >= timestamp)
                    .map(|r| (r.offset, r.record.timestamp)),
                // A compressed batch: its base offset is the right place to start reading,
                // and its first record's time is the batch's base timestamp.
                Err(_) => record::BatchHeader::parse(&batch)
                    .ok()
                    .map(|h| (h.base_offset, h.base_timestamp)),
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
mod tests;

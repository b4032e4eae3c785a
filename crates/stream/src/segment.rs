//! One segment: a slice of a partition's log in one file, plus its sparse offset index.
//!
//! A partition's log would be one endless file if nothing split it; retention could then
//! only delete by rewriting. So the log is cut into *segments*, each a file named by the
//! offset of its first record (`00000000000000001234.log` starts at offset 1234). Only the
//! newest segment (the *active* one) is appended to; older ones are immutable until
//! retention deletes them whole — deleting a file is cheap, rewriting one is not.
//!
//! Finding offset N inside a segment uses a *sparse* index (`.index`): an entry every
//! `index_interval` bytes of log, saying "the batch starting at relative offset R is at
//! byte position P". A lookup takes the last entry at or before N and scans forward over
//! batch headers from there — at most `index_interval` bytes — instead of indexing every
//! record. Each entry also records the largest timestamp seen *before* its batch, which is
//! what makes a lookup by time (`LISTOFFSETS ... <timestamp>`) a binary search too.
//!
//! ```text
//! index entry (16 bytes, big-endian): relative offset u32 | position u32 | max timestamp before i64
//! ```

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::record::{self, BATCH_HEADER_LEN, BatchHeader};

const INDEX_ENTRY_LEN: usize = 16;

/// Index entries are written to the index file this many bytes at a time (and whenever
/// the segment is synced or rolled), not with every flush of the log: an entry is added
/// every `index.interval.bytes` of log, so with 4 KiB batches and bigger, writing them as
/// they came was a second `write` system call for every flush. Readers use the index in
/// memory; the file is for the next start, and the newest segment — the only one whose
/// entries can still be held back — has its index rebuilt by scanning after a crash
/// anyway (Kafka writes its index through a memory map and flushes it when the segment
/// rolls).
const INDEX_WRITE_BYTES: usize = 256 * INDEX_ENTRY_LEN;

/// One sparse index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// Offset of the batch, minus the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of the batch in the segment file.
    pub position: u32,
    /// The largest record timestamp of every batch before this one (-1: none).
    pub max_timestamp_before: i64,
}

impl IndexEntry {
    fn encode(&self) -> [u8; INDEX_ENTRY_LEN] {
        let mut out = [0u8; INDEX_ENTRY_LEN];
        out[0..4].copy_from_slice(&self.relative_offset.to_be_bytes());
        out[4..8].copy_from_slice(&self.position.to_be_bytes());
        out[8..16].copy_from_slice(&self.max_timestamp_before.to_be_bytes());
        out
    }

    fn decode(b: &[u8]) -> IndexEntry {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[8..16]);
        IndexEntry {
            relative_offset: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            position: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            max_timestamp_before: i64::from_be_bytes(ts),
        }
    }
}

/// What opening a segment found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentRecovery {
    /// Bytes cut from the end because they were not whole, valid batches.
    pub truncated_bytes: u64,
    /// The index on disk did not match the log and was rebuilt.
    pub index_rebuilt: bool,
}

/// A segment file and its index.
#[derive(Debug)]
pub struct Segment {
    base_offset: u64,
    log_path: PathBuf,
    index_path: PathBuf,
    /// Shared with the group-commit flusher, which fsyncs it outside the partition lock.
    file: Arc<File>,
    index_file: File,
    index: Vec<IndexEntry>,
    /// Appended log bytes not yet written to the file (see [`Segment::flush`]).
    tail: Vec<u8>,
    /// Index entries not yet written to the index file.
    index_tail: Vec<u8>,
    index_interval: u64,
    bytes_since_index: u64,
    size: u64,
    next_offset: u64,
    max_timestamp: i64,
    /// When this segment started, for `segment.ms` rolling: the clock at creation, or the
    /// first batch's timestamp when reopened.
    created_ms: i64,
}

/// Writes all of `buf` to `file` and empties it (keeping its capacity for the next tail);
/// on an error, removes only the bytes that were written.
fn write_draining(mut file: &File, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut done = 0;
    let result = loop {
        if done == buf.len() {
            break Ok(());
        }
        match file.write(&buf[done..]) {
            Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    buf.drain(..done);
    result
}

/// The file names of the segment starting at `base_offset`.
pub fn file_names(dir: &Path, base_offset: u64) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{base_offset:020}.log")),
        dir.join(format!("{base_offset:020}.index")),
    )
}

impl Segment {
    /// Creates an empty segment (the files must not exist yet).
    pub fn create(
        dir: &Path,
        base_offset: u64,
        now_ms: i64,
        index_interval: u64,
    ) -> io::Result<Segment> {
        let (log_path, index_path) = file_names(dir, base_offset);
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&log_path)?;
        let index_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&index_path)?;
        Ok(Segment::empty(
            base_offset,
            (log_path, index_path),
            (file, index_file),
            index_interval,
            now_ms,
        ))
    }

    /// The in-memory state of a segment with no batches read yet.
    fn empty(
        base_offset: u64,
        (log_path, index_path): (PathBuf, PathBuf),
        (file, index_file): (File, File),
        index_interval: u64,
        now_ms: i64,
    ) -> Segment {
        Segment {
            base_offset,
            log_path,
            index_path,
            file: Arc::new(file),
            index_file,
            index: Vec::new(),
            tail: Vec::new(),
            index_tail: Vec::new(),
            index_interval,
            bytes_since_index: 0,
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            created_ms: now_ms,
        }
    }

    /// Opens an existing segment. `verify_all` (used for the newest segment, the only one a
    /// crash can leave half-written) checks every batch's CRC and rebuilds the index from
    /// the scan; otherwise the index is checked cheaply and rebuilt only if it does not
    /// match the log.
    ///
    /// Bytes that are not a whole, valid batch end the scan. If they are the newest
    /// segment's last batch — nothing valid after them — they are a torn tail (a write
    /// cut short by a crash, never acknowledged under `--fsync always`) and are cut off.
    /// Damage followed by a valid batch, or in an older segment (the newer segments
    /// follow it), is not a crash's work: cutting there would drop acknowledged records,
    /// so opening fails with an error naming the file and the byte, unless
    /// `disk.load_truncated` (`--load-truncated`) says to cut it anyway.
    pub fn open(
        dir: &Path,
        base_offset: u64,
        index_interval: u64,
        verify_all: bool,
        disk: crate::log::DiskOptions,
        now_ms: i64,
    ) -> io::Result<(Segment, SegmentRecovery)> {
        let (log_path, index_path) = file_names(dir, base_offset);
        let file = OpenOptions::new().read(true).append(true).open(&log_path)?;
        let index_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&index_path)?;
        let size = file.metadata()?.len();
        let mut segment = Segment::empty(
            base_offset,
            (log_path, index_path),
            (file, index_file),
            index_interval,
            now_ms,
        );
        segment.size = size;
        let mut recovery = SegmentRecovery::default();
        let on_disk = segment.read_index_file()?;
        let trusted = !verify_all && on_disk.as_ref().is_some_and(|i| segment.index_plausible(i));
        let tail_checked = match (trusted, on_disk.as_ref()) {
            (true, Some(index)) => {
                segment.index = index.clone();
                segment.scan_tail()?
            }
            _ => false,
        };
        if !tail_checked {
            let valid = segment.rebuild_by_scanning()?;
            if valid < segment.size {
                let follows = if verify_all {
                    valid_batch_after(&segment.log_path, valid)?
                        .map(|at| format!("a valid batch at byte {at}"))
                } else {
                    Some("newer segments".to_string())
                };
                if let Some(follows) = follows {
                    let damage = format!(
                        "segment {} is damaged at byte {valid}, followed by {follows}: not a torn tail",
                        segment.log_path.display()
                    );
                    if !disk.load_truncated {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!(
                                "{damage}. Refusing to start rather than drop the records after it; \
                                 restore the file, or start with --load-truncated to cut the segment there"
                            ),
                        ));
                    }
                    tracing::warn!("{damage}; --load-truncated: cutting the segment there");
                }
                recovery.truncated_bytes = segment.size - valid;
                segment.file.set_len(valid)?;
                segment.file.sync_all()?;
                segment.size = valid;
            }
            if on_disk.as_deref() != Some(segment.index.as_slice()) {
                segment.write_index_file()?;
                // An index file that is a prefix of the rebuilt index only lagged (its
                // newest entries were held back: see INDEX_WRITE_BYTES): normal after a
                // crash, not a repair.
                recovery.index_rebuilt = !on_disk
                    .as_ref()
                    .is_some_and(|d| segment.index.starts_with(d));
            }
        }
        if let Some(first) = segment.first_batch()? {
            segment.created_ms = first.max_timestamp;
        }
        Ok((segment, recovery))
    }

    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }

    /// The offset the next appended record gets (the base offset when empty).
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The largest record timestamp in the segment (-1 when empty). Time retention
    /// compares this with `now - retention.ms`: a segment goes when its newest record does.
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    pub fn created_ms(&self) -> i64 {
        self.created_ms
    }

    pub fn index_entries(&self) -> usize {
        self.index.len()
    }

    /// The file handle the group-commit flusher fsyncs.
    pub fn file(&self) -> Arc<File> {
        self.file.clone()
    }

    /// Appends one verified batch to the segment's *tail*: memory, not yet the file.
    /// [`Segment::flush`] writes the tail with one `write` — the same trick as Redis's
    /// AOF buffer, which collects every command of an event-loop turn and writes them once
    /// before the replies go out. A pipeline of 100 one-message produces is then one write
    /// system call, not 100. The batch's base offset (`header.base_offset`) is stamped
    /// into the tail's copy (see [`record::stamp`]), so the producer's bytes are copied
    /// once, here, and never changed.
    pub fn append(&mut self, batch: &[u8], header: &BatchHeader) {
        self.append_with(header, |tail| {
            let start = tail.len();
            tail.extend_from_slice(batch);
            record::stamp(&mut tail[start..], header.base_offset);
        });
    }

    /// Like [`Segment::append`], but `encode` writes the batch (exactly `header.size`
    /// bytes) into the tail itself, so a batch encoded here is never copied.
    pub fn append_with(&mut self, header: &BatchHeader, encode: impl FnOnce(&mut Vec<u8>)) {
        if self.size > 0 && self.bytes_since_index >= self.index_interval {
            let entry = IndexEntry {
                relative_offset: (header.base_offset - self.base_offset) as u32,
                position: self.size as u32,
                max_timestamp_before: self.max_timestamp,
            };
            self.index_tail.extend_from_slice(&entry.encode());
            self.index.push(entry);
            self.bytes_since_index = 0;
        }
        encode(&mut self.tail);
        self.size += header.size as u64;
        self.bytes_since_index += header.size as u64;
        self.next_offset = header.next_offset();
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
    }

    /// Bytes appended but not yet written to the file.
    pub fn unwritten(&self) -> usize {
        self.tail.len()
    }

    /// Writes the tail to the file: one `write`, however many batches were appended since
    /// the last flush, and the pending index entries once there are
    /// `INDEX_WRITE_BYTES` of them (see [`Segment::flush_with_index`]). `true` if log bytes
    /// were written. On an error the bytes not written stay in the tail for the next
    /// flush. Index entries go after the log bytes they point at; recovery rebuilds an
    /// index that points past the log anyway.
    pub fn flush(&mut self) -> io::Result<bool> {
        let wrote = !self.tail.is_empty();
        if wrote {
            write_draining(&self.file, &mut self.tail)?;
        }
        if self.index_tail.len() >= INDEX_WRITE_BYTES {
            write_draining(&self.index_file, &mut self.index_tail)?;
        }
        Ok(wrote)
    }

    /// Writes the tail and every index entry still held back: before the segment is synced,
    /// and when it stops being the active one.
    pub fn flush_with_index(&mut self) -> io::Result<()> {
        self.flush()?;
        write_draining(&self.index_file, &mut self.index_tail)
    }

    /// Whole batches starting with the one that holds `offset` (see [`SegmentView::read`]).
    pub fn read(
        &self,
        offset: u64,
        max_bytes: usize,
        max_records: u64,
    ) -> io::Result<Option<Bytes>> {
        match self.view(offset) {
            Some(view) => view.read(offset, max_bytes, max_records),
            None => Ok(None),
        }
    }

    /// What a reader of `offset` needs, without holding the partition lock for the I/O;
    /// `None` if the segment has nothing at or after `offset`.
    pub fn view(&self, offset: u64) -> Option<SegmentView> {
        if offset >= self.next_offset {
            return None;
        }
        let relative = offset.saturating_sub(self.base_offset);
        let i = self
            .index
            .partition_point(|e| u64::from(e.relative_offset) <= relative);
        let (scan_from, scan_offset) = match i.checked_sub(1).map(|i| self.index[i]) {
            None => (0, self.base_offset),
            Some(e) => (
                u64::from(e.position),
                self.base_offset + u64::from(e.relative_offset),
            ),
        };
        Some(SegmentView {
            file: self.file.clone(),
            scan_from,
            scan_offset,
            bytes_per_record: self.size / (self.next_offset - self.base_offset).max(1),
            // Only what is in the file; the log flushes before it hands out views.
            size: self.size - self.tail.len() as u64,
        })
    }

    /// The first batch whose largest timestamp is at least `timestamp` (its records hold
    /// the first record at or after that time), as bytes.
    pub fn batch_at_or_after_time(&self, timestamp: i64) -> io::Result<Option<Bytes>> {
        if self.max_timestamp < timestamp {
            return Ok(None);
        }
        // Every batch before entry i has timestamps below max_timestamp_before(i); the
        // last entry still below `timestamp` is a safe place to start scanning.
        let i = self
            .index
            .partition_point(|e| e.max_timestamp_before < timestamp);
        let mut position = if i == 0 {
            0
        } else {
            u64::from(self.index[i - 1].position)
        };
        while position < self.size {
            let header = self.header_at(position)?;
            if header.max_timestamp >= timestamp {
                let mut buf = BytesMut::zeroed(header.size);
                self.file.read_exact_at(&mut buf, position)?;
                return Ok(Some(buf.freeze()));
            }
            position += header.size as u64;
        }
        Ok(None)
    }

    /// Writes the segment's data and index to disk (before it becomes read-only, or for
    /// `--fsync`).
    pub fn sync(&mut self) -> io::Result<()> {
        self.flush_with_index()?;
        self.file.sync_data()?;
        self.index_file.sync_data()
    }

    /// Removes the segment's files.
    pub fn delete(self) -> io::Result<()> {
        std::fs::remove_file(&self.log_path)?;
        match std::fs::remove_file(&self.index_path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn header_at(&self, position: u64) -> io::Result<BatchHeader> {
        header_at(&self.file, position)
    }

    fn first_batch(&self) -> io::Result<Option<BatchHeader>> {
        if self.size == 0 {
            return Ok(None);
        }
        self.header_at(0).map(Some)
    }

    fn read_index_file(&self) -> io::Result<Option<Vec<IndexEntry>>> {
        let mut bytes = Vec::new();
        (&self.index_file).read_to_end(&mut bytes)?;
        if bytes.len() % INDEX_ENTRY_LEN != 0 {
            return Ok(None);
        }
        Ok(Some(
            bytes
                .chunks_exact(INDEX_ENTRY_LEN)
                .map(IndexEntry::decode)
                .collect(),
        ))
    }

    /// Cheap checks: entries strictly increasing and inside the file.
    fn index_plausible(&self, index: &[IndexEntry]) -> bool {
        let increasing = index
            .windows(2)
            .all(|w| w[0].relative_offset < w[1].relative_offset && w[0].position < w[1].position);
        increasing
            && index
                .iter()
                .all(|e| e.position > 0 && u64::from(e.position) < self.size)
    }

    /// With a trusted index: walks the headers after the last entry to find the segment's
    /// end offset and max timestamp, checking that the entry points at a batch boundary
    /// and that the batches end exactly at the end of the file. `false`: no match.
    fn scan_tail(&mut self) -> io::Result<bool> {
        let (mut position, mut max_ts) = match self.index.last() {
            Some(e) => (u64::from(e.position), e.max_timestamp_before),
            None => (0, -1),
        };
        let mut expect_offset = self
            .index
            .last()
            .map(|e| self.base_offset + u64::from(e.relative_offset));
        let mut next = self.base_offset;
        let mut since = 0;
        while position < self.size {
            let Ok(header) = self.header_at(position) else {
                return Ok(false);
            };
            if expect_offset
                .take()
                .is_some_and(|o| o != header.base_offset)
                || header.base_offset < next
            {
                return Ok(false);
            }
            position += header.size as u64;
            since += header.size as u64;
            max_ts = max_ts.max(header.max_timestamp);
            next = header.next_offset();
        }
        if position != self.size {
            return Ok(false);
        }
        self.next_offset = next;
        self.max_timestamp = max_ts;
        self.bytes_since_index = since;
        Ok(true)
    }

    /// Reads the whole segment, verifying each batch, and rebuilds the in-memory index.
    /// Returns the length of the valid prefix.
    fn rebuild_by_scanning(&mut self) -> io::Result<u64> {
        self.index.clear();
        self.bytes_since_index = 0;
        self.max_timestamp = -1;
        self.next_offset = self.base_offset;
        let mut reader = BufReader::with_capacity(1 << 20, File::open(&self.log_path)?);
        let mut position: u64 = 0;
        let mut batch = Vec::new();
        loop {
            let mut head = [0u8; BATCH_HEADER_LEN];
            if read_full(&mut reader, &mut head)? < BATCH_HEADER_LEN {
                break;
            }
            let Ok(header) = BatchHeader::parse(&head) else {
                break;
            };
            if header.base_offset < self.next_offset || position + header.size as u64 > self.size {
                break;
            }
            batch.clear();
            batch.extend_from_slice(&head);
            batch.resize(header.size, 0);
            if read_full(&mut reader, &mut batch[BATCH_HEADER_LEN..])?
                < header.size - BATCH_HEADER_LEN
                || record::verify(&batch).is_err()
            {
                break;
            }
            if position > 0 && self.bytes_since_index >= self.index_interval {
                self.index.push(IndexEntry {
                    relative_offset: (header.base_offset - self.base_offset) as u32,
                    position: position as u32,
                    max_timestamp_before: self.max_timestamp,
                });
                self.bytes_since_index = 0;
            }
            position += header.size as u64;
            self.bytes_since_index += header.size as u64;
            self.next_offset = header.next_offset();
            self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
        }
        Ok(position)
    }

    /// Calls `visit` with every batch header in the segment, oldest first, and for a
    /// control batch its bytes too (other batches: an empty slice — their records are
    /// skipped, not read). How a partition rebuilds its producer state on start (see
    /// [`crate::producer_state`]): one sequential pass over the headers.
    pub fn scan_batches(&self, mut visit: impl FnMut(&BatchHeader, &[u8])) -> io::Result<()> {
        let mut reader = BufReader::with_capacity(1 << 20, File::open(&self.log_path)?);
        let mut position: u64 = 0;
        let mut batch = Vec::new();
        while position < self.size {
            let mut head = [0u8; BATCH_HEADER_LEN];
            if read_full(&mut reader, &mut head)? < BATCH_HEADER_LEN {
                break;
            }
            let Ok(header) = BatchHeader::parse(&head) else {
                break;
            };
            let rest = header.size - BATCH_HEADER_LEN;
            if header.is_control() {
                batch.clear();
                batch.extend_from_slice(&head);
                batch.resize(header.size, 0);
                if read_full(&mut reader, &mut batch[BATCH_HEADER_LEN..])? < rest {
                    break;
                }
                visit(&header, &batch);
            } else {
                reader.seek_relative(rest as i64)?;
                visit(&header, &[]);
            }
            position += header.size as u64;
        }
        Ok(())
    }

    fn write_index_file(&mut self) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(self.index.len() * INDEX_ENTRY_LEN);
        for e in &self.index {
            bytes.extend_from_slice(&e.encode());
        }
        self.index_file.set_len(0)?;
        self.index_file.write_all_at(&bytes, 0)?;
        self.index_file.sync_all()?;
        // Later appends go to the end.
        self.index_file = OpenOptions::new().append(true).open(&self.index_path)?;
        Ok(())
    }
}

/// A consistent snapshot of a segment for one read. The log only appends, so the bytes
/// below `size` never change: a reader can use them while producers append, without the
/// partition lock. (Retention may delete the file meanwhile; the open handle keeps its
/// data readable until dropped.)
#[derive(Debug, Clone)]
pub struct SegmentView {
    file: Arc<File>,
    /// Where the index says to start scanning for the wanted offset...
    scan_from: u64,
    /// ...and the offset of the batch there.
    scan_offset: u64,
    /// The segment's average, for guessing how much to read.
    bytes_per_record: u64,
    size: u64,
}

impl SegmentView {
    /// Whole batches starting with the one that holds `offset`: about `max_bytes` of them
    /// (at least one, however big: a consumer must always make progress), stopping once
    /// they hold `max_records` records from `offset` on. `None` if the segment has nothing
    /// at or after `offset`. (A fresh buffer each call; see [`SegmentView::read_into`].)
    pub fn read(
        &self,
        offset: u64,
        max_bytes: usize,
        max_records: u64,
    ) -> io::Result<Option<Bytes>> {
        let mut buf = BytesMut::new();
        Ok(self
            .read_into(offset, max_bytes, max_records, &mut buf)?
            .map(|range| buf.freeze().slice(range)))
    }

    /// Like [`SegmentView::read`], into `buf`, returning where in `buf` the batches are.
    ///
    /// `buf` is meant to be *reused*: `pread` needs initialised memory to read into (safe
    /// Rust cannot hand the kernel uninitialised bytes), so a fresh buffer is zeroed first
    /// and then overwritten — for a 100 KiB fetch that zeroing, and the page faults of a
    /// fresh allocation, cost as much as the read itself. A buffer kept from the last read
    /// is already initialised: it only grows (zeroing just the growth), and the read goes
    /// straight into it.
    ///
    /// The first read starts where the index points and is sized from the segment's
    /// average record, for the records before `offset` and `max_records` after it: the
    /// batch headers that locate `offset` and the batches to return usually arrive in
    /// that one `pread`. If they do not, the scan reads on, and the batches are read again
    /// from their start, doubling until they hold `max_records` or `max_bytes`.
    pub fn read_into(
        &self,
        offset: u64,
        max_bytes: usize,
        max_records: u64,
        buf: &mut BytesMut,
    ) -> io::Result<Option<Range<usize>>> {
        const CHUNK: usize = 8 * 1024;
        let records = offset
            .saturating_sub(self.scan_offset)
            .saturating_add(max_records.min(1 << 20));
        let hint = records
            .saturating_mul(self.bytes_per_record)
            .saturating_mul(9)
            / 8;
        let hint = usize::try_from(hint)
            .unwrap_or(usize::MAX)
            .saturating_add(BATCH_HEADER_LEN)
            .clamp(CHUNK, max_bytes.max(CHUNK));
        // `buf[..len]` holds the file's bytes from `start` on.
        let (mut start, mut len) = (self.scan_from, 0);
        // Scan batch headers from the index entry (at most `index.interval.bytes` of them)
        // for the batch that holds `offset`.
        let mut position = self.scan_from;
        let first = loop {
            if position >= self.size {
                return Ok(None);
            }
            let at = (position - start) as usize;
            if at + BATCH_HEADER_LEN > len {
                start = position;
                len = self.fill(buf, start, hint)?;
                continue;
            }
            let header = BatchHeader::parse(&buf[at..len])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if header.last_offset() >= offset {
                break header;
            }
            position += header.size as u64;
        };
        let available = (self.size - position) as usize;
        let limit = max_bytes.max(first.size).min(available);
        // How much to keep: batches like the first one, as many as hold `max_records` (a
        // batch of 100 records is enough for COUNT 100: reading a whole `max_bytes` for
        // it was most of a fetch's cost).
        let in_first = first
            .next_offset()
            .saturating_sub(offset.max(first.base_offset))
            .max(1);
        let batches = max_records.div_ceil(in_first).min(1024);
        let guess = first.size.saturating_mul(batches as usize);
        let mut want = limit.min(guess).max(first.size);
        loop {
            if position + want as u64 > start + len as u64 {
                start = position;
                len = self.fill(buf, start, want)?;
            }
            let at = (position - start) as usize;
            let read = &buf[at..at + want];
            // Keep whole batches only, up to the record limit.
            let (mut end, mut records) = (0, 0);
            while end < read.len() && records < max_records {
                match BatchHeader::parse(&read[end..]) {
                    Ok(h) if end + h.size <= read.len() => {
                        records += h.next_offset().saturating_sub(offset.max(h.base_offset));
                        end += h.size;
                    }
                    _ => break,
                }
            }
            if records >= max_records || want >= limit {
                return Ok(Some(at..at + end));
            }
            want = want.saturating_mul(2).min(limit);
        }
    }

    /// Reads up to `want` bytes of the file from `start` into `buf` (grown if needed);
    /// returns how many (fewer at the end of the segment).
    fn fill(&self, buf: &mut BytesMut, start: u64, want: usize) -> io::Result<usize> {
        let len = (want as u64).min(self.size - start) as usize;
        if buf.len() < len {
            buf.resize(len, 0);
        }
        self.file.read_exact_at(&mut buf[..len], start)?;
        Ok(len)
    }
}

/// Where the first whole batch with a valid CRC after byte `damaged` of a segment file
/// starts, if one does: what tells damage in the middle from a torn tail. The damaged
/// batch's own length cannot be trusted, so every position after it is tried (a header
/// that parses and fits, then the CRC); this runs only when opening found damage.
fn valid_batch_after(log_path: &Path, damaged: u64) -> io::Result<Option<u64>> {
    let mut rest = Vec::new();
    let mut file = File::open(log_path)?;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(damaged + 1))?;
    file.read_to_end(&mut rest)?;
    for at in 0..rest.len() {
        let candidate = &rest[at..];
        let fits = BatchHeader::parse(candidate).is_ok_and(|h| h.size <= candidate.len());
        if fits && record::verify(candidate).is_ok() {
            return Ok(Some(damaged + 1 + at as u64));
        }
    }
    Ok(None)
}

fn header_at(file: &File, position: u64) -> io::Result<BatchHeader> {
    let mut buf = [0u8; BATCH_HEADER_LEN];
    file.read_exact_at(&mut buf, position)?;
    BatchHeader::parse(&buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Reads until `buf` is full or the input ends; returns how much was read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

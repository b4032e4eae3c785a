//! The write-ahead log: how a COMMIT becomes durable, and group commit.
//!
//! Rows live in memory; what makes a transaction survive a crash is its *commit record*
//! in the log: every change it made (rows written, rows deleted, DDL), appended when it
//! commits. The rule that gives the log its name: the COMMIT is acknowledged only after
//! its record is on disk (`--fsync always`). Uncommitted changes never reach the log —
//! storage is never written before commit ("no-steal") — so recovery only ever *redoes*
//! committed work and needs no undo (see `recovery`).
//!
//! **Group commit.** An fsync costs milliseconds; one per commit would cap throughput at
//! a few hundred commits a second. So committers only append their record to a buffer
//! and wait; one writer thread takes *everything* buffered, writes it, fsyncs once, and
//! wakes every committer whose record that fsync covered. Under load, many commits share
//! each fsync. `--fsync everysec` acknowledges after the write (the kernel has it: safe
//! against a process crash) and fsyncs once a second; `--fsync no` leaves flushing to the
//! kernel.
//!
//! **Format.** A file is a sequence of records `[len: u32][crc32c: u32][payload]`, with
//! the payload encoded by [`Change::encode`]. A checkpoint file uses the same framing.
//! The file pair `checkpoint.N` + `wal.N` is a complete database: the checkpoint holds
//! everything committed before `wal.N` was started.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{error, info};

use crate::storage::RowId;
use crate::types::Value;

/// When a COMMIT may be acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fsync {
    Always,
    Everysec,
    No,
}

/// One logged change. A commit record is a list of them, applied in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A DDL statement, replayed by executing it.
    Ddl(String),
    /// The new contents of a row (insert or update).
    Put {
        table: String,
        row: RowId,
        values: Vec<Value>,
    },
    Delete {
        table: String,
        row: RowId,
    },
    /// A SERIAL column's sequence reached `value`.
    Sequence {
        table: String,
        column: u32,
        value: i64,
    },
}

// ---- encoding ----

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(0),
        Value::Bool(b) => out.extend_from_slice(&[1, u8::from(*b)]),
        Value::Int(n) => {
            out.push(2);
            out.extend_from_slice(&n.to_le_bytes());
        }
        Value::Double(f) => {
            out.push(3);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::Numeric(d) => {
            out.push(4);
            out.extend_from_slice(&d.serialize());
        }
        Value::Text(s) => {
            out.push(5);
            put_str(out, s);
        }
        Value::Timestamp(t) => {
            out.push(6);
            out.extend_from_slice(&t.and_utc().timestamp_micros().to_le_bytes());
        }
    }
}

/// Reads fields from a record payload; every read is bounds-checked (a damaged record
/// that passed its checksum still cannot make us panic).
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }
    fn str(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn value(&mut self) -> Option<Value> {
        Some(match self.u8()? {
            0 => Value::Null,
            1 => Value::Bool(self.u8()? != 0),
            2 => Value::Int(self.u64()? as i64),
            3 => Value::Double(f64::from_bits(self.u64()?)),
            4 => Value::Numeric(rust_decimal::Decimal::deserialize(
                self.take(16)?.try_into().ok()?,
            )),
            5 => Value::Text(self.str()?),
            6 => Value::Timestamp(
                chrono::DateTime::from_timestamp_micros(self.u64()? as i64)?.naive_utc(),
            ),
            _ => return None,
        })
    }
}

/// The encoding of a [`Change::Put`], from borrowed parts: what the write path and a
/// checkpoint log without first copying the row into a `Change`.
fn put_row(out: &mut Vec<u8>, table: &str, row: RowId, values: &[Value]) {
    out.push(2);
    put_str(out, table);
    out.extend_from_slice(&row.to_le_bytes());
    out.extend_from_slice(&(values.len() as u32).to_le_bytes());
    for v in values {
        put_value(out, v);
    }
}

impl Change {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Change::Ddl(sql) => {
                out.push(1);
                put_str(out, sql);
            }
            Change::Put { table, row, values } => put_row(out, table, *row, values),
            Change::Delete { table, row } => {
                out.push(3);
                put_str(out, table);
                out.extend_from_slice(&row.to_le_bytes());
            }
            Change::Sequence {
                table,
                column,
                value,
            } => {
                out.push(4);
                put_str(out, table);
                out.extend_from_slice(&column.to_le_bytes());
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Option<Change> {
        Some(match r.u8()? {
            1 => Change::Ddl(r.str()?),
            2 => {
                let table = r.str()?;
                let row = r.u64()?;
                let n = r.u32()? as usize;
                let mut values = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    values.push(r.value()?);
                }
                Change::Put { table, row, values }
            }
            3 => Change::Delete {
                table: r.str()?,
                row: r.u64()?,
            },
            4 => Change::Sequence {
                table: r.str()?,
                column: r.u32()?,
                value: r.u64()? as i64,
            },
            _ => return None,
        })
    }
}

/// Frames a list of changes as one record: `[len][crc32c][count][changes...]`.
pub fn frame(changes: &[Change]) -> Vec<u8> {
    let mut record = Redo::default();
    for c in changes {
        record.push_ref(c);
    }
    record.into_record()
}

/// A record being built: a transaction's redo, or a checkpoint. Each change is encoded
/// into the record's bytes as it happens — the transaction keeps no second copy of the
/// rows it wrote, and COMMIT hands the finished buffer to the log as it is, its header
/// filled in (room for it is left at the front). A bulk load of a million rows thus
/// costs one encoding per row, and no allocation per row.
#[derive(Debug, Default)]
pub struct Redo {
    /// `[len][crc32c][count]` (filled in by [`Redo::into_record`]), then the changes.
    bytes: Vec<u8>,
    /// Where each change ends in `bytes`: a savepoint or a failed statement cuts the
    /// record back to a change count.
    ends: Vec<usize>,
}

/// The record header: length, checksum, change count (each a little-endian u32).
const HEADER: usize = 12;

impl Redo {
    /// Changes so far.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn start(&mut self) -> &mut Vec<u8> {
        if self.bytes.is_empty() {
            self.bytes.resize(HEADER, 0);
        }
        &mut self.bytes
    }

    pub fn push(&mut self, change: Change) {
        self.push_ref(&change);
    }

    fn push_ref(&mut self, change: &Change) {
        change.encode(self.start());
        self.ends.push(self.bytes.len());
    }

    /// Logs the new contents of a row, encoded straight from the caller's values.
    pub fn put(&mut self, table: &str, row: RowId, values: &[Value]) {
        put_row(self.start(), table, row, values);
        self.ends.push(self.bytes.len());
    }

    /// Keeps the first `len` changes.
    pub fn truncate(&mut self, len: usize) {
        if len < self.ends.len() {
            self.ends.truncate(len);
            let end = self.ends.last().copied().unwrap_or(HEADER);
            self.bytes.truncate(end);
        }
    }

    /// The framed record, `[len][crc32c][count][changes...]`, as [`frame`] writes it.
    pub fn into_record(self) -> Vec<u8> {
        let mut bytes = self.bytes;
        if bytes.is_empty() {
            bytes.resize(HEADER, 0);
        }
        let count = self.ends.len() as u32;
        bytes[8..HEADER].copy_from_slice(&count.to_le_bytes());
        let len = (bytes.len() - 8) as u32;
        let crc = crc32c::crc32c(&bytes[8..]);
        bytes[0..4].copy_from_slice(&len.to_le_bytes());
        bytes[4..8].copy_from_slice(&crc.to_le_bytes());
        bytes
    }
}

/// What reading a log file found.
pub struct Scan {
    pub records: Vec<Vec<Change>>,
    /// Bytes of valid records; anything after is a torn tail.
    pub valid_len: u64,
}

/// Reads every record of `bytes`. A damaged *last* record is a write the crash cut
/// short (torn tail): it is dropped. Damage followed by more data is corruption: refused
/// with the offset, because silently skipping it would lose acknowledged commits.
pub fn scan(bytes: &[u8], path: &Path) -> Result<Scan, String> {
    let mut records = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let header = bytes.get(at..at + 8);
        let parsed = header.and_then(|h| {
            let len = u32::from_le_bytes(h[0..4].try_into().ok()?) as usize;
            let crc = u32::from_le_bytes(h[4..8].try_into().ok()?);
            let payload = bytes.get(at + 8..at + 8 + len)?;
            Some((len, crc, payload))
        });
        let Some((len, crc, payload)) = parsed else {
            break; // runs past the end: torn tail
        };
        let end = at + 8 + len;
        let decoded = (crc32c::crc32c(payload) == crc)
            .then(|| {
                let mut r = Reader(payload);
                let n = r.u32()? as usize;
                let mut changes = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    changes.push(Change::decode(&mut r)?);
                }
                Some(changes)
            })
            .flatten();
        match decoded {
            Some(changes) => records.push(changes),
            None if end == bytes.len() => break, // damaged last record: torn tail
            None => {
                return Err(format!(
                    "{}: damaged record at offset {at} followed by more data; refusing to start",
                    path.display()
                ));
            }
        }
        at = end;
    }
    Ok(Scan {
        records,
        valid_len: at as u64,
    })
}

// ---- the writer ----

enum Item {
    Record(Vec<u8>),
    /// Start `wal.{generation}` after writing this checkpoint as `checkpoint.{generation}`.
    Checkpoint {
        generation: u64,
        bytes: Vec<u8>,
    },
}

#[derive(Default)]
struct Queue {
    items: Vec<Item>,
    /// Bytes of records queued so far (the LSN of the last one's end).
    appended: u64,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    durable: watch::Sender<u64>,
    /// The writer hit an I/O error: nothing more will become durable.
    failed: std::sync::atomic::AtomicBool,
}

/// The log of one database directory. Cheap to clone.
#[derive(Clone)]
pub struct Wal {
    shared: Arc<Shared>,
    durable: watch::Receiver<u64>,
    writer: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

pub fn wal_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("wal.{generation}"))
}
pub fn checkpoint_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("checkpoint.{generation}"))
}

impl Wal {
    /// Opens `wal.{generation}` for appending (after recovery truncated its torn tail) and
    /// starts the writer thread.
    pub fn open(dir: &Path, generation: u64, fsync: Fsync) -> std::io::Result<Wal> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(wal_path(dir, generation))?;
        let (durable, receiver) = watch::channel(0);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            durable,
            failed: Default::default(),
        });
        let writer = Writer {
            shared: shared.clone(),
            dir: dir.to_path_buf(),
            file,
            size: 0,
            fsync,
        };
        let thread = std::thread::Builder::new()
            .name("sql-wal".into())
            .spawn(move || writer.run())?;
        Ok(Wal {
            shared,
            durable: receiver,
            writer: Arc::new(Mutex::new(Some(thread))),
        })
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.shared.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a commit record; returns its log position, to wait on with [`Wal::durable`].
    /// Called with the engine locked, so the log's order is the commit order.
    pub fn append(&self, changes: &[Change]) -> u64 {
        self.append_record(frame(changes))
    }

    /// Queues a record already framed (a transaction's [`Redo`]); as [`Wal::append`].
    pub fn append_record(&self, record: Vec<u8>) -> u64 {
        let mut q = self.queue();
        q.appended += record.len() as u64;
        let lsn = q.appended;
        q.items.push(Item::Record(record));
        drop(q);
        self.shared.wake.notify_one();
        lsn
    }

    /// Queues a checkpoint: the writer writes it and starts a new log generation.
    pub fn checkpoint(&self, generation: u64, bytes: Vec<u8>) {
        self.queue()
            .items
            .push(Item::Checkpoint { generation, bytes });
        self.shared.wake.notify_one();
    }

    /// Waits until every record up to `lsn` is durable (per `--fsync`).
    pub async fn durable(&self, lsn: u64) -> Result<(), String> {
        let failed = || self.shared.failed.load(std::sync::atomic::Ordering::SeqCst);
        let mut rx = self.durable.clone();
        rx.wait_for(|&d| d >= lsn || failed())
            .await
            .map_err(|_| "the write-ahead log writer stopped".to_string())?;
        if failed() {
            // The commit is visible in memory but could not be made durable: say so
            // rather than acknowledge it (the server must be restarted to recover).
            return Err("could not write the write-ahead log; see the server log".into());
        }
        Ok(())
    }

    /// Stops the writer after it has written (and fsynced) everything queued, and waits
    /// for it.
    pub fn close(&self) {
        self.queue().closed = true;
        self.shared.wake.notify_one();
        let thread = self.writer.lock().map(|mut t| t.take()).unwrap_or(None);
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

struct Writer {
    shared: Arc<Shared>,
    dir: PathBuf,
    file: File,
    size: u64,
    fsync: Fsync,
}

impl Writer {
    fn run(mut self) {
        let mut last_sync = Instant::now();
        loop {
            let (items, appended, closed) = {
                let mut q = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
                while q.items.is_empty() && !q.closed {
                    let (guard, _) = self
                        .shared
                        .wake
                        .wait_timeout(q, Duration::from_millis(200))
                        .unwrap_or_else(|p| p.into_inner());
                    q = guard;
                    if q.items.is_empty() && self.fsync == Fsync::Everysec {
                        break;
                    }
                }
                (std::mem::take(&mut q.items), q.appended, q.closed)
            };
            if let Err(e) = self.write(items) {
                // Without the log nothing more can be acknowledged: stop waking committers.
                error!("write-ahead log: {e}; commits can no longer be acknowledged");
                self.fail();
                return;
            }
            let sync_now = match self.fsync {
                Fsync::Always => true,
                Fsync::Everysec => last_sync.elapsed() >= Duration::from_secs(1),
                Fsync::No => false,
            };
            if sync_now {
                if let Err(e) = self.file.sync_data() {
                    error!("write-ahead log fsync: {e}; commits can no longer be acknowledged");
                    self.fail();
                    return;
                }
                last_sync = Instant::now();
            }
            self.shared.durable.send_replace(appended);
            if closed {
                let _ = self.file.sync_data();
                return;
            }
        }
    }

    /// Wakes every committer with the news that its record will never be durable.
    fn fail(&self) {
        self.shared
            .failed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.shared.durable.send_modify(|_| {});
    }

    fn write(&mut self, items: Vec<Item>) -> std::io::Result<()> {
        let mut batch = Vec::new();
        for item in items {
            match item {
                Item::Record(bytes) => batch.extend_from_slice(&bytes),
                Item::Checkpoint { generation, bytes } => {
                    self.file.write_all(&batch)?;
                    batch.clear();
                    self.file.sync_data()?;
                    self.rotate(generation, &bytes)?;
                }
            }
        }
        self.size += batch.len() as u64;
        self.file.write_all(&batch)
    }

    /// Writes `checkpoint.{generation}` (temp file, fsync, rename, fsync the directory:
    /// it appears whole or not at all), starts `wal.{generation}`, then deletes the
    /// previous generation, which the checkpoint now covers.
    fn rotate(&mut self, generation: u64, bytes: &[u8]) -> std::io::Result<()> {
        let tmp = self.dir.join("checkpoint.tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, checkpoint_path(&self.dir, generation))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(wal_path(&self.dir, generation))?;
        File::open(&self.dir)?.sync_all()?;
        if let Some(previous) = generation.checked_sub(1) {
            let _ = fs::remove_file(wal_path(&self.dir, previous));
            let _ = fs::remove_file(checkpoint_path(&self.dir, previous));
        }
        self.size = 0;
        info!(
            "checkpoint {generation} written ({} bytes); log restarted",
            bytes.len()
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Change> {
        vec![
            Change::Ddl("CREATE TABLE t (id INT)".into()),
            Change::Put {
                table: "t".into(),
                row: 3,
                values: vec![Value::Int(-7), Value::Text("é".into()), Value::Null],
            },
            Change::Delete {
                table: "t".into(),
                row: 2,
            },
        ]
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_is_dropped() {
        let mut bytes = frame(&sample());
        bytes.extend_from_slice(&frame(&sample()));
        let whole = scan(&bytes, Path::new("wal.0")).ok();
        assert_eq!(whole.as_ref().map(|s| s.records.len()), Some(2));
        assert_eq!(whole.map(|s| s.records[0].clone()), Some(sample()));
        // Cut the second record anywhere: the first survives, the tail is dropped.
        let first = frame(&sample()).len();
        for cut in first..bytes.len() {
            let s = scan(&bytes[..cut], Path::new("wal.0")).ok();
            assert_eq!(
                s.map(|s| (s.records.len(), s.valid_len)),
                Some((1, first as u64))
            );
        }
    }

    #[test]
    fn a_redo_built_change_by_change_and_cut_back_frames_as_its_changes() {
        let mut redo = Redo::default();
        assert_eq!(Redo::default().into_record(), frame(&[]));
        for c in sample() {
            redo.push(c);
        }
        let kept = redo.len();
        redo.put("t", 9, &[Value::Int(1), Value::Text("gone".into())]);
        redo.push(Change::Ddl("DROP TABLE t".into()));
        redo.truncate(kept); // a savepoint taken after the sample, rolled back to
        redo.put("t", 4, &[Value::Int(2)]);
        let mut expected = sample();
        expected.push(Change::Put {
            table: "t".into(),
            row: 4,
            values: vec![Value::Int(2)],
        });
        let record = redo.into_record();
        assert_eq!(record, frame(&expected));
        let read = scan(&record, Path::new("wal.0")).ok();
        assert_eq!(read.map(|s| s.records), Some(vec![expected]));
    }

    #[test]
    fn damage_before_valid_records_refuses() {
        let mut bytes = frame(&sample());
        bytes.extend_from_slice(&frame(&sample()));
        bytes[10] ^= 0xff;
        let err = scan(&bytes, Path::new("wal.0")).err();
        assert!(err.is_some_and(|e| e.contains("offset 0")));
    }
}

//! Durability: an append-only journal, and sled as the checkpoint it is folded into.
//!
//! Memory is the primary copy: reads never touch the disk. Every command's changes (see
//! [`crate::keyspace::Change`]) are appended, in order, to the *journal* — a file that is
//! only ever appended to, as Redis's AOF — and the journal is later folded into sled, the
//! *checkpoint*. The pieces, each in its own module:
//!
//! - [`journal`]: the files, their records (length, CRC-32C, change), and reading them
//!   back with a torn tail cut off.
//! - [`checkpoint`]: sled's layout (a record per key, a record per element) and folding
//!   journal files into it, exactly once.
//! - this module: the path from a command to the journal: the buffer commands append to
//!   and `--fsync`.
//! - `writer`: the thread that writes that buffer to the journal, fsyncs it, and starts
//!   folds.
//! - `recovery`: replaying the journal after the checkpoint at startup.
//!
//! ## The write path
//!
//! With the keyspace lock held (so the journal's order is the keyspace's), the server
//! encodes each change into a shared buffer ([`Storage::append`]): a few hundred
//! instructions, no system call, no allocation once the buffer has grown. The *writer
//! thread* takes the whole buffer at once, writes it to the journal with one `write()`,
//! and calls `fsync` according to `--fsync`:
//!
//! - `always`: the writer is woken at once, and fsyncs after each write; a write is
//!   acknowledged only after the fsync that covers it. This is *group commit*: while one
//!   fsync runs, more clients' records pile up in the buffer, and the next write and
//!   fsync cover them all, so throughput grows with the number of clients instead of being
//!   one disk flush per write.
//! - `everysec` (default): the records are written to the kernel *before the replies go
//!   out*, and only the fsync waits, once a second on the writer thread: Redis's
//!   `appendfsync everysec`. The event loop itself does the `write()`, once per batch of
//!   replies ([`Storage::write_through`], called from the server's `batch_executed`), not
//!   once per command: a pipeline of 16 `SET`s, or every client served in one round, is
//!   one `write()`. A crash of the process then loses no acknowledged write (the kernel
//!   has the bytes and writes them after the process is gone); a crash of the machine
//!   loses at most about a second.
//! - `no`: as `everysec`, but the kernel decides when to flush.
//!
//! Under `everysec` and `no` the writer thread still wakes every [`WRITE_INTERVAL`] to
//! write changes no reply waits for (keys the expiry cycle deleted), fsyncs, and starts a
//! new file when one is full. The writer never touches sled, and clients never wait for it
//! except under `always`, or when it has fallen more than [`MAX_LAG`] changes or
//! [`MAX_QUEUED_BYTES`] behind.
//!
//! Why not write into sled directly? That was the first design, and every change became a
//! sled insert: find the key's place in the tree, copy its page, log it — 10-14 thousand
//! instructions on the writer thread, plus a page written and synced per batch, against
//! about 450 to encode and buffer a journal record (`SET`, measured under callgrind).
//! Appending is what a disk and a kernel do best; the sorted store is updated in bulk, in
//! the background, where the same key changed a thousand times is written once.
//!
//! ## Folding, and recovery
//!
//! When the journal file passes [`FOLD_THRESHOLD`] bytes, on `SAVE`/`BGSAVE` and at
//! shutdown, the writer closes it and starts the next one, and the *folder thread* applies
//! the closed files to sled and deletes them (see [`checkpoint`]). On start:
//!
//! 1. load sled into memory (keys that expired while the server was down are dropped);
//! 2. replay the journal from the position sled records, file by file, into memory;
//! 3. a record cut short or failing its checksum with nothing valid after it, at the end
//!    of the last file, is a torn tail (the crash interrupted a write nobody was answered
//!    for): truncate the file there and go on. Damage followed by valid records refuses to
//!    start, naming the file and the byte — that is not a crash's work, and truncating
//!    would drop acknowledged writes, which the next fold would then make permanent —
//!    unless `--load-truncated` says to drop them anyway;
//! 4. start a new journal file, and fold the replayed ones in the background.

pub mod checkpoint;
pub mod journal;
mod recovery;
mod writer;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tracing::{error, info};

use crate::codec;
use crate::keyspace::{Change, Keyspace};
use checkpoint::{Files, Fold};
use journal::Appender;
use recovery::replay;
use writer::Writer;

pub use checkpoint::count_elements;

/// `--fsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fsync {
    Always,
    Everysec,
    No,
}

impl Fsync {
    pub fn name(self) -> &'static str {
        match self {
            Fsync::Always => "always",
            Fsync::Everysec => "everysec",
            Fsync::No => "no",
        }
    }
}

/// What the writer and the folder report back.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    /// Last change position written to the journal (in the kernel, maybe not yet on disk).
    pub written: u64,
    /// Last change position known to be on disk.
    pub durable: u64,
    /// Number of `SAVE`s completed (each waits for its own).
    pub syncs: u64,
    /// Unix seconds of the last fsync or fold (`LASTSAVE`).
    pub last_flush: u64,
}

/// How long, under `everysec` and `no`, records no reply waits for (the expiry cycle's
/// deletions) may stay in memory before the writer thread writes them.
pub const WRITE_INTERVAL: Duration = Duration::from_millis(10);

/// Journal bytes after which the writer starts a new file and the full one is folded into
/// sled (Redis's `auto-aof-rewrite-min-size` is the same 64 MB).
pub const FOLD_THRESHOLD: u64 = 64 * 1024 * 1024;

/// How many changes the writer may fall behind before clients wait for it.
pub const MAX_LAG: u64 = 16 * 1024;

/// How many bytes of changes may wait for the writer before clients wait for it.
pub const MAX_QUEUED_BYTES: u64 = 64 * 1024 * 1024;

/// Queued changes or bytes that wake the writer before its interval is up.
const WAKE_CHANGES: u64 = 4096;
const WAKE_BYTES: usize = 1024 * 1024;

/// What the writer is doing, so that appending wakes it only when it must (waking a
/// thread is a system call).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// Working: it will look at the buffer before it sleeps again.
    #[default]
    No,
    /// Asleep until its next write or fsync is due.
    Timed,
    /// Asleep with nothing to do until something is appended.
    Idle,
}

/// The buffer between the commands and the writer.
#[derive(Default)]
struct Pending {
    /// Encoded journal records not yet handed to the writer.
    records: Vec<u8>,
    /// How many changes `records` holds, and the position of the last one.
    changes: u64,
    seq: u64,
    writer: Waiting,
    /// `SAVE`s requested so far.
    saves: u64,
    /// A write freed a large value ([`Storage::freed`]): fold soon, once the journal
    /// holds the change at this position (0: no fold asked for).
    fold_after: u64,
    stop: bool,
    /// Stop without folding: what a crash right after the last fsync leaves (tests).
    abandon: bool,
}

/// The journal file being appended to, and the buffer its records are taken in.
struct Open {
    appender: Appender,
    /// The next batch's buffer, swapped with [`Pending::records`] so that appending
    /// reuses its capacity instead of growing a new buffer for every batch.
    spare: Vec<u8>,
}

/// A buffer that grew past this (a large value went through it) is dropped after its
/// batch rather than kept: capacity kept for later batches would hold a copy's worth of
/// memory for the life of the process.
const KEEP_CAPACITY: usize = 4 * 1024 * 1024;

/// A write that frees this much memory (a large value deleted, overwritten, flushed)
/// makes the next fold come soon: see [`Storage::freed`].
pub const FREED_FOLDS: usize = 4 * 1024 * 1024;

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    /// Held while records are taken from `pending` and written, so batches reach the
    /// file in the order they were taken, whichever thread writes them. Lock order:
    /// `journal`, then `pending`.
    journal: Mutex<Open>,
    /// Position of the last change written to the kernel.
    written: AtomicU64,
    /// Bytes of records appended and not yet taken by a write.
    queued: AtomicU64,
    progress: Arc<watch::Sender<Progress>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        crate::lock(&self.pending)
    }

    fn journal(&self) -> MutexGuard<'_, Open> {
        crate::lock(&self.journal)
    }

    /// Takes every record appended so far and writes it to the journal file with one
    /// `write()`; returns the position now written.
    fn write_out(&self) -> u64 {
        let mut open = self.journal();
        let mut batch = std::mem::take(&mut open.spare);
        let seq = {
            let mut pending = self.lock();
            std::mem::swap(&mut pending.records, &mut batch);
            pending.changes = 0;
            pending.seq
        };
        self.queued.store(0, Ordering::Relaxed);
        if !batch.is_empty() {
            match open.appender.append(&batch) {
                Ok(()) => {
                    self.written.store(seq, Ordering::Release);
                    self.progress.send_if_modified(|p| {
                        let moved = p.written < seq;
                        p.written = p.written.max(seq);
                        moved
                    });
                }
                Err(e) => error!("journal write failed: {e}"),
            }
        }
        batch.clear();
        if batch.capacity() <= KEEP_CAPACITY {
            open.spare = batch;
        }
        self.written.load(Ordering::Acquire)
    }
}

/// The handle the server holds.
pub struct Storage {
    shared: Arc<Shared>,
    progress: watch::Receiver<Progress>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    pub fsync: Fsync,
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn io(e: std::io::Error) -> sled::Error {
    sled::Error::Io(e)
}

impl Storage {
    /// Opens (or creates) the store in `dir`, loads the checkpoint and replays the journal
    /// into `keyspace`, and starts the writer and folder threads.
    ///
    /// `load_truncated` (`--load-truncated`): start even if the journal is damaged in the
    /// middle, dropping everything after the damage (see the module docs, step 3).
    pub fn open(
        dir: &Path,
        fsync: Fsync,
        load_truncated: bool,
        keyspace: &mut Keyspace,
        now: u64,
    ) -> Result<Storage, sled::Error> {
        Self::open_with(dir, fsync, load_truncated, keyspace, now, FOLD_THRESHOLD)
    }

    /// [`Self::open`], folding whenever the journal passes `fold_threshold` bytes.
    pub fn open_with(
        dir: &Path,
        fsync: Fsync,
        load_truncated: bool,
        keyspace: &mut Keyspace,
        now: u64,
        fold_threshold: u64,
    ) -> Result<Storage, sled::Error> {
        let files = Files::open(dir)?;
        let (loaded, expired) = files.load(keyspace, now)?;
        files.db.flush()?;
        let journal_dir = journal::directory(dir);
        std::fs::create_dir_all(&journal_dir).map_err(io)?;
        let (replayed, last) =
            replay(&journal_dir, files.position(), keyspace, load_truncated).map_err(io)?;
        // The replayed changes are in the journal already: not to be appended again.
        keyspace.drain_changes();
        info!(
            "loaded {loaded} keys from {} ({expired} expired while down), replayed {replayed} journaled changes",
            dir.display(),
        );
        let generation = last.map_or(1, |g| g + 1).max(files.position().generation);
        let appender = Appender::create(&journal_dir, generation).map_err(io)?;

        let seq = keyspace.journal().seq();
        let progress = Arc::new(watch::Sender::new(Progress {
            written: seq,
            durable: seq,
            syncs: 0,
            last_flush: unix_secs(),
        }));
        let (fold_tx, fold_rx) = mpsc::channel();
        if last.is_some() {
            // Fold what was replayed, in the background.
            let _ = fold_tx.send(Fold {
                through: generation - 1,
                saves: 0,
                stop: false,
            });
        }
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                seq,
                ..Pending::default()
            }),
            wake: Condvar::new(),
            journal: Mutex::new(Open {
                appender,
                spare: Vec::new(),
            }),
            written: AtomicU64::new(seq),
            queued: AtomicU64::new(0),
            progress: progress.clone(),
        });
        let folder = std::thread::Builder::new().name("kv-folder".into()).spawn({
            let (journal_dir, progress) = (journal_dir.clone(), progress.clone());
            move || checkpoint::folder(files, journal_dir, fold_rx, progress)
        });
        let writer = Writer {
            shared: shared.clone(),
            journal_dir,
            fsync,
            folder: fold_tx,
            fold_threshold,
        };
        let writer = std::thread::Builder::new()
            .name("kv-writer".into())
            .spawn(move || writer.run());
        let threads = vec![folder.map_err(io)?, writer.map_err(io)?];
        Ok(Storage {
            shared,
            progress: progress.subscribe(),
            threads: Mutex::new(threads),
            fsync,
        })
    }

    /// Appends changes to the journal buffer; `seq` is the position of the last one.
    /// Called with the keyspace lock held, so the order of changes on disk is the order
    /// they happened in memory.
    pub fn append(&self, changes: &[Change], seq: u64) {
        let mut pending = self.shared.lock();
        for change in changes {
            codec::append_journal_record(&mut pending.records, change);
        }
        pending.changes += changes.len() as u64;
        pending.seq = seq;
        self.shared
            .queued
            .store(pending.records.len() as u64, Ordering::Relaxed);
        let wake = match pending.writer {
            Waiting::No => false,
            Waiting::Idle => true,
            Waiting::Timed => {
                self.fsync == Fsync::Always
                    || pending.changes >= WAKE_CHANGES
                    || pending.records.len() >= WAKE_BYTES
            }
        };
        if wake {
            pending.writer = Waiting::No;
            drop(pending);
            self.shared.wake.notify_one();
        }
    }

    /// Writes every record appended so far to the kernel unless change `seq` is there
    /// already: called by the event loop after it has executed a client's batch of
    /// commands and before it writes their replies, under `--fsync everysec` and `no`.
    /// One `write()` per batch of replies (and none when another client's batch already
    /// carried this one's records): no reply leaves before its write, so killing the
    /// process loses no acknowledged write, as with Redis's AOF.
    pub fn write_through(&self, seq: u64) {
        if self.shared.written.load(Ordering::Acquire) < seq {
            self.shared.write_out();
        }
    }

    pub fn progress(&self) -> Progress {
        *self.progress.borrow()
    }

    /// Waits until change `seq` is on disk (`--fsync always`).
    pub async fn durable(&self, seq: u64) {
        let mut rx = self.progress.clone();
        let _ = rx.wait_for(|p| p.durable >= seq).await;
    }

    /// Backpressure: waits while the writer is more than [`MAX_LAG`] changes behind
    /// change `seq`, or more than [`MAX_QUEUED_BYTES`] of records wait for it. Without it
    /// a writer slower than the clients would queue changes without bound, and
    /// `everysec` would lose far more than a second in a crash.
    pub async fn keep_up(&self, seq: u64) {
        if self.caught_up(seq) {
            return;
        }
        let mut rx = self.progress.clone();
        let _ = rx.wait_for(|p| self.caught_up_with(p, seq)).await;
    }

    /// Would [`Self::keep_up`] return at once for change `seq`? Under `everysec` and `no`
    /// it nearly always does, so a caller can answer without awaiting anything.
    pub fn caught_up(&self, seq: u64) -> bool {
        self.caught_up_with(&self.progress.borrow(), seq)
    }

    fn caught_up_with(&self, progress: &Progress, seq: u64) -> bool {
        seq.saturating_sub(progress.written) <= MAX_LAG
            && self.shared.queued.load(Ordering::Relaxed) <= MAX_QUEUED_BYTES
    }

    /// `SAVE`: makes everything appended so far durable and folds the journal into the
    /// checkpoint; waits for it.
    pub async fn sync(&self) {
        let mut rx = self.progress.clone();
        let target = self.request_save();
        let _ = rx.wait_for(|p| p.syncs >= target).await;
    }

    /// Starts what [`Self::sync`] waits for; returns the number of the save asked for.
    pub fn request_save(&self) -> u64 {
        let target = {
            let mut pending = self.shared.lock();
            pending.saves += 1;
            pending.writer = Waiting::No;
            pending.saves
        };
        self.shared.wake.notify_one();
        target
    }

    /// A write just freed `bytes` of memory. Memory is not the only copy of a value: once
    /// folded, the checkpoint holds it too, and sled keeps the pages it touched in its
    /// cache until it writes over them. A large value deleted from memory would so stay
    /// resident in sled's cache until the deletion is folded, which by size alone
    /// ([`FOLD_THRESHOLD`]) may be never on a quiet server. So a write that frees
    /// [`FREED_FOLDS`] or more asks the writer for a fold soon (at most one a second),
    /// and the fold's deletion lets sled, and then the allocator, give the memory back.
    /// `seq` is the journal position of the write: the fold waits until the journal has
    /// it (a write inside `EXEC` reaches it only when the transaction ends).
    pub fn freed(&self, bytes: usize, seq: u64) {
        if bytes < FREED_FOLDS {
            return;
        }
        let mut pending = self.shared.lock();
        pending.fold_after = pending.fold_after.max(seq);
        drop(pending);
        self.shared.wake.notify_one();
    }

    /// Writes and fsyncs what is queued, folds the whole journal into the checkpoint and
    /// stops both threads (shutdown).
    pub async fn close(&self) {
        self.stop(false).await;
    }

    /// Writes and fsyncs what is queued and stops, leaving the journal unfolded
    /// (`SHUTDOWN NOSAVE`): the restart replays it.
    pub async fn close_without_fold(&self) {
        self.stop(true).await;
    }

    async fn stop(&self, abandon: bool) {
        {
            let mut pending = self.shared.lock();
            pending.stop = true;
            pending.abandon = abandon;
        }
        self.shared.wake.notify_one();
        let threads = std::mem::take(&mut *crate::lock(&self.threads));
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}

//! Durability: an append-only journal, and sled as the checkpoint it is folded into.
//!
//! Memory is the primary copy: reads never touch the disk. Every command's changes (see
//! [`crate::keyspace::Change`]) are appended, in order, to the *journal* — a file that is
//! only ever appended to, as Redis's AOF — and the journal is later folded into sled, the
//! *checkpoint*. Three pieces, each in its own module:
//!
//! - [`journal`]: the files, their records (length, CRC-32C, change), and reading them
//!   back with a torn tail cut off.
//! - [`checkpoint`]: sled's layout (a record per key, a record per element) and folding
//!   journal files into it, exactly once.
//! - this module: the path from a command to the journal, `--fsync`, and recovery.
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

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::codec;
use crate::keyspace::{Change, Keyspace};
use checkpoint::{Files, Fold, Position};
use journal::Appender;

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

/// At most one fold per this long is started for [`Storage::freed`], so a client that
/// writes and deletes large values in a loop costs a fold a second, not one per value.
const FOLD_SOON: Duration = Duration::from_secs(1);

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

/// Replays the journal after `from` into `keyspace`: every file from `from`'s on, in
/// order. Damage in the last record of the last file is a torn tail, truncated. Damage
/// followed by valid records (later in the file, or in a later file) is an error naming
/// the file and byte — unless `load_truncated` (`--load-truncated`), which truncates there
/// anyway, keeping a copy of the damaged file and setting later files aside. Returns the
/// number of changes replayed and the last file's generation.
fn replay(
    journal_dir: &Path,
    from: Position,
    keyspace: &mut Keyspace,
    load_truncated: bool,
) -> std::io::Result<(usize, Option<u64>)> {
    let generations = journal::generations(journal_dir)?;
    let mut replayed = 0;
    for (i, &generation) in generations.iter().enumerate() {
        if generation < from.generation {
            // Folded, but a crash came before its deletion.
            journal::remove(journal_dir, generation)?;
            continue;
        }
        let start = if generation == from.generation {
            from.offset
        } else {
            0
        };
        let mut reader = journal::Reader::open(journal_dir, generation, start)?;
        while let Some((change, _)) = reader.next_change()? {
            keyspace.replay(change);
            replayed += 1;
        }
        // Keep the keyspace's own journal from growing while a long one is replayed.
        keyspace.drain_changes();
        let Some(damage) = reader.damage() else {
            continue;
        };
        let at = reader.offset();
        let path = journal::path(journal_dir, generation);
        let later = &generations[i + 1..];
        let follows = match later.first() {
            Some(_) => Some(0),
            None => journal::valid_record_after(journal_dir, generation, reader.damaged_at())?,
        };
        let Some(valid_at) = follows else {
            warn!(
                "journal file {}: {damage} at byte {at}, the last record: a torn tail (a write cut short by a crash), truncating it",
                path.display()
            );
            journal::truncate(journal_dir, generation, at)?;
            continue;
        };
        let followed_by = if later.is_empty() {
            format!("a valid record at byte {valid_at}")
        } else {
            format!("{} later journal file(s)", later.len())
        };
        if !load_truncated {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "journal file {} is damaged at byte {at} ({damage}), followed by {followed_by}: \
                     not a torn tail. Refusing to start rather than drop the writes after it; \
                     restore the file, or start with --load-truncated to drop everything from \
                     byte {at} on",
                    path.display()
                ),
            ));
        }
        let copy = path.with_extension("kvj.damaged");
        std::fs::copy(&path, &copy)?;
        warn!(
            "journal file {}: {damage} at byte {at}, followed by {followed_by}; \
             --load-truncated: dropping everything from there on (the file as it was is kept as {})",
            path.display(),
            copy.display()
        );
        journal::truncate(journal_dir, generation, at)?;
        for &dropped in later {
            let aside = journal::set_aside(journal_dir, dropped)?;
            warn!(
                "--load-truncated: journal file set aside as {}",
                aside.display()
            );
        }
        return Ok((replayed, Some(generation)));
    }
    Ok((replayed, generations.last().copied()))
}

/// The writer thread's state.
struct Writer {
    shared: Arc<Shared>,
    journal_dir: PathBuf,
    fsync: Fsync,
    folder: mpsc::Sender<Fold>,
    fold_threshold: u64,
}

impl Writer {
    /// Writes what was appended and no reply has written yet, fsyncs per `--fsync`,
    /// starts a new file and asks for a fold when one is due; until told to stop.
    fn run(mut self) {
        let mut durable = self.shared.progress.borrow().durable;
        let mut last_write = Instant::now();
        let mut last_sync = Instant::now();
        let mut saves_done = 0;
        // When the last fold was started, for `Storage::freed`'s rate.
        let mut last_fold: Option<Instant> = None;
        loop {
            let (saves, stop, abandon, fold_soon) = {
                let mut pending = self.shared.lock();
                loop {
                    let now = Instant::now();
                    let written = self.shared.written.load(Ordering::Acquire);
                    let sync_at = (self.fsync == Fsync::Everysec && durable < written)
                        .then(|| last_sync + Duration::from_secs(1));
                    let write_at = (!pending.records.is_empty()).then(|| {
                        let urgent = self.fsync == Fsync::Always
                            || pending.changes >= WAKE_CHANGES
                            || pending.records.len() >= WAKE_BYTES;
                        if urgent {
                            now
                        } else {
                            last_write + WRITE_INTERVAL
                        }
                    });
                    let fold_at = (pending.fold_after > 0 && pending.seq >= pending.fold_after)
                        .then(|| last_fold.map_or(now, |at| at + FOLD_SOON));
                    let due = sync_at.into_iter().chain(write_at).chain(fold_at).min();
                    if pending.stop || pending.saves > saves_done || due.is_some_and(|d| d <= now) {
                        break;
                    }
                    pending = match due {
                        Some(due) => {
                            pending.writer = Waiting::Timed;
                            match self.shared.wake.wait_timeout(pending, due - now) {
                                Ok((g, _)) => g,
                                Err(poisoned) => poisoned.into_inner().0,
                            }
                        }
                        None => {
                            pending.writer = Waiting::Idle;
                            match self.shared.wake.wait(pending) {
                                Ok(g) => g,
                                Err(poisoned) => poisoned.into_inner(),
                            }
                        }
                    };
                    pending.writer = Waiting::No;
                }
                let fold_soon = pending.fold_after > 0
                    && pending.seq >= pending.fold_after
                    && last_fold.is_none_or(|at| at.elapsed() >= FOLD_SOON);
                if fold_soon {
                    pending.fold_after = 0;
                }
                (pending.saves, pending.stop, pending.abandon, fold_soon)
            };
            let written = self.shared.write_out();
            last_write = Instant::now();
            let save = saves > saves_done;
            let sync_due = match self.fsync {
                Fsync::Always => durable < written,
                Fsync::Everysec => {
                    durable < written && last_sync.elapsed() >= Duration::from_secs(1)
                }
                Fsync::No => false,
            };
            if sync_due || save || stop {
                // Outside the journal's lock: the event loop keeps appending meanwhile.
                let file = self.shared.journal().appender.file();
                match file.sync_data() {
                    Ok(()) => {
                        durable = written;
                        last_sync = Instant::now();
                        self.shared.progress.send_modify(|p| {
                            p.durable = p.durable.max(written);
                            p.last_flush = unix_secs();
                        });
                    }
                    Err(e) => error!("journal fsync failed: {e}"),
                }
            }
            if stop && abandon {
                break;
            }
            let full = self.shared.journal().appender.bytes() >= self.fold_threshold;
            if save || stop || full || fold_soon {
                self.start_fold(saves, stop);
                last_fold = Some(Instant::now());
            }
            saves_done = saves;
            if stop {
                break;
            }
        }
        info!("journal closed");
    }

    /// Closes the current journal file (starting the next one, unless stopping) and asks
    /// the folder to fold every closed file.
    ///
    /// The next file is created before the journal's lock is taken and the full one is
    /// finished (cut and fsynced) after it is released: the event loop, which writes
    /// under that lock, waits for neither.
    fn start_fold(&mut self, saves: u64, stop: bool) {
        let (current, has_records) = {
            let open = self.shared.journal();
            (open.appender.generation(), open.appender.has_records())
        };
        let mut through = if stop || has_records {
            current
        } else {
            current - 1
        };
        if through == current {
            let closed = if stop {
                Ok(None)
            } else {
                match Appender::create(&self.journal_dir, current + 1) {
                    Ok(next) => Ok(Some(std::mem::replace(
                        &mut self.shared.journal().appender,
                        next,
                    ))),
                    Err(e) => Err(e),
                }
            };
            let finished = match closed {
                Ok(Some(full)) => full.finish(),
                Ok(None) => self.shared.journal().appender.finish(),
                Err(e) => {
                    // Keep appending to this file; fold the closed ones (if any).
                    error!("cannot start a new journal file: {e}");
                    through = current - 1;
                    Ok(())
                }
            };
            if let Err(e) = finished {
                error!("journal file {current}: {e}");
            }
        }
        let _ = self.folder.send(Fold {
            through,
            saves,
            stop,
        });
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::types::edit::Edit;
    use crate::value::{Entry, Value};

    const NOW: u64 = 1_700_000_000_000;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn put(db: usize, key: &str, value: &str) -> Change {
        Change::Put {
            db,
            key: b(key),
            entry: Entry::new(Value::String(b(value).into()), None),
        }
    }

    fn push(key: &str, left: bool, value: &str) -> Change {
        Change::Edit {
            db: 0,
            key: b(key),
            edit: Edit::ListPush {
                left,
                values: vec![b(value)],
            },
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kv-storage-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// Applies changes to the keyspace as the server does, and hands them to storage.
    async fn write(ks: &mut Keyspace, storage: &Storage, changes: Vec<Change>) {
        for change in changes {
            ks.replay(change);
        }
        let seq = ks.journal().seq();
        storage.append(ks.changes(), seq);
        ks.clear_changes();
        storage.durable(seq).await;
    }

    /// A mix of changes to every type, with those that are not idempotent if replayed
    /// twice (pushes, pops, swaps), spread over databases.
    fn workload(round: usize) -> Vec<Change> {
        let mut changes = Vec::new();
        for i in 0..50 {
            changes.push(put(i % 3, &format!("k{}", i % 20), &format!("{round}-{i}")));
            changes.push(push("l", i.is_multiple_of(2), &format!("{round}-{i}")));
            let member = b(&format!("m{}", i % 7));
            let edit = match i % 5 {
                0 => Edit::HashPut(vec![(member, b(&format!("{round}")))]),
                1 => Edit::SetAdd(vec![member]),
                2 => Edit::ZAdd(vec![(member, (round * i) as f64)]),
                3 => Edit::ListPop {
                    left: round.is_multiple_of(2),
                    count: 1,
                },
                _ => Edit::SetRemove(vec![member]),
            };
            let key = ["h", "s", "z", "l", "s"][i % 5];
            changes.push(Change::Edit {
                db: 0,
                key: b(key),
                edit,
            });
        }
        changes.push(Change::SwapDb { a: 1, b: 2 });
        if round % 3 == 2 {
            changes.push(Change::FlushDb { db: 2 });
        }
        changes
    }

    /// Where a journal file's records end.
    fn records_end(journal_dir: &Path, generation: u64) -> u64 {
        let mut reader = journal::Reader::open(journal_dir, generation, 0).unwrap();
        while reader.next_change().unwrap().is_some() {}
        assert_eq!(reader.damage(), None);
        reader.offset()
    }

    fn open(dir: &Path, threshold: u64) -> (Keyspace, Storage) {
        let mut ks = Keyspace::new(true);
        let storage =
            Storage::open_with(dir, Fsync::Always, false, &mut ks, NOW, threshold).unwrap();
        (ks, storage)
    }

    /// A list stored by format 2 (a record per element) is still read, and pushes, pops
    /// and LSETs fold into it as records per element; a new list is paged.
    #[tokio::test]
    async fn a_format_2_list_is_read_and_edited_in_place() {
        use codec::{Body, Record, element_key, element_prefix, encode_record, list_position};
        let dir = temp_dir("format2-list");
        let origin = codec::LIST_ORIGIN;
        {
            let db = sled::open(&dir).unwrap();
            let list = Body::List {
                head: origin,
                tail: origin + 2,
            };
            let record = encode_record(&Record {
                expires_at: None,
                body: list,
            });
            db.open_tree("t0").unwrap().insert("l", record).unwrap();
            let elements = db.open_tree("e0").unwrap();
            for (i, value) in ["a", "b"].into_iter().enumerate() {
                let at = element_key(&element_prefix(b"l"), &list_position(origin + i as u64));
                elements.insert(at, value).unwrap();
            }
            db.flush().unwrap();
        }
        let list_of = |ks: &mut Keyspace, key: &str| match ks.value(0, &b(key), NOW) {
            Some(Value::List(list)) => list.iter().map(|e| e.to_vec()).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        let (mut ks, storage) = open(&dir, FOLD_THRESHOLD);
        assert_eq!(list_of(&mut ks, "l"), [b"a", b"b"]);
        let set = Change::Edit {
            db: 0,
            key: b("l"),
            edit: Edit::ListSet {
                index: 1,
                value: b("B"),
            },
        };
        let pop = Change::Edit {
            db: 0,
            key: b("l"),
            edit: Edit::ListPop {
                left: true,
                count: 1,
            },
        };
        let changes = vec![push("l", true, "z"), push("l", false, "c"), set, pop];
        write(
            &mut ks,
            &storage,
            [changes, vec![push("new", false, "x")]].concat(),
        )
        .await;
        storage.close().await;
        // l: z a b c after the pushes; LSET 1 turns a into B; LPOP takes z.
        let expected = [b"B".to_vec(), b"b".to_vec(), b"c".to_vec()];
        // Three element records for "l", one page for "new".
        assert_eq!(checkpoint::count_elements(&dir).unwrap(), 3 + 1);
        let (mut ks, storage) = open(&dir, FOLD_THRESHOLD);
        assert_eq!(list_of(&mut ks, "l"), expected);
        assert_eq!(list_of(&mut ks, "new"), [b"x"]);
        storage.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_crash_replays_the_journal_over_the_folded_checkpoint() {
        let dir = temp_dir("crash");
        // A small threshold: the journal is folded in the background many times.
        let (mut ks, storage) = open(&dir, 4096);
        for round in 0..20 {
            write(&mut ks, &storage, workload(round)).await;
            if round == 10 {
                storage.sync().await;
            }
        }
        let expected = ks.dataset(NOW);
        storage.stop(true).await;
        assert!(
            !journal::generations(&journal::directory(&dir))
                .unwrap()
                .is_empty()
        );

        let (ks, storage) = open(&dir, 4096);
        assert_eq!(ks.dataset(NOW), expected);
        // A clean stop folds everything: the next start replays nothing.
        storage.close().await;
        assert!(
            journal::generations(&journal::directory(&dir))
                .unwrap()
                .is_empty()
        );
        let (ks, storage) = open(&dir, 4096);
        assert_eq!(ks.dataset(NOW), expected);
        storage.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A crash after a fold but before its file was deleted: the checkpoint's position
    /// says the file is folded, so it is not replayed (the pushes would be doubled).
    #[tokio::test]
    async fn a_folded_file_left_behind_is_not_replayed() {
        let dir = temp_dir("folded");
        let journal_dir = journal::directory(&dir);
        std::fs::create_dir_all(&journal_dir).unwrap();
        let pushes = 2 * checkpoint::FOLD_CHUNK + 10;
        let mut records = Vec::new();
        for i in 0..pushes {
            codec::append_journal_record(&mut records, &push("l", false, &i.to_string()));
        }
        let mut appender = Appender::create(&journal_dir, 1).unwrap();
        appender.append(&records).unwrap();
        appender.finish().unwrap();
        {
            let mut files = Files::open(&dir).unwrap();
            assert_eq!(files.fold(&journal_dir, 1).unwrap(), pushes);
            let next = Position {
                generation: 2,
                offset: 0,
            };
            assert_eq!(files.position(), next);
            files.db.flush().unwrap();
        }
        let mut ks = Keyspace::new(true);
        let storage = Storage::open(&dir, Fsync::Always, false, &mut ks, NOW).unwrap();
        let Some(Value::List(list)) = ks.value(0, &b("l"), NOW) else {
            panic!("no list");
        };
        assert_eq!(list.len(), pushes);
        storage.close().await;
        assert!(journal::generations(&journal_dir).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_torn_tail_is_truncated_and_damage_elsewhere_refuses_to_start() {
        let dir = temp_dir("torn");
        let (mut ks, storage) = open(&dir, FOLD_THRESHOLD);
        write(&mut ks, &storage, workload(0)).await;
        let expected = ks.dataset(NOW);
        storage.stop(true).await;

        // The crash cut the last record short: its header and half its payload.
        let journal_dir = journal::directory(&dir);
        let last = *journal::generations(&journal_dir).unwrap().last().unwrap();
        let path = journal_dir.join(format!("{last:020}.kvj"));
        let good_len = records_end(&journal_dir, last);
        let mut record = Vec::new();
        codec::append_journal_record(&mut record, &put(0, "torn", "never acknowledged"));
        let mut bytes = std::fs::read(&path).unwrap();
        let at = good_len as usize;
        // Half a record where the records end (the zeros written ahead follow it).
        bytes[at..at + record.len() / 2].copy_from_slice(&record[..record.len() / 2]);
        std::fs::write(&path, &bytes).unwrap();

        let (mut ks, storage) = open(&dir, FOLD_THRESHOLD);
        assert_eq!(ks.dataset(NOW), expected);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len);
        // Writes after the restart go to a new file.
        write(&mut ks, &storage, workload(1)).await;
        storage.stop(true).await;
        let newest = *journal::generations(&journal_dir).unwrap().last().unwrap();
        assert_eq!(newest, last + 1);

        // Damage in a file that is not the last is not a torn tail.
        let path = journal_dir.join(format!("{newest:020}.kvj"));
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = records_end(&journal_dir, newest) as usize / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        Appender::create(&journal_dir, newest + 1).unwrap();
        let mut ks = Keyspace::new(true);
        assert!(Storage::open(&dir, Fsync::Always, false, &mut ks, NOW).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A flipped byte in the middle of the last file, with valid records after it, is
    /// not a torn tail: kv refuses to start and names the file and the byte; with
    /// `--load-truncated` it starts with the records before the damage, keeping a copy.
    #[tokio::test]
    async fn damage_in_the_middle_refuses_to_start_unless_load_truncated() {
        let dir = temp_dir("middle");
        let (mut ks, storage) = open(&dir, FOLD_THRESHOLD);
        for round in 0..4 {
            write(&mut ks, &storage, workload(round)).await;
        }
        storage.stop(true).await;
        let journal_dir = journal::directory(&dir);
        let last = *journal::generations(&journal_dir).unwrap().last().unwrap();
        let path = journal::path(&journal_dir, last);
        let end = records_end(&journal_dir, last);
        // The record holding the middle byte, and where it starts.
        let middle = end / 2;
        // The record holding the middle byte, where it starts, and what the records
        // before it make.
        let mut prefix = Keyspace::new(true);
        let mut reader = journal::Reader::open(&journal_dir, last, 0).unwrap();
        let mut record_start = reader.offset();
        while let Some((change, next)) = reader.next_change().unwrap() {
            if next > middle {
                break;
            }
            prefix.replay(change);
            record_start = next;
        }
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[middle as usize] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();

        let mut ks = Keyspace::new(true);
        let refused = Storage::open(&dir, Fsync::Always, false, &mut ks, NOW)
            .err()
            .expect("a journal damaged in the middle must not load")
            .to_string();
        assert!(refused.contains(&path.display().to_string()), "{refused}");
        assert!(
            refused.contains(&format!("byte {record_start} ")),
            "{refused}"
        );
        assert!(refused.contains("--load-truncated"), "{refused}");
        // Nothing was truncated or folded by the refusal.
        assert_eq!(std::fs::read(&path).unwrap(), bytes);

        let mut ks = Keyspace::new(true);
        let storage = Storage::open(&dir, Fsync::Always, true, &mut ks, NOW).unwrap();
        storage.close().await;
        assert_eq!(
            std::fs::read(path.with_extension("kvj.damaged")).unwrap(),
            bytes
        );
        // What the records before the damage make, and nothing after.
        let mut ks = Keyspace::new(true);
        let storage = Storage::open(&dir, Fsync::Always, false, &mut ks, NOW).unwrap();
        assert_eq!(ks.dataset(NOW), prefix.dataset(NOW));
        storage.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}

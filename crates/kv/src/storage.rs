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
//! - `everysec` (default): the writer wakes every [`WRITE_INTERVAL`] (or sooner when a lot
//!   has queued), writes what gathered, and fsyncs once a second. A crash of the process
//!   loses at most the last interval's writes (what was written is in the kernel's page
//!   cache); a crash of the machine at most about a second.
//! - `no`: as `everysec`, but the kernel decides when to flush.
//!
//! The writer never touches sled, and clients never wait for it except under `always`, or
//! when it has fallen more than [`MAX_LAG`] changes or [`MAX_QUEUED_BYTES`] behind.
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
//! 3. a record cut short or failing its checksum at the end of the last file is a torn
//!    tail (the crash interrupted a write nobody was answered for): truncate the file there
//!    and go on. Damage anywhere else refuses to start — that is not a crash's work;
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

/// How long, under `everysec` and `no`, records may wait in memory before the writer
/// writes them: the batch a `write()` carries, against what a crash of the process loses.
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
    stop: bool,
    /// Stop without folding: what a crash right after the last fsync leaves (tests).
    abandon: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        crate::lock(&self.pending)
    }
}

/// The handle the server holds.
pub struct Storage {
    shared: Arc<Shared>,
    progress: watch::Receiver<Progress>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Bytes of records appended and not yet taken by the writer.
    queued: Arc<AtomicU64>,
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
    pub fn open(
        dir: &Path,
        fsync: Fsync,
        keyspace: &mut Keyspace,
        now: u64,
    ) -> Result<Storage, sled::Error> {
        Self::open_with(dir, fsync, keyspace, now, FOLD_THRESHOLD)
    }

    /// [`Self::open`], folding whenever the journal passes `fold_threshold` bytes.
    pub fn open_with(
        dir: &Path,
        fsync: Fsync,
        keyspace: &mut Keyspace,
        now: u64,
        fold_threshold: u64,
    ) -> Result<Storage, sled::Error> {
        let files = Files::open(dir)?;
        let (loaded, expired) = files.load(keyspace, now)?;
        files.db.flush()?;
        let journal_dir = journal::directory(dir);
        std::fs::create_dir_all(&journal_dir).map_err(io)?;
        let (replayed, last) = replay(&journal_dir, files.position(), keyspace).map_err(io)?;
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
        });
        let queued = Arc::new(AtomicU64::new(0));
        let folder = std::thread::Builder::new().name("kv-folder".into()).spawn({
            let (journal_dir, progress) = (journal_dir.clone(), progress.clone());
            move || checkpoint::folder(files, journal_dir, fold_rx, progress)
        });
        let writer = Writer {
            shared: shared.clone(),
            journal: appender,
            journal_dir,
            fsync,
            progress: progress.clone(),
            folder: fold_tx,
            fold_threshold,
            queued: queued.clone(),
        };
        let writer = std::thread::Builder::new()
            .name("kv-writer".into())
            .spawn(move || writer.run());
        let threads = vec![folder.map_err(io)?, writer.map_err(io)?];
        Ok(Storage {
            shared,
            progress: progress.subscribe(),
            threads: Mutex::new(threads),
            queued,
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
        self.queued
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
            && self.queued.load(Ordering::Relaxed) <= MAX_QUEUED_BYTES
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

    /// Writes and fsyncs what is queued, folds the whole journal into the checkpoint and
    /// stops both threads (shutdown).
    pub async fn close(&self) {
        self.stop(false).await;
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
/// order. A torn tail of the last file is truncated; damage in an earlier one is an
/// error. Returns the number of changes replayed and the last file's generation.
fn replay(
    journal_dir: &Path,
    from: Position,
    keyspace: &mut Keyspace,
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
        if let Some(damage) = reader.damage() {
            if i + 1 < generations.len() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "journal file {generation} is damaged at byte {} ({damage}) and is not the last one",
                        reader.offset()
                    ),
                ));
            }
            warn!(
                "journal file {generation}: {damage} at byte {}: truncating the torn tail",
                reader.offset()
            );
            journal::truncate(journal_dir, generation, reader.offset())?;
        }
    }
    Ok((replayed, generations.last().copied()))
}

/// The writer thread's state.
struct Writer {
    shared: Arc<Shared>,
    journal: Appender,
    journal_dir: PathBuf,
    fsync: Fsync,
    progress: Arc<watch::Sender<Progress>>,
    folder: mpsc::Sender<Fold>,
    fold_threshold: u64,
    queued: Arc<AtomicU64>,
}

impl Writer {
    /// Takes what was appended, writes it, fsyncs per `--fsync`, starts a new file and
    /// asks for a fold when one is due; until told to stop.
    fn run(mut self) {
        let mut batch = Vec::new();
        let (mut written, mut durable) = {
            let p = self.progress.borrow();
            (p.written, p.durable)
        };
        let mut last_write = Instant::now();
        let mut last_sync = Instant::now();
        let mut saves_done = 0;
        loop {
            let (seq, saves, stop, abandon) = {
                let mut pending = self.shared.lock();
                loop {
                    let now = Instant::now();
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
                    let due = sync_at.into_iter().chain(write_at).min();
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
                std::mem::swap(&mut pending.records, &mut batch);
                pending.changes = 0;
                self.queued.store(0, Ordering::Relaxed);
                (pending.seq, pending.saves, pending.stop, pending.abandon)
            };
            if !batch.is_empty() {
                match self.journal.append(&batch) {
                    Ok(()) => written = seq,
                    Err(e) => error!("journal write failed: {e}"),
                }
                batch.clear();
                last_write = Instant::now();
                self.progress.send_modify(|p| p.written = written);
            }
            let save = saves > saves_done;
            let sync_due = match self.fsync {
                Fsync::Always => durable < written,
                Fsync::Everysec => {
                    durable < written && last_sync.elapsed() >= Duration::from_secs(1)
                }
                Fsync::No => false,
            };
            if sync_due || save || stop {
                match self.journal.sync() {
                    Ok(()) => {
                        durable = written;
                        last_sync = Instant::now();
                        self.progress.send_modify(|p| {
                            p.durable = written;
                            p.last_flush = unix_secs();
                        });
                    }
                    Err(e) => error!("journal fsync failed: {e}"),
                }
            }
            if stop && abandon {
                break;
            }
            if save || stop || self.journal.bytes() >= self.fold_threshold {
                self.start_fold(saves, stop);
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
    fn start_fold(&mut self, saves: u64, stop: bool) {
        let current = self.journal.generation();
        let through = if stop || self.journal.has_records() {
            current
        } else {
            current - 1
        };
        let mut through = through;
        if through == current
            && let Err(e) = self.journal.finish()
        {
            error!("journal file {current}: {e}");
        }
        if !stop && through == current {
            match Appender::create(&self.journal_dir, current + 1) {
                Ok(next) => self.journal = next,
                Err(e) => {
                    // Keep appending to this file; fold the closed ones (if any).
                    error!("cannot start a new journal file: {e}");
                    through = current - 1;
                }
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
            entry: Entry::new(Value::String(b(value)), None),
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
        let storage = Storage::open_with(dir, Fsync::Always, &mut ks, NOW, threshold).unwrap();
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
        let expected = ks.snapshot(NOW);
        storage.stop(true).await;
        assert!(
            !journal::generations(&journal::directory(&dir))
                .unwrap()
                .is_empty()
        );

        let (ks, storage) = open(&dir, 4096);
        assert_eq!(ks.snapshot(NOW), expected);
        // A clean stop folds everything: the next start replays nothing.
        storage.close().await;
        assert!(
            journal::generations(&journal::directory(&dir))
                .unwrap()
                .is_empty()
        );
        let (ks, storage) = open(&dir, 4096);
        assert_eq!(ks.snapshot(NOW), expected);
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
        let storage = Storage::open(&dir, Fsync::Always, &mut ks, NOW).unwrap();
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
        let expected = ks.snapshot(NOW);
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
        assert_eq!(ks.snapshot(NOW), expected);
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
        assert!(Storage::open(&dir, Fsync::Always, &mut ks, NOW).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}

//! Durability: the keyspace's journal, written to sled by one background thread.
//!
//! Memory is the primary copy: reads never touch the disk. sled holds the durable copy,
//! loaded once at start. Every command's changes (see [`crate::keyspace::Change`]) are
//! sent, in order, to the *writer thread*, which applies them to sled and decides when to
//! make them durable, by `--fsync`:
//!
//! - `always`: after each batch, flush; a write is acknowledged only after the flush
//!   that covers it. This is *group commit*: while one flush runs, more clients' changes
//!   queue up, and the next flush covers them all, so throughput grows with concurrency
//!   instead of being one fsync per write.
//! - `everysec` (default): flush at most once a second; a crash loses about a second.
//! - `no`: leave it to sled's own background flush (every 500 ms).
//!
//! The writer is a plain thread, so it calls sled's blocking `flush()`; from async code
//! the same step would be `flush_async().await`.
//!
//! Each change carries a sequence number; the writer publishes the number of the last
//! change known durable, and an `always` client waits until it covers its own change.
//!
//! ## Layout on disk
//!
//! One sled tree per database, holding `key -> codec::encode_entry(entry)`. `FLUSHDB` and
//! `SWAPDB` must be atomic, and deleting or renaming a million keys is not, so a `meta`
//! tree maps each database number to the physical tree that holds it: `FLUSHDB` points
//! the database at a fresh, empty tree (then drops the old one) and `SWAPDB` swaps two
//! pointers, each a single atomic write.
//!
//! Within a batch, several changes to one key collapse to the last one (the state after
//! the batch is the same, and a hot key is written once instead of thousands of times).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::codec;
use crate::keyspace::{Change, DATABASES, Keyspace};
use crate::value::Entry;

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

/// A message to the writer thread.
enum Message {
    /// Changes up to and including position `seq`, and their approximate size in bytes.
    Changes(Vec<Change>, u64, u64),
    /// Flush now (`SAVE`), covering everything sent before.
    Sync,
    /// Flush and stop.
    Stop,
}

/// What the writer reports back.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    /// Last change position handed to sled (in its buffers, maybe not yet on disk).
    pub written: u64,
    /// Last change position known to be on disk.
    pub durable: u64,
    /// Number of explicit syncs completed (`SAVE` waits for its own).
    pub syncs: u64,
    /// Unix seconds of the last flush (`LASTSAVE`).
    pub last_flush: u64,
}

/// The handle the server holds.
pub struct Storage {
    tx: mpsc::Sender<Message>,
    progress: watch::Receiver<Progress>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// Bytes of changes handed to the writer and not yet written.
    queued: Arc<AtomicU64>,
    pub fsync: Fsync,
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Storage {
    /// Opens (or creates) the store in `dir`, loads every live record into `keyspace`
    /// and starts the writer thread. Records that expired while the server was down are
    /// deleted, not loaded.
    pub fn open(
        dir: &Path,
        fsync: Fsync,
        keyspace: &mut Keyspace,
        now: u64,
    ) -> Result<Storage, sled::Error> {
        let flush_every = match fsync {
            Fsync::No => Some(500),
            Fsync::Always | Fsync::Everysec => None,
        };
        let db = sled::Config::new()
            .path(dir)
            .flush_every_ms(flush_every)
            .open()?;
        let files = Files::open(db)?;
        let mut loaded = 0usize;
        let mut expired = Vec::new();
        for (n, tree) in files.trees.iter().enumerate() {
            for item in tree.iter() {
                let (key, record) = item?;
                let key = Bytes::copy_from_slice(&key);
                match codec::decode_entry(&record) {
                    Ok(entry) => {
                        if keyspace.load(n, key.clone(), entry, now) {
                            loaded += 1;
                        } else {
                            expired.push((n, key));
                        }
                    }
                    Err(e) => warn!("db{n}: skipping undecodable record ({e:?})"),
                }
            }
        }
        for (n, key) in &expired {
            files.trees[*n].remove(key)?;
        }
        files.db.flush()?;
        info!(
            "loaded {loaded} keys from {} ({} expired while down)",
            dir.display(),
            expired.len()
        );
        let (tx, rx) = mpsc::channel();
        let queued = Arc::new(AtomicU64::new(0));
        let (progress_tx, progress) = watch::channel(Progress {
            written: keyspace.journal().seq(),
            durable: keyspace.journal().seq(),
            syncs: 0,
            last_flush: unix_secs(),
        });
        let thread = std::thread::Builder::new()
            .name("kv-writer".into())
            .spawn({
                let queued = queued.clone();
                move || writer(files, fsync, rx, progress_tx, queued)
            })
            .map_err(sled::Error::Io)?;
        Ok(Storage {
            tx,
            progress,
            thread: std::sync::Mutex::new(Some(thread)),
            queued,
            fsync,
        })
    }

    /// Hands changes to the writer. Called with the keyspace lock held, so the order of
    /// changes on disk is the order they happened in memory.
    pub fn send(&self, changes: Vec<Change>, seq: u64) {
        let bytes: u64 = changes.iter().map(change_bytes).sum();
        self.queued.fetch_add(bytes, Ordering::Relaxed);
        if !changes.is_empty() && self.tx.send(Message::Changes(changes, seq, bytes)).is_err() {
            error!("the storage writer has stopped; changes are no longer persisted");
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
    /// change `seq`, or holds more than [`MAX_QUEUED_BYTES`] of changes not yet written.
    /// Without it a writer slower than the clients would queue changes without bound (a
    /// change to a collection carries the whole collection, so 16k changes to one big list
    /// can be gigabytes), and `everysec` would lose far more than a second in a crash.
    pub async fn keep_up(&self, seq: u64) {
        let queued = &self.queued;
        let behind = |p: &Progress| {
            seq.saturating_sub(p.written) <= MAX_LAG
                && queued.load(Ordering::Relaxed) <= MAX_QUEUED_BYTES
        };
        if behind(&self.progress.borrow()) {
            return;
        }
        let mut rx = self.progress.clone();
        let _ = rx.wait_for(behind).await;
    }

    /// Flushes everything sent so far and waits for it (`SAVE`, `BGSAVE`).
    pub async fn sync(&self) {
        let mut rx = self.progress.clone();
        let target = rx.borrow().syncs + 1;
        if self.tx.send(Message::Sync).is_ok() {
            let _ = rx.wait_for(|p| p.syncs >= target).await;
        }
    }

    /// Flushes, stops the writer and closes the files (shutdown).
    pub async fn close(&self) {
        let _ = self.tx.send(Message::Stop);
        let thread = match self.thread.lock() {
            Ok(mut g) => g.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// The sled database, its meta tree and the current tree of each database number.
struct Files {
    db: sled::Db,
    meta: sled::Tree,
    trees: Vec<sled::Tree>,
    ids: Vec<u64>,
    next_id: u64,
}

fn db_key(n: usize) -> Vec<u8> {
    format!("db/{n}").into_bytes()
}

fn tree_name(id: u64) -> String {
    format!("t{id}")
}

fn read_u64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}

impl Files {
    fn open(db: sled::Db) -> Result<Files, sled::Error> {
        let meta = db.open_tree("meta")?;
        let mut ids = Vec::with_capacity(DATABASES);
        for n in 0..DATABASES {
            let id = meta
                .get(db_key(n))?
                .and_then(|v| read_u64(&v))
                .unwrap_or(n as u64);
            ids.push(id);
        }
        let next_id = meta
            .get("next")?
            .and_then(|v| read_u64(&v))
            .unwrap_or(DATABASES as u64);
        // Trees left behind by a FLUSHDB interrupted before its drop_tree.
        for name in db.tree_names() {
            let orphan = name
                .strip_prefix(b"t")
                .and_then(|id| std::str::from_utf8(id).ok()?.parse::<u64>().ok())
                .is_some_and(|id| !ids.contains(&id));
            if orphan {
                db.drop_tree(&name)?;
            }
        }
        let trees = ids
            .iter()
            .map(|&id| db.open_tree(tree_name(id)))
            .collect::<Result<_, _>>()?;
        Ok(Files {
            db,
            meta,
            trees,
            ids,
            next_id,
        })
    }

    /// Points database `n` at a new empty tree and drops the old one.
    fn flush_db(&mut self, n: usize) -> Result<(), sled::Error> {
        let id = self.next_id;
        self.next_id += 1;
        let mut batch = sled::Batch::default();
        batch.insert(db_key(n), &id.to_be_bytes());
        batch.insert("next", &self.next_id.to_be_bytes());
        self.meta.apply_batch(batch)?;
        let old = std::mem::replace(&mut self.ids[n], id);
        self.trees[n] = self.db.open_tree(tree_name(id))?;
        self.db.drop_tree(tree_name(old))?;
        Ok(())
    }

    fn swap_db(&mut self, a: usize, b: usize) -> Result<(), sled::Error> {
        let mut batch = sled::Batch::default();
        batch.insert(db_key(a), &self.ids[b].to_be_bytes());
        batch.insert(db_key(b), &self.ids[a].to_be_bytes());
        self.meta.apply_batch(batch)?;
        self.ids.swap(a, b);
        self.trees.swap(a, b);
        Ok(())
    }

    /// Writes the collapsed puts and removes of one stretch of changes, one atomic batch
    /// per database.
    fn write(
        &mut self,
        pending: &mut HashMap<(usize, Bytes), Option<Entry>>,
    ) -> Result<(), sled::Error> {
        let mut batches: Vec<Option<sled::Batch>> = (0..DATABASES).map(|_| None).collect();
        for ((n, key), entry) in pending.drain() {
            let batch = batches[n].get_or_insert_with(sled::Batch::default);
            match entry {
                Some(entry) => batch.insert(&key[..], codec::encode_entry(&entry)),
                None => batch.remove(&key[..]),
            }
        }
        for (n, batch) in batches.into_iter().enumerate() {
            if let Some(batch) = batch {
                self.trees[n].apply_batch(batch)?;
            }
        }
        Ok(())
    }

    /// A key's record as the changes so far leave it.
    fn current(
        &self,
        db: usize,
        key: &Bytes,
        pending: &mut HashMap<(usize, Bytes), Option<Entry>>,
    ) -> Result<Option<Entry>, sled::Error> {
        if let Some(entry) = pending.remove(&(db, key.clone())) {
            return Ok(entry);
        }
        Ok(self.trees[db]
            .get(key)?
            .and_then(|record| codec::decode_entry(&record).ok()))
    }

    fn apply(
        &mut self,
        changes: Vec<Change>,
        pending: &mut HashMap<(usize, Bytes), Option<Entry>>,
    ) -> Result<(), sled::Error> {
        for change in changes {
            match change {
                Change::Put { db, key, entry } => {
                    pending.insert((db, key), Some(entry));
                }
                Change::Remove { db, key } => {
                    pending.insert((db, key), None);
                }
                // Read-modify-write of the key's record: the state after the batch's
                // earlier changes to it, or the record on disk.
                Change::Edit { db, key, edit } => {
                    let mut entry = self
                        .current(db, &key, pending)?
                        .unwrap_or_else(|| Entry::new(edit.empty_value(), None));
                    if let Err(e) = edit.apply(&mut entry.value) {
                        warn!("db{db}: cannot apply {edit:?}: {e:?}");
                        continue;
                    }
                    pending.insert((db, key), Some(entry));
                }
                Change::Expire { db, key, at } => {
                    if let Some(mut entry) = self.current(db, &key, pending)? {
                        entry.expires_at = at;
                        pending.insert((db, key), Some(entry));
                    }
                }
                // Whole-database changes are barriers: write what came before first.
                Change::FlushDb { db } => {
                    self.write(pending)?;
                    self.flush_db(db)?;
                }
                Change::FlushAll => {
                    self.write(pending)?;
                    for n in 0..DATABASES {
                        self.flush_db(n)?;
                    }
                }
                Change::SwapDb { a, b } => {
                    self.write(pending)?;
                    self.swap_db(a, b)?;
                }
            }
        }
        Ok(())
    }
}

/// How many changes the writer may fall behind before clients wait for it.
pub const MAX_LAG: u64 = 16 * 1024;

/// How many bytes of changes may wait for the writer before clients wait for it.
pub const MAX_QUEUED_BYTES: u64 = 64 * 1024 * 1024;

/// A change's approximate size in memory, for [`MAX_QUEUED_BYTES`].
fn change_bytes(change: &Change) -> u64 {
    match change {
        Change::Put { key, entry, .. } => (key.len() + entry.value.memory()) as u64,
        Change::Remove { key, .. } | Change::Expire { key, .. } => key.len() as u64,
        Change::Edit { key, edit, .. } => (key.len() + edit.bytes()) as u64,
        _ => 64,
    }
}

/// Largest number of messages taken in one batch.
const MAX_BATCH: usize = 4096;

/// The writer thread: take every queued message, write them, flush per `--fsync`, report.
fn writer(
    mut files: Files,
    fsync: Fsync,
    rx: mpsc::Receiver<Message>,
    progress: watch::Sender<Progress>,
    queued: Arc<AtomicU64>,
) {
    let mut pending = HashMap::new();
    let mut written = progress.borrow().durable;
    let mut last_flush = Instant::now();
    let mut dirty = false;
    let mut stop = false;
    while !stop {
        // Wait for work; under everysec wake up in time for the next scheduled flush.
        let first = if fsync == Fsync::Everysec && dirty {
            let wait = Duration::from_secs(1).saturating_sub(last_flush.elapsed());
            match rx.recv_timeout(wait) {
                Ok(m) => Some(m),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => Some(Message::Stop),
            }
        } else {
            Some(rx.recv().unwrap_or(Message::Stop))
        };
        let mut syncs = 0;
        let mut batch: Vec<Message> = first.into_iter().collect();
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let mut batch_bytes = 0;
        for message in batch {
            match message {
                Message::Changes(changes, seq, bytes) => {
                    batch_bytes += bytes;
                    if let Err(e) = files.apply(changes, &mut pending) {
                        error!("storage write failed: {e}");
                    }
                    written = seq;
                    dirty = true;
                }
                Message::Sync => syncs += 1,
                Message::Stop => stop = true,
            }
        }
        if let Err(e) = files.write(&mut pending) {
            error!("storage write failed: {e}");
        }
        queued.fetch_sub(batch_bytes, Ordering::Relaxed);
        if progress.borrow().written != written {
            progress.send_modify(|p| p.written = written);
        }
        let due = match fsync {
            Fsync::Always => dirty,
            Fsync::Everysec => dirty && last_flush.elapsed() >= Duration::from_secs(1),
            Fsync::No => false,
        };
        if due || syncs > 0 || stop {
            match files.db.flush() {
                Ok(_) => {
                    last_flush = Instant::now();
                    dirty = false;
                    progress.send_modify(|p| {
                        p.durable = written;
                        p.syncs += syncs;
                        p.last_flush = unix_secs();
                    });
                }
                Err(e) => error!("storage flush failed: {e}"),
            }
        }
    }
    info!("storage closed");
}

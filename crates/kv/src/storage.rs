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
//! ## Layout on disk: a record per key, a record per element
//!
//! sled is a sorted key-value store, and a collection can hold millions of elements. If
//! a list were one record, every `LPUSH` would rewrite all of it: 100k pushes to one list
//! would copy ~5·10^9 elements. So, as Kvrocks and Pika store Redis's types on RocksDB,
//! each database has two trees:
//!
//! ```text
//! records  (t<id>):  key                                  -> Record { expires_at, body }
//!                    body: the string, or a collection's header (type; a list's head, tail)
//! elements (e<id>):  len(key): u32 BE | key | field        -> value          (hash)
//!                    len(key): u32 BE | key | member       -> (empty)        (set)
//!                    len(key): u32 BE | key | member       -> score: f64     (sorted set)
//!                    len(key): u32 BE | key | position BE  -> value          (list)
//! ```
//!
//! - **A sub-key per element** makes a write cost what it touches: `HSET h f v` writes
//!   one element and the header, `LPOP` deletes one element and moves the head. The
//!   journal already says which elements (a [`Change::Edit`]), so the writer never reads
//!   or re-encodes the collection.
//! - **The length prefix** keeps keys apart: without it, key `a` with field `bc` and key
//!   `ab` with field `c` would both be `abc`. With it, all of a key's elements form one
//!   contiguous range that starts with its prefix and holds nothing else, found by a
//!   prefix scan (to load a key, or to delete it).
//! - **List positions** are u64s written big-endian, so byte order is list order and a
//!   prefix scan returns the list in order. A new list starts with head = tail = 2^63;
//!   `LPUSH` writes at `head - 1` and `RPUSH` at `tail`, so the list grows outward from the
//!   middle of the range: neither end runs out (2^63 pushes each way), and no push moves
//!   an element already stored. `LSET i` writes position `head + i`. (`LINSERT`/`LREM`,
//!   O(n) in Redis too, rewrite the list.)
//!
//! `FLUSHDB` and `SWAPDB` must be atomic, and deleting or renaming a million keys is not,
//! so a `meta` tree maps each database number to a physical id that names *both* of its
//! trees (`t<id>`, `e<id>`): `FLUSHDB` points the database at a fresh id (then drops the
//! old trees) and `SWAPDB` swaps two ids, each a single atomic write.
//!
//! The writer applies changes in order. A batch stages what they leave — each touched
//! key's record and each touched element, the last write winning — and writes it as one
//! sled transaction per database over its two trees, so a header and its elements never
//! disagree on disk. A hot key changed thousands of times in a batch has its record read
//! once and written once. A `Put` or `Remove` of a collection first drops its old
//! elements (a prefix scan); an `Edit` touches only its elements and the header.
//! Records written by format version 1 (whole collections in one record) are not read.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use sled::Transactional;
use sled::transaction::{TransactionError, TransactionResult};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::codec::{self, Body, Record};
use crate::keyspace::{Change, DATABASES, Keyspace};
use crate::types::edit::Edit;
use crate::types::{hash::Hash, list::List, zset::ZSet};
use crate::value::{Entry, Value};

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
        let db = open_sled(sled::Config::new().path(dir).flush_every_ms(flush_every))?;
        let files = Files::open(db)?;
        let (loaded, expired) = files.load(keyspace, now)?;
        files.db.flush()?;
        info!(
            "loaded {loaded} keys from {} ({expired} expired while down)",
            dir.display(),
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
    /// `RESTORE` or `RENAME` of a big collection carries all of it), and `everysec` would lose far more than a second in a crash.
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

/// Opens sled, waiting up to a second for a previous instance in this process to let go.
///
/// sled takes an exclusive `flock` on its directory, so two servers can never share one.
/// But when a `Db` is dropped, sled only *signals* its background flusher thread, which
/// holds the lock until it exits a moment later (sled issue #1234). A server stopped and
/// started again on the same directory within one process (the restart tests) would see
/// "could not acquire lock" for those milliseconds; a real second server holds it for its
/// whole life and still gets the error, one second later.
fn open_sled(config: sled::Config) -> Result<sled::Db, sled::Error> {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match config.open() {
            // sled reports it as an `Other` error; only its text names the lock.
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

/// The sled database, its meta tree and the current trees of each database number.
struct Files {
    db: sled::Db,
    meta: sled::Tree,
    /// Per database: key -> [`Record`].
    records: Vec<sled::Tree>,
    /// Per database: element key -> element value.
    elements: Vec<sled::Tree>,
    ids: Vec<u64>,
    next_id: u64,
}

fn db_key(n: usize) -> Vec<u8> {
    format!("db/{n}").into_bytes()
}

fn records_name(id: u64) -> String {
    format!("t{id}")
}

fn elements_name(id: u64) -> String {
    format!("e{id}")
}

/// The physical id a tree name belongs to (`t7`, `e7` -> 7).
fn tree_id(name: &[u8]) -> Option<u64> {
    let id = name
        .strip_prefix(b"t")
        .or_else(|| name.strip_prefix(b"e"))?;
    std::str::from_utf8(id).ok()?.parse().ok()
}

fn read_u64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}

/// What a stretch of changes leaves on disk, gathered before it is written: the record of
/// each key they touched and each element they wrote or deleted (`None`: delete), the
/// last change winning.
#[derive(Default)]
struct Stage {
    records: HashMap<(usize, Bytes), Option<Record>>,
    elements: BTreeMap<(usize, Vec<u8>), Option<Vec<u8>>>,
}

/// A key's record and element prefix while a change is applied to it.
struct Target {
    db: usize,
    prefix: Vec<u8>,
}

impl Target {
    fn new(db: usize, key: &[u8]) -> Target {
        Target {
            db,
            prefix: codec::element_prefix(key),
        }
    }

    fn put(&self, stage: &mut Stage, element: &[u8], value: Vec<u8>) {
        let key = codec::element_key(&self.prefix, element);
        stage.elements.insert((self.db, key), Some(value));
    }

    fn delete(&self, stage: &mut Stage, element: &[u8]) {
        let key = codec::element_key(&self.prefix, element);
        stage.elements.insert((self.db, key), None);
    }
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
            if tree_id(&name).is_some_and(|id| !ids.contains(&id)) {
                db.drop_tree(&name)?;
            }
        }
        let open = |name: fn(u64) -> String| {
            ids.iter()
                .map(|&id| db.open_tree(name(id)))
                .collect::<Result<Vec<_>, _>>()
        };
        let records = open(records_name)?;
        let elements = open(elements_name)?;
        Ok(Files {
            db,
            meta,
            records,
            elements,
            ids,
            next_id,
        })
    }

    /// Loads every live key into `keyspace`: a collection from its header and the prefix
    /// scan of its elements (in list order, for lists). Keys that expired while the server
    /// was down are deleted with their elements. Returns (loaded, expired).
    fn load(&self, keyspace: &mut Keyspace, now: u64) -> Result<(usize, usize), sled::Error> {
        let (mut loaded, mut expired) = (0, 0);
        for n in 0..DATABASES {
            for item in self.records[n].iter() {
                let (key, bytes) = item?;
                let record = match codec::decode_record(&bytes) {
                    Ok(record) => record,
                    Err(e) => {
                        warn!("db{n}: skipping undecodable record ({e:?})");
                        continue;
                    }
                };
                let key = Bytes::copy_from_slice(&key);
                let value = if record.expires_at.is_some_and(|at| at <= now) {
                    None
                } else {
                    self.read_value(n, &key, record.body)?
                };
                match value {
                    Some(value) => {
                        keyspace.load(n, key, Entry::new(value, record.expires_at), now);
                        loaded += 1;
                    }
                    None => {
                        self.records[n].remove(&key)?;
                        for element in self.elements[n].scan_prefix(codec::element_prefix(&key)) {
                            self.elements[n].remove(element?.0)?;
                        }
                        expired += 1;
                    }
                }
            }
        }
        Ok((loaded, expired))
    }

    /// A key's value from its record's body and, for a collection, its elements (`None`
    /// for a collection with none: nothing to load).
    fn read_value(&self, n: usize, key: &[u8], body: Body) -> Result<Option<Value>, sled::Error> {
        let prefix = codec::element_prefix(key);
        let mut elements = Vec::new();
        if body.is_collection() {
            for item in self.elements[n].scan_prefix(&prefix) {
                let (k, v) = item?;
                let element = Bytes::copy_from_slice(&k[prefix.len()..]);
                elements.push((element, v));
            }
            if elements.is_empty() {
                return Ok(None);
            }
        }
        let bytes = |v: sled::IVec| Bytes::copy_from_slice(&v);
        let items = elements.into_iter();
        Ok(Some(match body {
            Body::String(s) => Value::String(s),
            Body::Hash => Value::Hash(Hash::from(
                items.map(|(f, v)| (f, bytes(v))).collect::<Vec<_>>(),
            )),
            Body::List { .. } => Value::List(List::from(
                items.map(|(_, v)| bytes(v)).collect::<VecDeque<_>>(),
            )),
            Body::Set => Value::Set(items.map(|(m, _)| m).collect()),
            Body::ZSet => Value::ZSet(ZSet::from(
                items
                    .map(|(m, v)| (m, codec::decode_score(&v).unwrap_or(f64::NAN)))
                    .collect::<Vec<_>>(),
            )),
        }))
    }

    /// Points database `n` at a new physical id (two empty trees) and drops the old ones.
    fn flush_db(&mut self, n: usize) -> Result<(), sled::Error> {
        let id = self.next_id;
        self.next_id += 1;
        let mut batch = sled::Batch::default();
        batch.insert(db_key(n), &id.to_be_bytes());
        batch.insert("next", &self.next_id.to_be_bytes());
        self.meta.apply_batch(batch)?;
        let old = std::mem::replace(&mut self.ids[n], id);
        self.records[n] = self.db.open_tree(records_name(id))?;
        self.elements[n] = self.db.open_tree(elements_name(id))?;
        self.db.drop_tree(records_name(old))?;
        self.db.drop_tree(elements_name(old))?;
        Ok(())
    }

    fn swap_db(&mut self, a: usize, b: usize) -> Result<(), sled::Error> {
        let mut batch = sled::Batch::default();
        batch.insert(db_key(a), &self.ids[b].to_be_bytes());
        batch.insert(db_key(b), &self.ids[a].to_be_bytes());
        self.meta.apply_batch(batch)?;
        self.ids.swap(a, b);
        self.records.swap(a, b);
        self.elements.swap(a, b);
        Ok(())
    }

    /// Writes what the stage gathered: per database, one transaction over its two trees.
    fn write(&mut self, stage: &mut Stage) -> Result<(), sled::Error> {
        let mut batches: Vec<Option<(sled::Batch, sled::Batch)>> =
            (0..DATABASES).map(|_| None).collect();
        for ((n, key), record) in stage.records.drain() {
            let (records, _) = batches[n].get_or_insert_with(Default::default);
            match record {
                Some(record) => records.insert(&key[..], codec::encode_record(&record)),
                None => records.remove(&key[..]),
            }
        }
        for ((n, key), value) in std::mem::take(&mut stage.elements) {
            let (_, elements) = batches[n].get_or_insert_with(Default::default);
            match value {
                Some(value) => elements.insert(key, value),
                None => elements.remove(key),
            }
        }
        for (n, batch) in batches.into_iter().enumerate() {
            let Some((records, elements)) = batch else {
                continue;
            };
            let trees = (&self.records[n], &self.elements[n]);
            let result: TransactionResult<()> = trees.transaction(|(r, e)| {
                r.apply_batch(&records)?;
                e.apply_batch(&elements)?;
                Ok(())
            });
            result.map_err(|e| match e {
                TransactionError::Storage(e) => e,
                TransactionError::Abort(()) => sled::Error::Unsupported("aborted".into()),
            })?;
        }
        Ok(())
    }

    /// A key's record as the changes so far leave it.
    fn record(&self, stage: &Stage, db: usize, key: &Bytes) -> Result<Option<Record>, sled::Error> {
        if let Some(record) = stage.records.get(&(db, key.clone())) {
            return Ok(record.clone());
        }
        Ok(self.records[db]
            .get(key)?
            .and_then(|bytes| codec::decode_record(&bytes).ok()))
    }

    /// Deletes every element of `key`: those on disk and those staged.
    fn drop_elements(&self, stage: &mut Stage, db: usize, key: &[u8]) -> Result<(), sled::Error> {
        let prefix = codec::element_prefix(key);
        for item in self.elements[db].scan_prefix(&prefix) {
            stage.elements.insert((db, item?.0.to_vec()), None);
        }
        let staged = stage
            .elements
            .range_mut((db, prefix.clone())..)
            .take_while(|((n, k), _)| *n == db && k.starts_with(&prefix));
        for (_, value) in staged {
            *value = None;
        }
        Ok(())
    }

    /// The key now holds `entry`: its old elements go, the new ones are written.
    fn put(
        &self,
        stage: &mut Stage,
        db: usize,
        key: Bytes,
        entry: Entry,
    ) -> Result<(), sled::Error> {
        if self
            .record(stage, db, &key)?
            .is_some_and(|r| r.body.is_collection())
        {
            self.drop_elements(stage, db, &key)?;
        }
        let t = Target::new(db, &key);
        let body = match entry.value {
            Value::String(s) => Body::String(s),
            Value::Hash(h) => {
                for (field, value) in h.iter() {
                    t.put(stage, field, value.to_vec());
                }
                Body::Hash
            }
            Value::List(l) => {
                let mut tail = codec::LIST_ORIGIN;
                for value in l.iter() {
                    t.put(stage, &codec::list_position(tail), value.to_vec());
                    tail += 1;
                }
                Body::List {
                    head: codec::LIST_ORIGIN,
                    tail,
                }
            }
            Value::Set(set) => {
                for member in set.iter() {
                    t.put(stage, member, Vec::new());
                }
                Body::Set
            }
            Value::ZSet(z) => {
                for (slot, &score) in z.slots() {
                    t.put(stage, slot.key(), codec::encode_score(score).to_vec());
                }
                Body::ZSet
            }
        };
        let record = Record {
            expires_at: entry.expires_at,
            body,
        };
        stage.records.insert((db, key), Some(record));
        Ok(())
    }

    fn remove(&self, stage: &mut Stage, db: usize, key: Bytes) -> Result<(), sled::Error> {
        if self
            .record(stage, db, &key)?
            .is_some_and(|r| r.body.is_collection())
        {
            self.drop_elements(stage, db, &key)?;
        }
        stage.records.insert((db, key), None);
        Ok(())
    }

    /// Applies an edit to the elements it names and the header (created, with no TTL, if
    /// the edit created the key).
    fn edit(
        &self,
        stage: &mut Stage,
        db: usize,
        key: Bytes,
        edit: Edit,
    ) -> Result<(), sled::Error> {
        let mut record = match self.record(stage, db, &key)? {
            Some(record) => record,
            None => Record {
                expires_at: None,
                body: match edit.empty_value() {
                    Value::Hash(_) => Body::Hash,
                    Value::List(_) => Body::List {
                        head: codec::LIST_ORIGIN,
                        tail: codec::LIST_ORIGIN,
                    },
                    Value::Set(_) => Body::Set,
                    _ => Body::ZSet,
                },
            },
        };
        let t = Target::new(db, &key);
        let at = codec::list_position;
        match (&mut record.body, edit) {
            (Body::List { head, tail }, Edit::ListPush { left, values }) => {
                for value in values {
                    let position = if left {
                        *head -= 1;
                        *head
                    } else {
                        *tail += 1;
                        *tail - 1
                    };
                    t.put(stage, &at(position), value.to_vec());
                }
            }
            (Body::List { head, tail }, Edit::ListPop { left, count }) => {
                pop_positions(stage, &t, head, tail, left, count);
            }
            (Body::List { head, tail }, Edit::ListTrim { front, back }) => {
                pop_positions(stage, &t, head, tail, true, front);
                pop_positions(stage, &t, head, tail, false, back);
            }
            (Body::List { head, tail }, Edit::ListSet { index, value }) => {
                let position = *head + index as u64;
                if position < *tail {
                    t.put(stage, &at(position), value.to_vec());
                }
            }
            (Body::Hash, Edit::HashPut(pairs)) => {
                for (field, value) in pairs {
                    t.put(stage, &field, value.to_vec());
                }
            }
            (Body::Set, Edit::SetAdd(members)) => {
                for member in members {
                    t.put(stage, &member, Vec::new());
                }
            }
            (Body::ZSet, Edit::ZAdd(pairs)) => {
                for (member, score) in pairs {
                    t.put(stage, &member, codec::encode_score(score).to_vec());
                }
            }
            (Body::Hash, Edit::HashRemove(gone))
            | (Body::Set, Edit::SetRemove(gone))
            | (Body::ZSet, Edit::ZRemove(gone)) => {
                for element in gone {
                    t.delete(stage, &element);
                }
            }
            (body, edit) => {
                warn!("db{db}: cannot apply {edit:?} to a {body:?} record");
                return Ok(());
            }
        }
        stage.records.insert((db, key), Some(record));
        Ok(())
    }

    fn apply(&mut self, changes: Vec<Change>, stage: &mut Stage) -> Result<(), sled::Error> {
        for change in changes {
            match change {
                Change::Put { db, key, entry } => self.put(stage, db, key, entry)?,
                Change::Remove { db, key } => self.remove(stage, db, key)?,
                Change::Edit { db, key, edit } => self.edit(stage, db, key, edit)?,
                Change::Expire { db, key, at } => {
                    if let Some(mut record) = self.record(stage, db, &key)? {
                        record.expires_at = at;
                        stage.records.insert((db, key), Some(record));
                    }
                }
                // Whole-database changes are barriers: write what came before first.
                Change::FlushDb { db } => {
                    self.write(stage)?;
                    self.flush_db(db)?;
                }
                Change::FlushAll => {
                    self.write(stage)?;
                    for n in 0..DATABASES {
                        self.flush_db(n)?;
                    }
                }
                Change::SwapDb { a, b } => {
                    self.write(stage)?;
                    self.swap_db(a, b)?;
                }
            }
        }
        Ok(())
    }
}

/// Deletes `count` elements from one end of the list at `head..tail`, moving that end.
fn pop_positions(
    stage: &mut Stage,
    t: &Target,
    head: &mut u64,
    tail: &mut u64,
    left: bool,
    count: usize,
) {
    for _ in 0..count {
        if *head >= *tail {
            return;
        }
        let position = if left {
            *head += 1;
            *head - 1
        } else {
            *tail -= 1;
            *tail
        };
        t.delete(stage, &codec::list_position(position));
    }
}

/// Elements stored in a closed data directory, over every database (tests check that a
/// deleted or expired collection leaves none behind). Fails if a server has it open.
pub fn count_elements(dir: &Path) -> Result<usize, sled::Error> {
    let db = open_sled(sled::Config::new().path(dir))?;
    let mut n = 0;
    for name in db.tree_names() {
        if name.starts_with(b"e") && tree_id(&name).is_some() {
            n += db.open_tree(&name)?.len();
        }
    }
    Ok(n)
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
    let mut stage = Stage::default();
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
                    if let Err(e) = files.apply(changes, &mut stage) {
                        error!("storage write failed: {e}");
                    }
                    written = seq;
                    dirty = true;
                }
                Message::Sync => syncs += 1,
                Message::Stop => stop = true,
            }
        }
        if let Err(e) = files.write(&mut stage) {
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

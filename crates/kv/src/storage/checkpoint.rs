//! The checkpoint: sled, holding the dataset as of a position in the journal.
//!
//! The journal (see `super::journal`) takes every write cheaply, but it only grows, and a
//! restart would have to replay all of it. So from time to time the closed journal files
//! are *folded* into sled: their changes are applied to sled's trees in order, and the
//! files are deleted. sled is then a checkpoint — the dataset as of some position in the
//! journal — and a restart loads sled and replays only the journal after that position.
//! This is Redis's pairing of the AOF with an RDB snapshot (its "AOF rewrite" folds the
//! log into a compact base file), and a database's checkpoint of its write-ahead log.
//!
//! ## Exactly once: the position moves with the data
//!
//! Replaying a change twice is not always harmless: `LPUSH k x` applied twice pushes two
//! `x`. So the checkpoint records how far into the journal it is — a [`Position`]: journal
//! file and byte offset — under the `meta` tree's `journal` key, and every write of folded
//! data moves it *in the same transaction*. Whatever a crash leaves of sled (sled recovers
//! to a consistent prefix of its transactions), the data and the position agree, so a
//! restart replays exactly the changes the checkpoint does not hold. A journal file is
//! deleted only after sled is flushed past it.
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
//!                    len(key): u32 BE | key | page BE      -> 64 positions' values (list)
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
//! - **List positions** are u64s. A new list starts with head = tail = 2^63; `LPUSH`
//!   writes at `head - 1` and `RPUSH` at `tail`, so the list grows outward from the
//!   middle of the range: neither end runs out (2^63 pushes each way), and no push moves
//!   an element already stored. `LSET i` writes position `head + i`. (`LINSERT`/`LREM`,
//!   O(n) in Redis too, rewrite the list.)
//! - **A list's elements go in pages**, 64 consecutive positions to a record, keyed by
//!   `position / 64` big-endian, so byte order is list order and a prefix scan returns the
//!   list in order. A record per element made every list element a sled insert when
//!   pushed and a sled delete when popped, and sled's work per write (copying a tree
//!   page, then freeing the old copy) was nearly all of the fold's time under a queue's
//!   `LPUSH`/`RPOP`; a page takes 64 of them in one write, and within a chunk of changes it
//!   is read once, edited in memory ([`Staged::Page`]) and written once — the same idea as
//!   the in-memory list's packed chunks, and Redis's quicklist. Lists written by format 2
//!   (`Body::List`, a record per element) are still read and edited that way; a list is
//!   paged once it is rewritten whole.
//!
//! `FLUSHDB` and `SWAPDB` must be atomic, and deleting or renaming a million keys is not,
//! so a `meta` tree maps each database number to a physical id that names *both* of its
//! trees (`t<id>`, `e<id>`): `FLUSHDB` points the database at a fresh id (then drops the
//! old trees) and `SWAPDB` swaps two ids, each a single atomic write.
//!
//! The fold applies changes in order. A chunk of them stages what they leave — each touched
//! key's record and each touched element, the last write winning — and writes it as one
//! sled transaction over the trees it touches and the `meta` tree, so a header and its
//! elements never disagree on disk, and the same transaction moves the checkpoint's
//! position in the journal (below). A hot key changed thousands of times in a chunk has its record read
//! once and written once. A `Put` or `Remove` of a collection first drops its old
//! elements (a prefix scan); an `Edit` touches only its elements and the header.
//! Records written by format version 1 (whole collections in one record) are not read.

use std::collections::{BTreeMap, HashMap, VecDeque, btree_map};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sled::Transactional;
use sled::transaction::{TransactionError, TransactionResult};
use tokio::sync::watch;
use tracing::{error, info, warn};
use xxhash_rust::xxh3::Xxh3DefaultBuilder;

use super::{Progress, journal, unix_secs};
use crate::codec::{self, Body, Record};
use crate::keyspace::{Change, DATABASES, Keyspace};
use crate::types::edit::Edit;
use crate::types::{hash::Hash, list::List, zset::ZSet};
use crate::value::{Entry, Value};

/// A place in the journal: file `generation`, byte `offset` (0: its first record). The
/// checkpoint holds every change before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    pub generation: u64,
    pub offset: u64,
}

impl Position {
    fn encode(self) -> [u8; 16] {
        let mut out = [0; 16];
        out[..8].copy_from_slice(&self.generation.to_be_bytes());
        out[8..].copy_from_slice(&self.offset.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Position> {
        Some(Position {
            generation: read_u64(bytes.get(..8)?)?,
            offset: read_u64(bytes.get(8..)?)?,
        })
    }
}

/// The `meta` key holding the checkpoint's [`Position`].
const POSITION_KEY: &[u8] = b"journal";

/// Changes applied per sled transaction while folding.
pub(super) const FOLD_CHUNK: usize = 4096;

/// Opens sled, waiting up to a second for a previous instance in this process to let go.
///
/// sled takes an exclusive `flock` on its directory, so two servers can never share one
/// (nor, since sled is opened first, one journal). But when a `Db` is dropped, sled only
/// *signals* its background flusher thread, which holds the lock until it exits a moment
/// later (sled issue #1234). A server stopped and started again on the same directory
/// within one process (the restart tests) would see "could not acquire lock" for those
/// milliseconds; a real second server holds it for its whole life and still gets the
/// error, one second later.
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
pub struct Files {
    pub db: sled::Db,
    meta: sled::Tree,
    /// Per database: key -> [`Record`].
    records: Vec<sled::Tree>,
    /// Per database: element key -> element value.
    elements: Vec<sled::Tree>,
    ids: Vec<u64>,
    next_id: u64,
    /// Where in the journal this checkpoint stands.
    position: Position,
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
    /// Hashed with xxh3, not std's SipHash: the fold stages every change it reads, and
    /// SipHash (built to resist hash flooding, which a journal we wrote cannot do) was a
    /// third of the folder's time under `MSET`.
    /// One map per database, so a lookup borrows the key instead of cloning it.
    records: [HashMap<Bytes, Option<Record>, Xxh3DefaultBuilder>; DATABASES],
    elements: BTreeMap<(usize, Vec<u8>), Staged>,
}

/// What the fold will write to one element key.
enum Staged {
    Delete,
    Value(Vec<u8>),
    /// A list page, decoded, so that the changes of a chunk edit it in place and it is
    /// encoded once when the chunk is written.
    Page(Page),
}

/// A page of a [`Body::PagedList`]: the element at each of its positions, if any.
struct Page {
    slots: Vec<Option<Bytes>>,
}

impl Page {
    fn empty() -> Page {
        Page {
            slots: vec![None; codec::LIST_PAGE_SLOTS],
        }
    }

    fn decode(bytes: &[u8]) -> Option<Page> {
        let (first, elements) = codec::decode_page(bytes)?;
        let mut page = Page::empty();
        for (slot, element) in page.slots[first..].iter_mut().zip(elements) {
            *slot = Some(element);
        }
        Some(page)
    }

    /// The page's record, or `None` if it holds nothing (the record is deleted).
    fn encode(&self) -> Option<Vec<u8>> {
        let first = self.slots.iter().position(Option::is_some)?;
        let elements = self.slots[first..].iter().map_while(Option::as_deref);
        Some(codec::encode_page(first, elements))
    }
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
        stage.elements.insert((self.db, key), Staged::Value(value));
    }

    fn delete(&self, stage: &mut Stage, element: &[u8]) {
        let key = codec::element_key(&self.prefix, element);
        stage.elements.insert((self.db, key), Staged::Delete);
    }
}

/// Bytes of sled's page cache. kv's memory is the primary copy and the checkpoint is
/// only written (by folds) and read once (at startup), so sled's cache would only hold a
/// second copy of recently folded data — sled's default is 1 GiB, a copy of a 512 MiB
/// value whole. A fold's updates touch the pages of the keys it changed; this keeps the
/// index pages those need.
const CACHE_CAPACITY: u64 = 16 * 1024 * 1024;

impl Files {
    /// Opens the checkpoint in `dir`.
    pub fn open(dir: &Path) -> Result<Files, sled::Error> {
        // sled never flushes on its own schedule: only a fold writes to it, and the fold
        // flushes before it deletes the journal files it folded.
        let db = open_sled(
            sled::Config::new()
                .path(dir)
                .flush_every_ms(None)
                .cache_capacity(CACHE_CAPACITY),
        )?;
        let meta = db.open_tree("meta")?;
        let position = meta
            .get(POSITION_KEY)?
            .and_then(|v| Position::decode(&v))
            .unwrap_or_default();
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
            position,
        })
    }

    /// Where in the journal this checkpoint stands.
    pub fn position(&self) -> Position {
        self.position
    }

    /// Loads every live key into `keyspace`: a collection from its header and the prefix
    /// scan of its elements (in list order, for lists). Keys that expired while the server
    /// was down are deleted with their elements. Returns (loaded, expired).
    pub fn load(&self, keyspace: &mut Keyspace, now: u64) -> Result<(usize, usize), sled::Error> {
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
            Body::List { .. } => Value::List(Box::new(List::from(
                items.map(|(_, v)| bytes(v)).collect::<VecDeque<_>>(),
            ))),
            Body::PagedList { .. } => {
                let mut list = VecDeque::new();
                for (page, v) in items {
                    let Some((_, elements)) = codec::decode_page(&v) else {
                        warn!("db{n}: skipping an undecodable list page of {key:?} ({page:?})");
                        continue;
                    };
                    list.extend(elements);
                }
                Value::List(Box::new(List::from(list)))
            }
            Body::Set => Value::Set(items.map(|(m, _)| m).collect()),
            Body::ZSet => Value::ZSet(Box::new(ZSet::from(
                items
                    .map(|(m, v)| (m, codec::decode_score(&v).unwrap_or(f64::NAN)))
                    .collect::<Vec<_>>(),
            ))),
        }))
    }

    /// Points each of `dbs` at a new physical id (two empty trees) and drops the old
    /// trees: one atomic write to `meta`, which also moves the position to `at`.
    fn flush_dbs(&mut self, dbs: &[usize], at: Position) -> Result<(), sled::Error> {
        let mut batch = sled::Batch::default();
        let mut fresh = Vec::with_capacity(dbs.len());
        for &n in dbs {
            let id = self.next_id;
            self.next_id += 1;
            batch.insert(db_key(n), &id.to_be_bytes());
            fresh.push((n, id));
        }
        batch.insert("next", &self.next_id.to_be_bytes());
        batch.insert(POSITION_KEY, &at.encode());
        self.meta.apply_batch(batch)?;
        self.position = at;
        for (n, id) in fresh {
            let old = std::mem::replace(&mut self.ids[n], id);
            self.records[n] = self.db.open_tree(records_name(id))?;
            self.elements[n] = self.db.open_tree(elements_name(id))?;
            self.db.drop_tree(records_name(old))?;
            self.db.drop_tree(elements_name(old))?;
        }
        Ok(())
    }

    fn swap_db(&mut self, a: usize, b: usize, at: Position) -> Result<(), sled::Error> {
        let mut batch = sled::Batch::default();
        batch.insert(db_key(a), &self.ids[b].to_be_bytes());
        batch.insert(db_key(b), &self.ids[a].to_be_bytes());
        batch.insert(POSITION_KEY, &at.encode());
        self.meta.apply_batch(batch)?;
        self.position = at;
        self.ids.swap(a, b);
        self.records.swap(a, b);
        self.elements.swap(a, b);
        Ok(())
    }

    /// Writes what the stage gathered and moves the position to `at`, in one
    /// transaction over `meta` and the trees of every database the stage touches.
    fn write(&mut self, stage: &mut Stage, at: Position) -> Result<(), sled::Error> {
        let mut batches: Vec<Option<(sled::Batch, sled::Batch)>> =
            (0..DATABASES).map(|_| None).collect();
        for (n, staged) in stage.records.iter_mut().enumerate() {
            for (key, record) in staged.drain() {
                let (records, _) = batches[n].get_or_insert_with(Default::default);
                match record {
                    Some(record) => records.insert(&key[..], codec::encode_record(&record)),
                    None => records.remove(&key[..]),
                }
            }
        }
        for ((n, key), staged) in std::mem::take(&mut stage.elements) {
            let (_, elements) = batches[n].get_or_insert_with(Default::default);
            match staged {
                Staged::Value(value) => elements.insert(key, value),
                Staged::Page(page) => match page.encode() {
                    Some(value) => elements.insert(key, value),
                    None => elements.remove(key),
                },
                Staged::Delete => elements.remove(key),
            }
        }
        let mut meta = sled::Batch::default();
        meta.insert(POSITION_KEY, &at.encode());
        let mut trees = vec![&self.meta];
        let mut writes = vec![meta];
        for (n, batch) in batches.into_iter().enumerate() {
            if let Some((records, elements)) = batch {
                trees.extend([&self.records[n], &self.elements[n]]);
                writes.extend([records, elements]);
            }
        }
        let result: TransactionResult<()> = trees.as_slice().transaction(|views| {
            for (view, batch) in views.iter().zip(&writes) {
                view.apply_batch(batch)?;
            }
            Ok(())
        });
        result.map_err(|e| match e {
            TransactionError::Storage(e) => e,
            TransactionError::Abort(()) => sled::Error::Unsupported("aborted".into()),
        })?;
        self.position = at;
        Ok(())
    }

    /// A key's record as the changes so far leave it.
    fn record(&self, stage: &Stage, db: usize, key: &Bytes) -> Result<Option<Record>, sled::Error> {
        if let Some(record) = stage.records[db].get(&key[..]) {
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
            stage
                .elements
                .insert((db, item?.0.to_vec()), Staged::Delete);
        }
        let staged = stage
            .elements
            .range_mut((db, prefix.clone())..)
            .take_while(|((n, k), _)| *n == db && k.starts_with(&prefix));
        for (_, value) in staged {
            *value = Staged::Delete;
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
                    *self.slot(stage, &t, tail)? = Some(Bytes::copy_from_slice(value));
                    tail += 1;
                }
                Body::PagedList {
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
        stage.records[db].insert(key, Some(record));
        Ok(())
    }

    /// The element at list position `position`, in its page as the changes so far leave
    /// it: the staged page, else the page on disk, else (none yet, or the list was
    /// dropped in this chunk) an empty one.
    fn slot<'s>(
        &self,
        stage: &'s mut Stage,
        t: &Target,
        position: u64,
    ) -> Result<&'s mut Option<Bytes>, sled::Error> {
        let key = codec::element_key(&t.prefix, &codec::list_page(position));
        let staged = match stage.elements.entry((t.db, key)) {
            btree_map::Entry::Occupied(entry) => entry.into_mut(),
            btree_map::Entry::Vacant(entry) => {
                let stored = self.elements[t.db].get(&entry.key().1)?;
                let page = stored.and_then(|bytes| Page::decode(&bytes));
                entry.insert(Staged::Page(page.unwrap_or_else(Page::empty)))
            }
        };
        if !matches!(staged, Staged::Page(_)) {
            *staged = Staged::Page(Page::empty());
        }
        let Staged::Page(page) = staged else {
            unreachable!("made a page just above")
        };
        Ok(&mut page.slots[(position % codec::LIST_PAGE_SLOTS as u64) as usize])
    }

    /// Writes (`Some`) or deletes (`None`) the element at a list position: in its page for
    /// a paged list, as a record of its own for a format-2 list.
    fn set_position(
        &self,
        stage: &mut Stage,
        t: &Target,
        paged: bool,
        position: u64,
        value: Option<Bytes>,
    ) -> Result<(), sled::Error> {
        if paged {
            *self.slot(stage, t, position)? = value;
        } else {
            let at = codec::list_position(position);
            match value {
                Some(value) => t.put(stage, &at, value.to_vec()),
                None => t.delete(stage, &at),
            }
        }
        Ok(())
    }

    fn remove(&self, stage: &mut Stage, db: usize, key: Bytes) -> Result<(), sled::Error> {
        if self
            .record(stage, db, &key)?
            .is_some_and(|r| r.body.is_collection())
        {
            self.drop_elements(stage, db, &key)?;
        }
        stage.records[db].insert(key, None);
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
                    Value::List(_) => Body::PagedList {
                        head: codec::LIST_ORIGIN,
                        tail: codec::LIST_ORIGIN,
                    },
                    Value::Set(_) => Body::Set,
                    _ => Body::ZSet,
                },
            },
        };
        let t = Target::new(db, &key);
        let paged = matches!(record.body, Body::PagedList { .. });
        match (&mut record.body, edit) {
            (
                Body::List { head, tail } | Body::PagedList { head, tail },
                Edit::ListPush { left, values },
            ) => {
                for value in values {
                    let position = if left {
                        *head -= 1;
                        *head
                    } else {
                        *tail += 1;
                        *tail - 1
                    };
                    self.set_position(stage, &t, paged, position, Some(value))?;
                }
            }
            (
                Body::List { head, tail } | Body::PagedList { head, tail },
                Edit::ListPop { left, count },
            ) => {
                for position in pop_positions(head, tail, left, count) {
                    self.set_position(stage, &t, paged, position, None)?;
                }
            }
            (
                Body::List { head, tail } | Body::PagedList { head, tail },
                Edit::ListTrim { front, back },
            ) => {
                let front = pop_positions(head, tail, true, front);
                let back = pop_positions(head, tail, false, back);
                for position in front.chain(back) {
                    self.set_position(stage, &t, paged, position, None)?;
                }
            }
            (
                Body::List { head, tail } | Body::PagedList { head, tail },
                Edit::ListSet { index, value },
            ) => {
                let position = *head + index as u64;
                if position < *tail {
                    self.set_position(stage, &t, paged, position, Some(value))?;
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
        stage.records[db].insert(key, Some(record));
        Ok(())
    }

    /// Stages one change read from the journal between `before` and `after`.
    /// Whole-database changes are barriers: what came before is written first (at
    /// `before`), then the change itself moves the position to `after`.
    fn apply(
        &mut self,
        change: Change,
        stage: &mut Stage,
        before: Position,
        after: Position,
    ) -> Result<(), sled::Error> {
        match change {
            Change::Put { db, key, entry } if db < DATABASES => self.put(stage, db, key, entry),
            Change::Remove { db, key } if db < DATABASES => self.remove(stage, db, key),
            Change::Edit { db, key, edit } if db < DATABASES => self.edit(stage, db, key, edit),
            Change::Expire { db, key, at } if db < DATABASES => {
                if let Some(mut record) = self.record(stage, db, &key)? {
                    record.expires_at = at;
                    stage.records[db].insert(key, Some(record));
                }
                Ok(())
            }
            Change::FlushDb { db } if db < DATABASES => {
                self.write(stage, before)?;
                self.flush_dbs(&[db], after)
            }
            Change::FlushAll => {
                self.write(stage, before)?;
                let all: Vec<usize> = (0..DATABASES).collect();
                self.flush_dbs(&all, after)
            }
            Change::SwapDb { a, b } if a < DATABASES && b < DATABASES => {
                self.write(stage, before)?;
                self.swap_db(a, b, after)
            }
            // A database number this build does not have.
            _ => Ok(()),
        }
    }

    /// Folds journal file `generation` into sled, from where the checkpoint stands, in
    /// transactions of [`FOLD_CHUNK`] changes; the last one moves the position to the
    /// start of the next file. A file the checkpoint is already past is skipped.
    pub(super) fn fold(
        &mut self,
        journal_dir: &Path,
        generation: u64,
    ) -> Result<usize, sled::Error> {
        if generation < self.position.generation {
            return Ok(0);
        }
        let from = if generation == self.position.generation {
            self.position.offset
        } else {
            0
        };
        let mut reader = journal::Reader::open(journal_dir, generation, from)?;
        let mut stage = Stage::default();
        let mut before = Position {
            generation,
            offset: reader.offset(),
        };
        let (mut folded, mut staged) = (0, 0);
        while let Some((change, end)) = reader.next_change()? {
            let after = Position {
                generation,
                offset: end,
            };
            self.apply(change, &mut stage, before, after)?;
            before = after;
            folded += 1;
            staged += 1;
            if staged == FOLD_CHUNK {
                self.write(&mut stage, after)?;
                staged = 0;
            }
        }
        if let Some(damage) = reader.damage() {
            warn!(
                "journal file {generation}: folded up to {damage} at byte {}",
                reader.offset()
            );
        }
        let next = Position {
            generation: generation + 1,
            offset: 0,
        };
        self.write(&mut stage, next)?;
        Ok(folded)
    }

    /// Folds every journal file up to and including `through`, flushes sled, then
    /// deletes the files: a file goes only once what it holds is durable in sled.
    fn fold_through(&mut self, journal_dir: &Path, through: u64) -> Result<usize, sled::Error> {
        let generations: Vec<u64> = journal::generations(journal_dir)?
            .into_iter()
            .filter(|&g| g <= through)
            .collect();
        let mut folded = 0;
        for &generation in &generations {
            folded += self.fold(journal_dir, generation)?;
        }
        self.db.flush()?;
        for generation in generations {
            journal::remove(journal_dir, generation)?;
        }
        journal::sync_directory(journal_dir)?;
        Ok(folded)
    }
}

/// A request to the folder thread: fold the journal files up to and including `through`
/// (closed by the writer), then count `saves` `SAVE`s as done; `stop` after it.
pub struct Fold {
    pub through: u64,
    pub saves: u64,
    pub stop: bool,
}

/// The folder thread: folds closed journal files into the checkpoint, in the background,
/// so the writer (and the clients waiting on it) never wait for sled.
pub fn folder(
    mut files: Files,
    journal_dir: PathBuf,
    requests: mpsc::Receiver<Fold>,
    progress: Arc<watch::Sender<Progress>>,
) {
    while let Ok(mut request) = requests.recv() {
        // Requests that queued up while the last fold ran are one fold.
        while let Ok(next) = requests.try_recv() {
            request = Fold {
                through: request.through.max(next.through),
                saves: request.saves.max(next.saves),
                stop: request.stop || next.stop,
            };
        }
        match files.fold_through(&journal_dir, request.through) {
            Ok(folded) => info!(
                "folded {folded} journaled changes into the checkpoint (journal files up to {})",
                request.through
            ),
            Err(e) => error!("folding the journal into the checkpoint failed: {e}"),
        }
        release_replaced_pages();
        progress.send_modify(|p| {
            p.syncs = p.syncs.max(request.saves);
            p.last_flush = unix_secs();
        });
        if request.stop {
            break;
        }
    }
    info!("checkpoint closed");
}

/// Frees the pages sled replaced during a fold, now rather than some folds later.
///
/// sled never frees a page it replaced at once: a reader on another thread may still be
/// looking at it. It hands the old page to crossbeam's epoch-based collector, which frees
/// it once every thread has moved past the moment it was replaced, and each thread keeps
/// the pages it retired in a local bag until 64 have gathered. A fold that wrote one
/// 512 MiB value leaves that value's old page in the folder's bag, held until 63 more
/// pages are retired — for good, if the server then sits idle. Pinning and flushing
/// pushes the bag to the global collector and lets the epoch advance (no other thread of
/// kv uses sled), a few times so the garbage is two epochs old and freed.
fn release_replaced_pages() {
    for _ in 0..4 {
        sled::pin().flush();
    }
}

/// Takes `count` positions from one end of the list at `head..tail`, moving that end, and
/// returns them (the elements there are to be deleted).
fn pop_positions(head: &mut u64, tail: &mut u64, left: bool, count: usize) -> Range<u64> {
    let count = (count as u64).min(*tail - *head);
    if left {
        *head += count;
        *head - count..*head
    } else {
        *tail -= count;
        *tail..*tail + count
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

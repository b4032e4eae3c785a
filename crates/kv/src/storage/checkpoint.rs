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
//!   journal already says which elements (a [`Change::Edit`](crate::keyspace::Change::Edit)), so the writer never reads
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
//!   is read once, edited in memory ([`stage::Staged::Page`]) and written once — the same
//!   idea as the in-memory list's packed chunks, and Redis's quicklist. Lists written by format 2
//!   (`Body::List`, a record per element) are still read and edited that way; a list is
//!   paged once it is rewritten whole.
//!
//! `FLUSHDB` and `SWAPDB` must be atomic, and deleting or renaming a million keys is not,
//! so a `meta` tree maps each database number to a physical id that names *both* of its
//! trees (`t<id>`, `e<id>`): `FLUSHDB` points the database at a fresh id (then drops the
//! old trees) and `SWAPDB` swaps two ids, each a single atomic write.
//!
//! Records written by format version 1 (whole collections in one record) are not read.
//!
//! ## The modules
//!
//! - this module: the files — opening sled, the trees of each database, the position.
//! - `load`: reading the checkpoint back into memory at startup.
//! - `stage`: what a chunk of journal changes leaves on disk, gathered in memory.
//! - `fold`: writing staged chunks to sled, exactly once, on the folder thread.

mod fold;
mod load;
mod stage;

use std::path::Path;
use std::time::{Duration, Instant};

use crate::keyspace::DATABASES;

pub use fold::{Fold, folder};

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
    /// Per database: key -> [`Record`](crate::codec::Record).
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

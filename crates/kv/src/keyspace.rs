//! The keyspace: 16 databases of keys, each with a value and maybe a deadline.
//!
//! This is the engine, the part to read first. It is synchronous and knows nothing about
//! sockets or disks; every method that depends on time takes `now` (Unix milliseconds).
//!
//! ## One write path
//!
//! Every change goes through [`Keyspace::apply`] with a [`Mutation`]. `apply` is
//! deterministic given `now`, and it records what it changed, key by key, in the
//! [`Journal`] as [`Change`]s: the new record of a key, an edit to a collection's
//! elements, a new deadline, a removal, a flushed or swapped database. Reads that find an expired key remove it and journal that removal too. The
//! journal is the single source of truth for "what happened": the server drains it after
//! each command and hands it to persistence (and, later, to the replication stream), so
//! the disk can never see a change the memory did not make, or the reverse.
//!
//! ## Ordered by hash: why SCAN can keep its promise
//!
//! Each database is a `BTreeMap` ordered by [`Slot`] = (64-bit hash of the key, key).
//! `SCAN`'s cursor is a position in that order: "every key whose hash is below the cursor
//! has been returned". Adding or removing other keys never moves a key, so a key present
//! for the whole iteration is returned (exactly once: a key is never seen twice either).
//! Redis gets the same guarantee from a reverse-binary cursor over a hash table that
//! resizes; an ordered map gets it for free. The hash (not the key itself) is the order so
//! that the cursor is a plain number clients can pass back, and so that a prefix of keys
//! sampled for expiry is spread across the keyspace.
//!
//! ## Expiry: lazy, plus an active sweep
//!
//! A key past its deadline is dead the moment it is touched: every lookup checks the
//! deadline and deletes the key instead of returning it (lazy expiry). Keys nobody touches
//! again would stay in memory forever, so the server also runs [`Keyspace::sweep`]
//! periodically: Redis's sampling algorithm. Take the next 20 keys that have a TTL
//! (walking the index of volatile keys with a cursor, as Redis 6+ does), delete the
//! expired ones, and go again while more than a quarter of the sample was expired — a
//! high ratio means many more are waiting. Each round holds the lock for 20 keys only, and
//! the server bounds the time per cycle, so a million keys expiring at once are reclaimed
//! over many short steps instead of one long stall. We chose sampling over a deadline index
//! (mini-redis keeps a `BTreeSet<(deadline, key)>`) because it needs no second ordering to
//! keep in sync on every write; the price is that counting live keys (`DBSIZE`) must look at
//! the deadlines of the volatile keys.

use std::collections::BTreeMap;
use std::collections::btree_map;
use std::ops::Bound;

use bytes::{Bytes, BytesMut};
use proto::CommandError;
use proto::glob::glob_match;
use xxhash_rust::xxh3::xxh3_64;

use crate::types::edit::{Delta, Edit};
use crate::value::{Entry, SmallBytes, Value};

mod replay;
mod touched;
mod watch;

pub use touched::{Touch, Touches};
pub use watch::{Watch, Watches};

/// Databases per server, as Redis (`SELECT 0` .. `SELECT 15`).
pub const DATABASES: usize = 16;
/// The largest string Redis allows (`proto-max-bulk-len` default).
pub const MAX_STRING: usize = 512 * 1024 * 1024;
/// Bookkeeping bytes per key beyond its key and value (map node share, headers): an
/// estimate, so `used_memory` grows with the number of keys, not only their sizes.
const KEY_OVERHEAD: usize = 80;
/// Keys examined per sweep round (Redis's `ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP`).
pub const SWEEP_SAMPLE: usize = 20;

/// A key and its position in the database's order. The keyspace's keys are
/// [`SmallBytes`] (inline when short: see [`crate::value`]); the collections' elements
/// (hash fields, set and sorted-set members) are `Bytes`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot<K = Bytes> {
    hash: u64,
    key: K,
}

impl<K: AsRef<[u8]>> Slot<K> {
    pub fn new(key: K) -> Self {
        Slot {
            hash: xxh3_64(key.as_ref()),
            key,
        }
    }
}

impl<K: Default> Slot<K> {
    /// The first position at or after `hash` (for cursors and random picks).
    pub fn at(hash: u64) -> Self {
        Slot {
            hash,
            key: K::default(),
        }
    }
}

impl<K> Slot<K> {
    pub fn key(&self) -> &K {
        &self.key
    }

    pub fn hash(&self) -> u64 {
        self.hash
    }
}

/// A key of the keyspace, where the maps hold it.
type Key = Slot<SmallBytes>;

/// The map position of `key` (request bytes): a copy, inline when short, so looking a
/// key up allocates nothing for keys of up to 22 bytes.
fn key_slot(key: &[u8]) -> Key {
    Slot::new(SmallBytes::copy(key))
}

/// One database.
#[derive(Debug, Default)]
pub struct Db {
    entries: BTreeMap<Key, Entry>,
    /// Keys that have a TTL, with their deadline: what the expiry sweep samples.
    expires: BTreeMap<Key, u64>,
    /// Where the next sweep round starts.
    sweep_cursor: Option<Key>,
    /// Estimated bytes held.
    used: usize,
}

fn footprint(slot: &Key, entry: &Entry) -> usize {
    slot.key.len() + entry.value.memory() + KEY_OVERHEAD
}

impl Db {
    /// Inserts or replaces, keeping the TTL index and memory estimate in step.
    ///
    /// Overwriting a present key (every `SET` of a hot key) replaces the entry in place:
    /// the map keeps the key it holds, and the TTL index is touched only if a deadline
    /// comes or goes.
    fn put(&mut self, slot: Key, entry: Entry) {
        self.used += footprint(&slot, &entry);
        let deadline = entry.expires_at;
        let had_deadline = match self.entries.get_mut(&slot) {
            Some(old) => {
                self.used = self.used.saturating_sub(footprint(&slot, old));
                std::mem::replace(old, entry).expires_at.is_some()
            }
            None => {
                if let Some(at) = deadline {
                    self.expires.insert(slot.clone(), at);
                }
                self.entries.insert(slot, entry);
                return;
            }
        };
        match deadline {
            Some(at) => match self.expires.get_mut(&slot) {
                Some(old) => *old = at,
                None => {
                    self.expires.insert(slot, at);
                }
            },
            None if had_deadline => {
                self.expires.remove(&slot);
            }
            None => {}
        }
    }

    fn take(&mut self, slot: &Key) -> Option<Entry> {
        let old = self.entries.remove(slot)?;
        if old.expires_at.is_some() {
            self.expires.remove(slot);
        }
        self.used = self.used.saturating_sub(footprint(slot, &old));
        Some(old)
    }

    /// Changes a present key's deadline in place, keeping the TTL index in step.
    fn set_deadline(&mut self, key: &[u8], deadline: Option<u64>) {
        let slot = key_slot(key);
        let Some(entry) = self.entries.get_mut(&slot) else {
            return;
        };
        entry.expires_at = deadline;
        match (deadline, self.expires.get_mut(&slot)) {
            (Some(at), Some(old)) => *old = at,
            (Some(at), None) => {
                self.expires.insert(slot, at);
            }
            (None, _) => {
                self.expires.remove(&slot);
            }
        }
    }

    /// Keys, counting only live ones: O(keys with a TTL).
    fn live_len(&self, now: u64) -> usize {
        self.entries.len() - self.expired_count(now)
    }

    fn live_volatile(&self, now: u64) -> usize {
        self.expires.len() - self.expired_count(now)
    }

    fn expired_count(&self, now: u64) -> usize {
        self.expires.values().filter(|&&at| at <= now).count()
    }
}

/// One change to the durable state, in the order it happened. Serializable: the
/// replication stream ships changes as they are (see `crate::replication`), so a new
/// variant replicates with no further code.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Change {
    /// The key now holds this record (value and absolute deadline).
    Put {
        db: usize,
        key: Bytes,
        entry: Entry,
    },
    Remove {
        db: usize,
        key: Bytes,
    },
    /// A write to the collection at `key`, as its effect on the elements it touched (see
    /// [`Edit`]): O(elements touched) to journal, store and replicate. A key missing where
    /// it is replayed is created empty first (the write created it; no TTL).
    Edit {
        db: usize,
        key: Bytes,
        edit: Edit,
    },
    /// The key's deadline changed (`EXPIRE`, `PERSIST`, `GETEX`), for any type: only the
    /// deadline travels, not the value.
    Expire {
        db: usize,
        key: Bytes,
        at: Option<u64>,
    },
    FlushDb {
        db: usize,
    },
    FlushAll,
    SwapDb {
        a: usize,
        b: usize,
    },
    /// The changes of one `EXEC`, in order: applied all or none. The replication stream
    /// carries it as one message, which a replica applies under one lock; a journal file
    /// holds it as a [`Change::TransactionStart`] and then each change as a record of its
    /// own (see `crate::storage::journal`).
    Transaction(Vec<Change>),
    /// In a journal file only: the next `changes` records are one transaction's. Recovery
    /// applies none of them unless all are there.
    TransactionStart {
        changes: u64,
    },
}

/// The changes made since the journal was last drained. Off when nobody consumes it
/// (no `--dir`), so a pure in-memory server pays nothing for it.
#[derive(Debug, Default)]
pub struct Journal {
    enabled: bool,
    pending: Vec<Change>,
    /// Number of changes ever journaled: the position of the last one.
    seq: u64,
    /// On a replica the data changes only by the primary's stream: a lookup hides a key
    /// past its deadline but does not delete it (see `crate::replication`).
    follower: bool,
    /// Watched keys, whose counters every change bumps (see [`watch`]).
    watches: Watches,
    /// While an `EXEC` runs: where its changes start in `pending` (see [`watch`]).
    open: Option<usize>,
    /// What changes touched, for notifications and client-side caching (see [`touched`]).
    touches: Touches,
}

impl Journal {
    /// Records a change, and tells the clients watching its key.
    fn push(&mut self, change: Change) {
        if self.watches.is_active() {
            self.watches.touch(&change);
        }
        self.touches.note(&change, false);
        self.record(change);
    }

    /// Records the removal of a key whose deadline passed: no watcher hears of it (see
    /// [`Self::record`]), but observers do, as an expiry.
    fn expired(&mut self, change: Change) {
        self.touches.note(&change, true);
        self.record(change);
    }

    /// Records a change no watcher needs to hear of: a key deleted because its deadline
    /// passed was already gone for them (see [`watch`]).
    fn record(&mut self, change: Change) {
        if self.enabled {
            self.seq += 1;
            self.pending.push(change);
        }
    }

    /// Must writes describe their changes? Yes while something consumes them (the disk,
    /// replicas), some client watches keys, or an observer reads what they touch.
    fn recording(&self) -> bool {
        self.enabled || self.watches.is_active() || self.touches.is_observed()
    }

    /// Position of the last change journaled.
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

/// Counters for `INFO stats`.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyspaceStats {
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub expired_keys: u64,
}

/// `SET`'s NX/XX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Always,
    /// NX: only if the key does not exist.
    IfAbsent,
    /// XX: only if it does.
    IfPresent,
}

/// What a write does to the key's TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// Leave it (`KEEPTTL`, `INCR`, `GETEX` without options).
    Keep,
    /// Remove it (a plain `SET`, `GETEX PERSIST`).
    Clear,
    /// Expire at this Unix millisecond (relative times are made absolute before `apply`).
    At(u64),
}

/// `EXPIRE`'s NX/XX/GT/LT. Redis lets XX combine with GT or LT; the parser rejects the
/// other combinations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExpireCondition {
    /// Only if the key has no TTL.
    pub nx: bool,
    /// Only if it has one.
    pub xx: bool,
    /// Only if the new deadline is later (no TTL counts as infinitely late).
    pub gt: bool,
    /// Only if the new deadline is earlier.
    pub lt: bool,
}

impl ExpireCondition {
    /// May a key whose deadline is `current` get the deadline `at`?
    pub fn allows(self, current: Option<u64>, at: u64) -> bool {
        !(self.nx && current.is_some()
            || self.xx && current.is_none()
            || self.gt && current.is_none_or(|cur| at <= cur)
            || self.lt && current.is_some_and(|cur| at >= cur))
    }
}

/// Every way the keyspace can change. Times are absolute, so applying the same mutation
/// at the same `now` always has the same effect (what a replica or a log replay needs).
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    /// SET and its family (SETNX, SETEX, PSETEX, GETSET). `get`: reply with the old value.
    Set {
        key: Bytes,
        value: Bytes,
        condition: Condition,
        ttl: Ttl,
        get: bool,
    },
    Append {
        key: Bytes,
        value: Bytes,
    },
    SetRange {
        key: Bytes,
        offset: usize,
        value: Bytes,
    },
    IncrBy {
        key: Bytes,
        delta: i64,
    },
    IncrByFloat {
        key: Bytes,
        delta: f64,
    },
    GetDel {
        key: Bytes,
    },
    GetEx {
        key: Bytes,
        ttl: Ttl,
    },
    /// MSET, or MSETNX with `only_if_none_exist`.
    MSet {
        pairs: Vec<(Bytes, Bytes)>,
        only_if_none_exist: bool,
    },
    Del {
        keys: Vec<Bytes>,
    },
    Rename {
        from: Bytes,
        to: Bytes,
        only_if_absent: bool,
    },
    Copy {
        from: Bytes,
        to: Bytes,
        to_db: usize,
        replace: bool,
    },
    /// MOVE: the key, with its TTL, to another database, unless it exists there.
    Move {
        key: Bytes,
        to_db: usize,
    },
    /// EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT: a deadline at or before `now` deletes the key.
    Expire {
        key: Bytes,
        at: u64,
        condition: ExpireCondition,
    },
    Persist {
        key: Bytes,
    },
    Restore {
        key: Bytes,
        value: Value,
        expires_at: Option<u64>,
        replace: bool,
    },
    FlushDb,
    FlushAll,
    SwapDb {
        a: usize,
        b: usize,
    },
    /// A write to hashes, lists, sets or sorted sets (see [`crate::types::ops`]).
    Collection(crate::types::ops::Op),
    /// A bitmap or HyperLogLog write (see [`crate::types::bitwrite`]).
    Bits(crate::types::bitwrite::BitWrite),
    /// A sorted-set STORE form or `ZREMRANGEBYLEX` (see [`crate::types::zstore`]).
    ZStore(crate::types::zstore::ZStore),
}

impl Mutation {
    /// Can this write grow memory? Those are refused over `--maxmemory` (Redis's
    /// `denyoom` commands); deletes and TTL changes are always allowed.
    pub fn may_grow(&self) -> bool {
        matches!(
            self,
            Mutation::Set { .. }
                | Mutation::Append { .. }
                | Mutation::SetRange { .. }
                | Mutation::IncrBy { .. }
                | Mutation::IncrByFloat { .. }
                | Mutation::MSet { .. }
                | Mutation::Copy { .. }
                | Mutation::Restore { .. }
        ) || matches!(self, Mutation::Collection(op) if op.may_grow())
            || matches!(self, Mutation::Bits(op) if op.may_grow())
            || matches!(self, Mutation::ZStore(op) if op.may_grow())
    }
}

/// What a mutation answers, before it becomes a reply frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Ok,
    Nil,
    Integer(i64),
    Bulk(Bytes),
    /// A list of answers (`LPOP key 3`, `ZPOPMIN key`).
    Array(Vec<Outcome>),
    /// No list at all (`LPOP key 3` on a missing key; RESP2 `*-1`).
    NullArray,
    /// A sorted-set score (`ZADD ... INCR`): a double in RESP3.
    Score(f64),
    /// Distinct members (`SPOP key count`): a set in RESP3.
    Members(Vec<Bytes>),
    /// Members with their scores (`ZPOPMIN key count`): [member, score] pairs in RESP3.
    Scored(Vec<(Bytes, f64)>),
}

/// A key's TTL as `TTL`/`PTTL`/`EXPIRETIME` see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlState {
    Missing,
    Persistent,
    At(u64),
}

/// One page of `SCAN`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanPage {
    /// Pass back to continue; 0 when the iteration is complete.
    pub cursor: u64,
    pub keys: Vec<Bytes>,
}

/// All databases, the journal of changes and the statistics.
#[derive(Debug)]
pub struct Keyspace {
    dbs: Vec<Db>,
    journal: Journal,
    stats: KeyspaceStats,
    /// Lists written to while clients are blocked on lists (`BLPOP`): the server serves
    /// those clients right after the write, in the order they blocked.
    ready: Vec<(usize, Bytes)>,
    /// Record [`Self::ready`] keys (on while any client is blocked).
    pub track_ready: bool,
}

impl Default for Keyspace {
    fn default() -> Self {
        Keyspace::new(false)
    }
}

fn not_integer() -> CommandError {
    CommandError::NotInteger
}

fn too_long() -> CommandError {
    CommandError::err("string exceeds maximum allowed size (proto-max-bulk-len)")
}

/// Copies request bytes into an allocation of their own. Request arguments are slices
/// of the connection's read buffer; keeping one would pin the whole buffer in memory.
fn own(b: &Bytes) -> Bytes {
    Bytes::copy_from_slice(b)
}

/// Formats a float as Redis's `INCRBYFLOAT` does: plain decimal, no exponent, no
/// trailing zeros (`10.5`, `3000`).
pub fn format_float(v: f64) -> String {
    // Rust's `Display` is the shortest text that parses back to the same f64, and never
    // uses an exponent.
    let text = format!("{v}");
    if text == "-0" { "0".into() } else { text }
}

/// [`Keyspace::live`] on borrowed parts, so the caller can still use the others.
fn live_in<'a>(
    d: &'a mut Db,
    db: usize,
    journal: &mut Journal,
    stats: &mut KeyspaceStats,
    key: &Bytes,
    now: u64,
) -> Option<&'a mut Entry> {
    match d.entries.entry(key_slot(key)) {
        btree_map::Entry::Vacant(_) => None,
        btree_map::Entry::Occupied(o) if journal.follower && o.get().is_expired(now) => None,
        btree_map::Entry::Occupied(o) if o.get().is_expired(now) => {
            let (slot, old) = o.remove_entry();
            d.expires.remove(&slot);
            d.used = d.used.saturating_sub(footprint(&slot, &old));
            stats.expired_keys += 1;
            journal.expired(Change::Remove {
                db,
                key: slot.key.to_bytes(),
            });
            None
        }
        btree_map::Entry::Occupied(o) => Some(o.into_mut()),
    }
}

impl Keyspace {
    /// `journaling`: record changes for persistence/replication.
    pub fn new(journaling: bool) -> Self {
        Keyspace {
            dbs: (0..DATABASES).map(|_| Db::default()).collect(),
            journal: Journal {
                enabled: journaling,
                ..Journal::default()
            },
            stats: KeyspaceStats::default(),
            ready: Vec::new(),
            track_ready: false,
        }
    }

    /// Lists and sorted sets that received elements since the last call (see [`Self::track_ready`]).
    pub fn take_ready(&mut self) -> Vec<(usize, Bytes)> {
        std::mem::take(&mut self.ready)
    }

    /// Takes the changes made since the last call, with the position of the last one.
    pub fn drain_changes(&mut self) -> (Vec<Change>, u64) {
        (std::mem::take(&mut self.journal.pending), self.journal.seq)
    }

    /// The changes made since the last [`Self::clear_changes`], to read in place (the
    /// server encodes them for the disk and the replicas without taking them).
    pub fn changes(&self) -> &[Change] {
        &self.journal.pending
    }

    /// Forgets the changes read with [`Self::changes`], keeping the buffer's capacity.
    pub fn clear_changes(&mut self) {
        self.journal.pending.clear();
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Turns on (or off) noting what each change touches (see [`touched`]).
    pub fn observe(&mut self, on: bool) {
        self.journal.touches.set_observed(on);
    }

    /// What changes touched since the last call (empty unless [`Self::observe`] is on).
    pub fn take_touched(&mut self) -> Vec<Touch> {
        self.journal.touches.take()
    }

    /// `CONFIG RESETSTAT`.
    pub fn reset_stats(&mut self) {
        self.stats = KeyspaceStats::default();
    }

    pub fn stats(&self) -> KeyspaceStats {
        self.stats
    }

    /// Estimated bytes held by all databases.
    pub fn used_memory(&self) -> usize {
        self.dbs.iter().map(|d| d.used).sum()
    }

    /// Adds a record read from disk at startup (not journaled: it is already durable).
    /// Returns `false` if it expired while the server was down: the caller removes it.
    pub fn load(&mut self, db: usize, key: Bytes, entry: Entry, now: u64) -> bool {
        if entry.is_expired(now) {
            return false;
        }
        self.dbs[db].put(key_slot(&key), entry);
        true
    }

    // ----- lookups ---------------------------------------------------------------------

    /// The live entry for `key`, deleting it first if its deadline has passed (lazy
    /// expiry). Every read and write looks keys up through here.
    fn live(&mut self, db: usize, key: &Bytes, now: u64) -> Option<&mut Entry> {
        let Keyspace {
            dbs,
            journal,
            stats,
            ..
        } = self;
        live_in(&mut dbs[db], db, journal, stats, key, now)
    }

    /// Like [`Self::live`], counting a keyspace hit or miss (`INFO stats`).
    fn lookup_read(&mut self, db: usize, key: &Bytes, now: u64) -> Option<&mut Entry> {
        let Keyspace {
            dbs,
            journal,
            stats,
            ..
        } = self;
        let found = live_in(&mut dbs[db], db, journal, stats, key, now);
        if found.is_some() {
            stats.keyspace_hits += 1;
        } else {
            stats.keyspace_misses += 1;
            journal.touches.miss(db, key);
        }
        found
    }

    pub(crate) fn exists(&mut self, db: usize, key: &Bytes, now: u64) -> bool {
        self.live(db, key, now).is_some()
    }

    /// `MEMORY USAGE`: the bytes kv counts for a live key (key, value, overheads).
    pub fn memory_usage(&self, db: usize, key: &Bytes, now: u64) -> Option<usize> {
        let slot = key_slot(key);
        let entry = self.dbs[db]
            .entries
            .get(&slot)
            .filter(|e| !e.is_expired(now))?;
        Some(footprint(&slot, entry))
    }

    /// The value of a live key, without side effects: lets a command that already looked
    /// its keys up with [`Self::value`] borrow several values at once (`SINTER`).
    pub fn peek(&self, db: usize, key: &Bytes, now: u64) -> Option<&Value> {
        self.dbs[db]
            .entries
            .get(&key_slot(key))
            .filter(|e| !e.is_expired(now))
            .map(|e| &e.value)
    }

    /// The live value of `key`, counting a keyspace hit or miss: what every read of a
    /// collection starts from.
    pub fn value(&mut self, db: usize, key: &Bytes, now: u64) -> Option<&Value> {
        self.lookup_read(db, key, now).map(|e| &e.value)
    }

    /// Changes a collection in place: the write path of every hash, list, set and
    /// sorted-set command (called from [`Self::apply`] via [`crate::types::ops`]).
    ///
    /// `f` gets the live value — or, if the key is missing and `create` is given, a new
    /// empty one — and whether the journal is on, and returns its answer and the
    /// [`Delta`]: what it changed. An [`Edit`] is journaled as [`Change::Edit`] (the
    /// elements touched, not the collection); [`Delta::Whole`] as the key's whole record;
    /// a collection left empty deletes its key, as in Redis. `Ok(None)`: the key is
    /// missing and nothing was created. On error nothing changes.
    pub(crate) fn update<R>(
        &mut self,
        db: usize,
        key: &Bytes,
        now: u64,
        create: Option<fn() -> Value>,
        f: impl FnOnce(&mut Value, bool) -> Result<(R, Delta), CommandError>,
    ) -> Result<Option<R>, CommandError> {
        let journaling = self.journal.recording();
        let Keyspace {
            dbs,
            journal,
            stats,
            ..
        } = self;
        let d = &mut dbs[db];
        // The key hashed and copied once, and a live key found in one descent of the map.
        let slot = key_slot(key);
        let (exists, entry) = match d.entries.get_mut(&slot) {
            Some(entry) if !entry.is_expired(now) => (true, entry),
            _ => {
                // Missing, or expired: deleted first (lazy expiry, journaled), as `live`.
                live_in(d, db, journal, stats, key, now);
                let Some(make) = create else {
                    // A pop from a missing key: nothing to clone or look up again.
                    return Ok(None);
                };
                d.put(slot.clone(), Entry::new(make(), None));
                let Some(entry) = d.entries.get_mut(&slot) else {
                    return Ok(None);
                };
                (false, entry)
            }
        };
        let before = entry.value.memory();
        let (answer, delta) = match f(&mut entry.value, journaling) {
            Ok(done) => done,
            Err(e) => {
                if !exists {
                    d.take(&slot);
                }
                return Err(e);
            }
        };
        d.used = (d.used + entry.value.memory()).saturating_sub(before);
        if entry.value.is_empty_collection() {
            d.take(&slot);
            if exists {
                self.journal.push(Change::Remove {
                    db,
                    key: key.clone(),
                });
            }
            return Ok(Some(answer));
        }
        if delta == Delta::Unchanged {
            return Ok(Some(answer));
        }
        if self.track_ready && matches!(entry.value, Value::List(_) | Value::ZSet(_)) {
            self.ready.push((db, key.clone()));
        }
        if journaling {
            let change = match delta {
                Delta::Edit(edit) => Change::Edit {
                    db,
                    key: key.clone(),
                    edit,
                },
                _ => Change::Put {
                    db,
                    key: key.clone(),
                    entry: entry.clone(),
                },
            };
            self.journal.push(change);
        }
        Ok(Some(answer))
    }

    /// Stores a record and journals it.
    pub(crate) fn store(&mut self, db: usize, key: Bytes, entry: Entry) {
        if self.track_ready && matches!(entry.value, Value::List(_) | Value::ZSet(_)) {
            self.ready.push((db, key.clone()));
        }
        if self.journal.recording() {
            self.journal.push(Change::Put {
                db,
                key: key.clone(),
                entry: entry.clone(),
            });
        }
        self.dbs[db].put(key_slot(&key), entry);
    }

    /// Stores a string under a key that is still a view into the request (`SET`,
    /// `MSET`) and journals it.
    ///
    /// The journal gets the request's own bytes: its change is encoded and dropped
    /// before the command returns, so a view is as good as a copy there (see
    /// [`SmallBytes::view`]). The map copies key and value, inline when short.
    fn store_string(&mut self, db: usize, key: &Bytes, value: &Bytes, expires_at: Option<u64>) {
        if self.journal.recording() {
            self.journal.push(Change::Put {
                db,
                key: key.clone(),
                entry: Entry::new(Value::String(SmallBytes::view(value)), expires_at),
            });
        }
        let entry = Entry::new(Value::String(SmallBytes::copy(value)), expires_at);
        self.dbs[db].put(key_slot(key), entry);
    }

    /// Removes a key (live or not) and journals it; returns what it held.
    pub(crate) fn remove(&mut self, db: usize, key: &Bytes) -> Option<Entry> {
        let old = self.dbs[db].take(&key_slot(key))?;
        self.journal.push(Change::Remove {
            db,
            key: key.clone(),
        });
        Some(old)
    }

    // ----- reads -----------------------------------------------------------------------

    /// `GET`: `Ok(None)` for a missing key, `WRONGTYPE` for a non-string.
    pub fn get(&mut self, db: usize, key: &Bytes, now: u64) -> Result<Option<Bytes>, CommandError> {
        match self.lookup_read(db, key, now) {
            None => Ok(None),
            Some(entry) => entry.value.as_string().map(|s| Some(s.to_bytes())),
        }
    }

    /// The entry itself (for `DUMP`), without counting a hit.
    pub fn entry(&mut self, db: usize, key: &Bytes, now: u64) -> Option<Entry> {
        self.live(db, key, now).cloned()
    }

    /// `TYPE`.
    pub fn type_of(&mut self, db: usize, key: &Bytes, now: u64) -> &'static str {
        self.live(db, key, now)
            .map_or("none", |e| e.value.type_name())
    }

    /// `EXISTS` (repeats count) and `TOUCH`.
    pub fn count_existing(&mut self, db: usize, keys: &[Bytes], now: u64) -> i64 {
        keys.iter().filter(|k| self.exists(db, k, now)).count() as i64
    }

    /// `TTL`, `PTTL`, `EXPIRETIME`, `PEXPIRETIME`.
    pub fn ttl(&mut self, db: usize, key: &Bytes, now: u64) -> TtlState {
        match self.live(db, key, now) {
            None => TtlState::Missing,
            Some(Entry {
                expires_at: Some(at),
                ..
            }) => TtlState::At(*at),
            Some(_) => TtlState::Persistent,
        }
    }

    /// `DBSIZE`: live keys only.
    pub fn dbsize(&self, db: usize, now: u64) -> usize {
        self.dbs[db].live_len(now)
    }

    /// `(keys, keys with a TTL)` per non-empty database, for `INFO keyspace`.
    pub fn keyspace_info(&self, now: u64) -> Vec<(usize, usize, usize)> {
        self.dbs
            .iter()
            .enumerate()
            .map(|(i, d)| (i, d.live_len(now), d.live_volatile(now)))
            .filter(|&(_, keys, _)| keys > 0)
            .collect()
    }

    /// `KEYS pattern`: every live key matching a Redis glob.
    pub fn keys(&self, db: usize, pattern: &[u8], now: u64) -> Vec<Bytes> {
        let all = pattern == b"*";
        self.dbs[db]
            .entries
            .iter()
            .filter(|(slot, entry)| {
                !entry.is_expired(now) && (all || glob_match(pattern, &slot.key))
            })
            .map(|(slot, _)| slot.key.to_bytes())
            .collect()
    }

    /// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`: visits about `count` keys
    /// from the cursor's position on. See the module docs for the guarantee. A group of
    /// keys with the same hash is never split across pages, so "every hash below the
    /// cursor is done" stays true.
    pub fn scan(
        &self,
        db: usize,
        cursor: u64,
        count: usize,
        pattern: Option<&[u8]>,
        type_name: Option<&str>,
        now: u64,
    ) -> ScanPage {
        let mut keys = Vec::new();
        let mut last_hash = None;
        for (visited, (slot, entry)) in self.dbs[db].entries.range(Slot::at(cursor)..).enumerate() {
            if visited >= count && last_hash != Some(slot.hash) {
                // Resume at this key's hash next time.
                return ScanPage {
                    cursor: slot.hash,
                    keys,
                };
            }
            last_hash = Some(slot.hash);
            let wanted = !entry.is_expired(now)
                && pattern.is_none_or(|p| glob_match(p, &slot.key))
                && type_name.is_none_or(|t| t.eq_ignore_ascii_case(entry.value.type_name()));
            if wanted {
                keys.push(slot.key.to_bytes());
            }
        }
        ScanPage { cursor: 0, keys }
    }

    /// `RANDOMKEY`: the first live key at or after a random position. `random` supplies
    /// positions (injected so tests are deterministic).
    pub fn random_key(
        &mut self,
        db: usize,
        now: u64,
        mut random: impl FnMut() -> u64,
    ) -> Option<Bytes> {
        // Expired keys found on the way are deleted, as Redis does; give up on sampling
        // after a few tries and walk in order, so a database full of expired keys ends.
        for _ in 0..16 {
            let d = &self.dbs[db];
            let (slot, entry) = d
                .entries
                .range(Slot::at(random())..)
                .next()
                .or_else(|| d.entries.iter().next())?;
            if !entry.is_expired(now) {
                return Some(slot.key.to_bytes());
            }
            let key = slot.key.to_bytes();
            self.live(db, &key, now);
        }
        self.dbs[db]
            .entries
            .iter()
            .find(|(_, e)| !e.is_expired(now))
            .map(|(slot, _)| slot.key.to_bytes())
    }

    // ----- active expiry ---------------------------------------------------------------

    /// One round of the active expiry sweep on `db`: examines up to `sample` keys that
    /// have a TTL, continuing where the previous round stopped, and deletes the expired
    /// ones. Returns `(examined, expired)`; the caller repeats while more than 25% of a
    /// sample was expired.
    pub fn sweep(&mut self, db: usize, now: u64, sample: usize) -> (usize, usize) {
        let d = &mut self.dbs[db];
        let start = match d.sweep_cursor.take() {
            Some(slot) => Bound::Excluded(slot),
            None => Bound::Unbounded,
        };
        let mut examined = 0;
        let mut due = Vec::new();
        let mut last = None;
        for (slot, &at) in d.expires.range((start, Bound::Unbounded)).take(sample) {
            examined += 1;
            if at <= now {
                due.push(slot.clone());
            }
            last = Some(slot);
        }
        // A short sample means we reached the end: start from the beginning next time.
        d.sweep_cursor = if examined == sample {
            last.cloned()
        } else {
            None
        };
        let expired = due.len();
        for slot in due {
            if let Some(old) = self.dbs[db].take(&slot) {
                debug_assert!(old.is_expired(now));
                self.stats.expired_keys += 1;
                self.journal.expired(Change::Remove {
                    db,
                    key: slot.key.to_bytes(),
                });
            }
        }
        (examined, expired)
    }

    /// Does `db` have any key with a TTL? (The sweep skips databases without.)
    pub fn has_volatile(&self, db: usize) -> bool {
        !self.dbs[db].expires.is_empty()
    }

    // ----- the write path --------------------------------------------------------------

    /// Applies one mutation to database `db` at time `now`. The only way the keyspace
    /// changes; every change it makes is journaled.
    pub fn apply(
        &mut self,
        db: usize,
        mutation: Mutation,
        now: u64,
    ) -> Result<Outcome, CommandError> {
        match mutation {
            Mutation::Set {
                key,
                value,
                condition,
                ttl,
                get,
            } => self.set(db, key, value, condition, ttl, get, now),
            Mutation::Append { key, value } => {
                let mut buf = match self.live(db, &key, now) {
                    Some(entry) => {
                        let old = entry.value.as_string()?;
                        if old.len() + value.len() > MAX_STRING {
                            return Err(too_long());
                        }
                        let mut buf = BytesMut::with_capacity(old.len() + value.len());
                        buf.extend_from_slice(old);
                        buf
                    }
                    None => BytesMut::with_capacity(value.len()),
                };
                buf.extend_from_slice(&value);
                let len = buf.len() as i64;
                self.update_string(db, key, buf.freeze(), now);
                Ok(Outcome::Integer(len))
            }
            Mutation::SetRange { key, offset, value } => {
                let old = match self.live(db, &key, now) {
                    Some(entry) => entry.value.as_string()?.clone(),
                    None if value.is_empty() => return Ok(Outcome::Integer(0)),
                    None => SmallBytes::default(),
                };
                if value.is_empty() {
                    return Ok(Outcome::Integer(old.len() as i64));
                }
                let end = offset.checked_add(value.len()).filter(|&e| e <= MAX_STRING);
                let Some(end) = end else {
                    return Err(too_long());
                };
                let mut buf = BytesMut::from(&old[..]);
                if buf.len() < end {
                    buf.resize(end, 0);
                }
                buf[offset..end].copy_from_slice(&value);
                let len = buf.len() as i64;
                self.update_string(db, key, buf.freeze(), now);
                Ok(Outcome::Integer(len))
            }
            Mutation::IncrBy { key, delta } => {
                let current = match self.live(db, &key, now) {
                    Some(entry) => proto::decode::parse_int(entry.value.as_string()?)
                        .ok_or_else(not_integer)?,
                    None => 0,
                };
                let next = current
                    .checked_add(delta)
                    .ok_or_else(|| CommandError::err("increment or decrement would overflow"))?;
                self.update_string(db, key, Bytes::from(next.to_string()), now);
                Ok(Outcome::Integer(next))
            }
            Mutation::IncrByFloat { key, delta } => {
                let current = match self.live(db, &key, now) {
                    Some(entry) => proto::args::parse_f64(entry.value.as_string()?)
                        .ok_or(CommandError::NotFloat)?,
                    None => 0.0,
                };
                let next = current + delta;
                if !next.is_finite() {
                    return Err(CommandError::err("increment would produce NaN or Infinity"));
                }
                let text = Bytes::from(format_float(next));
                self.update_string(db, key, text.clone(), now);
                Ok(Outcome::Bulk(text))
            }
            Mutation::GetDel { key } => {
                let Some(entry) = self.lookup_read(db, &key, now) else {
                    return Ok(Outcome::Nil);
                };
                let value = entry.value.as_string()?.to_bytes();
                self.remove(db, &key);
                Ok(Outcome::Bulk(value))
            }
            Mutation::GetEx { key, ttl } => {
                let Some(entry) = self.lookup_read(db, &key, now) else {
                    return Ok(Outcome::Nil);
                };
                let value = entry.value.as_string()?.to_bytes();
                match ttl {
                    Ttl::Keep => {}
                    Ttl::At(at) if at <= now => {
                        self.remove(db, &key);
                    }
                    Ttl::At(at) => self.set_deadline(db, &key, Some(at), now),
                    Ttl::Clear => self.set_deadline(db, &key, None, now),
                }
                Ok(Outcome::Bulk(value))
            }
            Mutation::MSet {
                pairs,
                only_if_none_exist,
            } => {
                if only_if_none_exist && pairs.iter().any(|(k, _)| self.exists(db, k, now)) {
                    return Ok(Outcome::Integer(0));
                }
                for (key, value) in pairs {
                    self.store_string(db, &key, &value, None);
                }
                Ok(if only_if_none_exist {
                    Outcome::Integer(1)
                } else {
                    Outcome::Ok
                })
            }
            Mutation::Del { keys } => {
                let mut removed = 0;
                for key in &keys {
                    if self.exists(db, key, now) {
                        self.remove(db, key);
                        removed += 1;
                    }
                }
                Ok(Outcome::Integer(removed))
            }
            Mutation::Rename {
                from,
                to,
                only_if_absent,
            } => {
                if !self.exists(db, &from, now) {
                    return Err(CommandError::err("no such key"));
                }
                if from == to {
                    return Ok(if only_if_absent {
                        Outcome::Integer(0)
                    } else {
                        Outcome::Ok
                    });
                }
                if only_if_absent && self.exists(db, &to, now) {
                    return Ok(Outcome::Integer(0));
                }
                if let Some(entry) = self.remove(db, &from) {
                    self.store(db, to, entry);
                }
                Ok(if only_if_absent {
                    Outcome::Integer(1)
                } else {
                    Outcome::Ok
                })
            }
            Mutation::Copy {
                from,
                to,
                to_db,
                replace,
            } => {
                if db == to_db && from == to {
                    return Err(CommandError::err(
                        "source and destination objects are the same",
                    ));
                }
                let Some(entry) = self.live(db, &from, now).cloned() else {
                    return Ok(Outcome::Integer(0));
                };
                if self.exists(to_db, &to, now) {
                    if !replace {
                        return Ok(Outcome::Integer(0));
                    }
                    self.remove(to_db, &to);
                }
                self.store(to_db, to, entry);
                Ok(Outcome::Integer(1))
            }
            Mutation::Move { key, to_db } => {
                if db == to_db {
                    return Err(CommandError::err(
                        "source and destination objects are the same",
                    ));
                }
                if !self.exists(db, &key, now) || self.exists(to_db, &key, now) {
                    return Ok(Outcome::Integer(0));
                }
                let Some(entry) = self.remove(db, &key) else {
                    return Ok(Outcome::Integer(0));
                };
                self.store(to_db, key, entry);
                Ok(Outcome::Integer(1))
            }
            Mutation::Expire { key, at, condition } => {
                let Some(entry) = self.live(db, &key, now) else {
                    return Ok(Outcome::Integer(0));
                };
                let allowed = condition.allows(entry.expires_at, at);
                if !allowed {
                    return Ok(Outcome::Integer(0));
                }
                if at <= now {
                    self.remove(db, &key);
                } else {
                    self.set_deadline(db, &key, Some(at), now);
                }
                Ok(Outcome::Integer(1))
            }
            Mutation::Persist { key } => {
                let has_ttl = self
                    .live(db, &key, now)
                    .is_some_and(|e| e.expires_at.is_some());
                if has_ttl {
                    self.set_deadline(db, &key, None, now);
                }
                Ok(Outcome::Integer(i64::from(has_ttl)))
            }
            Mutation::Restore {
                key,
                value,
                expires_at,
                replace,
            } => {
                let exists = self.exists(db, &key, now);
                if exists && !replace {
                    return Err(CommandError::coded(
                        "BUSYKEY",
                        "Target key name already exists.",
                    ));
                }
                if expires_at.is_some_and(|at| at <= now) {
                    // Already expired: restoring it means deleting what was there.
                    if exists {
                        self.remove(db, &key);
                    }
                    return Ok(Outcome::Ok);
                }
                self.store(db, key, Entry::new(value, expires_at));
                Ok(Outcome::Ok)
            }
            Mutation::FlushDb => {
                self.touch_databases(db, None, now);
                self.dbs[db] = Db::default();
                self.journal.push(Change::FlushDb { db });
                Ok(Outcome::Ok)
            }
            Mutation::FlushAll => {
                (0..DATABASES).for_each(|d| self.touch_databases(d, None, now));
                self.dbs.iter_mut().for_each(|d| *d = Db::default());
                self.journal.push(Change::FlushAll);
                Ok(Outcome::Ok)
            }
            Mutation::SwapDb { a, b } => {
                self.touch_databases(a, Some(b), now);
                self.touch_databases(b, Some(a), now);
                self.dbs.swap(a, b);
                self.journal.push(Change::SwapDb { a, b });
                Ok(Outcome::Ok)
            }
            Mutation::Collection(op) => crate::types::ops::apply(self, db, op, now),
            Mutation::Bits(op) => crate::types::bitwrite::apply(self, db, op, now),
            Mutation::ZStore(op) => crate::types::zstore::apply(self, db, op, now),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn set(
        &mut self,
        db: usize,
        key: Bytes,
        value: Bytes,
        condition: Condition,
        ttl: Ttl,
        get: bool,
        now: u64,
    ) -> Result<Outcome, CommandError> {
        let Keyspace {
            dbs,
            journal,
            stats,
            ..
        } = self;
        let d = &mut dbs[db];
        let mut found = live_in(d, db, journal, stats, &key, now);
        let (old_value, old_deadline) = match &found {
            Some(entry) if get => (Some(entry.value.as_string()?.to_bytes()), entry.expires_at),
            Some(entry) => (Some(Bytes::new()), entry.expires_at),
            None => (None, None),
        };
        let exists = old_value.is_some();
        let go = match condition {
            Condition::Always => true,
            Condition::IfAbsent => !exists,
            Condition::IfPresent => exists,
        };
        let reply = |old: Option<Bytes>| match (get, old) {
            (true, Some(v)) => Outcome::Bulk(v),
            (true, None) => Outcome::Nil,
            (false, _) if go => Outcome::Ok,
            (false, _) => Outcome::Nil,
        };
        if !go {
            return Ok(reply(old_value));
        }
        let expires_at = match ttl {
            Ttl::Keep => old_deadline,
            Ttl::Clear => None,
            Ttl::At(at) if at <= now => {
                // Redis: a SET whose deadline has already passed deletes the key.
                self.remove(db, &key);
                return Ok(reply(old_value));
            }
            Ttl::At(at) => Some(at),
        };
        // Overwriting a live key (the usual SET of a hot key): change the entry the
        // lookup above found, in place. Storing it anew would descend the map a second
        // time to find the same node. Its key and place in the map stay as they are.
        if let Some(entry) = found.take() {
            let before = entry.value.memory();
            entry.value = Value::String(SmallBytes::copy(&value));
            entry.expires_at = expires_at;
            let after = entry.value.memory();
            d.used = (d.used + after).saturating_sub(before);
            if old_deadline.is_some() || expires_at.is_some() {
                d.set_deadline(&key, expires_at);
            }
            if journal.recording() {
                // The request's key and value: the change is encoded before the
                // command returns (see `store_string`).
                let entry = Entry::new(Value::String(SmallBytes::view(&value)), expires_at);
                journal.push(Change::Put { db, key, entry });
            }
            return Ok(reply(old_value));
        }
        self.store_string(db, &key, &value, expires_at);
        Ok(reply(old_value))
    }

    /// Replaces a string's bytes, keeping its TTL (APPEND, SETRANGE, INCR...).
    fn update_string(&mut self, db: usize, key: Bytes, value: Bytes, now: u64) {
        let Keyspace {
            dbs,
            journal,
            stats,
            ..
        } = self;
        let d = &mut dbs[db];
        let Some(entry) = live_in(d, db, journal, stats, &key, now) else {
            self.store(db, key, Entry::new(Value::String(value.into()), None));
            return;
        };
        // The key is there (a counter's second `INCR` onwards): change its value in
        // place. Storing a whole new entry would copy the key again, insert into the
        // map a second time and drop the old entry: about 1,100 of an `INCR`'s 4,200
        // instructions. The deadline and the key's place in the map stay as they are.
        let before = entry.value.memory();
        entry.value = Value::String(value.into());
        let after = entry.value.memory();
        if journal.recording() {
            let entry = entry.clone();
            // The request's key: the change is encoded before the command returns.
            journal.push(Change::Put { db, key, entry });
        }
        d.used = (d.used + after).saturating_sub(before);
    }

    /// Changes a live key's deadline: O(1) whatever the key holds, and journaled as the
    /// deadline alone ([`Change::Expire`]).
    fn set_deadline(&mut self, db: usize, key: &Bytes, deadline: Option<u64>, now: u64) {
        if self.live(db, key, now).is_some() {
            self.dbs[db].set_deadline(key, deadline);
            self.journal.push(Change::Expire {
                db,
                key: key.clone(),
                at: deadline,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn set(ks: &mut Keyspace, key: &str, value: &str, ttl: Ttl, now: u64) {
        let m = Mutation::Set {
            key: b(key),
            value: b(value),
            condition: Condition::Always,
            ttl,
            get: false,
        };
        assert_eq!(ks.apply(0, m, now), Ok(Outcome::Ok));
    }

    /// `INCR` on an existing key changes its value in place: the result must be what
    /// storing the new value from scratch would give (TTL, memory estimate, journal).
    #[test]
    fn updating_a_string_in_place_equals_storing_it_afresh() {
        let mut ks = Keyspace::new(true);
        set(&mut ks, "n", "9", Ttl::At(5_000), 0);
        let incr = Mutation::IncrBy {
            key: b("n"),
            delta: 1,
        };
        assert_eq!(ks.apply(0, incr, 1), Ok(Outcome::Integer(10)));
        let mut fresh = Keyspace::new(true);
        set(&mut fresh, "n", "10", Ttl::At(5_000), 0);
        assert_eq!(ks.get(0, &b("n"), 1), Ok(Some(b("10"))));
        assert_eq!(ks.ttl(0, &b("n"), 1), TtlState::At(5_000));
        assert_eq!(ks.used_memory(), fresh.used_memory());
        let (changes, _) = ks.drain_changes();
        let (expected, _) = fresh.drain_changes();
        assert_eq!(changes.last(), expected.last());
        // Past its deadline the key is gone: the increment starts from zero, no TTL.
        let incr = Mutation::IncrBy {
            key: b("n"),
            delta: 1,
        };
        assert_eq!(ks.apply(0, incr, 5_000), Ok(Outcome::Integer(1)));
        assert_eq!(ks.ttl(0, &b("n"), 5_000), TtlState::Persistent);
    }

    /// `SET` over a live key changes the entry its lookup found, in place: value, TTL,
    /// TTL index, memory estimate and journal must be what a fresh store would give,
    /// and the value a copy, never a view into the request.
    #[test]
    fn set_over_a_live_key_equals_storing_it_afresh() {
        let request = Bytes::from(b"kvalue-two".to_vec());
        let mut ks = Keyspace::new(true);
        set(&mut ks, "k", "one", Ttl::Clear, 0);
        let steps = [
            (Ttl::At(5_000), TtlState::At(5_000), 1),
            (Ttl::At(7_000), TtlState::At(7_000), 1),
            (Ttl::Keep, TtlState::At(7_000), 1),
            (Ttl::Clear, TtlState::Persistent, 0),
        ];
        for (ttl, expect, volatile) in steps {
            let m = Mutation::Set {
                key: request.slice(0..1),
                value: request.slice(1..),
                condition: Condition::Always,
                ttl,
                get: false,
            };
            assert_eq!(ks.apply(0, m, 1), Ok(Outcome::Ok));
            let mut fresh = Keyspace::new(true);
            let fresh_ttl = match expect {
                TtlState::At(at) => Ttl::At(at),
                _ => Ttl::Clear,
            };
            set(&mut fresh, "k", "value-two", fresh_ttl, 1);
            let value = ks.get(0, &b("k"), 1).unwrap().unwrap();
            assert_eq!(value, b("value-two"));
            assert!(!request.as_ptr_range().contains(&value.as_ptr()));
            assert_eq!(ks.ttl(0, &b("k"), 1), expect);
            assert_eq!(ks.keyspace_info(1), vec![(0, 1, volatile)]);
            assert_eq!(ks.used_memory(), fresh.used_memory());
            let (changes, _) = ks.drain_changes();
            let (expected, _) = fresh.drain_changes();
            assert_eq!(changes.last(), expected.last());
        }
    }

    /// `SET` and `MSET` get their key and value as views into the connection's read
    /// buffer. The journal may borrow them (it is drained before the command returns),
    /// but the map must hold copies: a view would pin the whole buffer for the key's life.
    #[test]
    fn stored_strings_never_hold_the_request_buffer() {
        let request = Bytes::from(b"key1value1key2value2".to_vec());
        let inside = |b: &Bytes| request.as_ptr_range().contains(&b.as_ptr());
        let mut ks = Keyspace::new(true);
        let set = Mutation::Set {
            key: request.slice(0..4),
            value: request.slice(4..10),
            condition: Condition::Always,
            ttl: Ttl::At(9_000),
            get: false,
        };
        assert_eq!(ks.apply(0, set, 0), Ok(Outcome::Ok));
        let mset = Mutation::MSet {
            pairs: vec![
                (request.slice(0..4), request.slice(10..14)),
                (request.slice(10..14), request.slice(14..20)),
            ],
            only_if_none_exist: false,
        };
        assert_eq!(ks.apply(0, mset, 1), Ok(Outcome::Ok));
        let (changes, _) = ks.drain_changes();
        assert_eq!(changes.len(), 3);
        let mut keys = ks.keys(0, b"*", 1);
        keys.sort();
        assert_eq!(keys, vec![b("key1"), b("key2")]);
        for key in &keys {
            assert!(!inside(key), "the map holds a view of the request");
            let value = ks.get(0, key, 1).unwrap().unwrap();
            assert!(!inside(&value), "the map holds a view of the request");
        }
        assert_eq!(ks.get(0, &b("key1"), 1), Ok(Some(b("key2"))));
        // MSET clears the TTL SET gave.
        assert_eq!(ks.ttl(0, &b("key1"), 1), TtlState::Persistent);
        assert_eq!(ks.keyspace_info(1), vec![(0, 2, 0)]);
    }

    /// Overwriting in place must keep the TTL index and the memory estimate exactly as
    /// a fresh store would: a deadline that goes, one that comes, one that changes.
    #[test]
    fn overwriting_a_key_keeps_the_ttl_index_and_memory_in_step() {
        let mut ks = Keyspace::new(false);
        set(&mut ks, "k", "short", Ttl::At(5_000), 0);
        set(&mut ks, "k", "a longer value", Ttl::Clear, 1);
        assert_eq!(ks.ttl(0, &b("k"), 1), TtlState::Persistent);
        assert_eq!(ks.keyspace_info(1), vec![(0, 1, 0)]);
        set(&mut ks, "k", "v", Ttl::At(7_000), 2);
        set(&mut ks, "k", "v2", Ttl::At(9_000), 3);
        assert_eq!(ks.ttl(0, &b("k"), 3), TtlState::At(9_000));
        assert_eq!(ks.keyspace_info(3), vec![(0, 1, 1)]);
        let mut fresh = Keyspace::new(false);
        set(&mut fresh, "k", "v2", Ttl::At(9_000), 3);
        assert_eq!(ks.used_memory(), fresh.used_memory());
        // The old deadline (7,000) no longer expires it; the new one does.
        assert_eq!(ks.get(0, &b("k"), 8_000), Ok(Some(b("v2"))));
        assert_eq!(ks.get(0, &b("k"), 9_000), Ok(None));
    }

    #[test]
    fn expired_keys_are_never_returned_counted_or_scanned() {
        let mut ks = Keyspace::new(true);
        set(&mut ks, "a", "1", Ttl::At(1_000), 0);
        set(&mut ks, "b", "2", Ttl::Clear, 0);
        assert_eq!(ks.dbsize(0, 999), 2);
        assert_eq!(ks.dbsize(0, 1_000), 1);
        assert_eq!(ks.keys(0, b"*", 1_000), vec![b("b")]);
        assert_eq!(ks.scan(0, 0, 10, None, None, 1_000).keys, vec![b("b")]);
        assert_eq!(ks.get(0, &b("a"), 1_000), Ok(None));
        assert_eq!(ks.stats().expired_keys, 1);
        let (changes, _) = ks.drain_changes();
        assert_eq!(changes.last(), Some(&Change::Remove { db: 0, key: b("a") }));
    }

    #[test]
    fn the_sweep_reclaims_keys_nobody_touches() {
        let mut ks = Keyspace::new(false);
        for i in 0..1_000 {
            let ttl = if i % 2 == 0 {
                Ttl::At(100)
            } else {
                Ttl::At(10_000)
            };
            set(&mut ks, &format!("k{i}"), "v", ttl, 0);
        }
        let mut rounds = 0;
        loop {
            let (examined, expired) = ks.sweep(0, 100, SWEEP_SAMPLE);
            rounds += 1;
            if examined == 0 || expired * 4 <= examined {
                break;
            }
        }
        assert!(rounds > 1);
        // Keep cycling, as the server does, until a full pass finds nothing.
        for _ in 0..1_000 {
            ks.sweep(0, 100, SWEEP_SAMPLE);
        }
        assert_eq!(ks.dbs[0].entries.len(), 500);
        assert_eq!(ks.stats().expired_keys, 500);
    }

    #[test]
    fn scan_returns_every_key_present_throughout_despite_churn() {
        let mut ks = Keyspace::new(false);
        for i in 0..500 {
            set(&mut ks, &format!("stable{i}"), "v", Ttl::Clear, 0);
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut round = 0;
        loop {
            let page = ks.scan(0, cursor, 7, None, None, 0);
            seen.extend(page.keys);
            // Churn between pages: add and remove other keys.
            for j in 0..20 {
                set(&mut ks, &format!("new{round}-{j}"), "v", Ttl::Clear, 0);
            }
            let del = Mutation::Del {
                keys: (0..10)
                    .map(|j| b(&format!("new{}-{j}", round / 2)))
                    .collect(),
            };
            ks.apply(0, del, 0).unwrap();
            round += 1;
            cursor = page.cursor;
            if cursor == 0 {
                break;
            }
        }
        for i in 0..500 {
            assert!(seen.contains(&b(&format!("stable{i}"))), "stable{i} missed");
        }
    }

    #[test]
    fn expire_conditions_follow_redis() {
        let mut ks = Keyspace::new(false);
        set(&mut ks, "k", "v", Ttl::Clear, 0);
        let expire = |at, condition| Mutation::Expire {
            key: b("k"),
            at,
            condition,
        };
        let xx = ExpireCondition {
            xx: true,
            ..Default::default()
        };
        let gt = ExpireCondition {
            gt: true,
            ..Default::default()
        };
        let lt = ExpireCondition {
            lt: true,
            ..Default::default()
        };
        let nx = ExpireCondition {
            nx: true,
            ..Default::default()
        };
        let xx_lt = ExpireCondition {
            xx: true,
            lt: true,
            ..Default::default()
        };
        assert_eq!(ks.apply(0, expire(500, xx), 0), Ok(Outcome::Integer(0)));
        assert_eq!(ks.apply(0, expire(500, gt), 0), Ok(Outcome::Integer(0)));
        assert_eq!(ks.apply(0, expire(500, xx_lt), 0), Ok(Outcome::Integer(0)));
        assert_eq!(ks.apply(0, expire(500, lt), 0), Ok(Outcome::Integer(1)));
        assert_eq!(ks.apply(0, expire(400, gt), 0), Ok(Outcome::Integer(0)));
        assert_eq!(ks.apply(0, expire(600, gt), 0), Ok(Outcome::Integer(1)));
        assert_eq!(ks.apply(0, expire(700, nx), 0), Ok(Outcome::Integer(0)));
        assert_eq!(ks.ttl(0, &b("k"), 0), TtlState::At(600));
        // A deadline in the past deletes.
        assert_eq!(
            ks.apply(0, expire(5, Default::default()), 10),
            Ok(Outcome::Integer(1))
        );
        assert_eq!(ks.ttl(0, &b("k"), 10), TtlState::Missing);
    }

    #[test]
    fn every_write_is_journaled_in_order() {
        let mut ks = Keyspace::new(true);
        set(&mut ks, "a", "1", Ttl::At(50), 0);
        ks.apply(
            0,
            Mutation::IncrBy {
                key: b("a"),
                delta: 2,
            },
            1,
        )
        .unwrap();
        ks.apply(
            0,
            Mutation::Rename {
                from: b("a"),
                to: b("b"),
                only_if_absent: false,
            },
            2,
        )
        .unwrap();
        ks.apply(0, Mutation::SwapDb { a: 0, b: 3 }, 3).unwrap();
        let (changes, seq) = ks.drain_changes();
        let put = |key: &str, v: &str| Change::Put {
            db: 0,
            key: b(key),
            entry: Entry::new(Value::String(SmallBytes::copy(v.as_bytes())), Some(50)),
        };
        assert_eq!(
            changes,
            vec![
                put("a", "1"),
                put("a", "3"),
                Change::Remove { db: 0, key: b("a") },
                put("b", "3"),
                Change::SwapDb { a: 0, b: 3 },
            ]
        );
        assert_eq!(seq, 5);
        assert_eq!(ks.get(3, &b("b"), 3), Ok(Some(b("3"))));
    }

    #[test]
    fn numbers_follow_redis() {
        let mut ks = Keyspace::new(false);
        set(&mut ks, "n", "9223372036854775806", Ttl::Clear, 0);
        let incr = |delta| Mutation::IncrBy { key: b("n"), delta };
        assert_eq!(ks.apply(0, incr(1), 0), Ok(Outcome::Integer(i64::MAX)));
        assert_eq!(
            ks.apply(0, incr(1), 0).unwrap_err().to_string(),
            "ERR increment or decrement would overflow"
        );
        set(&mut ks, "f", "10.5", Ttl::Clear, 0);
        let incrf = |delta| Mutation::IncrByFloat { key: b("f"), delta };
        assert_eq!(ks.apply(0, incrf(0.1), 0), Ok(Outcome::Bulk(b("10.6"))));
        assert_eq!(ks.apply(0, incrf(5.0e3), 0), Ok(Outcome::Bulk(b("5010.6"))));
        assert_eq!(format_float(3.0e3), "3000");
        assert_eq!(proto::decode::parse_int(b"0"), Some(0));
        assert_eq!(proto::decode::parse_int(b"-12"), Some(-12));
        for bad in [&b"010"[..], b"-0", b"+1", b" 1", b"", b"-"] {
            assert_eq!(proto::decode::parse_int(bad), None);
        }
        assert!(ks.apply(0, incrf(f64::INFINITY), 0).is_err());
    }
}

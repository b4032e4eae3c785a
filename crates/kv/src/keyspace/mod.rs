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
//! ## A hash table, and how SCAN keeps its promise
//!
//! Each database is a hash table of [`Slot`]s = (64-bit hash of the key, key), probed
//! once per lookup, as Redis's keyspace is (see `table.rs`). `SCAN`'s cursor is Redis's
//! reverse-binary count over the table's buckets, which lets a key present for the whole
//! iteration be returned (exactly once: kv's table never shrinks) even while other keys
//! come and go and the table doubles. Until this table, each database was a `BTreeMap`
//! ordered by `Slot`, whose order gave the same promise for free; its descent, a dozen
//! cache lines with 40,000 keys against the table's two or three, was a quarter of a
//! `SET`'s time. The keys that have a TTL are still kept in that order (`Db::expires`),
//! where the expiry sweep walks them with a cursor of its own.
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
//!
//! ## The parts
//!
//! This file holds the [`Keyspace`], its keys ([`Slot`]) and the lookups every command
//! starts from (with lazy expiry). The rest, one concept per file: `db.rs` (one
//! database: its map, its TTL index and its memory estimate kept in step), `mutation.rs`
//! ([`Mutation`] and [`Keyspace::apply`], the write path), `journal.rs` ([`Change`] and
//! [`Journal`]), `scan.rs` (`KEYS`, `SCAN`, `RANDOMKEY`, the expiry sweep), `watch.rs`
//! (`WATCH`), `touched.rs` (what notifications and tracking hear of), `replay.rs` (what
//! replication needs: snapshots and applying a primary's changes).

use std::sync::OnceLock;

use bytes::Bytes;
use proto::CommandError;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::types::edit::Delta;
use crate::value::{Entry, SmallBytes, Value};

mod db;
mod journal;
mod mutation;
mod replay;
mod scan;
mod table;
mod touched;
mod watch;

use db::{Db, footprint};
pub use journal::{Change, Journal};
pub use mutation::{Condition, ExpireCondition, Mutation, Outcome, Ttl, format_float};
pub use scan::ScanPage;
pub use touched::{Touch, Touches};
pub use watch::{Watch, Watches};

/// Databases per server, as Redis (`SELECT 0` .. `SELECT 15`).
pub const DATABASES: usize = 16;
/// The largest string Redis allows (`proto-max-bulk-len` default).
pub const MAX_STRING: usize = 512 * 1024 * 1024;
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
///
/// The hash is seeded, with a seed drawn once per process, as Redis seeds its `siphash`:
/// the hash picks the key's bucket in the table (`table.rs`), and a client who could
/// compute it could send thousands of keys that share a bucket, turning every lookup into
/// a walk down one long chain (hash flooding). The ordered map this table replaced did
/// not care; a hash table must.
fn key_slot(key: &[u8]) -> Key {
    static SEED: OnceLock<u64> = OnceLock::new();
    let seed = *SEED.get_or_init(rand::random);
    Slot {
        hash: xxh3_64_with_seed(key, seed),
        key: SmallBytes::copy(key),
    }
}

/// Counters for `INFO stats`.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyspaceStats {
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub expired_keys: u64,
}

/// A key's TTL as `TTL`/`PTTL`/`EXPIRETIME` see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlState {
    Missing,
    Persistent,
    At(u64),
}

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
/// of the connection's read buffer; keeping one would pin the whole buffer in memory.
fn own(b: &Bytes) -> Bytes {
    Bytes::copy_from_slice(b)
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
    let slot = key_slot(key);
    let (place, entry) = d.entries.find(&slot)?;
    if !entry.is_expired(now) {
        return d.entries.at_mut(place);
    }
    if journal.follower {
        return None;
    }
    if let Some((slot, old)) = d.entries.remove_entry(&slot) {
        d.expires.remove(&slot);
        d.used = d.used.saturating_sub(footprint(&slot, &old));
        stats.expired_keys += 1;
        journal.expired(Change::Remove {
            db,
            key: slot.key.to_bytes(),
        });
    }
    None
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
        // The key hashed and copied once, and a live key found in one probe of the table.
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
}

/// What the tests of every part of the keyspace start from.
#[cfg(test)]
mod testing {
    use super::*;

    pub fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    pub fn set(ks: &mut Keyspace, key: &str, value: &str, ttl: Ttl, now: u64) {
        let m = Mutation::Set {
            key: b(key),
            value: b(value),
            condition: Condition::Always,
            ttl,
            get: false,
        };
        assert_eq!(ks.apply(0, m, now), Ok(Outcome::Ok));
    }
}

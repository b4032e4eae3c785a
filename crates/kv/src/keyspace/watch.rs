//! `WATCH`: optimistic locking, and the journal's transaction brackets.
//!
//! ## Optimistic locking
//!
//! A client that wants to read a key, compute, and write back without another client
//! slipping in between has two choices. A *pessimistic* lock (the sql server's row
//! locks) makes the others wait. An *optimistic* one lets everybody run and checks at the
//! end: `WATCH k`, read `k`, `MULTI`, queue the writes, `EXEC` — and `EXEC` runs nothing
//! (it answers a null reply) if `k` changed since `WATCH`. The client then simply tries
//! again. Nobody ever waits, which suits a server that runs one command at a time; the
//! price is retries when the key is hot.
//!
//! ## How a change is noticed: one counter per watched key
//!
//! [`Watches`] maps each watched `(database, key)` to a shared counter. Every change the
//! keyspace makes goes through the journal ([`super::Journal::push`]), so that is the one
//! place that bumps the counter of the key a change names — a write by any client, a
//! replica's stream, a `RENAME` away, a `DEL`. A `FLUSHDB`, `FLUSHALL` or `SWAPDB` bumps
//! every watched key of the databases it empties or swaps that is live on either side
//! (Redis's `touchAllWatchedKeysInDb`: a missing key flushed away did not change).
//!
//! Each client keeps a [`Watch`] per key: the counter, the value it had at `WATCH` time,
//! and whether the key was live then. `EXEC` aborts if any counter moved, or if a key
//! live at `WATCH` time is not live now — that is how *expiry* counts as a change: a key
//! passing its deadline changes nothing in memory until something deletes it, so the
//! deletion by expiry does not bump the counter, and the liveness check catches it
//! whenever it happened (Redis 7 does the same with its `expired` flag).
//!
//! The map holds a counter while some client's [`Watch`] shares it. `EXEC`, `UNWATCH`
//! and `DISCARD` hand their watches back ([`Keyspace::unwatch`]) and drop the entries
//! nobody else shares; a client that disconnects just drops its `Watch`es, and its
//! entries go the next time they are touched or when the map has doubled since it was
//! last swept. While no key is watched, the journal pays one `is_empty` per change.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::{Change, Keyspace, own};

/// Every watched key and its change counter (see the module docs).
#[derive(Debug, Default)]
pub struct Watches {
    keys: HashMap<(usize, Bytes), Arc<AtomicU64>>,
    /// Entries after the last sweep of abandoned ones.
    swept_at: usize,
}

/// One client's watch on one key: what it saw at `WATCH` time.
#[derive(Debug)]
pub struct Watch {
    db: usize,
    key: Bytes,
    counter: Arc<AtomicU64>,
    seen: u64,
    live: bool,
}

impl Watches {
    pub fn is_active(&self) -> bool {
        !self.keys.is_empty()
    }

    /// A change was journaled: bump the counter of the key it names.
    pub(super) fn touch(&mut self, change: &Change) {
        match change {
            Change::Put { db, key, .. }
            | Change::Remove { db, key }
            | Change::Edit { db, key, .. }
            | Change::Expire { db, key, .. } => self.bump(*db, key),
            Change::Transaction(changes) => changes.iter().for_each(|c| self.touch(c)),
            // Whole databases: see `Keyspace::touch_databases`, called before they change.
            Change::FlushDb { .. }
            | Change::FlushAll
            | Change::SwapDb { .. }
            | Change::TransactionStart { .. } => {}
        }
    }

    fn bump(&mut self, db: usize, key: &Bytes) {
        let slot = (db, key.clone());
        if let Some(counter) = self.keys.get(&slot) {
            if Arc::strong_count(counter) == 1 {
                // Its watchers disconnected: nobody will look at it again.
                self.keys.remove(&slot);
            } else {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Drops the entries no client shares any more, once the map has doubled since the
    /// last sweep: amortised O(1) per `WATCH`, and the map stays within twice the keys
    /// actually watched.
    fn sweep_if_due(&mut self) {
        if self.keys.len() >= 2 * self.swept_at.max(16) {
            self.keys
                .retain(|_, counter| Arc::strong_count(counter) > 1);
            self.swept_at = self.keys.len();
        }
    }
}

impl Watch {
    /// Did the key change since `WATCH`, given whether it is live now?
    fn changed(&self, live_now: bool) -> bool {
        self.counter.load(Ordering::Relaxed) != self.seen || (self.live && !live_now)
    }
}

impl Keyspace {
    /// `WATCH key`: from now on every change to `key` is noticed.
    pub fn watch(&mut self, db: usize, key: &Bytes, now: u64) -> Watch {
        let live = self.peek(db, key, now).is_some();
        let watches = &mut self.journal.watches;
        watches.sweep_if_due();
        let key = own(key);
        let counter = watches.keys.entry((db, key.clone())).or_default().clone();
        let seen = counter.load(Ordering::Relaxed);
        Watch {
            db,
            key,
            counter,
            seen,
            live,
        }
    }

    /// Has any of these watched keys changed since it was watched?
    pub fn any_changed(&self, watching: &[Watch], now: u64) -> bool {
        watching
            .iter()
            .any(|w| w.changed(self.peek(w.db, &w.key, now).is_some()))
    }

    /// Hands watches back (`EXEC`, `UNWATCH`, `DISCARD`), forgetting keys nobody else
    /// watches.
    pub fn unwatch(&mut self, watching: Vec<Watch>) {
        let watches = &mut self.journal.watches;
        for w in watching {
            let slot = (w.db, w.key);
            drop(w.counter);
            if watches
                .keys
                .get(&slot)
                .is_some_and(|c| Arc::strong_count(c) == 1)
            {
                watches.keys.remove(&slot);
            }
        }
    }

    /// Before `db` is emptied or swapped with `replaced_with`: bumps every watched key of
    /// `db` that is live in it or in its replacement. A replica passes `now` 0: every key
    /// it holds counts (its lookups hide expired keys until the primary deletes them).
    pub(super) fn touch_databases(&mut self, db: usize, replaced_with: Option<usize>, now: u64) {
        if !self.journal.watches.is_active() {
            return;
        }
        let live = |ks: &Keyspace, d: usize, key: &Bytes| ks.peek(d, key, now).is_some();
        let touched: Vec<Bytes> = self
            .journal
            .watches
            .keys
            .keys()
            .filter(|(d, key)| {
                *d == db
                    && (live(self, db, key) || replaced_with.is_some_and(|r| live(self, r, key)))
            })
            .map(|(_, key)| key.clone())
            .collect();
        for key in touched {
            self.journal.watches.bump(db, &key);
        }
    }

    /// `EXEC` begins: the changes journaled from now until [`Self::commit`] are one
    /// transaction, handed to persistence and replication as one [`Change::Transaction`]
    /// (see `crate::transaction`).
    pub fn begin(&mut self) {
        let journal = &mut self.journal;
        if journal.open.is_none() {
            journal.open = Some(journal.pending.len());
        }
    }

    /// `EXEC` ends: wraps the changes made since [`Self::begin`] into one
    /// [`Change::Transaction`] (a single change needs no wrapping).
    pub fn commit(&mut self) {
        let journal = &mut self.journal;
        let Some(start) = journal.open.take() else {
            return;
        };
        if journal.pending.len() > start + 1 {
            let changes: Vec<Change> = journal.pending.drain(start..).collect();
            journal.pending.push(Change::Transaction(changes));
        }
    }

    /// Is an `EXEC` running (between [`Self::begin`] and [`Self::commit`])?
    pub fn in_transaction(&self) -> bool {
        self.journal.open.is_some()
    }
}

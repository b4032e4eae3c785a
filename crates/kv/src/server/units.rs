//! Units of work: `WATCH`, `MULTI`/`EXEC` and scripts, whose changes reach persistence
//! and replication as one transaction (see [`crate::transaction`], [`crate::scripting`]).

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::{Kv, Session};

impl Kv {
    /// `WATCH`: the keys' watches, taken under the lock.
    pub(crate) fn watch(&self, db: usize, keys: &[Bytes]) -> Vec<crate::keyspace::Watch> {
        let now = self.now();
        let mut ks = self.lock();
        keys.iter().map(|key| ks.watch(db, key, now)).collect()
    }

    /// `UNWATCH` (and the end of every `EXEC` or `DISCARD`).
    pub(crate) fn unwatch(&self, watching: Vec<crate::keyspace::Watch>) {
        if !watching.is_empty() {
            self.lock().unwatch(watching);
        }
    }

    /// `EXEC` begins: `false` (and nothing begins) if a watched key changed. Otherwise
    /// the journal holds every change until [`Self::commit`], so that persistence and
    /// replication get the transaction as one unit.
    ///
    /// The clock stops until then too, as in Redis 7: every command of the transaction
    /// sees the time `EXEC` began, so no key expires half-way through it (a `GET` and a
    /// later `TTL` of the same key agree), and the commands read the clock once, not once
    /// each.
    pub(crate) fn begin(&self, watching: Vec<crate::keyspace::Watch>) -> bool {
        let now = self.now();
        let mut ks = self.lock();
        let changed = ks.any_changed(&watching, now);
        ks.unwatch(watching);
        if !changed {
            ks.begin();
            self.frozen_ms.store(now, Ordering::Relaxed);
        }
        !changed
    }

    /// `EXEC` ends: publishes its changes as one transaction, then serves the clients
    /// blocked on lists it filled (after it, as Redis does).
    pub(crate) fn commit(&self, session: &mut Session) {
        let now = self.now();
        let mut ks = self.lock();
        ks.commit();
        self.frozen_ms.store(0, Ordering::Relaxed);
        if ks.track_ready {
            crate::blocking::serve(&self.blocked, &mut ks, now);
        }
        if let Some((seq, offset)) = self.publish(&mut ks) {
            session.unsynced = seq;
            session.unwritten = seq;
            session.repl.written = offset.unwrap_or(session.repl.written);
        }
    }

    /// A script begins: like [`Self::begin`], unless it runs inside an `EXEC`, whose unit
    /// it is part of. `true`: the script's own unit began ([`Self::commit_unit`] ends it).
    ///
    /// The clock stops for the script as for `EXEC` (Redis 7 checks expiry against the
    /// script's start time, its "time snapshot"): a key that exists at the script's first
    /// command exists at its last, and the script's commands read the clock once.
    pub(crate) fn begin_unit(&self) -> bool {
        let now = self.now();
        let mut ks = self.lock();
        if ks.in_transaction() {
            return false;
        }
        ks.begin();
        self.frozen_ms.store(now, Ordering::Relaxed);
        true
    }

    /// A script ends: see [`Self::commit`].
    pub(crate) fn commit_unit(&self, session: &mut Session) {
        self.commit(session);
    }
}

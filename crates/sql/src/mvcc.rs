//! Multi-version concurrency control: transaction ids, snapshots and the visibility rule.
//!
//! Every write creates a new *version* of a row instead of overwriting it. A version
//! carries two transaction ids, as in PostgreSQL:
//!
//! - `xmin`: the transaction that created it (INSERT, or UPDATE writing the new version);
//! - `xmax`: the transaction that deleted or replaced it (DELETE, or UPDATE), 0 if none.
//!
//! A reader never blocks a writer and a writer never blocks a reader: a reader takes a
//! [`Snapshot`] — which transactions had committed when it started — and sees, of each
//! row, the one version that was current in that snapshot. A writer that wants to change
//! a row another transaction is still changing must wait for it (see `locks`): the
//! uncommitted `xmax` *is* the row lock, so the lock table needs no entry per row.
//!
//! Isolation levels (see `isolation`) differ in *when* a snapshot is taken (per statement
//! for read committed and serializable, per transaction for repeatable read), in what a
//! writer does after waiting, and — for read uncommitted only — in a *dirty* snapshot
//! that counts running transactions as seen. The rule itself stays the same.

use std::collections::BTreeSet;

/// A transaction id. Ids grow; 0 means "none", [`FROZEN`] marks data loaded by recovery.
pub type TxId = u64;

/// The creator of every version recovered from disk: committed, older than every
/// snapshot. (PostgreSQL calls this freezing.)
pub const FROZEN: TxId = 1;

/// A transaction's fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    InProgress,
    Committed,
    Aborted,
}

/// The commit log (PostgreSQL's `pg_xact`): the status of every transaction id since
/// startup, one byte each, so a version's visibility is a lookup.
///
/// Rolled-back transactions remove their versions physically (their undo log), so an
/// `Aborted` id is never found on a version; the status is kept for completeness.
///
/// Statuses are kept in fixed-size pages, as `pg_xact` keeps them in 8 kB pages: the
/// log grows by one page at a time, and never copies what it already holds (a single
/// growing array is reallocated — copied — every time it doubles, under the engine
/// lock, and freeing the old copy made the allocator consolidate its free lists: 7% of
/// a select-only profile).
#[derive(Debug, Default)]
pub struct CommitLog {
    /// Status of id `FROZEN + i` at `pages[i / PAGE][i % PAGE]`; id `FROZEN` is committed.
    pages: Vec<Box<[TxStatus; PAGE]>>,
    /// Ids handed out (the first is `FROZEN`).
    len: u64,
    active: BTreeSet<TxId>,
}

/// Transaction statuses per commit-log page.
const PAGE: usize = 32 * 1024;

impl CommitLog {
    pub fn new() -> Self {
        let mut clog = CommitLog::default();
        clog.push(TxStatus::Committed);
        clog
    }

    fn push(&mut self, status: TxStatus) {
        let at = self.len as usize;
        if at.is_multiple_of(PAGE) {
            self.pages.push(Box::new([TxStatus::Aborted; PAGE]));
        }
        if let Some(page) = self.pages.last_mut() {
            page[at % PAGE] = status;
        }
        self.len += 1;
    }

    fn slot(&self, id: TxId) -> Option<(usize, usize)> {
        let i = id.checked_sub(FROZEN).filter(|&i| i < self.len)? as usize;
        Some((i / PAGE, i % PAGE))
    }

    /// Starts a transaction: the next id, in progress.
    pub fn begin(&mut self) -> TxId {
        let id = self.next_id();
        self.push(TxStatus::InProgress);
        self.active.insert(id);
        id
    }

    pub fn finish(&mut self, id: TxId, status: TxStatus) {
        if let Some((page, i)) = self.slot(id)
            && let Some(page) = self.pages.get_mut(page)
        {
            page[i] = status;
        }
        self.active.remove(&id);
    }

    pub fn status(&self, id: TxId) -> TxStatus {
        self.slot(id)
            .and_then(|(page, i)| self.pages.get(page).map(|p| p[i]))
            .unwrap_or(TxStatus::Aborted)
    }

    /// What `me` may see from now on: every transaction committed so far.
    pub fn snapshot(&self, me: TxId) -> Snapshot {
        Snapshot {
            me,
            xmax: self.next_id(),
            active: self.active.iter().copied().filter(|&t| t != me).collect(),
            dirty: false,
        }
    }

    /// Read uncommitted's "snapshot": every transaction that has not rolled back counts
    /// as seen, committed or not, so a reader sees the newest version of every row —
    /// including writes that are later rolled back (a dirty read).
    pub fn dirty_snapshot(&self, me: TxId) -> Snapshot {
        Snapshot {
            dirty: true,
            ..self.snapshot(me)
        }
    }

    /// The oldest transaction still running, if any.
    pub fn oldest_active(&self) -> Option<TxId> {
        self.active.first().copied()
    }

    /// The first id not yet handed out.
    pub fn next_id(&self) -> TxId {
        FROZEN + self.len
    }
}

/// Which transactions' effects a reader sees: those that committed before the snapshot
/// was taken. `xmax` is the first id not yet assigned then; `active` the ids still in
/// progress then (their effects stay invisible even after they commit).
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub me: TxId,
    pub xmax: TxId,
    pub active: BTreeSet<TxId>,
    /// Read uncommitted: running transactions count as seen too.
    pub dirty: bool,
}

impl Snapshot {
    /// Did `tx`'s commit happen before this snapshot? (`me`'s own writes count as seen;
    /// a dirty snapshot sees every transaction that has not rolled back.)
    pub fn sees(&self, tx: TxId, clog: &CommitLog) -> bool {
        if self.dirty {
            return tx == self.me || clog.status(tx) != TxStatus::Aborted;
        }
        tx == self.me
            || (tx < self.xmax
                && !self.active.contains(&tx)
                && clog.status(tx) == TxStatus::Committed)
    }

    /// The visibility rule: a version is visible if its creator is seen and its deleter
    /// (if any) is not.
    pub fn visible(&self, xmin: TxId, xmax: TxId, clog: &CommitLog) -> bool {
        self.sees(xmin, clog) && (xmax == 0 || !self.sees(xmax, clog))
    }

    /// Every transaction below this id has its fate decided for this snapshot: seen if
    /// it committed. Vacuum keeps whatever a transaction at or above it deleted.
    pub fn horizon(&self) -> TxId {
        self.active
            .first()
            .copied()
            .unwrap_or(self.xmax)
            .min(self.xmax)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_sees_what_committed_before_it_and_its_own_writes() {
        let mut clog = CommitLog::new();
        let a = clog.begin();
        let b = clog.begin();
        let snap_b = clog.snapshot(b);
        clog.finish(a, TxStatus::Committed);
        // a committed after b's snapshot: still invisible to it.
        assert!(!snap_b.visible(a, 0, &clog));
        assert!(snap_b.visible(b, 0, &clog));
        let c = clog.begin();
        let snap_c = clog.snapshot(c);
        assert!(snap_c.visible(a, 0, &clog));
        // deleted by b (in progress): still visible to c.
        assert!(snap_c.visible(a, b, &clog));
        assert!(!snap_c.visible(b, 0, &clog));
        assert!(snap_c.visible(FROZEN, 0, &clog));
        // A dirty snapshot sees b's uncommitted version, and not the one b replaced.
        let dirty = clog.dirty_snapshot(c);
        assert!(dirty.visible(b, 0, &clog));
        assert!(!dirty.visible(a, b, &clog));
    }
}

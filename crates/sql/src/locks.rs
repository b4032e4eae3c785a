//! Row locks, waits and deadlock detection.
//!
//! A row is locked by the transaction whose id is in its newest version's `xmax` (or
//! `xmin`, for a row it inserted) while that transaction is in progress — the lock lives
//! *in the row*, as in PostgreSQL, so locking a million rows costs no memory here. What
//! this table holds is the other half: for each running transaction, something to wait
//! on until it ends, and the *wait-for graph* — who waits for whom.
//!
//! A transaction waits for at most one other at a time, so the graph is a set of edges
//! `waiter -> holder`. Before adding an edge we follow the chain from the holder; if it
//! leads back to the waiter, waiting would never end: that is a deadlock, and the
//! transaction that would close the cycle gets 40P01 and rolls back, which releases its
//! locks so the others proceed. (PostgreSQL checks after `deadlock_timeout`; checking on
//! every wait is cheap here because chains are short.)

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

use crate::error::SqlError;
use crate::mvcc::TxId;

#[derive(Debug, Default)]
pub struct LockTable {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// One channel per running transaction; `true` is sent when it ends.
    running: HashMap<TxId, watch::Sender<bool>>,
    waits_for: HashMap<TxId, TxId>,
}

impl LockTable {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A transaction started: others may come to wait for it.
    pub fn register(&self, tx: TxId) {
        self.inner().running.insert(tx, watch::channel(false).0);
    }

    /// A transaction ended (committed or rolled back): wake everyone waiting for it.
    pub fn release(&self, tx: TxId) {
        let mut inner = self.inner();
        // A waiter whose client vanished mid-wait never removed its own edge.
        inner.waits_for.remove(&tx);
        if let Some(done) = inner.running.remove(&tx) {
            let _ = done.send(true);
        }
    }

    /// Waits until `holder` ends. Fails with 40P01 if `waiter` waiting for `holder` would
    /// close a cycle in the wait-for graph.
    pub async fn wait(&self, waiter: TxId, holder: TxId) -> Result<(), SqlError> {
        let mut done = {
            let mut inner = self.inner();
            let Some(sender) = inner.running.get(&holder) else {
                return Ok(()); // already finished
            };
            let receiver = sender.subscribe();
            let mut next = Some(holder);
            while let Some(t) = next {
                if t == waiter {
                    return Err(SqlError::deadlock().with_detail(format!(
                        "Process {waiter} waits for ShareLock on transaction {holder}; \
                         blocked by a transaction that waits for process {waiter}."
                    )));
                }
                next = inner.waits_for.get(&t).copied();
            }
            inner.waits_for.insert(waiter, holder);
            receiver
        };
        let _ = done.wait_for(|&finished| finished).await;
        self.inner().waits_for.remove(&waiter);
        Ok(())
    }

    /// `tx` gave up waiting (a timeout): forget its edge in the wait-for graph.
    pub fn stop_waiting(&self, tx: TxId) {
        self.inner().waits_for.remove(&tx);
    }

    /// Every wait now: (waiter, holder), for `pg_locks`.
    pub fn waits(&self) -> Vec<(TxId, TxId)> {
        let mut waits: Vec<_> = self
            .inner()
            .waits_for
            .iter()
            .map(|(&w, &h)| (w, h))
            .collect();
        waits.sort_unstable();
        waits
    }

    /// Who `tx` is waiting for, if anyone (for tests and diagnostics).
    pub fn waiting_for(&self, tx: TxId) -> Option<TxId> {
        self.inner().waits_for.get(&tx).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_cycle_in_the_wait_for_graph_is_a_deadlock() {
        let locks = Arc::new(LockTable::default());
        locks.register(1);
        locks.register(2);
        let l = locks.clone();
        let first = tokio::spawn(async move { l.wait(1, 2).await });
        while locks.waiting_for(1).is_none() {
            tokio::task::yield_now().await;
        }
        let err = locks.wait(2, 1).await.err().map(|e| e.code);
        assert_eq!(err, Some("40P01"));
        locks.release(2);
        assert!(matches!(first.await, Ok(Ok(()))));
    }
}

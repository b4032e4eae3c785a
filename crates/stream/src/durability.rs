//! When an acknowledged write is on disk: `--fsync always|everysec|no`, with group commit.
//!
//! `write()` only hands bytes to the operating system; they reach the disk when the OS
//! decides, or when someone calls `fsync`. A crash of the *process* loses nothing written,
//! a crash of the *machine* loses what was not synced. The three policies trade that
//! window for speed:
//! - `always`: a produce is acknowledged only after an fsync that covers it;
//! - `everysec`: a background task fsyncs once a second (lose at most ~1 s on power loss);
//! - `no`: leave it to the OS.
//!
//! An fsync costs about the same whether it covers one write or a thousand, so `always`
//! uses **group commit**: producers that arrive while an fsync is running do not each start
//! their own; the next fsync covers all of them at once. Each append takes a ticket (a
//! sequence number); one waiter becomes the *leader*, notes the highest ticket issued so far,
//! fsyncs every file written since the last sync and publishes "synced up to N"; everyone
//! with a ticket ≤ N is done, the rest elect the next leader.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// `--fsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FsyncPolicy {
    Always,
    Everysec,
    No,
}

impl FsyncPolicy {
    pub fn name(self) -> &'static str {
        match self {
            FsyncPolicy::Always => "always",
            FsyncPolicy::Everysec => "everysec",
            FsyncPolicy::No => "no",
        }
    }
}

/// The files written since the last sync, and who is waiting for them.
#[derive(Debug)]
pub struct GroupCommit {
    /// Tickets issued: one per append, taken after the bytes are written.
    issued: AtomicU64,
    /// Files with unsynced writes (deduplicated at sync time).
    dirty: Mutex<Vec<Arc<File>>>,
    /// Highest ticket known to be on disk.
    synced: watch::Sender<u64>,
    /// Held by the one task running an fsync.
    leader: tokio::sync::Mutex<()>,
    /// Number of fsync rounds, for INFO and tests.
    rounds: AtomicU64,
}

impl Default for GroupCommit {
    fn default() -> Self {
        GroupCommit {
            issued: AtomicU64::new(0),
            dirty: Mutex::new(Vec::new()),
            synced: watch::Sender::new(0),
            leader: tokio::sync::Mutex::new(()),
            rounds: AtomicU64::new(0),
        }
    }
}

impl GroupCommit {
    /// Registers a write to `file` and returns its ticket. Call after the write.
    pub fn written(&self, file: Arc<File>) -> u64 {
        let mut dirty = lock(&self.dirty);
        // Consecutive appends usually hit the same file: keep the list short.
        if !dirty.last().is_some_and(|last| Arc::ptr_eq(last, &file)) {
            dirty.push(file);
        }
        drop(dirty);
        self.issued.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// The highest ticket known to be on disk.
    pub fn synced(&self) -> u64 {
        *self.synced.borrow()
    }

    /// Fsync rounds so far.
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    /// Waits until the write with `ticket` is on disk, running the fsync if no one else is.
    pub async fn wait(&self, ticket: u64) -> io::Result<()> {
        let mut synced = self.synced.subscribe();
        loop {
            if *synced.borrow_and_update() >= ticket {
                return Ok(());
            }
            match self.leader.try_lock() {
                Ok(_guard) => {
                    if *self.synced.borrow() < ticket {
                        // Let producers whose requests are already here append first, so
                        // this fsync covers them too (what an event loop does by nature).
                        tokio::task::yield_now().await;
                        self.sync_now().await?;
                    }
                }
                // Someone else is syncing: wait for the result, then look again.
                Err(_) => {
                    let _ = synced.changed().await;
                }
            }
        }
    }

    /// Fsyncs every dirty file now (the everysec task, shutdown). Waits for a running sync.
    pub async fn sync_all(&self) -> io::Result<()> {
        let _guard = self.leader.lock().await;
        self.sync_now().await
    }

    /// One round: note the highest ticket, take the dirty files (every ticket up to the
    /// noted one registered its file before taking the ticket), fsync them off the async
    /// threads, publish.
    async fn sync_now(&self) -> io::Result<()> {
        let target = self.issued.load(Ordering::Acquire);
        let files = std::mem::take(&mut *lock(&self.dirty));
        if !files.is_empty() {
            let result = tokio::task::spawn_blocking(move || {
                let mut unique: Vec<Arc<File>> = Vec::with_capacity(files.len());
                for f in files {
                    if !unique.iter().any(|u| Arc::ptr_eq(u, &f)) {
                        unique.push(f);
                    }
                }
                unique.iter().try_for_each(|f| f.sync_data())
            })
            .await
            .map_err(io::Error::other)?;
            result?;
            self.rounds.fetch_add(1, Ordering::Relaxed);
        }
        self.synced.send_modify(|s| *s = (*s).max(target));
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[tokio::test]
    async fn concurrent_writers_share_fsyncs() {
        let dir = std::env::temp_dir().join(format!("infralab-gc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = Arc::new(File::create(dir.join("f")).unwrap());
        let gc = Arc::new(GroupCommit::default());
        let mut tasks = Vec::new();
        for i in 0..64 {
            let (gc, file) = (gc.clone(), file.clone());
            tasks.push(tokio::spawn(async move {
                (&*file).write_all(format!("{i}\n").as_bytes()).unwrap();
                let ticket = gc.written(file);
                gc.wait(ticket).await.unwrap();
                ticket
            }));
        }
        for t in tasks {
            let ticket = t.await.unwrap();
            assert!(*gc.synced.borrow() >= ticket);
        }
        assert!(gc.rounds() >= 1 && gc.rounds() <= 64, "{}", gc.rounds());
        // Nothing dirty: waiting on an old ticket returns at once, no new round.
        let rounds = gc.rounds();
        gc.wait(1).await.unwrap();
        assert_eq!(gc.rounds(), rounds);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

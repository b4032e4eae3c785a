//! The writer thread: takes what the commands appended, writes it to the journal file,
//! fsyncs it as `--fsync` says, and closes full files for the folder.
//!
//! It is a thread of its own so that a client waits for a disk only when it asked to
//! (`--fsync always`): under `everysec` and `no` the event loop writes the records of the
//! replies it sends itself, and the writer picks up the rest (the expiry cycle's
//! deletions), the once-a-second fsync, and the start of each fold. The parent module's
//! docs ("The write path") explain the policy; this is its loop.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use tracing::{error, info};

use super::checkpoint::Fold;
use super::journal::Appender;
use super::{Fsync, Shared, WAKE_BYTES, WAKE_CHANGES, WRITE_INTERVAL, Waiting, unix_secs};

/// At most one fold per this long is started for
/// [`Storage::freed`](super::Storage::freed), so a client that writes and deletes large
/// values in a loop costs a fold a second, not one per value.
const FOLD_SOON: Duration = Duration::from_secs(1);

/// The writer thread's state.
pub(super) struct Writer {
    pub(super) shared: Arc<Shared>,
    pub(super) journal_dir: PathBuf,
    pub(super) fsync: Fsync,
    pub(super) folder: mpsc::Sender<Fold>,
    pub(super) fold_threshold: u64,
}

impl Writer {
    /// Writes what was appended and no reply has written yet, fsyncs per `--fsync`,
    /// starts a new file and asks for a fold when one is due; until told to stop.
    pub(super) fn run(mut self) {
        let mut durable = self.shared.progress.borrow().durable;
        let mut last_write = Instant::now();
        let mut last_sync = Instant::now();
        let mut saves_done = 0;
        // When the last fold was started, for `Storage::freed`'s rate.
        let mut last_fold: Option<Instant> = None;
        loop {
            let (saves, stop, abandon, fold_soon) = {
                let mut pending = self.shared.lock();
                loop {
                    let now = Instant::now();
                    let written = self.shared.written.load(Ordering::Acquire);
                    let sync_at = (self.fsync == Fsync::Everysec && durable < written)
                        .then(|| last_sync + Duration::from_secs(1));
                    let write_at = (!pending.records.is_empty()).then(|| {
                        let urgent = self.fsync == Fsync::Always
                            || pending.changes >= WAKE_CHANGES
                            || pending.records.len() >= WAKE_BYTES;
                        if urgent {
                            now
                        } else {
                            last_write + WRITE_INTERVAL
                        }
                    });
                    let fold_at = (pending.fold_after > 0 && pending.seq >= pending.fold_after)
                        .then(|| last_fold.map_or(now, |at| at + FOLD_SOON));
                    let due = sync_at.into_iter().chain(write_at).chain(fold_at).min();
                    if pending.stop || pending.saves > saves_done || due.is_some_and(|d| d <= now) {
                        break;
                    }
                    pending = match due {
                        Some(due) => {
                            pending.writer = Waiting::Timed;
                            match self.shared.wake.wait_timeout(pending, due - now) {
                                Ok((g, _)) => g,
                                Err(poisoned) => poisoned.into_inner().0,
                            }
                        }
                        None => {
                            pending.writer = Waiting::Idle;
                            match self.shared.wake.wait(pending) {
                                Ok(g) => g,
                                Err(poisoned) => poisoned.into_inner(),
                            }
                        }
                    };
                    pending.writer = Waiting::No;
                }
                let fold_soon = pending.fold_after > 0
                    && pending.seq >= pending.fold_after
                    && last_fold.is_none_or(|at| at.elapsed() >= FOLD_SOON);
                if fold_soon {
                    pending.fold_after = 0;
                }
                (pending.saves, pending.stop, pending.abandon, fold_soon)
            };
            let written = self.shared.write_out();
            last_write = Instant::now();
            let save = saves > saves_done;
            let sync_due = match self.fsync {
                Fsync::Always => durable < written,
                Fsync::Everysec => {
                    durable < written && last_sync.elapsed() >= Duration::from_secs(1)
                }
                Fsync::No => false,
            };
            if sync_due || save || stop {
                // Outside the journal's lock: the event loop keeps appending meanwhile.
                let file = self.shared.journal().appender.file();
                match file.sync_data() {
                    Ok(()) => {
                        durable = written;
                        last_sync = Instant::now();
                        self.shared.progress.send_modify(|p| {
                            p.durable = p.durable.max(written);
                            p.last_flush = unix_secs();
                        });
                    }
                    Err(e) => error!("journal fsync failed: {e}"),
                }
            }
            if stop && abandon {
                break;
            }
            let full = self.shared.journal().appender.bytes() >= self.fold_threshold;
            if save || stop || full || fold_soon {
                self.start_fold(saves, stop);
                last_fold = Some(Instant::now());
            }
            saves_done = saves;
            if stop {
                break;
            }
        }
        info!("journal closed");
    }

    /// Closes the current journal file (starting the next one, unless stopping) and asks
    /// the folder to fold every closed file.
    ///
    /// The next file is created before the journal's lock is taken and the full one is
    /// finished (cut and fsynced) after it is released: the event loop, which writes
    /// under that lock, waits for neither.
    fn start_fold(&mut self, saves: u64, stop: bool) {
        let (current, has_records) = {
            let open = self.shared.journal();
            (open.appender.generation(), open.appender.has_records())
        };
        let mut through = if stop || has_records {
            current
        } else {
            current - 1
        };
        if through == current {
            let closed = if stop {
                Ok(None)
            } else {
                match Appender::create(&self.journal_dir, current + 1) {
                    Ok(next) => Ok(Some(std::mem::replace(
                        &mut self.shared.journal().appender,
                        next,
                    ))),
                    Err(e) => Err(e),
                }
            };
            let finished = match closed {
                Ok(Some(full)) => full.finish(),
                Ok(None) => self.shared.journal().appender.finish(),
                Err(e) => {
                    // Keep appending to this file; fold the closed ones (if any).
                    error!("cannot start a new journal file: {e}");
                    through = current - 1;
                    Ok(())
                }
            };
            if let Err(e) = finished {
                error!("journal file {current}: {e}");
            }
        }
        let _ = self.folder.send(Fold {
            through,
            saves,
            stop,
        });
    }
}

//! Folding: applying closed journal files to sled, exactly once, on the folder thread.
//!
//! A file is read a chunk of [`FOLD_CHUNK`] changes at a time; each chunk is staged (see
//! [`super::stage`]) and written by [`Files::write`] as one sled transaction that also
//! moves the checkpoint's [`Position`], so the data and the position never disagree (the
//! parent module's "Exactly once"). Only after sled is flushed past a file is the file
//! deleted. It runs on a thread of its own so that the writer, and the clients waiting
//! on it, never wait for sled.

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use sled::Transactional;
use sled::transaction::{TransactionError, TransactionResult};
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::stage::{Stage, Staged};
use super::{FOLD_CHUNK, Files, POSITION_KEY, Position, db_key, elements_name, records_name};
use crate::codec;
use crate::keyspace::DATABASES;
use crate::storage::{Progress, journal, unix_secs};

impl Files {
    /// Points each of `dbs` at a new physical id (two empty trees) and drops the old
    /// trees: one atomic write to `meta`, which also moves the position to `at`.
    pub(super) fn flush_dbs(&mut self, dbs: &[usize], at: Position) -> Result<(), sled::Error> {
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

    pub(super) fn swap_db(&mut self, a: usize, b: usize, at: Position) -> Result<(), sled::Error> {
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
    pub(super) fn write(&mut self, stage: &mut Stage, at: Position) -> Result<(), sled::Error> {
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

    /// Folds journal file `generation` into sled, from where the checkpoint stands, in
    /// transactions of [`FOLD_CHUNK`] changes; the last one moves the position to the
    /// start of the next file. A file the checkpoint is already past is skipped.
    pub(in crate::storage) fn fold(
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

//! The seal: how far sled's log had got, kept outside it, so that damage sled recovers
//! from by quietly dropping the rest of its log is seen.
//!
//! sled recovers its log on open by reading it in order and stopping at the first record
//! that is cut short or fails its checksum: everything after that point is treated as
//! never written. For a torn tail (a crash in the middle of a write nobody was answered
//! for) that is right. For a byte flipped in the middle of the file it is not: every
//! batch written after the damage — messages the broker confirmed and flushed — would be
//! dropped without a word, and the broker would start serving what is left.
//!
//! So each flush ends with a seal. Before the batch is made durable, the store writes a
//! counter into sled, in the same log (`seal` in sled's default tree: flush number
//! `n`); after sled's log is on disk, it writes `n` to the file `DIR/seal`. On open,
//! sled's counter must be at least the file's: if sled came back with an older counter,
//! its recovery dropped flushes that had completed. The broker then refuses to start,
//! naming the database file, unless `--load-truncated` accepts the loss (as kv and the
//! stream server do for their own logs).
//!
//! The file is written after sled's `fdatasync` and is itself not synced: after a crash
//! of the machine it can only lag behind sled (a weaker check for that one flush), never
//! run ahead of it and raise a false alarm. A directory without the file (written by an
//! older broker) is not checked until its first flush.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::journal::StorageError;

/// sled's copy of the counter, in its default tree.
const KEY: &[u8] = b"seal";

/// The counter and its file.
pub struct Seal {
    file: File,
    path: PathBuf,
    /// The number of the last flush sealed.
    last: AtomicU64,
}

/// What opening found: the seal agrees with sled, or sled lost flushes.
pub enum Check {
    Intact,
    /// sled recovered up to flush `recovered`, but flush `sealed` had completed.
    Lost {
        recovered: u64,
        sealed: u64,
    },
}

impl Seal {
    /// Opens `DIR/seal` and compares it with sled's counter in `db`.
    pub fn open(dir: &Path, db: &sled::Db) -> Result<(Seal, Check), StorageError> {
        let path = dir.join("seal");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StorageError(format!("{}: {e}", path.display())))?;
        let mut bytes = [0u8; 8];
        let sealed = match file.read_exact_at(&mut bytes, 0) {
            Ok(()) => u64::from_be_bytes(bytes),
            // Empty (new, or an older broker's directory): nothing to compare.
            Err(_) => 0,
        };
        let recovered = db
            .get(KEY)
            .map_err(|e| StorageError(e.to_string()))?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, u64::from_be_bytes);
        let check = if recovered < sealed {
            Check::Lost { recovered, sealed }
        } else {
            Check::Intact
        };
        let seal = Seal {
            file,
            path,
            last: AtomicU64::new(recovered.max(sealed)),
        };
        Ok((seal, check))
    }

    /// Writes the next flush's number into sled, in the batch about to be flushed.
    pub fn stamp(&self, db: &sled::Db) -> Result<u64, StorageError> {
        let n = self.last.fetch_add(1, Ordering::SeqCst) + 1;
        db.insert(KEY, &n.to_be_bytes())
            .map_err(|e| StorageError(e.to_string()))?;
        Ok(n)
    }

    /// Flush `n` is on disk in sled: record it outside sled.
    pub fn sealed(&self, n: u64) -> Result<(), StorageError> {
        self.file
            .write_all_at(&n.to_be_bytes(), 0)
            .map_err(|e| StorageError(format!("{}: {e}", self.path.display())))
    }
}

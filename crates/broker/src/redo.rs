//! The redo log: the engine's changes, written to the kernel before the replies go out.
//!
//! The store applies changes to sled in batches, once a second (write-behind, see
//! [`crate::store`]), and until a batch reaches sled its changes live only in the
//! process's memory. Under `--fsync always` a reply waits for that batch and its fsync.
//! Under `everysec` and `no` it does not, so without something more a `kill -9` would
//! lose up to a second of confirmed sends and acks. The redo log is that something, and
//! it is what Redis's AOF is under `appendfsync everysec`: every change is appended to a
//! buffer as it happens, and the buffer is written to a file with one `write()` after
//! the connection has executed its batch of commands and before their replies are sent
//! ([`Store::write_redo`](crate::store::Store::write_redo)). The kernel then holds every
//! confirmed change; a crash of the process loses none of them, only a crash of the
//! machine can lose what was not yet fsynced: under `everysec` the file is fsynced once a
//! second, so about a second.
//!
//! Being the durable copy, the log lets sled lag: sled gets the changes only at a
//! *checkpoint*, every 10 seconds, as a database's data files lag its write-ahead log.
//!
//! The log only has to cover what sled does not: each flush of the store first starts a
//! new file ([`Redo::rotate`]), then hands its batch to sled, and once sled has it on disk
//! deletes the files before the new one. On start, the files left over are replayed into
//! sled, in order. Their records are idempotent (put this message, delete that one), so
//! replaying a change sled already has is harmless.
//!
//! ```text
//! DIR/redo/00000000000000000001.redo ...
//! record: length u32 LE | crc32c(payload) u32 LE | payload = codec::encode(Change)
//! ```
//!
//! **The record kinds** ([`Change`]) follow a job's life, and only the first carries its
//! body:
//!
//! | record | written when | holds | size, 1 KiB job |
//! |---|---|---|---|
//! | `PutMessage` | sent; moved to another queue (dead-lettered, buried, redriven, kicked) | queue, the whole message | ~1.1 KiB |
//! | `SetStatus` | received / reserved, nacked / released, extended / touched, its lease or delay over | id, [`Status`]: priority, deliveries, first receive, state and lease | ~70 B |
//! | `DeleteMessage` | acknowledged / deleted, expired, purged | id | 21 B |
//! | `PutQueue`, `DeleteQueue` | a queue created, changed, deleted | name (and attributes) | small |
//!
//! So a job sent, received and acknowledged costs the log its body once, as beanstalkd's
//! binlog does (it writes a reservation not at all: a reserved job comes back after a
//! restart as ready; here a lease survives one, see `--on-disconnect keep`).
//!
//! Replaying a `SetStatus` needs the message it changes: an earlier record of the replay
//! (its put, in this file or an older one), else sled's copy. If neither has it, the
//! message was deleted before the checkpoint that sled holds, and a `DeleteMessage`
//! follows in the log (a status is only ever recorded for a message that exists), so
//! skipping it is exact. The replay applies every record from the oldest file on to the
//! end, so the last record of each message — put, status or delete — decides what it is.
//!
//! As in kv's journal, a record that is cut short or fails its checksum with nothing
//! valid after it is a torn tail (a write the crash interrupted, confirmed to no one) and
//! is cut off. Damage followed by a valid record is not a crash's work: opening refuses
//! with the file and byte, unless `--load-truncated`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::journal::StorageError;
use crate::message::{Message, MessageId, Status};
use crate::queue::QueueConfig;

/// One change to the store, as the engine made it (the record kinds: see the module's
/// documentation). bincode writes the variant's index: new kinds go at the end.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Change {
    PutMessage(Bytes, Message),
    DeleteMessage(MessageId),
    PutQueue(Bytes, QueueConfig),
    DeleteQueue(Bytes),
    /// A message's status changed, nothing else (see [`Status`]).
    SetStatus(MessageId, Status),
}

const HEADER: usize = 8;

/// A buffer that grew past this (a large message) is not kept for the next batch.
const KEEP_CAPACITY: usize = 4 * 1024 * 1024;

fn file_name(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("{generation:020}.redo"))
}

fn io_error(e: io::Error) -> StorageError {
    StorageError(e.to_string())
}

/// The generations present in `dir`, oldest first.
fn generations(dir: &Path) -> io::Result<Vec<u64>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let generation = name
            .to_str()
            .and_then(|n| n.strip_suffix(".redo"))
            .and_then(|n| n.parse::<u64>().ok());
        found.extend(generation);
    }
    found.sort_unstable();
    Ok(found)
}

/// The log being written: the records not yet written, and the current file.
pub struct Redo {
    dir: PathBuf,
    buffer: Vec<u8>,
    file: File,
    generation: u64,
    /// Bytes written to the current file (how much a restart would replay).
    written: u64,
}

impl Redo {
    /// Starts a new file in `dir`, numbered after generation `after` (the newest
    /// [`recover`] found).
    pub fn create(dir: &Path, after: u64) -> Result<Redo, StorageError> {
        fs::create_dir_all(dir).map_err(io_error)?;
        let generation = after + 1;
        Ok(Redo {
            dir: dir.to_path_buf(),
            buffer: Vec::new(),
            file: new_file(dir, generation)?,
            generation,
            written: 0,
        })
    }

    /// Encodes a change into the buffer (no system call): the header's place first, then
    /// the payload straight into the buffer, then the header filled in.
    pub fn push(&mut self, change: &Change) -> Result<(), StorageError> {
        let start = self.buffer.len();
        self.buffer.extend_from_slice(&[0; HEADER]);
        if let Err(e) = codec::encode_into(&mut self.buffer, change) {
            self.buffer.truncate(start);
            return Err(e);
        }
        let payload = &self.buffer[start + HEADER..];
        let Ok(len) = u32::try_from(payload.len()) else {
            self.buffer.truncate(start);
            return Err(StorageError("a change too large for the redo log".into()));
        };
        let crc = crc32c::crc32c(payload);
        self.buffer[start..start + 4].copy_from_slice(&len.to_le_bytes());
        self.buffer[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
        Ok(())
    }

    /// Writes the buffer to the file: one `write()` for everything pushed since.
    pub fn write(&mut self) -> Result<(), StorageError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let result = self.file.write_all(&self.buffer).map_err(io_error);
        self.written += self.buffer.len() as u64;
        self.buffer.clear();
        if self.buffer.capacity() > KEEP_CAPACITY {
            self.buffer = Vec::new();
        }
        result
    }

    /// Writes what is buffered and starts the next file; returns the generation closed.
    /// Every change pushed before is in that file or an older one.
    pub fn rotate(&mut self) -> Result<u64, StorageError> {
        self.write()?;
        let next = new_file(&self.dir, self.generation + 1)?;
        self.file = next;
        self.generation += 1;
        self.written = 0;
        Ok(self.generation - 1)
    }

    /// Bytes in the current file.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// A handle on the current file, to `fdatasync` it without holding the log.
    pub fn current_file(&self) -> Result<File, StorageError> {
        self.file.try_clone().map_err(io_error)
    }

    /// Deletes the files up to and including `generation`: sled has their changes on disk.
    pub fn forget(&self, generation: u64) -> Result<(), StorageError> {
        for old in generations(&self.dir).map_err(io_error)? {
            if old <= generation {
                fs::remove_file(file_name(&self.dir, old)).map_err(io_error)?;
            }
        }
        Ok(())
    }
}

fn new_file(dir: &Path, generation: u64) -> Result<File, StorageError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(file_name(dir, generation))
        .map_err(io_error)?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error)?;
    Ok(file)
}

/// The records of one file, and where the good ones end if damage stopped the reading.
struct Records {
    changes: Vec<Change>,
    good_end: usize,
    damage: Option<String>,
}

/// Decodes the record at `at` of `bytes`: the change and where the record ends.
fn record_at(bytes: &[u8], at: usize) -> Result<(Change, usize), String> {
    let Some(header) = bytes.get(at..at + HEADER) else {
        return Err("a record header cut short".into());
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let Some(payload) = bytes.get(at + HEADER..at + HEADER + len) else {
        return Err("a record cut short".into());
    };
    if crc32c::crc32c(payload) != crc {
        return Err("a record failing its checksum".into());
    }
    let change = codec::decode(payload).map_err(|e| format!("an undecodable record ({e})"))?;
    Ok((change, at + HEADER + len))
}

fn read(bytes: &[u8]) -> Records {
    let (mut changes, mut at) = (Vec::new(), 0);
    while at < bytes.len() {
        match record_at(bytes, at) {
            Ok((change, end)) => {
                changes.push(change);
                at = end;
            }
            Err(damage) => {
                return Records {
                    changes,
                    good_end: at,
                    damage: Some(damage),
                };
            }
        }
    }
    Records {
        changes,
        good_end: at,
        damage: None,
    }
}

/// Reads every redo file in `dir`, oldest first, and returns their changes in order and
/// the newest generation. A torn tail of the last file is cut off; damage followed by a
/// valid record, or in a file that is not the last, is an error naming the file and the
/// byte, unless `load_truncated`, which drops everything from the damage on.
pub fn recover(dir: &Path, load_truncated: bool) -> Result<(Vec<Change>, u64), StorageError> {
    fs::create_dir_all(dir).map_err(io_error)?;
    let all = generations(dir).map_err(io_error)?;
    let mut changes = Vec::new();
    for (i, &generation) in all.iter().enumerate() {
        let path = file_name(dir, generation);
        let bytes = fs::read(&path).map_err(io_error)?;
        let found = read(&bytes);
        changes.extend(found.changes);
        let Some(damage) = found.damage else {
            continue;
        };
        let at = found.good_end;
        let later = all.len() - i - 1;
        let valid_after = (at + 1..bytes.len()).find(|&p| record_at(&bytes, p).is_ok());
        let follows = match (later, valid_after) {
            (0, None) => None,
            (0, Some(p)) => Some(format!("a valid record at byte {p}")),
            (n, _) => Some(format!("{n} later redo file(s)")),
        };
        if let Some(follows) = &follows {
            let what = format!(
                "redo log {} is damaged at byte {at} ({damage}), followed by {follows}: not a torn tail",
                path.display()
            );
            if !load_truncated {
                return Err(StorageError(format!(
                    "{what}. Refusing to start rather than drop the changes after it; restore \
                     the file, or start with --load-truncated to drop everything from byte {at} on"
                )));
            }
            tracing::warn!("{what}; --load-truncated: dropping everything from there on");
        } else {
            tracing::warn!(
                "redo log {}: {damage} at byte {at}, the last record: a torn tail, cut off",
                path.display()
            );
        }
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io_error)?;
        file.set_len(at as u64).map_err(io_error)?;
        file.sync_all().map_err(io_error)?;
        if follows.is_some() {
            for &dropped in &all[i + 1..] {
                let from = file_name(dir, dropped);
                fs::rename(&from, from.with_extension("redo.dropped")).map_err(io_error)?;
            }
            return Ok((changes, all.last().copied().unwrap_or(0)));
        }
    }
    Ok((changes, all.last().copied().unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("broker-redo-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn ids(changes: &[Change]) -> Vec<u64> {
        changes
            .iter()
            .map(|c| match c {
                Change::DeleteMessage(id) => *id,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    /// Writes deletes of ids 1..=n into one file; returns its path and record ends.
    fn written(dir: &Path, n: u64) -> (PathBuf, Vec<usize>) {
        let mut redo = Redo::create(dir, 0).unwrap();
        let mut ends = Vec::new();
        for id in 1..=n {
            redo.push(&Change::DeleteMessage(id)).unwrap();
            ends.push(redo.buffer.len());
        }
        redo.write().unwrap();
        (file_name(dir, 1), ends)
    }

    #[test]
    fn a_torn_last_record_is_cut_off() {
        let dir = temp("torn");
        let (path, ends) = written(&dir, 10);
        let len = fs::metadata(&path).unwrap().len();
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(len - 3).unwrap();
        let (changes, last) = recover(&dir, false).unwrap();
        assert_eq!(ids(&changes), (1..=9).collect::<Vec<_>>());
        assert_eq!(last, 1);
        assert_eq!(fs::metadata(&path).unwrap().len(), ends[8] as u64);
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn damage_in_the_middle_refuses_unless_load_truncated() {
        let dir = temp("middle");
        let (path, ends) = written(&dir, 10);
        let mut bytes = fs::read(&path).unwrap();
        bytes[ends[4] + HEADER + 2] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        let refused = recover(&dir, false).unwrap_err().0;
        let named = format!("{} is damaged at byte {}", path.display(), ends[4]);
        assert!(refused.contains(&named), "{refused}");
        assert!(refused.contains("--load-truncated"), "{refused}");
        assert_eq!(
            fs::read(&path).unwrap(),
            bytes,
            "the refusal changed the file"
        );
        let (changes, _) = recover(&dir, true).unwrap();
        assert_eq!(ids(&changes), (1..=5).collect::<Vec<_>>());
        let _ = fs::remove_dir_all(dir);
    }
}

//! The journal: an append-only file of change records, the first stop of every write.
//!
//! ## Why appending is cheap
//!
//! Writing a change into a sorted store (sled, a B-tree, an LSM tree) means finding its
//! place: walk the index, copy a page or a node, update pointers, and later write the page
//! back. Appending means copying the record's bytes to the end of a buffer. Many clients'
//! records then reach the file in one `write()`, one system call for thousands of writes,
//! and the disk sees one sequential stream. Redis's AOF works the same way, and so does
//! the write-ahead log of every database: the log takes the writes at the speed of
//! sequential I/O, and the structure that is expensive to update (here sled, Redis's RDB,
//! a database's tables) is brought up to date later, in bulk.
//!
//! ## Files and records
//!
//! The journal is a numbered sequence of files in `DIR/journal/`: `00000000000000000001.kvj`,
//! `...0002.kvj`, ... Only the last one is written to. When it grows past a threshold (or on
//! `SAVE`, or at shutdown) the writer starts the next one, and the older ones are folded
//! into sled and deleted (see `super::checkpoint`). Each file starts with
//! [`codec::JOURNAL_HEADER`], then records:
//!
//! ```text
//! length: u32 LE | crc32c(payload): u32 LE | payload = bincode(Change)
//! ```
//!
//! ## Space written ahead
//!
//! `fdatasync` flushes a file's data, and its metadata only where a read needs it: the
//! file's size does, the modification time does not. An append that grows the file thus
//! makes every fsync a filesystem journal commit as well, about twice the disk work. So
//! the writer fills the file with zeros [`PREALLOCATE`] bytes ahead of its end, as
//! PostgreSQL zero-fills its WAL segments: records then overwrite blocks that already exist,
//! and the size changes once per 4 MiB instead of once per fsync. A header of zeros (a
//! record is never empty) is where the records end. A file is cut to its records' length
//! when the writer moves on to the next one.
//!
//! ## A torn tail
//!
//! A crash can stop the file anywhere: in the middle of a record's header, of its payload,
//! or after a payload whose bytes never all reached the disk (the file's length grew but
//! some of its pages did not). The length says where a record should end and the checksum
//! whether the bytes there are the ones written, so a reader stops at the first record that
//! is short or does not match. Nothing after it was acknowledged under `--fsync always`
//! (a reply waits for the fsync that covers its record, and an fsync covers a prefix of the
//! file), so recovery truncates the file there and goes on, as Redis does with
//! `aof-load-truncated yes` — if nothing valid follows ([`valid_record_after`]). A crash
//! tears only the last record; a valid record after the damage means something else
//! (a flipped bit, a bad sector) and recovery refuses to start unless told otherwise.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::codec;
use crate::keyspace::Change;

/// Where the journal files live, inside the data directory.
pub fn directory(dir: &Path) -> PathBuf {
    dir.join("journal")
}

fn file_name(journal_dir: &Path, generation: u64) -> PathBuf {
    journal_dir.join(format!("{generation:020}.kvj"))
}

/// The generations present in `journal_dir`, oldest first.
pub fn generations(journal_dir: &Path) -> io::Result<Vec<u64>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(journal_dir)? {
        let name = entry?.file_name();
        let generation = name
            .to_str()
            .and_then(|n| n.strip_suffix(".kvj"))
            .and_then(|n| n.parse().ok());
        if let Some(generation) = generation {
            found.push(generation);
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// Deletes a journal file (folded into the checkpoint, so no longer needed).
pub fn remove(journal_dir: &Path, generation: u64) -> io::Result<()> {
    match fs::remove_file(file_name(journal_dir, generation)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Makes the directory's entries (a file created or deleted) durable: the file's own
/// fsync covers its bytes, not the name that points at it.
pub fn sync_directory(journal_dir: &Path) -> io::Result<()> {
    File::open(journal_dir)?.sync_all()
}

/// Bytes of zeros the writer keeps ahead of the last record (see the module docs).
pub const PREALLOCATE: u64 = 4 * 1024 * 1024;

/// The journal file being appended to.
pub struct Appender {
    /// Shared so the writer can `fsync` it without holding the journal's lock while
    /// the event loop keeps appending (see `super::Storage::write_through`).
    file: Arc<File>,
    generation: u64,
    /// End of the records.
    len: u64,
    /// End of the file: the records, then zeros.
    allocated: u64,
}

impl Appender {
    /// Creates journal file `generation` (empty but for its header) and makes it durable.
    pub fn create(journal_dir: &Path, generation: u64) -> io::Result<Appender> {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(file_name(journal_dir, generation))?;
        file.write_all(&codec::JOURNAL_HEADER)?;
        file.sync_all()?;
        sync_directory(journal_dir)?;
        Ok(Appender {
            file: Arc::new(file),
            generation,
            len: codec::JOURNAL_HEADER.len() as u64,
            allocated: codec::JOURNAL_HEADER.len() as u64,
        })
    }

    /// Appends encoded records: one `write()` for the whole batch (the kernel copies it
    /// into the page cache; it reaches the disk at [`Self::sync`] or when the kernel
    /// decides).
    pub fn append(&mut self, records: &[u8]) -> io::Result<()> {
        let end = self.len + records.len() as u64;
        self.file.write_all_at(records, self.len)?;
        self.len = end;
        if end > self.allocated {
            let zeros = vec![0; 64 * 1024];
            let mut at = end;
            while at < end + PREALLOCATE {
                self.file.write_all_at(&zeros, at)?;
                at += zeros.len() as u64;
            }
            self.allocated = at;
        }
        Ok(())
    }

    /// Cuts the zeros written ahead and makes the file durable: the writer is done with it.
    pub fn finish(&self) -> io::Result<()> {
        self.file.set_len(self.len)?;
        self.file.sync_all()
    }

    /// `fsync` (data only: the file's size is data; its timestamps are not worth a
    /// second disk write).
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// The file, to `fsync` without holding the journal's lock.
    pub fn file(&self) -> Arc<File> {
        self.file.clone()
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Bytes in the file, header included.
    pub fn bytes(&self) -> u64 {
        self.len
    }

    /// Does the file hold any record?
    pub fn has_records(&self) -> bool {
        self.len > codec::JOURNAL_HEADER.len() as u64
    }
}

/// Reads a journal file's records in order, stopping at the end or at the first damaged
/// record (see the module docs).
pub struct Reader {
    input: BufReader<File>,
    /// Offset just past the last good record (or the header).
    offset: u64,
    /// Set when reading stopped at bytes that are not a whole, valid record.
    damaged: Option<String>,
    payload: Vec<u8>,
}

impl Reader {
    /// Opens journal file `generation` and positions it at `from` (0: the first record).
    pub fn open(journal_dir: &Path, generation: u64, from: u64) -> io::Result<Reader> {
        let mut file = File::open(file_name(journal_dir, generation))?;
        let mut header = [0; codec::JOURNAL_HEADER.len()];
        let damaged = match file.read_exact(&mut header) {
            Ok(()) if header == codec::JOURNAL_HEADER => None,
            Ok(()) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("journal file {generation}: unknown header {header:?}"),
                ));
            }
            // A crash right after creating the file: nothing was ever written to it.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Some("no header".into()),
            Err(e) => return Err(e),
        };
        let offset = from.max(codec::JOURNAL_HEADER.len() as u64);
        file.seek(SeekFrom::Start(offset))?;
        Ok(Reader {
            input: BufReader::with_capacity(1 << 16, file),
            offset,
            damaged,
            payload: Vec::new(),
        })
    }

    /// The next change and the offset just past it; `None` at the end of the good records.
    pub fn next_change(&mut self) -> io::Result<Option<(Change, u64)>> {
        if self.damaged.is_some() {
            return Ok(None);
        }
        let mut header = [0; codec::JOURNAL_RECORD_HEADER];
        match read_full(&mut self.input, &mut header)? {
            0 => return Ok(None),
            n if n < header.len() => return self.stop("a record header cut short"),
            _ => {}
        }
        let (len, crc) = codec::journal_record_header(header);
        if len == 0 && crc == 0 {
            // The zeros written ahead: the end of the records.
            return Ok(None);
        }
        if len > codec::MAX_JOURNAL_RECORD {
            return self.stop("a record length out of range");
        }
        self.payload.resize(len, 0);
        if read_full(&mut self.input, &mut self.payload)? < len {
            return self.stop("a record cut short");
        }
        match codec::decode_journal_payload(&self.payload, crc) {
            Ok(change) => {
                self.offset += (codec::JOURNAL_RECORD_HEADER + len) as u64;
                Ok(Some((change, self.offset)))
            }
            Err(e) => self.stop(&format!("a damaged record ({e:?})")),
        }
    }

    fn stop(&mut self, why: &str) -> io::Result<Option<(Change, u64)>> {
        self.damaged = Some(why.to_string());
        Ok(None)
    }

    /// Offset just past the last good record.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Why reading stopped before the end of the file, if it did.
    pub fn damage(&self) -> Option<&str> {
        self.damaged.as_deref()
    }
}

/// Where the first whole, valid record after byte `damaged` of journal file `generation`
/// starts, if one does: the difference between a torn tail and damage in the middle.
///
/// A crash tears only the last record: whatever follows it (the zeros written ahead, or
/// nothing) was never a record. A valid record *after* the damage means the damage is
/// not a crash's work (a flipped bit, a bad sector, an edit by hand) and that records
/// written later — acknowledged, perhaps synced — would be lost by truncating there.
/// The damaged record's own length cannot be trusted (it may be the damaged field), so
/// every byte position after it is tried: a length that fits, then the checksum. A
/// random match needs a plausible length *and* a 32-bit CRC; this runs only when
/// recovery has found damage.
pub fn valid_record_after(
    journal_dir: &Path,
    generation: u64,
    damaged: u64,
) -> io::Result<Option<u64>> {
    let mut file = File::open(file_name(journal_dir, generation))?;
    file.seek(SeekFrom::Start(damaged + 1))?;
    let mut rest = Vec::new();
    file.read_to_end(&mut rest)?;
    let header = codec::JOURNAL_RECORD_HEADER;
    for at in 0..rest.len().saturating_sub(header) {
        let mut head = [0; codec::JOURNAL_RECORD_HEADER];
        head.copy_from_slice(&rest[at..at + header]);
        let (len, crc) = codec::journal_record_header(head);
        if len == 0 || len > codec::MAX_JOURNAL_RECORD || at + header + len > rest.len() {
            continue;
        }
        let payload = &rest[at + header..at + header + len];
        if codec::decode_journal_payload(payload, crc).is_ok() {
            return Ok(Some(damaged + 1 + at as u64));
        }
    }
    Ok(None)
}

/// Moves journal file `generation` aside (`....kvj.dropped`): `--load-truncated` drops
/// the records after damage, but leaves them on disk for whoever wants to look.
pub fn set_aside(journal_dir: &Path, generation: u64) -> io::Result<PathBuf> {
    let from = file_name(journal_dir, generation);
    let to = from.with_extension("kvj.dropped");
    fs::rename(&from, &to)?;
    Ok(to)
}

/// Journal file `generation`'s path (for messages).
pub fn path(journal_dir: &Path, generation: u64) -> PathBuf {
    file_name(journal_dir, generation)
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Cuts journal file `generation` at `len` bytes (dropping a torn tail), rewriting the
/// header if even that was torn, and makes it durable.
pub fn truncate(journal_dir: &Path, generation: u64, len: u64) -> io::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .open(file_name(journal_dir, generation))?;
    let header = codec::JOURNAL_HEADER.len() as u64;
    file.set_len(len.max(header))?;
    if len < header {
        (&file).write_all(&codec::JOURNAL_HEADER)?;
    }
    file.sync_all()
}

//! The replication backlog: the last `--repl-backlog-size` bytes of the stream.
//!
//! The stream is one endless sequence of bytes; a byte's *offset* is its position in it
//! since this primary's history began (`master_repl_offset` is the offset just past the
//! last byte). The backlog keeps the newest bytes in a ring: `[start, end)`. Every
//! replica's sender reads from it at its own position, so the primary encodes a write
//! once however many replicas there are, and a replica that reconnects asking "from
//! offset X" is served from here (a *partial resync*) as long as `start <= X <= end`.
//! Once X has been overwritten, only a full resync (a snapshot, then the stream from the
//! snapshot's offset) can bring it back. A bigger backlog tolerates longer disconnects
//! and slower replicas for more memory: the same trade-off as Redis's `repl-backlog-size`.
//!
//! The backlog also remembers *when* each write reached it, so lag can be reported in
//! milliseconds as well as bytes: a replica that has acknowledged offset X is behind by
//! the age of the oldest write after X.

use std::collections::VecDeque;
use std::time::Instant;

/// A position the backlog no longer (or never) held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overrun;

#[derive(Debug)]
pub struct Backlog {
    bytes: VecDeque<u8>,
    capacity: usize,
    /// Offset just past the newest byte.
    end: u64,
    /// `(offset just past a write, when it was appended)`, oldest first; at most one per
    /// millisecond (see [`Self::append`]).
    marks: VecDeque<(u64, Instant)>,
    /// Where a write's frames are encoded before they join the ring: reused, so feeding
    /// the stream allocates nothing once it has grown.
    staging: Vec<u8>,
}

/// Writes appended within this long of the newest mark share it: lag is reported in
/// milliseconds, and one mark per write would cost a clock read's worth of memory per
/// write (a 1 MiB backlog of 60-byte SETs holds 17k writes).
const MARK_GRAIN: std::time::Duration = std::time::Duration::from_millis(1);

impl Backlog {
    /// An empty backlog whose stream continues at `offset`.
    pub fn new(capacity: usize, offset: u64) -> Self {
        Backlog {
            bytes: VecDeque::with_capacity(capacity.min(1 << 20)),
            capacity: capacity.max(1),
            end: offset,
            marks: VecDeque::new(),
            staging: Vec::new(),
        }
    }

    /// Offset of the oldest byte still held.
    pub fn start(&self) -> u64 {
        self.end - self.bytes.len() as u64
    }

    pub fn end(&self) -> u64 {
        self.end
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Appends stream bytes; `write`: they are a client's write (lag is measured from
    /// writes, not heartbeats). Drops the oldest bytes beyond the capacity.
    ///
    /// A write within [`MARK_GRAIN`] of the newest mark extends that mark instead of
    /// adding one: the lag of a replica that acknowledged part of such a group is then
    /// measured from the group's first write, at most a millisecond too old.
    pub fn append(&mut self, data: &[u8], write: Option<Instant>) {
        self.bytes.extend(data);
        self.end += data.len() as u64;
        if let Some(at) = write {
            match self.marks.back_mut() {
                Some((end, first)) if at.saturating_duration_since(*first) < MARK_GRAIN => {
                    *end = self.end;
                }
                _ => self.marks.push_back((self.end, at)),
            }
        }
        let excess = self.bytes.len().saturating_sub(self.capacity);
        if excess > 0 {
            self.bytes.drain(..excess);
            let start = self.start();
            while self.marks.front().is_some_and(|&(end, _)| end <= start) {
                self.marks.pop_front();
            }
        }
    }

    /// Can a replica continue from `offset`?
    pub fn covers(&self, offset: u64) -> bool {
        (self.start()..=self.end).contains(&offset)
    }

    /// A client's write: `frame` encodes its stream bytes into a buffer the backlog
    /// reuses, and they join the ring with one copy.
    pub fn append_write(&mut self, at: Instant, frame: impl FnOnce(&mut Vec<u8>)) {
        let mut staging = std::mem::take(&mut self.staging);
        staging.clear();
        frame(&mut staging);
        self.append(&staging, Some(at));
        self.staging = staging;
    }

    /// Up to `max` bytes from `offset` on (empty when `offset` is the end): copied out of
    /// the ring's (at most two) contiguous runs, whatever has accumulated since the
    /// reader's last call, so a replica gets one write for many changes.
    pub fn read(&self, offset: u64, max: usize) -> Result<Vec<u8>, Overrun> {
        if !self.covers(offset) {
            return Err(Overrun);
        }
        let from = (offset - self.start()) as usize;
        let to = self.bytes.len().min(from.saturating_add(max));
        let (front, back) = self.bytes.as_slices();
        let mut out = Vec::with_capacity(to - from);
        if from < front.len() {
            out.extend_from_slice(&front[from..to.min(front.len())]);
        }
        if to > front.len() {
            out.extend_from_slice(&back[from.saturating_sub(front.len())..to - front.len()]);
        }
        Ok(out)
    }

    /// When the oldest write after `offset` was appended (`None`: nothing after it, or
    /// it is older than the backlog remembers — then the oldest remembered write).
    pub fn oldest_write_after(&self, offset: u64) -> Option<Instant> {
        let i = self.marks.partition_point(|&(end, _)| end <= offset);
        self.marks.get(i).map(|&(_, at)| at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn offsets_survive_wraparound() {
        let mut b = Backlog::new(8, 100);
        assert_eq!((b.start(), b.end()), (100, 100));
        assert_eq!(b.read(100, 10), Ok(vec![]));
        b.append(b"abcde", None);
        assert_eq!(b.read(101, 2), Ok(b"bc".to_vec()));
        b.append(b"fghij", None);
        // 10 bytes written, 8 kept: offsets 102..110.
        assert_eq!((b.start(), b.end()), (102, 110));
        assert_eq!(b.read(101, 10), Err(Overrun));
        assert_eq!(b.read(102, 100), Ok(b"cdefghij".to_vec()));
        assert_eq!(b.read(110, 100), Ok(vec![]));
        assert_eq!(b.read(111, 1), Err(Overrun));
        assert!(b.covers(110) && !b.covers(101));
    }

    #[test]
    fn lag_is_the_age_of_the_oldest_unacknowledged_write() {
        let t0 = Instant::now();
        let t1 = t0 + std::time::Duration::from_millis(5);
        let mut b = Backlog::new(1024, 0);
        b.append(b"w1", Some(t0));
        b.append(b"ping", None);
        b.append(b"w2", Some(t1));
        assert_eq!(b.oldest_write_after(0), Some(t0));
        assert_eq!(b.oldest_write_after(2), Some(t1));
        assert_eq!(b.oldest_write_after(8), None);
    }

    #[test]
    fn writes_within_a_millisecond_share_a_mark() {
        let t0 = Instant::now();
        let mut b = Backlog::new(1024, 0);
        b.append_write(t0, |out| out.extend_from_slice(b"w1"));
        b.append_write(t0 + Duration::from_micros(300), |out| {
            out.extend_from_slice(b"w2")
        });
        b.append_write(t0 + Duration::from_millis(2), |out| {
            out.extend_from_slice(b"w3")
        });
        assert_eq!(b.marks.len(), 2);
        assert_eq!(b.read(0, 100), Ok(b"w1w2w3".to_vec()));
        // w2 is measured from w1's time, at most a millisecond too old.
        assert_eq!(b.oldest_write_after(2), Some(t0));
        assert_eq!(b.oldest_write_after(4), Some(t0 + Duration::from_millis(2)));
        assert_eq!(b.oldest_write_after(6), None);
    }

    /// Reads across the ring's wrap point return exactly the bytes a plain list of
    /// everything appended holds at those offsets.
    #[test]
    fn reads_match_the_whole_stream_wherever_the_ring_wraps() {
        for capacity in 1..12 {
            let mut b = Backlog::new(capacity, 1000);
            let mut all = Vec::new();
            for n in 0..40u8 {
                let chunk: Vec<u8> = (0..n % 5)
                    .map(|i| n.wrapping_mul(7).wrapping_add(i))
                    .collect();
                b.append(&chunk, None);
                all.extend_from_slice(&chunk);
                for offset in b.start()..=b.end() {
                    for max in [0, 1, 3, usize::MAX] {
                        let from = (offset - 1000) as usize;
                        let to = all.len().min(from.saturating_add(max));
                        assert_eq!(b.read(offset, max), Ok(all[from..to].to_vec()));
                    }
                }
                assert_eq!(b.end() - b.start(), all.len().min(capacity) as u64);
            }
        }
    }
}

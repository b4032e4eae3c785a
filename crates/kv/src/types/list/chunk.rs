//! One chunk of a list: a buffer of packed elements with free room at both ends.
//!
//! The live elements sit in the middle of the buffer, so a push at either end writes into
//! the slack without moving anything (a listpack moves its whole buffer on a head insert).
//! A chunk grows by doubling up to the chunk size, giving the free room to the side being
//! pushed; see the parent module's docs for how a list strings chunks together.

use bytes::Bytes;

use super::entry::{entry_len, read_backward, read_forward, varint_len, write_entry};
use super::{CHUNK_OVERHEAD, chunk_bytes};

/// One packed run of elements: `buf[start..end]` holds `count` encoded elements, and the
/// bytes on either side are free room for pushes at that end. Never empty while in a list.
#[derive(Clone)]
pub(super) struct Chunk {
    pub(super) buf: Box<[u8]>,
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) count: usize,
}

impl Chunk {
    /// An empty chunk of `cap` bytes whose free room starts at `at`.
    pub(super) fn empty(cap: usize, at: usize) -> Chunk {
        Chunk {
            buf: vec![0; cap].into_boxed_slice(),
            start: at,
            end: at,
            count: 0,
        }
    }

    pub(super) fn live(&self) -> usize {
        self.end - self.start
    }

    pub(super) fn cost(&self) -> usize {
        self.buf.len() + CHUNK_OVERHEAD
    }

    /// Free bytes at the left or right end.
    pub(super) fn room(&self, left: bool) -> usize {
        if left {
            self.start
        } else {
            self.buf.len() - self.end
        }
    }

    /// Makes `need` bytes of room at one end, doubling the buffer (up to [`CHUNK_BYTES`](super::CHUNK_BYTES))
    /// when it is more than half full, and placing the live bytes so the pushed end gets
    /// the free room — half of it if `both_ends` (a list's only chunk, pushed from
    /// either side). The caller has checked that `live + need` fits in a chunk.
    pub(super) fn make_room(&mut self, need: usize, left: bool, both_ends: bool) {
        let (live, cap) = (self.live(), self.buf.len());
        let new_cap = if (live + need) * 2 > cap && cap < chunk_bytes() {
            ((live + need) * 2).next_power_of_two().min(chunk_bytes())
        } else {
            cap
        };
        let slack = new_cap - live;
        let pushed_side = if both_ends {
            need.max(slack / 2)
        } else {
            slack
        };
        let at = if left {
            pushed_side
        } else {
            slack - pushed_side
        };
        if new_cap == cap {
            self.buf.copy_within(self.start..self.end, at);
        } else {
            let mut buf = vec![0; new_cap].into_boxed_slice();
            buf[at..at + live].copy_from_slice(&self.buf[self.start..self.end]);
            self.buf = buf;
        }
        self.start = at;
        self.end = at + live;
    }

    /// Writes an element into the room at one end (which the caller made).
    pub(super) fn put(&mut self, value: &[u8], left: bool) {
        let need = entry_len(value.len());
        if left {
            self.start -= need;
            write_entry(&mut self.buf[self.start..self.start + need], value);
        } else {
            write_entry(&mut self.buf[self.end..self.end + need], value);
            self.end += need;
        }
        self.count += 1;
    }

    /// Takes the element at one end (the chunk is not empty).
    pub(super) fn take(&mut self, left: bool) -> Bytes {
        self.count -= 1;
        if left {
            let (data, n) = read_forward(&self.buf, self.start);
            self.start = data + n + varint_len(n);
            Bytes::copy_from_slice(&self.buf[data..data + n])
        } else {
            let (data, n) = read_backward(&self.buf, self.end);
            self.end = data - varint_len(n);
            Bytes::copy_from_slice(&self.buf[data..data + n])
        }
    }

    /// Drops `k` elements (fewer than `count`) from one end, without moving any byte.
    pub(super) fn drop_end(&mut self, k: usize, left: bool) {
        for _ in 0..k {
            if left {
                let (data, n) = read_forward(&self.buf, self.start);
                self.start = data + n + varint_len(n);
            } else {
                let (data, n) = read_backward(&self.buf, self.end);
                self.end = data - varint_len(n);
            }
        }
        self.count -= k;
    }

    /// The byte position where element `k` (< `count`) starts, walking from the nearer
    /// end of the chunk.
    pub(super) fn position(&self, k: usize) -> usize {
        if k < self.count / 2 {
            let mut pos = self.start;
            for _ in 0..k {
                let (data, n) = read_forward(&self.buf, pos);
                pos = data + n + varint_len(n);
            }
            pos
        } else {
            let mut pos = self.end;
            for _ in k..self.count {
                let (data, n) = read_backward(&self.buf, pos);
                pos = data - varint_len(n);
            }
            pos
        }
    }

    /// The element whose entry starts at `pos`, and where its data starts.
    pub(super) fn entry_at(&self, pos: usize) -> (usize, &[u8]) {
        let (data, n) = read_forward(&self.buf, pos);
        (data, &self.buf[data..data + n])
    }
}

//! Walking a list's elements in order, from either end, as slices of its chunks.
//!
//! Borrowing the chunks' bytes rather than copying them is what lets `LRANGE` encode its
//! reply straight from the list (see the parent module's docs).

use super::List;
use super::chunk::Chunk;
use super::entry::{read_backward, read_forward, varint_len};

/// Walks a list's elements from either end. Borrows the chunks; yields slices of them.
pub struct Iter<'a> {
    chunks: &'a [Chunk],
    /// The deque's second half, walked after `chunks` (see [`VecDeque::as_slices`](std::collections::VecDeque::as_slices)).
    more: &'a [Chunk],
    /// Chunk number (over both halves) and byte position of the next element forwards.
    front: (usize, usize),
    /// Chunk number and byte position just past the next element backwards.
    back: (usize, usize),
    remaining: usize,
}

impl<'a> Iter<'a> {
    /// From element `index` (the end if `index >= len`) to the end of `list`.
    pub(super) fn new(list: &'a List, index: usize) -> Iter<'a> {
        let (chunks, more) = list.chunks.as_slices();
        let mut it = Iter {
            chunks,
            more,
            front: (0, 0),
            back: (0, 0),
            remaining: 0,
        };
        let (Some((ci, k)), Some(last)) = (list.find(index), list.chunks.len().checked_sub(1))
        else {
            return it;
        };
        it.front = (ci, it.chunk(ci).position(k));
        it.back = (last, it.chunk(last).end);
        it.remaining = list.len - index;
        it
    }

    fn chunk(&self, ci: usize) -> &'a Chunk {
        match self.chunks.get(ci) {
            Some(c) => c,
            None => &self.more[ci - self.chunks.len()],
        }
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.remaining == 0 {
            return None;
        }
        let (mut ci, mut pos) = self.front;
        // Chunks are never empty, so one step reaches the next chunk's first element.
        if pos == self.chunk(ci).end {
            ci += 1;
            pos = self.chunk(ci).start;
        }
        let c = self.chunk(ci);
        let (data, n) = read_forward(&c.buf, pos);
        self.front = (ci, data + n + varint_len(n));
        self.remaining -= 1;
        Some(&c.buf[data..data + n])
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let (mut ci, mut end) = self.back;
        if end == self.chunk(ci).start {
            ci -= 1;
            end = self.chunk(ci).end;
        }
        let c = self.chunk(ci);
        let (data, n) = read_backward(&c.buf, end);
        self.back = (ci, data - varint_len(n));
        self.remaining -= 1;
        Some(&c.buf[data..data + n])
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl Chunk {
    pub(super) fn entries(&self) -> Iter<'_> {
        Iter {
            chunks: std::slice::from_ref(self),
            more: &[],
            front: (0, self.start),
            back: (0, self.end),
            remaining: self.count,
        }
    }
}

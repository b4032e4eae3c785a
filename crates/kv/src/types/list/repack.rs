//! The rare writes in the middle of a list: `LSET` with a new length, `LINSERT`, `LREM`.
//!
//! Pushes and pops touch only an end chunk; these writes change bytes inside the list.
//! Each finds the chunks it touches, then rebuilds just those with a [`Packer`] and leaves
//! the rest where they are: O(n) in the elements walked, as they are in Redis, and never a
//! copy of the whole list.

use std::ops::Range;

use super::chunk::Chunk;
use super::entry::{entry_len, write_entry};
use super::{List, chunk_bytes};

/// Packs elements densely into new chunks of at most [`CHUNK_BYTES`](super::CHUNK_BYTES): how the rare O(n)
/// writes (`LSET` with a new length, `LINSERT`, `LREM`) rebuild the chunks they touch.
struct Packer {
    done: Vec<Chunk>,
    buf: Vec<u8>,
    count: usize,
}

impl Packer {
    fn new() -> Packer {
        Packer {
            done: Vec::new(),
            buf: Vec::new(),
            count: 0,
        }
    }

    fn add(&mut self, value: &[u8]) {
        let need = entry_len(value.len());
        if self.count > 0 && self.buf.len() + need > chunk_bytes() {
            self.seal();
        }
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(need.max(chunk_bytes()));
        }
        let at = self.buf.len();
        self.buf.resize(at + need, 0);
        write_entry(&mut self.buf[at..], value);
        self.count += 1;
    }

    /// Closes the chunk being filled, trimming its buffer to its contents.
    fn seal(&mut self) {
        if self.count == 0 {
            return;
        }
        let buf = std::mem::take(&mut self.buf).into_boxed_slice();
        let end = buf.len();
        self.done.push(Chunk {
            buf,
            start: 0,
            end,
            count: std::mem::take(&mut self.count),
        });
    }

    fn finish(mut self) -> Vec<Chunk> {
        self.seal();
        self.done
    }
}

impl List {
    /// Replaces the value at `index` (which must exist): in place if the new value has
    /// the old one's length, else by repacking its chunk.
    pub fn set(&mut self, index: usize, value: &[u8]) {
        let Some((ci, k)) = self.find(index) else {
            return;
        };
        let c = &mut self.chunks[ci];
        let pos = c.position(k);
        let (data, old_len) = {
            let (data, old) = c.entry_at(pos);
            (data, old.len())
        };
        if old_len == value.len() {
            // Same length, same entry size: overwrite the bytes where they are.
            c.buf[data..data + value.len()].copy_from_slice(value);
            return;
        }
        self.repack(ci..ci + 1, |i, e, p| {
            p.add(if i == index { value } else { e })
        });
    }

    /// Inserts `value` so it becomes element `index` (`index <= len`).
    pub fn insert(&mut self, index: usize, value: &[u8]) {
        if index == 0 || index >= self.len {
            self.push(value, index == 0);
            return;
        }
        let Some((ci, _)) = self.find(index) else {
            return;
        };
        self.repack(ci..ci + 1, |i, e, p| {
            if i == index {
                p.add(value);
            }
            p.add(e);
        });
    }

    /// `LREM`: removes up to `count` elements equal to `value` from the left (`count >
    /// 0`), the right (`count < 0`) or all of them (0); returns how many. One walk to
    /// find them, then one repack of the chunks from the first hit to the last.
    pub fn remove_matching(&mut self, value: &[u8], count: i64) -> usize {
        let limit = if count == 0 {
            usize::MAX
        } else {
            count.unsigned_abs() as usize
        };
        let mut hits: Vec<usize> = if count >= 0 {
            self.iter()
                .enumerate()
                .filter(|(_, x)| *x == value)
                .map(|(i, _)| i)
                .take(limit)
                .collect()
        } else {
            self.iter()
                .enumerate()
                .rev()
                .filter(|(_, x)| *x == value)
                .map(|(i, _)| i)
                .take(limit)
                .collect()
        };
        hits.sort_unstable();
        let (Some(&first), Some(&last)) = (hits.first(), hits.last()) else {
            return 0;
        };
        let (Some((lo, _)), Some((hi, _))) = (self.find(first), self.find(last)) else {
            return 0;
        };
        let mut doomed = hits.iter().copied().peekable();
        self.repack(lo..hi + 1, |i, e, p| {
            if doomed.next_if_eq(&i).is_none() {
                p.add(e);
            }
        });
        hits.len()
    }

    /// Rebuilds the chunks in `range`: `each` sees every element there with its index in
    /// the list and adds what should replace it to the packer. The chunks outside move
    /// as they are.
    fn repack(&mut self, range: Range<usize>, mut each: impl FnMut(usize, &[u8], &mut Packer)) {
        let first_index: usize = self.chunks.range(..range.start).map(|c| c.count).sum();
        let mut packer = Packer::new();
        let mut i = first_index;
        for c in self.chunks.range(range.clone()) {
            for e in c.entries() {
                each(i, e, &mut packer);
                i += 1;
            }
        }
        let packed = packer.finish();
        let tail = self.chunks.split_off(range.end);
        for c in self.chunks.drain(range.start..) {
            self.bytes -= c.cost();
            self.len -= c.count;
        }
        for c in packed {
            self.bytes += c.cost();
            self.len += c.count;
            self.chunks.push_back(c);
        }
        self.chunks.extend(tail);
    }
}

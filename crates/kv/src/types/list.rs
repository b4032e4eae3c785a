//! A Redis list: a sequence of values, pushed and popped at both ends.
//!
//! # Why not a deque of `Bytes`
//!
//! The obvious structure, a `VecDeque<Bytes>`, spends on every element a 32-byte `Bytes`
//! header in the deque *and* a heap allocation of its own, usually far larger than the
//! element: `LPUSH q 42` stores two bytes of payload in ~80 bytes of memory spread over
//! two places. A list that grows by a few hundred thousand small elements then touches an
//! order of magnitude more fresh memory than it holds, and on a VM every fresh page is a
//! page fault in the kernel: measured on `redis-benchmark -t lpush -P 16`, kv took 12x
//! Redis's page faults and twice its system time, for the same user time.
//!
//! # What Redis does: a quicklist of listpacks
//!
//! A *listpack* is one contiguous buffer of elements, each written as its length, its
//! bytes, and its length again backwards (the "backlen"), so the buffer can be walked
//! from either end: forwards by skipping `length` bytes after the prefix, backwards by
//! reading the backlen that ends the previous element. A two-byte element costs four
//! bytes, and a thousand of them share one allocation. The price is that a listpack is a
//! flat array: inserting in the middle moves the bytes after the insertion point, and
//! finding element `i` means walking to it.
//!
//! A *quicklist* bounds that price: it is a linked list of listpacks, each at most
//! `list-max-listpack-size` (8 KiB by default). Pushes and pops touch only the end
//! listpack, so they stay O(1); an insertion in the middle moves at most one listpack's
//! bytes; `LINDEX` walks the nodes by their element counts, then one listpack.
//!
//! # This module: a deque of chunks
//!
//! The same idea, with two simplifications Rust makes cheap. The nodes sit in a
//! `VecDeque` rather than a linked list (a node is a few words; moving them is cheaper
//! than chasing pointers). And a chunk's buffer keeps its free space on *both* sides of the
//! live bytes, so a push at either end writes into the slack without moving anything,
//! where a listpack's head insert moves the whole buffer. An end chunk grows by doubling
//! up to [`CHUNK_BYTES`], giving the free space to the side being pushed; once full, the
//! next push starts a new chunk. A chunk that empties is dropped. An element larger
//! than a chunk gets a chunk of its own, sized to it (Redis's "plain" node).
//!
//! Elements are encoded as `varint(len) | bytes | varint(len) reversed`: a LEB128 length
//! in front, and the same bytes in reverse order behind, so reading backwards from an
//! element's end meets the length's low 7 bits first, exactly as reading forwards does.
//!
//! The trade-off, as in Redis: `LINDEX`, `LSET`, `LINSERT` and `LREM` walk (O(n), as
//! documented for Redis), and a popped element is copied out into a `Bytes` of its own
//! (Redis creates a string object too). In exchange a list of small elements costs a few
//! bytes per element in a handful of 8 KiB allocations, and pushing 400,000 of them
//! faults in as many pages as Redis does (`LPUSH -P 16`: 502 minor faults, Redis 528, the
//! `VecDeque<Bytes>` 6,240).
//!
//! `LRANGE` replies straight from the chunks: `commands::lists::lrange` walks
//! [`List::range`] (slices of the chunks) and encodes each element into the reply bytes
//! under the lock, as Redis writes `LRANGE` from its listpacks — no `Bytes` and no frame
//! per element.
//!
//! The byte format on disk and on the wire does not see any of this: a list serializes
//! as the sequence of its elements, as it did when it was a `VecDeque<Bytes>`.

use std::collections::VecDeque;
use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ElementBytes;

/// The most bytes a chunk holds (unless one element alone is larger): Redis's default
/// `list-max-listpack-size -2`. Big enough that a chunk's bookkeeping is noise next to
/// its elements, small enough that moving one chunk's bytes (an insert in the middle) is
/// cheap.
pub const CHUNK_BYTES: usize = 8 * 1024;

/// The chunk size in use: [`CHUNK_BYTES`] unless `CONFIG SET list-max-listpack-size`
/// changed it (see [`crate::encoding`]). One setting per process: it shapes only how
/// new chunks are cut, never what a list holds, so lists built under another size stay
/// valid.
static CHUNK_LIMIT: AtomicUsize = AtomicUsize::new(CHUNK_BYTES);

fn chunk_bytes() -> usize {
    CHUNK_LIMIT.load(Ordering::Relaxed)
}

/// Sets the size of the chunks cut from now on (`list-max-listpack-size`).
pub fn set_chunk_limit(bytes: usize) {
    CHUNK_LIMIT.store(bytes.max(64), Ordering::Relaxed);
}

/// The buffer a list's first chunk starts with; it doubles as the list grows.
const FIRST_CHUNK: usize = 32;

/// Bytes a chunk costs beyond its buffer (its slot in the deque, the allocator's header):
/// an estimate, as `ELEMENT_OVERHEAD` is for other collections.
const CHUNK_OVERHEAD: usize = 64;

/// A list of byte strings stored as a deque of packed chunks. See the module docs.
#[derive(Clone, Default)]
pub struct List {
    chunks: VecDeque<Chunk>,
    len: usize,
    /// Running total of the chunks' buffers and overheads, for [`List::memory`].
    bytes: usize,
}

/// One packed run of elements: `buf[start..end]` holds `count` encoded elements, and the
/// bytes on either side are free room for pushes at that end. Never empty while in a list.
#[derive(Clone)]
struct Chunk {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    count: usize,
}

/// Bytes of `n`'s LEB128 encoding. Most elements are under 128 bytes: one byte, tested
/// first so the walks over a chunk stay a few instructions per element.
#[inline]
pub(super) fn varint_len(n: usize) -> usize {
    if n < 0x80 { 1 } else { varint_len_long(n) }
}

fn varint_len_long(n: usize) -> usize {
    let mut len = 1;
    let mut rest = n >> 7;
    while rest > 0 {
        len += 1;
        rest >>= 7;
    }
    len
}

/// Bytes an element of `n` bytes takes in a chunk: its length on both sides.
fn entry_len(n: usize) -> usize {
    n + 2 * varint_len(n)
}

/// Writes `data`'s entry into `dst`, which is exactly `entry_len(data.len())` long.
fn write_entry(dst: &mut [u8], data: &[u8]) {
    let k = varint_len(data.len());
    let last = dst.len() - 1;
    let mut n = data.len();
    for i in 0..k {
        let more = if i + 1 < k { 0x80 } else { 0 };
        let byte = (n & 0x7f) as u8 | more;
        dst[i] = byte;
        dst[last - i] = byte;
        n >>= 7;
    }
    dst[k..k + data.len()].copy_from_slice(data);
}

/// Reads the entry starting at `pos`: where its data starts, and its length.
#[inline]
fn read_forward(buf: &[u8], pos: usize) -> (usize, usize) {
    let byte = buf[pos];
    if byte < 0x80 {
        (pos + 1, usize::from(byte))
    } else {
        read_forward_long(buf, pos)
    }
}

fn read_forward_long(buf: &[u8], mut pos: usize) -> (usize, usize) {
    let (mut n, mut shift) = (0usize, 0);
    loop {
        let byte = buf[pos];
        pos += 1;
        n |= usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return (pos, n);
        }
        shift += 7;
    }
}

/// Reads the entry ending at `end` through its backlen: where its data starts, and its
/// length.
#[inline]
fn read_backward(buf: &[u8], end: usize) -> (usize, usize) {
    let byte = buf[end - 1];
    if byte < 0x80 {
        (end - 1 - usize::from(byte), usize::from(byte))
    } else {
        read_backward_long(buf, end)
    }
}

fn read_backward_long(buf: &[u8], mut end: usize) -> (usize, usize) {
    let (mut n, mut shift) = (0usize, 0);
    loop {
        end -= 1;
        let byte = buf[end];
        n |= usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return (end - n, n);
        }
        shift += 7;
    }
}

impl Chunk {
    /// An empty chunk of `cap` bytes whose free room starts at `at`.
    fn empty(cap: usize, at: usize) -> Chunk {
        Chunk {
            buf: vec![0; cap].into_boxed_slice(),
            start: at,
            end: at,
            count: 0,
        }
    }

    fn live(&self) -> usize {
        self.end - self.start
    }

    fn cost(&self) -> usize {
        self.buf.len() + CHUNK_OVERHEAD
    }

    /// Free bytes at the left or right end.
    fn room(&self, left: bool) -> usize {
        if left {
            self.start
        } else {
            self.buf.len() - self.end
        }
    }

    /// Makes `need` bytes of room at one end, doubling the buffer (up to [`CHUNK_BYTES`])
    /// when it is more than half full, and placing the live bytes so the pushed end gets
    /// the free room — half of it if `both_ends` (a list's only chunk, pushed from
    /// either side). The caller has checked that `live + need` fits in a chunk.
    fn make_room(&mut self, need: usize, left: bool, both_ends: bool) {
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
    fn put(&mut self, value: &[u8], left: bool) {
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
    fn take(&mut self, left: bool) -> Bytes {
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
    fn drop_end(&mut self, k: usize, left: bool) {
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
    fn position(&self, k: usize) -> usize {
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
    fn entry_at(&self, pos: usize) -> (usize, &[u8]) {
        let (data, n) = read_forward(&self.buf, pos);
        (data, &self.buf[data..data + n])
    }

    fn entries(&self) -> Iter<'_> {
        Iter {
            chunks: std::slice::from_ref(self),
            more: &[],
            front: (0, self.start),
            back: (0, self.end),
            remaining: self.count,
        }
    }
}

/// Packs elements densely into new chunks of at most [`CHUNK_BYTES`]: how the rare O(n)
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
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Pushes at one end: O(1), amortized over the chunk's doublings.
    pub fn push(&mut self, value: &[u8], left: bool) {
        let need = entry_len(value.len());
        let both_ends = self.chunks.len() == 1;
        let end = if left {
            self.chunks.front_mut()
        } else {
            self.chunks.back_mut()
        };
        let fits = match end {
            Some(c) if c.room(left) >= need => true,
            Some(c) if c.live() + need <= chunk_bytes() => {
                self.bytes -= c.buf.len();
                c.make_room(need, left, both_ends);
                self.bytes += c.buf.len();
                true
            }
            _ => false,
        };
        if !fits {
            self.add_chunk(need, left);
        }
        let c = if left {
            self.chunks.front_mut()
        } else {
            self.chunks.back_mut()
        };
        if let Some(c) = c {
            c.put(value, left);
            self.len += 1;
        }
    }

    /// Starts a new end chunk with room for `need` bytes: small for a list's first chunk
    /// (most lists are short), full size for the next ones (the list is already long),
    /// and exactly `need` for an element that would fill most of a chunk alone.
    fn add_chunk(&mut self, need: usize, left: bool) {
        let first = self.chunks.is_empty();
        let cap = if need > chunk_bytes() / 2 {
            need
        } else if first {
            (need * 2)
                .next_power_of_two()
                .clamp(FIRST_CHUNK, chunk_bytes())
        } else {
            chunk_bytes()
        };
        // A first chunk keeps room on both sides; a new end chunk only outwards.
        let at = match (first, left) {
            (true, true) => (cap / 2).max(need),
            (true, false) => (cap / 2).min(cap - need),
            (false, true) => cap,
            (false, false) => 0,
        };
        let c = Chunk::empty(cap, at);
        self.bytes += c.cost();
        if left {
            self.chunks.push_front(c);
        } else {
            self.chunks.push_back(c);
        }
    }

    pub fn pop(&mut self, left: bool) -> Option<Bytes> {
        let c = if left {
            self.chunks.front_mut()
        } else {
            self.chunks.back_mut()
        }?;
        let v = c.take(left);
        let emptied = (c.count == 0).then(|| c.cost());
        self.len -= 1;
        if let Some(cost) = emptied {
            self.bytes -= cost;
            if left {
                self.chunks.pop_front();
            } else {
                self.chunks.pop_back();
            }
        }
        Some(v)
    }

    /// The chunk holding element `index` and the element's number within it, walking the
    /// chunks from the nearer end of the list.
    fn find(&self, index: usize) -> Option<(usize, usize)> {
        if index >= self.len {
            return None;
        }
        if index < self.len / 2 {
            let mut k = index;
            for (ci, c) in self.chunks.iter().enumerate() {
                if k < c.count {
                    return Some((ci, k));
                }
                k -= c.count;
            }
        } else {
            let mut from_end = self.len - 1 - index;
            for (ci, c) in self.chunks.iter().enumerate().rev() {
                if from_end < c.count {
                    return Some((ci, c.count - 1 - from_end));
                }
                from_end -= c.count;
            }
        }
        None
    }

    /// The element at `index`: O(chunks + one chunk's elements), as Redis's `LINDEX`.
    pub fn get(&self, index: usize) -> Option<&[u8]> {
        let (ci, k) = self.find(index)?;
        let c = &self.chunks[ci];
        Some(c.entry_at(c.position(k)).1)
    }

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

    /// Keeps only `start..end` (`LTRIM`): whole chunks are dropped, the end chunks cut
    /// without moving their bytes.
    pub fn keep(&mut self, start: usize, end: usize) {
        let end = end.min(self.len);
        let start = start.min(end);
        let back = self.len - end;
        self.drop_end(start, true);
        self.drop_end(back, false);
    }

    fn drop_end(&mut self, mut k: usize, left: bool) {
        while k > 0 {
            let c = if left {
                self.chunks.front_mut()
            } else {
                self.chunks.back_mut()
            };
            let Some(c) = c else {
                return;
            };
            if k < c.count {
                c.drop_end(k, left);
                self.len -= k;
                return;
            }
            let (count, cost) = (c.count, c.cost());
            k -= count;
            self.len -= count;
            self.bytes -= cost;
            if left {
                self.chunks.pop_front();
            } else {
                self.chunks.pop_back();
            }
        }
    }

    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0)
    }

    /// The elements from `index` to the end.
    fn iter_from(&self, index: usize) -> Iter<'_> {
        Iter::new(self, index)
    }

    /// Elements `start..end` (`end <= len`).
    pub fn range(&self, start: usize, end: usize) -> impl Iterator<Item = &[u8]> {
        self.iter_from(start).take(end.saturating_sub(start))
    }

    pub fn memory(&self) -> usize {
        self.bytes
    }

    /// How many packed chunks hold the elements: one is Redis's `listpack` encoding,
    /// more its `quicklist` (see [`crate::encoding`]).
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }
}

/// Walks a list's elements from either end. Borrows the chunks; yields slices of them.
pub struct Iter<'a> {
    chunks: &'a [Chunk],
    /// The deque's second half, walked after `chunks` (see [`VecDeque::as_slices`]).
    more: &'a [Chunk],
    /// Chunk number (over both halves) and byte position of the next element forwards.
    front: (usize, usize),
    /// Chunk number and byte position just past the next element backwards.
    back: (usize, usize),
    remaining: usize,
}

impl<'a> Iter<'a> {
    /// From element `index` (the end if `index >= len`) to the end of `list`.
    fn new(list: &'a List, index: usize) -> Iter<'a> {
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

impl PartialEq for List {
    /// Equal elements in the same order, however they are chunked.
    fn eq(&self, other: &List) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl fmt::Debug for List {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(Bytes::copy_from_slice))
            .finish()
    }
}

impl From<VecDeque<Bytes>> for List {
    fn from(items: VecDeque<Bytes>) -> Self {
        items.iter().collect()
    }
}

impl<'a> FromIterator<&'a Bytes> for List {
    fn from_iter<I: IntoIterator<Item = &'a Bytes>>(items: I) -> Self {
        let mut list = List::default();
        for v in items {
            list.push(v, false);
        }
        list
    }
}

/// A sequence of byte strings: the format of the `VecDeque<Bytes>` lists used to be, so
/// data directories, `DUMP` payloads and replication streams written before still load.
impl Serialize for List {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(ElementBytes))
    }
}

impl<'de> Deserialize<'de> for List {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<List, D::Error> {
        struct Elements;
        impl<'de> Visitor<'de> for Elements {
            type Value = List;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence of byte strings")
            }

            /// Packs each element as it arrives: no intermediate deque of the whole list.
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<List, A::Error> {
                let mut list = List::default();
                while let Some(v) = seq.next_element::<Bytes>()? {
                    list.push(&v, false);
                }
                Ok(list)
            }
        }
        d.deserialize_seq(Elements)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift), so a failure replays.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    fn element(tag: usize, size: usize) -> Vec<u8> {
        let mut v = format!("{tag}:").into_bytes();
        v.resize(size.max(v.len()), b'x');
        v.truncate(size);
        v
    }

    /// The list's structure is sound and its contents are `model`'s.
    fn check(l: &List, model: &VecDeque<Vec<u8>>) {
        assert_eq!(l.len(), model.len());
        assert_eq!(l.is_empty(), model.is_empty());
        assert_eq!(l.chunks.iter().map(|c| c.count).sum::<usize>(), l.len);
        assert_eq!(l.chunks.iter().map(Chunk::cost).sum::<usize>(), l.memory());
        for c in &l.chunks {
            assert!(c.count > 0, "an empty chunk stayed in the list");
            assert!(c.start <= c.end && c.end <= c.buf.len());
            assert!(
                c.live() <= CHUNK_BYTES || c.count == 1,
                "an oversized chunk"
            );
            assert_eq!(c.entries().count(), c.count);
        }
        let expected: Vec<&[u8]> = model.iter().map(Vec::as_slice).collect();
        let first_difference = |got: Vec<&[u8]>| {
            let at = (0..got.len().max(expected.len())).find(|&i| got.get(i) != expected.get(i));
            assert_eq!(
                at,
                None,
                "{} elements, expected {}",
                got.len(),
                expected.len()
            );
        };
        first_difference(l.iter().collect());
        let mut backward: Vec<&[u8]> = l.iter().rev().collect();
        backward.reverse();
        first_difference(backward);
        assert_eq!(l.iter().len(), model.len());
        let copied: Vec<&[u8]> = l.range(0, l.len()).collect();
        assert!(copied.iter().map(|b| &b[..]).eq(expected.iter().copied()));
        let (a, b) = (l.len() / 3, l.len() * 2 / 3 + 1);
        let copied: Vec<&[u8]> = l.range(a, b).collect();
        assert!(
            copied
                .iter()
                .map(|b| &b[..])
                .eq(model.range(a..b.min(model.len())).map(Vec::as_slice))
        );
    }

    fn model_of(items: &[&[u8]]) -> VecDeque<Vec<u8>> {
        items.iter().map(|i| i.to_vec()).collect()
    }

    #[test]
    fn entries_encode_their_length_both_ways() {
        for n in [0, 1, 127, 128, 300, 16_383, 16_384, 70_000] {
            let data = element(n, n);
            let mut buf = vec![0; entry_len(n)];
            write_entry(&mut buf, &data);
            assert_eq!(read_forward(&buf, 0), (varint_len(n), n));
            assert_eq!(read_backward(&buf, buf.len()), (varint_len(n), n));
        }
        assert_eq!(
            entry_len(2),
            4,
            "a small element costs two bytes beyond itself"
        );
    }

    #[test]
    fn pushes_and_pops_cross_chunk_boundaries_at_both_ends() {
        let mut l = List::default();
        let mut model = VecDeque::new();
        for i in 0..5_000 {
            let v = element(i, 3 + i % 7);
            l.push(&v, i % 3 == 0);
            if i % 3 != 0 {
                model.push_back(v);
            } else {
                model.push_front(v);
            }
        }
        assert!(l.chunks.len() > 3, "the test should span chunks");
        check(&l, &model);
        for i in 0..5_000 {
            let left = i % 2 == 0;
            let expected = if left {
                model.pop_front()
            } else {
                model.pop_back()
            };
            assert_eq!(l.pop(left).as_deref(), expected.as_deref());
            if i % 500 == 0 {
                check(&l, &model);
            }
        }
        assert_eq!(l.pop(true), None);
        assert!(l.chunks.is_empty());
        assert_eq!(l.memory(), 0);
    }

    #[test]
    fn elements_larger_than_a_chunk_get_their_own() {
        let big = element(1, CHUNK_BYTES * 3);
        let mut l = List::default();
        l.push(b"a", false);
        l.push(&big, false);
        l.push(b"b", false);
        l.push(&big, true);
        let model = model_of(&[&big, b"a", &big, b"b"]);
        check(&l, &model);
        assert_eq!(l.get(2), Some(&big[..]));
        assert_eq!(l.pop(true).as_deref(), Some(&big[..]));
        assert_eq!(l.pop(false).as_deref(), Some(&b"b"[..]));
        assert_eq!(l.pop(false).as_deref(), Some(&big[..]));
        check(&l, &model_of(&[b"a"]));
    }

    #[test]
    fn empty_elements_are_elements() {
        let mut l = List::default();
        for _ in 0..3 {
            l.push(b"", true);
        }
        l.push(b"x", false);
        check(&l, &model_of(&[b"", b"", b"", b"x"]));
        assert_eq!(l.get(1), Some(&b""[..]));
        assert_eq!(l.remove_matching(b"", 2), 2);
        check(&l, &model_of(&[b"", b"x"]));
        assert_eq!(l.pop(true), Some(Bytes::new()));
    }

    /// A list of `n` numbered elements spanning several chunks.
    fn numbered(n: usize) -> (List, VecDeque<Vec<u8>>) {
        let model: VecDeque<Vec<u8>> = (0..n).map(|i| element(i, 40)).collect();
        let mut l = List::default();
        for v in &model {
            l.push(v, false);
        }
        (l, model)
    }

    #[test]
    fn set_insert_remove_and_trim_inside_and_across_chunks() {
        let (mut l, mut model) = numbered(1_000);
        assert!(l.chunks.len() >= 4);
        let boundary = l.chunks[0].count;
        // LSET: same length in place, other lengths by repacking, at a chunk's edges.
        for (i, v) in [
            (boundary - 1, element(7, 40)),
            (boundary, element(8, 3)),
            (500, element(9, CHUNK_BYTES * 2)),
            (999, Vec::new()),
        ] {
            l.set(i, &v);
            model[i] = v;
            check(&l, &model);
        }
        // LINSERT at chunk edges, in the middle, and at both ends.
        for i in [0, boundary, boundary + 1, 333, model.len()] {
            let v = element(i, 5);
            l.insert(i, &v);
            model.insert(i, v);
            check(&l, &model);
        }
        // LREM across chunks: from the left, from the right, and all.
        let dup = b"dup".to_vec();
        for i in [3, boundary - 1, boundary, 600, 900] {
            l.set(i, &dup);
            model[i] = dup.clone();
        }
        check(&l, &model);
        assert_eq!(l.remove_matching(&dup, 2), 2);
        model.remove(boundary - 1);
        model.remove(3);
        check(&l, &model);
        assert_eq!(l.remove_matching(&dup, -1), 1);
        model.remove(898);
        check(&l, &model);
        assert_eq!(l.remove_matching(&dup, 0), 2);
        model.retain(|v| *v != dup);
        check(&l, &model);
        assert_eq!(l.remove_matching(b"absent", 0), 0);
        // LTRIM inside one chunk's range and across several.
        l.keep(boundary / 2, model.len() - boundary - 3);
        model.truncate(model.len() - boundary - 3);
        model.drain(..boundary / 2);
        check(&l, &model);
        l.keep(10, 20);
        model.truncate(20);
        model.drain(..10);
        check(&l, &model);
        l.keep(5, 5);
        check(&l, &VecDeque::new());
        assert_eq!(l.memory(), 0);
    }

    #[test]
    fn get_and_range_walk_from_either_end() {
        let (l, model) = numbered(3_000);
        for i in [0, 1, 1_499, 1_500, 2_998, 2_999] {
            assert_eq!(l.get(i), Some(&model[i][..]));
        }
        assert_eq!(l.get(3_000), None);
        let range: Vec<&[u8]> = l.range(1_234, 1_334).collect();
        let expected: Vec<&[u8]> = model.range(1_234..1_334).map(Vec::as_slice).collect();
        assert_eq!(range, expected);
        let copied: Vec<&[u8]> = l.range(1_234, 1_334).collect();
        assert_eq!(copied.iter().map(|b| &b[..]).collect::<Vec<_>>(), expected);
        let boundary = l.chunks[0].count;
        let across: Vec<&[u8]> = l.range(boundary - 2, boundary + 2).collect();
        let expected: Vec<&[u8]> = model
            .range(boundary - 2..boundary + 2)
            .map(Vec::as_slice)
            .collect();
        assert_eq!(across.iter().map(|b| &b[..]).collect::<Vec<_>>(), expected);
        assert_eq!(l.range(0, 3_000).count(), 3_000);
        assert_eq!(l.range(3_000, 3_000).count(), 0);
        assert_eq!(l.range(5, 3).count(), 0);
        assert_eq!(l.range(5, 5).count(), 0);
    }

    /// Random operations against a `VecDeque` model, with elements of every size class.
    #[test]
    fn random_operations_match_a_deque() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut l = List::default();
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        let sizes = [0, 1, 3, 10, 100, 1_000, 5_000, CHUNK_BYTES + 1];
        for step in 0..6_000 {
            let size = sizes[rng.below(sizes.len())].min(if rng.below(10) == 0 {
                usize::MAX
            } else {
                100
            });
            let v = element(step, size);
            match rng.below(10) {
                0..=3 => {
                    let left = rng.below(2) == 0;
                    l.push(&v, left);
                    if left {
                        model.push_front(v);
                    } else {
                        model.push_back(v);
                    }
                }
                4..=5 => {
                    let left = rng.below(2) == 0;
                    let expected = if left {
                        model.pop_front()
                    } else {
                        model.pop_back()
                    };
                    assert_eq!(l.pop(left).as_deref(), expected.as_deref());
                }
                6 if !model.is_empty() => {
                    let i = rng.below(model.len());
                    l.set(i, &v);
                    model[i] = v;
                }
                7 => {
                    let i = rng.below(model.len() + 1);
                    l.insert(i, &v);
                    model.insert(i, v);
                }
                8 if !model.is_empty() => {
                    let target = model[rng.below(model.len())].clone();
                    let count = rng.below(5) as i64 - 2;
                    let matches: Vec<usize> =
                        (0..model.len()).filter(|&i| model[i] == target).collect();
                    let limit = if count == 0 {
                        usize::MAX
                    } else {
                        count.unsigned_abs() as usize
                    };
                    let mut doomed: Vec<usize> = if count >= 0 {
                        matches.into_iter().take(limit).collect()
                    } else {
                        matches.into_iter().rev().take(limit).collect()
                    };
                    doomed.sort_unstable();
                    for &i in doomed.iter().rev() {
                        model.remove(i);
                    }
                    assert_eq!(l.remove_matching(&target, count), doomed.len());
                }
                9 if rng.below(20) == 0 => {
                    let a = rng.below(model.len() + 2);
                    let b = rng.below(model.len() + 2).max(a);
                    l.keep(a, b);
                    let b = b.min(model.len());
                    model.truncate(b);
                    model.drain(..a.min(b));
                }
                _ => {}
            }
            if step % 50 == 0 {
                check(&l, &model);
            }
        }
        check(&l, &model);
    }

    #[test]
    fn serializes_as_the_deque_of_bytes_it_used_to_be() {
        use bincode::Options;
        let options = || {
            bincode::DefaultOptions::new()
                .with_fixint_encoding()
                .with_little_endian()
        };
        let items: VecDeque<Bytes> = (0..2_000)
            .map(|i| Bytes::from(element(i, i % 50)))
            .collect();
        let old_format = options().serialize(&items).unwrap();
        let list = List::from(items.clone());
        assert_eq!(options().serialize(&list).unwrap(), old_format);
        let back: List = options().deserialize(&old_format).unwrap();
        assert_eq!(back, list);
        assert!(back.iter().eq(items.iter().map(|b| &b[..])));
    }
}

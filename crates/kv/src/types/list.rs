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
//!
//! # The modules
//!
//! - this module: the [`List`] and its end operations (push, pop, trim), lookups by index.
//! - `entry`: one element's bytes in a chunk, its length written on both sides.
//! - `chunk`: one packed run of elements with free room at both ends.
//! - `repack`: the rare O(n) writes in the middle (`LSET`, `LINSERT`, `LREM`).
//! - `iter`: walking the elements from either end.

mod chunk;
mod entry;
mod iter;
mod repack;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ElementBytes;
use chunk::Chunk;
use entry::entry_len;

pub(super) use entry::varint_len;
pub use iter::Iter;

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

//! [`Packed`]: small collections in one buffer, Redis's *listpack*.
//!
//! A hash of five short fields held as a map costs a tree node sized for eleven entries
//! (about 900 bytes), plus a `Bytes` header and an allocation for every field and every
//! value: over a kilobyte for forty bytes of data. Redis keeps such a hash in a listpack:
//! its elements back to back in one allocation, each prefixed by its length, and finds a
//! field by walking them. For a few dozen short elements the walk over contiguous bytes is
//! as fast as a tree's pointer chasing, and the whole hash costs its bytes plus two or so
//! per element.
//!
//! [`crate::types::hash::Hash`] and [`crate::types::set::Set`] start out packed and move
//! to their ordered map once they hold more than [`MAX_ENTRIES`] elements or one longer
//! than [`MAX_ELEMENT`] bytes (Redis's defaults for `hash-max-listpack-entries` and
//! `-value`), and never move back, as in Redis. A hash stores field, value, field,
//! value...; a set its members. Each element is `varint(len) | bytes` (LEB128), and the
//! buffer is kept at its exact length, since a small collection is written rarely and
//! read often: an insert reallocates, as a listpack's does.
//!
//! Fields and members are kept in the order the maps use, by (hash, bytes) (see
//! [`crate::keyspace::Slot`]), not in the order they came: a collection then iterates in
//! the same order in either form, and the same contents give the same `DUMP` and the
//! same order after a restart, whatever order they were written in. Finding where a new
//! element goes hashes the ones before it; a lookup compares bytes only.

/// Most elements (hash fields, set members) a packed collection holds.
pub const MAX_ENTRIES: usize = 128;
/// Longest element (field, value or member) a packed collection holds.
pub const MAX_ELEMENT: usize = 64;

use xxhash_rust::xxh3::xxh3_64;

use super::list::varint_len;

/// Elements back to back, each `varint(len) | bytes`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Packed {
    /// A boxed slice, not a `Vec`: 16 bytes, so a small hash or set fits in its value.
    buf: Box<[u8]>,
}

/// Where one element sits in the buffer: its length prefix starts at `start`, its bytes
/// are `data..end`.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub start: usize,
    pub data: usize,
    pub end: usize,
}

impl Packed {
    /// Bytes of buffer: what the collection costs beyond its header.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// The elements, in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.spans().map(|s| &self.buf[s.data..s.end])
    }

    /// The elements' places, in order.
    pub fn spans(&self) -> Spans<'_> {
        Spans {
            buf: &self.buf,
            at: 0,
        }
    }

    /// The bytes of an element found with [`Self::spans`].
    pub fn get(&self, span: Span) -> &[u8] {
        &self.buf[span.data..span.end]
    }

    /// Where `element` goes among every `stride`-th element (a hash's fields, a set's
    /// members) in (hash, bytes) order: the start of the first one after it.
    pub fn position(&self, element: &[u8], stride: usize) -> usize {
        let key = (xxh3_64(element), element);
        self.spans()
            .step_by(stride)
            .find(|&s| {
                let e = self.get(s);
                (xxh3_64(e), e) > key
            })
            .map_or(self.buf.len(), |s| s.start)
    }

    /// Inserts elements at byte offset `at` (from [`Self::position`]), growing the
    /// buffer once.
    pub fn insert(&mut self, at: usize, elements: &[&[u8]]) {
        let more: usize = elements.iter().map(|e| encoded_len(e.len())).sum();
        let mut encoded = Vec::with_capacity(more);
        for e in elements {
            write_varint(&mut encoded, e.len());
            encoded.extend_from_slice(e);
        }
        let mut buf = std::mem::take(&mut self.buf).into_vec();
        buf.reserve_exact(more);
        buf.splice(at..at, encoded);
        self.buf = buf.into_boxed_slice();
    }

    /// Replaces the element at `span` with `element`.
    pub fn replace(&mut self, span: Span, element: &[u8]) {
        let mut encoded = Vec::with_capacity(encoded_len(element.len()));
        write_varint(&mut encoded, element.len());
        encoded.extend_from_slice(element);
        let mut buf = std::mem::take(&mut self.buf).into_vec();
        buf.splice(span.start..span.end, encoded);
        self.buf = buf.into_boxed_slice();
    }

    /// Removes the elements from `from.start` to `to.end`.
    pub fn remove(&mut self, from: Span, to: Span) {
        let mut buf = std::mem::take(&mut self.buf).into_vec();
        buf.drain(from.start..to.end);
        self.buf = buf.into_boxed_slice();
    }
}

/// The places of a [`Packed`]'s elements.
pub struct Spans<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Iterator for Spans<'_> {
    type Item = Span;

    fn next(&mut self) -> Option<Span> {
        let start = self.at;
        let (len, data) = read_varint(self.buf, start)?;
        let end = data.checked_add(len).filter(|&e| e <= self.buf.len())?;
        self.at = end;
        Some(Span { start, data, end })
    }
}

/// Bytes an element of `len` bytes takes: its length (as a list chunk writes it) and
/// its bytes.
fn encoded_len(len: usize) -> usize {
    varint_len(len) + len
}

fn write_varint(buf: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        buf.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// The length at `at` and where its bytes start; `None` at the end of the buffer.
fn read_varint(buf: &[u8], mut at: usize) -> Option<(usize, usize)> {
    let mut v = 0usize;
    let mut shift = 0;
    loop {
        let byte = *buf.get(at)?;
        at += 1;
        v |= usize::from(byte & 0x7f).checked_shl(shift)?;
        if byte < 0x80 {
            return Some((v, at));
        }
        shift += 7;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_insert_replace_and_remove_in_place() {
        let mut p = Packed::default();
        let long = vec![b'x'; 200];
        p.insert(0, &[b"a", b"", &long]);
        p.insert(0, &[b"bc"]);
        assert_eq!(
            p.iter().collect::<Vec<_>>(),
            vec![&b"bc"[..], b"a", b"", &long]
        );
        assert_eq!(p.capacity(), 3 + 2 + 1 + 202);
        let spans: Vec<Span> = p.spans().collect();
        p.replace(spans[3], b"yy");
        assert_eq!(
            p.iter().collect::<Vec<_>>(),
            vec![&b"bc"[..], b"a", b"", b"yy"]
        );
        let spans: Vec<Span> = p.spans().collect();
        p.remove(spans[1], spans[2]);
        assert_eq!(p.iter().collect::<Vec<_>>(), vec![&b"bc"[..], b"yy"]);
        assert_eq!(p.get(p.spans().nth(1).unwrap()), b"yy");
    }

    /// Elements placed by `position` iterate in (hash, bytes) order, whatever order they
    /// were inserted in.
    #[test]
    fn positions_keep_the_hash_order() {
        let names: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
        let mut forwards = Packed::default();
        let mut backwards = Packed::default();
        for n in &names {
            forwards.insert(forwards.position(n.as_bytes(), 1), &[n.as_bytes()]);
        }
        for n in names.iter().rev() {
            backwards.insert(backwards.position(n.as_bytes(), 1), &[n.as_bytes()]);
        }
        assert_eq!(forwards, backwards);
        let mut sorted: Vec<&[u8]> = names.iter().map(|n| n.as_bytes()).collect();
        sorted.sort_by_key(|n| (xxh3_64(n), *n));
        assert_eq!(forwards.iter().collect::<Vec<_>>(), sorted);
    }
}

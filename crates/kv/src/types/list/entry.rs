//! One element's bytes inside a chunk: `varint(len) | bytes | varint(len) reversed`.
//!
//! The length is written on both sides so a chunk can be walked from either end, as a
//! listpack's "backlen" allows: forwards by reading the LEB128 length in front, backwards
//! by reading the same bytes in reverse from the element's end, which meets the length's
//! low 7 bits first exactly as reading forwards does. A small element (under 128 bytes)
//! costs two bytes beyond itself, and its length is one byte each way: the fast paths
//! below test for that first.

/// Bytes of `n`'s LEB128 encoding. Most elements are under 128 bytes: one byte, tested
/// first so the walks over a chunk stay a few instructions per element.
#[inline]
pub(in crate::types) fn varint_len(n: usize) -> usize {
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
pub(super) fn entry_len(n: usize) -> usize {
    n + 2 * varint_len(n)
}

/// Writes `data`'s entry into `dst`, which is exactly `entry_len(data.len())` long.
pub(super) fn write_entry(dst: &mut [u8], data: &[u8]) {
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
pub(super) fn read_forward(buf: &[u8], pos: usize) -> (usize, usize) {
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
pub(super) fn read_backward(buf: &[u8], end: usize) -> (usize, usize) {
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

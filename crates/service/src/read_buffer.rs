//! The read buffer a connection takes when its socket is readable, and gives back when
//! every request in it has been served: one spare per thread, passed from connection to
//! connection.
//!
//! A connection holds no read buffer while it waits (see [`crate::connection`] on memory),
//! so every batch of pipelined requests needs one. Allocating a fresh 16 KiB buffer per
//! batch and freeing it afterwards was the allocator's slow path every time: the block is
//! alone in its allocator page, so freeing it retires the page and the next allocation
//! finds no free block and sets a page up again. Callgrind on kv (`SETBIT`, `-c 50
//! -P 16`, 32 KiB L1i) counted it at about 340 instructions and 18 instruction-cache
//! misses per batch: a tenth of every miss kv took per request, for memory it had just
//! let go of. Promoting the new buffer to a shared one when the parser split the first
//! request off it cost a second allocation and free per batch.
//!
//! Redis 7.4 answers the same problem with one reusable query buffer per thread, and so
//! do we: the buffer a connection is done with becomes its thread's spare, and the next
//! connection to read on that thread takes it. With one event loop (kv) the same few
//! kilobytes go round every client, so they are in the cache when the kernel copies the
//! next batch in and when the parser walks it: the footprint of reading is one buffer,
//! not one per client. A buffer is kept as the spare only if nothing else still looks
//! into it (a stored value that kept a view of its request pins it) and it is not one a
//! large request grew; otherwise it is dropped, as before. An idle connection still holds
//! nothing, and a thread holds at most one spare of at most [`MAX_SPARE`] bytes.

use std::cell::Cell;

use bytes::BytesMut;

/// What one read may bring: the size of a buffer taken afresh.
pub const READ_SIZE: usize = 16 * 1024;

/// A buffer larger than this (grown by a large request) is not kept as the spare.
const MAX_SPARE: usize = 4 * READ_SIZE;

thread_local! {
    /// This thread's spare read buffer, empty and unshared, if it has one.
    static SPARE: Cell<Option<BytesMut>> = const { Cell::new(None) };
}

/// Room for the next read in `input`: if it has none at all (the connection gave its
/// buffer back), this thread's spare or a new buffer; if it is nearly full, more room.
pub fn make_room(input: &mut BytesMut) {
    if input.capacity() == 0
        && let Some(spare) = SPARE.with(Cell::take)
    {
        *input = spare;
    }
    if input.capacity() - input.len() < 4096 {
        input.reserve(READ_SIZE);
    }
}

/// Called when every request in `input` has been served: the buffer becomes this
/// thread's spare if it is empty, no request's bytes are still in use elsewhere, and it is
/// of the usual size; otherwise it is let go (a partly arrived request keeps its buffer).
pub fn give_back(input: &mut BytesMut) {
    if !input.is_empty() {
        return;
    }
    let mut buffer = std::mem::take(input);
    // Unshared and small enough: reclaiming moves its start back to the beginning of its
    // allocation without copying or allocating (there is nothing in it to copy).
    if buffer.try_reclaim(READ_SIZE) && buffer.capacity() <= MAX_SPARE {
        // The most recently used buffer is the one likely in the cache: it replaces an
        // older spare, which is dropped.
        SPARE.with(|spare| spare.set(Some(buffer)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_served_buffer_goes_to_the_next_reader_on_the_thread() {
        let mut first = BytesMut::new();
        make_room(&mut first);
        first.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
        let request = first.split_to(first.len()).freeze();
        drop(request);
        let address = first.as_ptr() as usize - 14;
        give_back(&mut first);
        assert_eq!(
            first.capacity(),
            0,
            "the connection holds nothing while it waits"
        );
        let mut second = BytesMut::new();
        make_room(&mut second);
        assert_eq!(
            second.as_ptr() as usize,
            address,
            "the same allocation, from its start"
        );
        assert!(second.capacity() >= READ_SIZE);
        // Taken: the next reader gets a buffer of its own.
        let mut third = BytesMut::new();
        make_room(&mut third);
        assert_ne!(third.as_ptr(), second.as_ptr());
    }

    #[test]
    fn a_buffer_still_in_use_or_holding_a_partial_request_is_not_the_spare() {
        let _ = SPARE.with(Cell::take);
        // A view of its bytes is still alive (a value kept it): not reusable.
        let mut input = BytesMut::new();
        make_room(&mut input);
        input.extend_from_slice(b"value");
        let kept = input.split_to(5).freeze();
        give_back(&mut input);
        assert!(SPARE.with(Cell::take).is_none());
        assert_eq!(&kept[..], b"value");
        // Half a request: the connection keeps it.
        let mut partial = BytesMut::new();
        make_room(&mut partial);
        partial.extend_from_slice(b"*1\r\n$4\r\nPI");
        give_back(&mut partial);
        assert_eq!(&partial[..], b"*1\r\n$4\r\nPI");
        assert!(SPARE.with(Cell::take).is_none());
        // Grown by a large request: let go.
        let mut large = BytesMut::with_capacity(MAX_SPARE * 2);
        large.extend_from_slice(&[b'x'; 10]);
        let _ = large.split();
        give_back(&mut large);
        assert!(SPARE.with(Cell::take).is_none());
    }
}

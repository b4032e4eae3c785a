//! # Reading requests without trusting their size
//!
//! Every Kafka request starts with its size, an `i32`. Reserving that size as soon as it
//! is read is the obvious way to receive a request — and lets a client that announces
//! 100 MiB and sends one byte pin memory it never sent, once per connection it opens. So
//! a connection's buffer grows only as bytes arrive: each growth at most doubles what has
//! arrived (and never goes past what the request still needs), so the memory a client
//! holds is at most about twice what it actually sent.
//!
//! Three limits bound the rest:
//! - a request larger than `--kafka-max-request-bytes` (Kafka's `socket.request.max.bytes`,
//!   100 MiB) closes the connection as soon as its size is read, as Kafka does
//!   (`InvalidReceiveException`); so does a size too small to hold a request header;
//! - before a connection has authenticated, the limit is Kafka's
//!   `sasl.server.max.receive.size`, 512 KiB (the connection passes it in);
//! - all connections together may hold `--kafka-max-buffered-request-bytes` beyond their
//!   first few KiB ([`RequestMemory`]); a connection whose buffer would pass it is closed.
//!
//! When a connection's buffer is empty again it goes back to its small initial size, so
//! the memory of a large request is returned once it has been served.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Every connection's buffer starts this big; only growth past it is charged to
/// [`RequestMemory`].
pub const INITIAL_CAPACITY: usize = 4 * 1024;

/// A request's size prefix and the smallest header (api key, version, correlation id).
const SIZE_PREFIX: usize = 4;
const MIN_REQUEST: usize = 8;

/// The memory all connections' partial requests hold, and its limit.
#[derive(Debug)]
pub struct RequestMemory {
    limit: usize,
    held: AtomicUsize,
}

impl RequestMemory {
    pub fn new(limit: usize) -> RequestMemory {
        RequestMemory {
            limit,
            held: AtomicUsize::new(0),
        }
    }

    /// Bytes held now, past every connection's initial buffer.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Moves one connection's charge from `from` to `to` bytes. A growth that would pass
    /// the limit changes nothing and returns false.
    fn recharge(&self, from: usize, to: usize) -> bool {
        if to <= from {
            self.held.fetch_sub(from - to, Ordering::Relaxed);
            return true;
        }
        self.held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                let grown = held.checked_add(to - from)?;
                (grown <= self.limit).then_some(grown)
            })
            .is_ok()
    }
}

/// One connection's input: whole requests are split off it, a partial one waits for
/// the rest.
#[derive(Debug)]
pub struct RequestBuffer<'a> {
    input: BytesMut,
    /// What this buffer has charged to `memory`.
    charged: usize,
    memory: &'a RequestMemory,
}

impl<'a> RequestBuffer<'a> {
    pub fn new(memory: &'a RequestMemory) -> RequestBuffer<'a> {
        RequestBuffer {
            input: BytesMut::with_capacity(INITIAL_CAPACITY),
            charged: 0,
            memory,
        }
    }

    /// The buffer's capacity now (for tests and statistics).
    pub fn capacity(&self) -> usize {
        self.input.capacity()
    }

    /// The size the waiting request announced, once its prefix has arrived; an error for
    /// a size no request of at most `max` bytes can have.
    fn announced(&self, max: usize) -> io::Result<Option<usize>> {
        let Some(prefix) = self.input.get(..SIZE_PREFIX) else {
            return Ok(None);
        };
        let size = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        match usize::try_from(size) {
            Ok(size) if size > max => Err(invalid(format!(
                "request of {size} bytes is larger than {max} (socket.request.max.bytes)"
            ))),
            Ok(size) if size >= MIN_REQUEST => Ok(Some(size)),
            _ => Err(invalid(format!("invalid request size {size}"))),
        }
    }

    /// Splits the next whole request (without its size prefix) off the input, if it has
    /// arrived.
    pub fn next_request(&mut self, max: usize) -> io::Result<Option<Bytes>> {
        match self.announced(max)? {
            Some(size) if self.input.len() >= SIZE_PREFIX + size => {
                self.input.advance(SIZE_PREFIX);
                Ok(Some(self.input.split_to(size).freeze()))
            }
            _ => Ok(None),
        }
    }

    /// Reads what `source` has (0 at end of stream), after making room for it when the
    /// buffer is full: as much as the waiting request still needs, but at most as much
    /// again as has arrived.
    pub async fn read_from<R: AsyncRead + Unpin>(
        &mut self,
        source: &mut R,
        max: usize,
    ) -> io::Result<usize> {
        if self.input.is_empty() && self.input.capacity() > INITIAL_CAPACITY {
            self.input = BytesMut::with_capacity(INITIAL_CAPACITY);
        }
        // Splitting requests off the front shrinks what this buffer holds.
        self.charge(self.input.capacity())?;
        let have = self.input.len();
        if have == self.input.capacity() {
            let still_needed = match self.announced(max)? {
                Some(size) => SIZE_PREFIX + size - have,
                None => INITIAL_CAPACITY,
            };
            let capacity = have + still_needed.min(have.max(INITIAL_CAPACITY));
            // Charged before it is allocated; a fresh buffer of exactly that size (a
            // `reserve` may double past it) with the partial request copied over.
            self.charge(capacity)?;
            let mut bigger = BytesMut::with_capacity(capacity);
            bigger.extend_from_slice(&self.input);
            self.input = bigger;
        }
        source.read_buf(&mut self.input).await
    }

    /// Charges this buffer to the shared limit as holding `capacity` bytes.
    fn charge(&mut self, capacity: usize) -> io::Result<()> {
        let to = capacity.saturating_sub(INITIAL_CAPACITY);
        if !self.memory.recharge(self.charged, to) {
            return Err(invalid(format!(
                "partial requests would hold more than {} bytes \
                 (--kafka-max-buffered-request-bytes)",
                self.memory.limit
            )));
        }
        self.charged = to;
        Ok(())
    }
}

impl Drop for RequestBuffer<'_> {
    fn drop(&mut self) {
        self.memory.recharge(self.charged, 0);
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    const MIB: usize = 1024 * 1024;

    fn prefix(size: i32) -> [u8; 4] {
        size.to_be_bytes()
    }

    #[tokio::test]
    async fn a_large_announced_size_reserves_nothing_until_bytes_arrive() {
        let memory = RequestMemory::new(usize::MAX);
        let mut buffer = RequestBuffer::new(&memory);
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        client.write_all(&prefix(100 * MIB as i32)).await.ok();
        client.write_all(b"x").await.ok();
        let mut read = 0;
        while read < 5 {
            read += buffer.read_from(&mut server, 100 * MIB).await.unwrap_or(0);
        }
        assert_eq!(buffer.next_request(100 * MIB).ok(), Some(None));
        assert!(
            buffer.capacity() <= 2 * INITIAL_CAPACITY,
            "{}",
            buffer.capacity()
        );
        assert_eq!(memory.held(), 0);
    }

    #[tokio::test]
    async fn growth_follows_the_bytes_received_and_is_returned_after() {
        let memory = RequestMemory::new(usize::MAX);
        let mut buffer = RequestBuffer::new(&memory);
        let size = 3 * MIB;
        let (mut client, mut server) = tokio::io::duplex(16 * 1024);
        let writer = tokio::spawn(async move {
            client.write_all(&prefix(size as i32)).await.ok();
            client.write_all(&vec![7u8; size]).await.ok();
            client
        });
        let mut received = 0;
        let request = loop {
            if let Ok(Some(r)) = buffer.next_request(100 * MIB) {
                break r;
            }
            received += buffer.read_from(&mut server, 100 * MIB).await.unwrap_or(0);
            // Never more than twice what has arrived.
            assert!(
                buffer.capacity() <= 2 * received.max(INITIAL_CAPACITY),
                "capacity {} after {received} bytes",
                buffer.capacity()
            );
            assert_eq!(
                memory.held(),
                buffer.capacity() - INITIAL_CAPACITY.min(buffer.capacity())
            );
        };
        assert_eq!(request.len(), size);
        drop(request);
        let _client = writer.await;
        // Empty again: back to the initial buffer, the charge returned.
        let mut nothing = tokio::io::empty();
        buffer.read_from(&mut nothing, 100 * MIB).await.ok();
        assert_eq!(buffer.capacity(), INITIAL_CAPACITY);
        assert_eq!(memory.held(), 0);
    }

    #[tokio::test]
    async fn sizes_past_the_limit_or_below_a_header_are_refused() {
        let memory = RequestMemory::new(usize::MAX);
        for (size, max) in [
            (101 * MIB as i32, 100 * MIB),
            (-1, 100 * MIB),
            (3, 100),
            (600_000, 524_288),
        ] {
            let mut buffer = RequestBuffer::new(&memory);
            let mut source: &[u8] = &prefix(size);
            buffer.read_from(&mut source, max).await.ok();
            assert!(buffer.next_request(max).is_err(), "size {size}, max {max}");
        }
    }

    #[tokio::test]
    async fn the_shared_limit_closes_the_connection_that_would_pass_it() {
        let memory = RequestMemory::new(MIB);
        let mut first = RequestBuffer::new(&memory);
        let mut second = RequestBuffer::new(&memory);
        let mut input = prefix(10 * MIB as i32).to_vec();
        input.extend(vec![0u8; 700 * 1024]);
        let mut failed = None;
        let mut source: &[u8] = &input;
        for _ in 0..100 {
            match first.read_from(&mut source, 100 * MIB).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        assert!(failed.is_none(), "{failed:?}");
        let held = memory.held();
        assert!(held > 512 * 1024 && held <= MIB, "{held}");
        let mut source: &[u8] = &input;
        let mut refused = false;
        for _ in 0..100 {
            match second.read_from(&mut source, 100 * MIB).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => {
                    refused = true;
                    break;
                }
            }
        }
        assert!(refused, "the second connection went past the limit");
        assert!(memory.held() <= MIB);
        drop(second);
        drop(first);
        assert_eq!(memory.held(), 0);
    }
}

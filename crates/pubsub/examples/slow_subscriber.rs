//! The client side of `bench/pubsub.sh`'s slow-subscriber row: what a subscriber that
//! stops reading costs the server's memory, against any Redis-protocol pub/sub server.
//!
//! ```text
//! cargo run --release -p pubsub --example slow_subscriber -- --addr 127.0.0.1:7381
//! ```
//!
//! Two subscribers on one channel: a *stalled* one, which subscribes and then never reads
//! again (a laptop that went to sleep), and a *fast* one, which reads every message and
//! checks that none is missing or out of order. A publisher pipelines `PUBLISH`es,
//! staying within `--window` messages of the fast subscriber (so only the stalled one's
//! queue grows), until `--messages` are published. The server's output buffer limit
//! (`client-output-buffer-limit pubsub`, 32 MB hard by default on both servers) must
//! then disconnect the stalled subscriber, and its memory must stop growing there: the
//! script reads the server's peak RSS (`VmHWM`) after this ran.
//!
//! Prints one line: `published N fast-received N in-order stalled-disconnected yes|no`.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark tool: a panic is a failed run

mod harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser)]
struct Cli {
    #[arg(long, default_value = "127.0.0.1:7381")]
    addr: String,
    /// Messages to publish.
    #[arg(long, default_value_t = 200_000)]
    messages: u64,
    /// Payload bytes (at least 8: the sequence number).
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// PUBLISH commands per pipelined batch.
    #[arg(long, default_value_t = 64)]
    batch: u64,
    /// How many messages the publisher may run ahead of the fast subscriber.
    #[arg(long, default_value_t = 2_000)]
    window: u64,
}

const CHANNEL: &str = "feed";

async fn subscribe(addr: &str) -> TcpStream {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket.set_nodelay(true).unwrap();
    let request = format!(
        "*2\r\n$9\r\nSUBSCRIBE\r\n${}\r\n{CHANNEL}\r\n",
        CHANNEL.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let confirmation = format!(
        "*3\r\n$9\r\nsubscribe\r\n${}\r\n{CHANNEL}\r\n:1\r\n",
        CHANNEL.len()
    );
    let mut got = vec![0u8; confirmation.len()];
    socket.read_exact(&mut got).await.unwrap();
    assert_eq!(got, confirmation.as_bytes(), "subscribe confirmation");
    socket
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    assert!(cli.size >= 8, "--size must hold the sequence number");
    let stalled = subscribe(&cli.addr).await;
    let mut fast = subscribe(&cli.addr).await;

    let received = Arc::new(AtomicU64::new(0));
    let messages = cli.messages;
    let reader = tokio::spawn({
        let received = received.clone();
        async move {
            let mut input = BytesMut::with_capacity(256 * 1024);
            let mut next = 0u64;
            while next < messages {
                while let Some(seq) = next_sequence(&mut input) {
                    assert_eq!(seq, next, "the fast subscriber lost or reordered a message");
                    next += 1;
                }
                received.store(next, Ordering::Release);
                if next < messages {
                    if input.capacity() - input.len() < 64 * 1024 {
                        input.reserve(256 * 1024);
                    }
                    let n = fast.read_buf(&mut input).await.unwrap();
                    assert!(n > 0, "the server closed the fast subscriber at {next}");
                }
            }
        }
    });

    let mut publisher = TcpStream::connect(&cli.addr).await.unwrap();
    publisher.set_nodelay(true).unwrap();
    let header = format!(
        "*3\r\n$7\r\nPUBLISH\r\n${}\r\n{CHANNEL}\r\n${}\r\n",
        CHANNEL.len(),
        cli.size
    );
    let filler = vec![b'x'; cli.size - 8];
    let (mut out, mut replies) = (BytesMut::new(), BytesMut::with_capacity(64 * 1024));
    let mut seq = 0u64;
    while seq < messages {
        while seq >= received.load(Ordering::Acquire) + cli.window {
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
        let batch = cli.batch.min(messages - seq);
        for _ in 0..batch {
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(&seq.to_be_bytes());
            out.extend_from_slice(&filler);
            out.extend_from_slice(b"\r\n");
            seq += 1;
        }
        harness::pipeline(&mut publisher, &mut out, &mut replies, batch).await;
    }
    tokio::time::timeout(Duration::from_secs(120), reader)
        .await
        .expect("the fast subscriber got every message within 2 minutes")
        .unwrap();

    // Was the stalled subscriber disconnected? Drain what it was sent until EOF (yes) or
    // two quiet seconds (no).
    let mut stalled = stalled;
    let mut buf = vec![0u8; 1 << 20];
    let disconnected = loop {
        match tokio::time::timeout(Duration::from_secs(2), stalled.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(_)) => {}
            Err(_) => break false,
        }
    };
    println!(
        "published {messages} fast-received {} in-order stalled-disconnected {}",
        received.load(Ordering::Acquire),
        if disconnected { "yes" } else { "no" }
    );
}

/// Takes the next `message` push (`*3 $7 message $n channel $n payload`) from `input` and
/// returns its payload's sequence number (the first 8 bytes, big-endian).
fn next_sequence(input: &mut BytesMut) -> Option<u64> {
    let mut at = 0;
    let mut payload = 0..0;
    let header_end = find_crlf(input, 0)?;
    assert_eq!(&input[..header_end], b"*3", "a message push");
    at = at.max(header_end + 2);
    for _ in 0..3 {
        let end = find_crlf(input, at)?;
        assert_eq!(input[at], b'$', "a bulk string");
        let len: usize = std::str::from_utf8(&input[at + 1..end])
            .unwrap()
            .parse()
            .unwrap();
        if input.len() < end + 2 + len + 2 {
            return None;
        }
        payload = end + 2..end + 2 + len;
        at = end + 2 + len + 2;
    }
    let seq = u64::from_be_bytes(input[payload.start..payload.start + 8].try_into().unwrap());
    input.advance(at);
    Some(seq)
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| p + from)
}

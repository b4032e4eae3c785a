//! Helpers shared by the integration tests: a pub/sub server on a free port, a real
//! `redis-server` to compare with, and a reader of pushed frames.
#![allow(dead_code, clippy::unwrap_used)] // test code: a panic is a test failure

use std::time::Duration;

use clap::Parser;
use proto::Frame;
use service::{CancellationToken, RespClient, Running};

/// Starts infralab's pub/sub server on a free loopback port with extra flags.
pub async fn start(flags: &[&str]) -> Running {
    let mut argv = vec!["pubsub", "--port", "0"];
    argv.extend_from_slice(flags);
    pubsub::start(pubsub::Args::parse_from(argv), CancellationToken::new())
        .await
        .unwrap()
}

/// Reads one frame, failing the test instead of hanging if none comes.
pub async fn read(c: &mut RespClient) -> Frame {
    tokio::time::timeout(Duration::from_secs(10), c.read_reply())
        .await
        .expect("a frame within 10 s")
        .unwrap()
}

pub fn bulk(s: &str) -> Frame {
    Frame::Bulk(bytes::Bytes::copy_from_slice(s.as_bytes()))
}

/// The RESP2 shape of a pushed message or confirmation (`Frame::Array`), or the RESP3
/// one (`Frame::Push`).
pub fn msg(resp3: bool, items: Vec<Frame>) -> Frame {
    if resp3 {
        Frame::Push(items)
    } else {
        Frame::Array(items)
    }
}

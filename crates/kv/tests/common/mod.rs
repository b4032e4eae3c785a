//! Helpers shared by kv's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use clap::Parser;
use proto::Frame;
use service::{CancellationToken, RespClient, Running};

/// Starts kv on a free port with extra flags.
pub async fn start(extra: &[&str]) -> Running {
    let mut argv = vec!["kv", "--port", "0"];
    argv.extend_from_slice(extra);
    kv::start(kv::Args::parse_from(argv), CancellationToken::new())
        .await
        .expect("start kv")
}

/// Starts kv with a clock the test controls.
pub async fn start_with_clock(extra: &[&str], clock: Arc<kv::clock::ManualClock>) -> Running {
    let mut argv = vec!["kv", "--port", "0"];
    argv.extend_from_slice(extra);
    kv::start_with_clock(kv::Args::parse_from(argv), CancellationToken::new(), clock)
        .await
        .expect("start kv")
}

/// A fresh, empty directory under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "kv-test-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

pub async fn connect(server: &Running) -> RespClient {
    RespClient::connect(server.addr()).await.expect("connect")
}

/// Sends one command of text words.
pub async fn call(c: &mut RespClient, words: &[&str]) -> Frame {
    c.call(words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())))
        .await
        .expect("call")
}

pub fn bulk(s: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

pub fn int(n: i64) -> Frame {
    Frame::Integer(n)
}

pub fn err(s: &str) -> Frame {
    Frame::error(s)
}

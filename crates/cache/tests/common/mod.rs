#![allow(clippy::unwrap_used, dead_code)] // test code: a panic is a test failure
//! Test helpers: a cache on port 0, a real redis-server on a free port, INFO parsing.

use clap::Parser;
use proto::Frame;
use service::{CancellationToken, RespClient, Running};
use testkit::RedisServer;

/// Starts a cache with `extra` flags (after `--port 0`).
pub async fn start_cache(extra: &[&str]) -> Running {
    let mut argv = vec!["cache", "--port", "0"];
    argv.extend_from_slice(extra);
    cache::start(cache::Args::parse_from(argv), CancellationToken::new())
        .await
        .unwrap()
}

pub async fn client(running: &Running) -> RespClient {
    RespClient::connect(running.addr()).await.unwrap()
}

/// Sends a command written as space-separated words.
pub async fn call(c: &mut RespClient, command: &str) -> Frame {
    c.call(command.split_whitespace().map(str::to_owned))
        .await
        .unwrap()
}

pub fn bulk(s: &str) -> Frame {
    Frame::Bulk(bytes::Bytes::copy_from_slice(s.as_bytes()))
}

/// One field of `INFO` (all sections).
pub async fn info_field(c: &mut RespClient, field: &str) -> String {
    let reply = c.call(["INFO", "everything"]).await.unwrap();
    let text = String::from_utf8_lossy(reply.as_bytes().unwrap()).into_owned();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO:\n{text}"))
        .trim()
        .to_string()
}

pub async fn info_u64(c: &mut RespClient, field: &str) -> u64 {
    info_field(c, field).await.parse().unwrap()
}

/// A client of a real redis-server.
pub async fn redis_client(redis: &RedisServer) -> RespClient {
    RespClient::connect(redis.addr().as_str()).await.unwrap()
}

#![allow(clippy::unwrap_used, dead_code)] // test code: a panic is a test failure
//! Test helpers: a cache on port 0, a real redis-server on a free port, INFO parsing.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clap::Parser;
use proto::Frame;
use service::{CancellationToken, RespClient, Running};

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

/// Re-evaluates the (async) condition every 10 ms until it holds; panics after `limit`.
#[macro_export]
macro_rules! eventually {
    ($limit:expr, $what:expr, $check:expr) => {{
        let limit: std::time::Duration = $limit;
        let deadline = tokio::time::Instant::now() + limit;
        while !$check {
            assert!(
                tokio::time::Instant::now() < deadline,
                "not within {limit:?}: {}",
                $what
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }};
}

/// A real `redis-server` on a free port, killed on drop.
pub struct Redis {
    child: Child,
    pub port: u16,
}

impl Redis {
    pub async fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (.ci/run installs it)");
        let redis = Redis { child, port };
        let addr = redis.addr();
        eventually!(
            Duration::from_secs(5),
            "redis-server starts",
            match RespClient::connect(addr.as_str()).await {
                Ok(mut c) => c.call(["PING"]).await.is_ok(),
                Err(_) => false,
            }
        );
        redis
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub async fn client(&self) -> RespClient {
        RespClient::connect(self.addr().as_str()).await.unwrap()
    }

    /// Kills it now (the origin "goes down").
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

//! Helpers shared by the integration tests: a pub/sub server on a free port, a real
//! `redis-server` to compare with, and a reader of pushed frames.
#![allow(dead_code, clippy::unwrap_used)] // test code: a panic is a test failure

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
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

/// A `redis-server` on a free port, killed when dropped.
pub struct RedisServer {
    child: Child,
    pub addr: SocketAddr,
}

impl RedisServer {
    pub async fn start(extra: &[&str]) -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--bind", "127.0.0.1"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (.ci/run installs it)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        // Owned from here on: dropped (killed and reaped) on every path, panics included.
        let server = RedisServer { child, addr };
        for _ in 0..200 {
            if let Ok(mut c) = RespClient::connect(addr).await
                && c.call(["PING"]).await.is_ok()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("redis-server did not start on port {port}");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

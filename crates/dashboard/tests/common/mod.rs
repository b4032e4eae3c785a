//! A small topology in this process and the dashboard over it, and the two ways a page
//! reads the dashboard: `GET /api/state` and the `/events` stream.
#![allow(dead_code)]

pub mod chromium;

use std::time::Duration;

use clap::Parser;
use serde_json::Value;
use service::{CancellationToken, Running};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Long enough for a loaded CI machine; conditions are awaited, never slept on.
pub const PATIENCE: Duration = Duration::from_secs(90);

pub struct Topology {
    pub kv: Vec<Running>,
    pub kv_addrs: Vec<String>,
    pub cache: String,
    pub router: String,
    pub stream: String,
    pub dashboard: dashboard::Dashboard,
    pub others: Vec<Running>,
    pub dir: std::path::PathBuf,
}

/// Two kv shards, a router over them, a cache, a stream server, and the dashboard
/// polling them every 100 ms, all on port 0.
pub async fn start(name: &str) -> Topology {
    let dir = std::env::temp_dir().join(format!("dashboard-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let shutdown = CancellationToken::new;
    let mut kv = Vec::new();
    for _ in 0..2 {
        kv.push(
            kv::start(kv::Args::parse_from(["kv", "--port", "0"]), shutdown())
                .await
                .unwrap(),
        );
    }
    let kv_addrs: Vec<String> = kv.iter().map(|k| k.addr().to_string()).collect();
    let shards = kv_addrs.join(",");
    let router = shard_router::start(
        shard_router::Args::parse_from(["router", "--port", "0", "--shards", &shards]),
        shutdown(),
    )
    .await
    .unwrap();
    let cache = cache::start(
        cache::Args::parse_from(["cache", "--port", "0"]),
        shutdown(),
    )
    .await
    .unwrap();
    let stream_dir = dir.join("stream");
    let stream = stream::start(
        stream::Args::parse_from([
            "stream",
            "--port",
            "0",
            "--kafka-port",
            "0",
            "--dir",
            stream_dir.to_str().unwrap(),
        ]),
        shutdown(),
    )
    .await
    .unwrap();
    let (cache_addr, router_addr, stream_addr) = (
        cache.addr().to_string(),
        router.addr().to_string(),
        stream.addr().to_string(),
    );
    let dashboard = dashboard::start(
        dashboard::Args {
            interval_ms: 100,
            kv: shards.clone(),
            cache: cache_addr.clone(),
            router: router_addr.clone(),
            stream: stream_addr.clone(),
            ..dashboard::Args::ephemeral()
        },
        shutdown(),
    )
    .await
    .unwrap();
    Topology {
        kv,
        kv_addrs,
        cache: cache_addr,
        router: router_addr,
        stream: stream_addr,
        dashboard,
        others: vec![router, cache, stream],
        dir,
    }
}

impl Topology {
    pub fn page(&self) -> String {
        self.dashboard.url()
    }

    pub async fn stop(self) {
        self.dashboard.running.stop().await;
        for r in self.kv.into_iter().chain(self.others) {
            r.stop().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `GET path` on the dashboard: (status line, body).
pub async fn get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

/// `/api/state`, parsed.
pub async fn state(addr: std::net::SocketAddr) -> Value {
    let (status, body) = get(addr, "/api/state").await;
    assert!(status.contains("200"), "{status}");
    serde_json::from_str(&body).unwrap()
}

/// The node called `name` in a snapshot.
pub fn node<'a>(snapshot: &'a Value, name: &str) -> &'a Value {
    snapshot["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no node {name} in {snapshot}"))
}

/// A metric of a node (None: not reported).
pub fn metric(snapshot: &Value, name: &str, metric: &str) -> Option<f64> {
    node(snapshot, name)["metrics"][metric].as_f64()
}

/// Polls `/api/state` until `holds` is true of it; returns that snapshot.
pub async fn until_state(
    addr: std::net::SocketAddr,
    what: &str,
    holds: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let s = state(addr).await;
        if holds(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not seen in /api/state within {PATIENCE:?}; last: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An open `/events` stream.
pub struct Events {
    lines: tokio::io::Lines<BufReader<TcpStream>>,
}

impl Events {
    pub async fn open(addr: std::net::SocketAddr) -> Events {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /events HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .unwrap();
        let mut lines = BufReader::new(stream).lines();
        let status = lines.next_line().await.unwrap().unwrap();
        assert!(status.contains("200"), "{status}");
        let mut event_stream = false;
        loop {
            let line = lines.next_line().await.unwrap().unwrap();
            if line.is_empty() {
                break;
            }
            event_stream |= line.eq_ignore_ascii_case("content-type: text/event-stream");
        }
        assert!(event_stream, "/events is not text/event-stream");
        Events { lines }
    }

    /// Reads events until one satisfies `holds`; returns it.
    pub async fn until(&mut self, what: &str, holds: impl Fn(&Value) -> bool) -> Value {
        let wait = async {
            let mut last = Value::Null;
            loop {
                let Ok(Some(line)) = self.lines.next_line().await else {
                    panic!("{what}: the event stream ended; last event: {last}");
                };
                // Chunked transfer encoding puts chunk sizes on lines of their own.
                let Some(json) = line.strip_prefix("data: ") else {
                    continue;
                };
                let event: Value = serde_json::from_str(json).unwrap();
                if holds(&event) {
                    return event;
                }
                last = event;
            }
        };
        tokio::time::timeout(PATIENCE, wait)
            .await
            .unwrap_or_else(|_| panic!("{what}: no such event within {PATIENCE:?}"))
    }
}

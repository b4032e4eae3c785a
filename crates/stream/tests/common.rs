#![allow(clippy::unwrap_used, dead_code)] // test code: a panic is a test failure
//! Starting a stream server on port 0 and talking to it.

use std::path::PathBuf;

use bytes::Bytes;
use clap::Parser;
use proto::Frame;
use service::{CancellationToken, RespClient, Running};

pub struct TestServer {
    pub running: Running,
    pub dir: PathBuf,
    /// The Kafka protocol listener.
    pub kafka: std::net::SocketAddr,
}

impl TestServer {
    pub fn addr(&self) -> std::net::SocketAddr {
        self.running.addr()
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr()).await
    }

    /// A RESP2 client: no `HELLO 3`, so replies the server already holds as RESP2 bytes
    /// (`FETCH`'s, sent in parts with `writev`) reach it as they are.
    pub async fn client_resp2(&self) -> Client {
        Client(RespClient::connect(self.addr()).await.unwrap())
    }
}

/// A fresh data directory for one test.
pub fn tmp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("infralab-stream-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub async fn start_in(dir: &std::path::Path, extra: &[&str]) -> TestServer {
    let mut argv = vec![
        "stream",
        "--port",
        "0",
        "--kafka-port",
        "0",
        "--dir",
        dir.to_str().unwrap(),
    ];
    argv.extend_from_slice(extra);
    let args = stream::Args::parse_from(argv);
    let started = stream::start_with_kafka(args, CancellationToken::new())
        .await
        .unwrap();
    TestServer {
        running: started.running,
        dir: dir.to_path_buf(),
        kafka: started.kafka_addr,
    }
}

pub async fn start(name: &str, extra: &[&str]) -> TestServer {
    start_in(&tmp_dir(name), extra).await
}

/// A RESP3 client (maps arrive as maps).
pub struct Client(pub RespClient);

impl Client {
    pub async fn connect(addr: std::net::SocketAddr) -> Client {
        let mut c = RespClient::connect(addr).await.unwrap();
        assert!(matches!(
            c.call(["HELLO", "3"]).await.unwrap(),
            Frame::Map(_)
        ));
        Client(c)
    }

    pub async fn call(&mut self, words: &[&str]) -> Frame {
        let words: Vec<Bytes> = words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        self.0.call(words).await.unwrap()
    }

    pub async fn call_owned(&mut self, words: Vec<String>) -> Frame {
        self.0.call(words).await.unwrap()
    }

    /// Calls and panics on an error reply.
    pub async fn ok(&mut self, words: &[&str]) -> Frame {
        let reply = self.call(words).await;
        assert!(!reply.is_error(), "{words:?} -> {reply:?}");
        reply
    }
}

/// A field of a map reply.
pub fn field<'a>(frame: &'a Frame, key: &str) -> &'a Frame {
    let Frame::Map(pairs) = frame else {
        panic!("not a map: {frame:?}")
    };
    pairs
        .iter()
        .find(|(k, _)| k.as_bytes().is_some_and(|b| b == key.as_bytes()))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no field {key} in {frame:?}"))
}

pub fn int(frame: &Frame) -> i64 {
    match frame {
        Frame::Integer(n) => *n,
        other => panic!("not an integer: {other:?}"),
    }
}

pub fn array(frame: &Frame) -> &[Frame] {
    match frame {
        Frame::Array(items) => items,
        other => panic!("not an array: {other:?}"),
    }
}

pub fn string(frame: &Frame) -> String {
    String::from_utf8(frame.as_bytes().unwrap().to_vec()).unwrap()
}

pub fn error_text(frame: &Frame) -> String {
    match frame {
        Frame::Error(e) => String::from_utf8_lossy(e).into_owned(),
        other => panic!("not an error: {other:?}"),
    }
}

/// Fetched records (`[offset, timestamp, key, value, header, value, ...]` each) as
/// `(offset, key, value)`.
pub fn records(frame: &Frame) -> Vec<(u64, Option<String>, String)> {
    array(frame)
        .iter()
        .map(|r| {
            let r = array(r);
            let key = match &r[2] {
                Frame::Null => None,
                k => Some(string(k)),
            };
            (int(&r[0]) as u64, key, string(&r[3]))
        })
        .collect()
}

/// Reads a whole partition from `from` to its current end.
pub async fn read_partition(
    c: &mut Client,
    topic: &str,
    p: u32,
    from: u64,
) -> Vec<(u64, Option<String>, String)> {
    let end = int(&c
        .ok(&["LISTOFFSETS", topic, &p.to_string(), "LATEST"])
        .await) as u64;
    let mut out = Vec::new();
    let mut offset = from;
    while offset < end {
        let got = records(
            &c.ok(&["FETCH", topic, &p.to_string(), &offset.to_string()])
                .await,
        );
        offset = got.last().unwrap().0 + 1;
        out.extend(got);
    }
    out
}

/// Polls `check` until it returns true (a condition, not a sleep, is what the test waits
/// for); gives up after 20 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Where a `PRODUCE.BATCH` reply puts each message of the request, given `route[i]`, the
/// partition message `i` went to: message `j` among a partition's messages is at that
/// partition's `base_offset + j`. Checks the reply's shape on the way: one
/// `[partition, base_offset, count]` per partition written, in ascending partition order,
/// each `count` the number of messages routed there.
pub fn placements(reply: &Frame, route: &[u32]) -> Vec<(u32, u64)> {
    let entries: Vec<(u32, u64, u64)> = array(reply)
        .iter()
        .map(|e| {
            let e = array(e);
            assert_eq!(e.len(), 3, "{reply:?}");
            (int(&e[0]) as u32, int(&e[1]) as u64, int(&e[2]) as u64)
        })
        .collect();
    assert!(
        entries.windows(2).all(|w| w[0].0 < w[1].0),
        "one entry per partition, ascending: {entries:?}"
    );
    let mut routed = std::collections::BTreeMap::new();
    for &p in route {
        *routed.entry(p).or_insert(0u64) += 1;
    }
    let counts: std::collections::BTreeMap<u32, u64> =
        entries.iter().map(|&(p, _, count)| (p, count)).collect();
    assert_eq!(counts, routed, "{reply:?}");
    let mut next: std::collections::BTreeMap<u32, u64> =
        entries.iter().map(|&(p, base, _)| (p, base)).collect();
    route
        .iter()
        .map(|&p| {
            let offset = next.get_mut(&p).unwrap();
            *offset += 1;
            (p, *offset - 1)
        })
        .collect()
}

/// The one partition a `PRODUCE.BATCH` reply names (a batch that went whole to one).
pub fn only_partition(reply: &Frame) -> u32 {
    let entries = array(reply);
    assert_eq!(entries.len(), 1, "{reply:?}");
    int(&array(&entries[0])[0]) as u32
}

/// Runs a server command that must refuse to start (exit with an error) within 30 s;
/// returns what it printed on stderr. One that keeps running is killed and fails the test.
pub fn refuses_to_start(mut command: std::process::Command) -> String {
    use std::process::Stdio;
    let mut child = command
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server started (or hung) instead of refusing to start");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "exited successfully: {stderr}");
    stderr
}

#![allow(clippy::unwrap_used, dead_code)] // test code: a panic is a test failure
//! Shared by the broker's integration tests: a broker on port 0 in a fresh directory, and
//! a client that speaks its commands.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use clap::Parser;
use proto::Frame;
use service::{CancellationToken, RespClient, Running};

/// A fresh, empty directory under the system's temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for TempDir {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn temp_dir(tag: &str) -> TempDir {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "infralab-broker-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

/// A broker on free ports in `dir` (RESP only: the other protocols' ports are off).
pub async fn start(dir: &std::path::Path, extra: &[&str]) -> Running {
    start_on(dir, "0", extra).await.running
}

/// A broker on free ports (RESP, beanstalkd, SQS) in `dir`, with `extra` flags.
pub async fn start_with_protocols(dir: &std::path::Path, extra: &[&str]) -> broker::Started {
    start_on(dir, "auto", extra).await
}

/// A broker with `--beanstalk-port` and `--sqs-port` set to `ports`. A restart in the
/// same process can find `dir` still locked: the stopped broker's last connection tasks
/// and sled's background threads let go of the store a moment after `stop` returns (a
/// new process never sees this: the kernel drops a dead process's lock). So a refusal
/// for the lock is retried, for at most 10 s.
async fn start_on(dir: &std::path::Path, ports: &str, extra: &[&str]) -> broker::Started {
    let mut argv = vec!["broker", "--port", "0", "--dir", dir.to_str().unwrap()];
    argv.extend_from_slice(&["--beanstalk-port", ports, "--sqs-port", ports]);
    argv.extend_from_slice(extra);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let args = broker::Args::parse_from(&argv);
        match broker::start_with_protocols(args, CancellationToken::new()).await {
            Ok(started) => return started,
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("broker did not start: {e}"),
        }
    }
}

/// Runs the Python script `tests/<script>` with `args` (after checking that the modules
/// `imports` are installed); it prints "ok" when every step it asserts held.
pub async fn python(script: &str, imports: &str, args: &[String]) {
    let check = testkit::peer("python3")
        .args(["-c", &format!("import {imports}")])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{imports}: not installed: {}",
        testkit::INSTALL_PEERS
    );
    let path = format!("{}/tests/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::from(testkit::peer("python3"))
        .arg(path)
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success() && out.stdout == b"ok\n",
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One delivered message, as QRECV describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Got {
    pub id: i64,
    pub receipt: String,
    pub body: Bytes,
    pub deliveries: i64,
}

pub struct Client(pub RespClient);

impl Client {
    pub async fn connect(addr: std::net::SocketAddr) -> Client {
        Client(RespClient::connect(addr).await.unwrap())
    }

    pub async fn call(&mut self, words: &[&str]) -> Frame {
        self.0
            .call(words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())))
            .await
            .unwrap()
    }

    /// Sends and returns the id.
    pub async fn send(&mut self, queue: &str, body: &str) -> i64 {
        match self.call(&["QSEND", queue, body]).await {
            Frame::Integer(id) => id,
            other => panic!("QSEND: {other:?}"),
        }
    }

    pub async fn recv(&mut self, queue: &str, options: &[&str]) -> Vec<Got> {
        let mut words = vec!["QRECV", queue];
        words.extend_from_slice(options);
        parse_messages(self.call(&words).await)
    }

    pub async fn ack(&mut self, queue: &str, receipt: &str) -> Frame {
        self.call(&["QACK", queue, receipt]).await
    }

    /// QSTATS as (field, integer) pairs; non-integer fields are left out.
    pub async fn stats(&mut self, queue: &str) -> Vec<(String, i64)> {
        let Frame::Array(items) = self.call(&["QSTATS", queue]).await else {
            panic!("QSTATS")
        };
        items
            .chunks(2)
            .filter_map(|pair| match pair {
                [Frame::Bulk(k), Frame::Integer(v)] => {
                    Some((String::from_utf8_lossy(k).into_owned(), *v))
                }
                _ => None,
            })
            .collect()
    }

    pub async fn stat(&mut self, queue: &str, name: &str) -> i64 {
        self.stats(queue)
            .await
            .into_iter()
            .find(|(k, _)| k == name)
            .unwrap_or_else(|| panic!("no {name} in QSTATS"))
            .1
    }
}

/// A QRECV reply (RESP2: an array of flat `field value ...` arrays) to messages.
pub fn parse_messages(frame: Frame) -> Vec<Got> {
    let Frame::Array(items) = frame else {
        panic!("QRECV reply: {frame:?}")
    };
    items
        .into_iter()
        .map(|item| {
            let Frame::Array(fields) = item else {
                panic!("message: {item:?}")
            };
            let mut got = Got {
                id: 0,
                receipt: String::new(),
                body: Bytes::new(),
                deliveries: 0,
            };
            for pair in fields.chunks(2) {
                let [Frame::Bulk(key), value] = pair else {
                    panic!("field: {pair:?}")
                };
                match (key.as_ref(), value) {
                    (b"id", Frame::Integer(n)) => got.id = *n,
                    (b"receipt", Frame::Bulk(r)) => {
                        got.receipt = String::from_utf8(r.to_vec()).unwrap()
                    }
                    (b"body", Frame::Bulk(b)) => got.body = b.clone(),
                    (b"deliveries", Frame::Integer(n)) => got.deliveries = *n,
                    other => panic!("unexpected field {other:?}"),
                }
            }
            got
        })
        .collect()
}

pub fn err(text: &str) -> Frame {
    Frame::error(text)
}

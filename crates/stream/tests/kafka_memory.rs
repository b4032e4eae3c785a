#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! Memory a Kafka client controls: announced sizes reserve nothing, a request over
//! `--kafka-max-request-bytes` closes its connection, and partial requests together stay
//! under `--kafka-max-buffered-request-bytes`. The server runs as its own process so its
//! RSS is its own.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Client, eventually, tmp_dir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MIB: usize = 1024 * 1024;

struct Server {
    child: Child,
    resp: SocketAddr,
    kafka: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn spawn_server(name: &str, extra: &[&str]) -> Server {
    let dir = tmp_dir(name);
    let (resp, kafka) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_infralab-stream"))
        .args([
            "--port",
            &resp.to_string(),
            "--kafka-port",
            &kafka.to_string(),
        ])
        .args(["--dir", dir.to_str().unwrap(), "--fsync", "no"])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let resp: SocketAddr = format!("127.0.0.1:{resp}").parse().unwrap();
    let kafka: SocketAddr = format!("127.0.0.1:{kafka}").parse().unwrap();
    eventually("the server to listen", || async move {
        TcpStream::connect(resp).await.is_ok() && TcpStream::connect(kafka).await.is_ok()
    })
    .await;
    Server { child, resp, kafka }
}

/// The server's resident memory, in bytes.
fn rss(server: &Server) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// A field of `INFO stream`.
async fn stat(server: &Server, name: &str) -> u64 {
    let mut c = Client::connect(server.resp).await;
    let info = c.ok(&["INFO", "stream"]).await;
    let text = String::from_utf8_lossy(info.as_bytes().unwrap()).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .trim()
        .parse()
        .unwrap()
}

/// The server closes the connection (a read ends, or fails, with no answer).
async fn assert_closed(conn: &mut TcpStream, what: &str) {
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("{what}: the connection stayed open"));
    assert!(matches!(read, Ok(0) | Err(_)), "{what}: {read:?}");
}

#[tokio::test]
async fn three_hundred_connections_announcing_100_mib_hold_almost_nothing() {
    let server = spawn_server("kafka-memory-announce", &[]).await;
    let before = rss(&server);
    let received_before = stat(&server, "kafka_total_net_input_bytes").await;
    let mut conns = Vec::new();
    for _ in 0..300 {
        let mut conn = TcpStream::connect(server.kafka).await.unwrap();
        conn.write_i32(100 * MIB as i32).await.unwrap();
        conn.write_all(b"x").await.unwrap();
        conns.push(conn);
    }
    eventually("the server to read all 300 announcements", || async {
        stat(&server, "kafka_connected_clients").await == 300
            && stat(&server, "kafka_total_net_input_bytes").await >= received_before + 300 * 5
    })
    .await;
    // Counted: no buffer grew past its first 4 KiB.
    assert_eq!(stat(&server, "kafka_buffered_request_bytes").await, 0);
    // Measured: before, this cost ~2.4 MB per connection (733 MB for 300).
    let grown = rss(&server).saturating_sub(before);
    assert!(grown < 12 * MIB, "RSS grew by {} MiB", grown / MIB);
    drop(conns);
    eventually("the connections to close", || async {
        stat(&server, "kafka_connected_clients").await == 0
    })
    .await;
}

#[tokio::test]
async fn a_request_over_the_size_limit_closes_its_connection() {
    let server = spawn_server(
        "kafka-memory-max",
        &["--kafka-max-request-bytes", "1048576"],
    )
    .await;
    for size in [MIB as i32 + 1, i32::MAX, -5, 3] {
        let mut conn = TcpStream::connect(server.kafka).await.unwrap();
        conn.write_i32(size).await.unwrap();
        assert_closed(&mut conn, &format!("size {size}")).await;
    }
    assert_eq!(stat(&server, "kafka_rejected_requests").await, 4);
    // A request of exactly the limit is read (and answered: api 0 version 0 is unsupported).
    let mut conn = TcpStream::connect(server.kafka).await.unwrap();
    conn.write_i32(MIB as i32).await.unwrap();
    conn.write_all(&vec![0u8; MIB]).await.unwrap();
    assert_eq!(conn.read_i32().await.unwrap(), 6);
    assert_eq!(conn.read_i32().await.unwrap(), 0, "correlation id");
    assert_eq!(conn.read_i16().await.unwrap(), 35, "UNSUPPORTED_VERSION");
}

#[tokio::test]
async fn partial_requests_together_stay_under_the_shared_limit() {
    let server = spawn_server(
        "kafka-memory-shared",
        &[
            "--kafka-max-buffered-request-bytes",
            &(16 * MIB).to_string(),
        ],
    )
    .await;
    let request = 10 * MIB;
    let body = vec![0u8; 9 * MIB];
    let mut first = TcpStream::connect(server.kafka).await.unwrap();
    first.write_i32(request as i32).await.unwrap();
    first.write_all(&body).await.unwrap();
    eventually("the first partial request to be buffered", || async {
        stat(&server, "kafka_buffered_request_bytes").await >= 9 * MIB as u64
    })
    .await;
    // A second one cannot get its 9 MiB in as well: it is closed, the first goes on.
    let mut second = TcpStream::connect(server.kafka).await.unwrap();
    second.write_i32(request as i32).await.unwrap();
    let _ = second.write_all(&body).await; // may fail once the server has closed it
    assert_closed(&mut second, "the second partial request").await;
    assert!(stat(&server, "kafka_buffered_request_bytes").await <= 16 * MIB as u64);
    assert_eq!(stat(&server, "kafka_rejected_requests").await, 1);
    first
        .write_all(&vec![0u8; request - body.len()])
        .await
        .unwrap();
    assert_eq!(first.read_i32().await.unwrap(), 6);
    assert_eq!(first.read_i32().await.unwrap(), 0);
    assert_eq!(first.read_i16().await.unwrap(), 35);
    // Served and empty again: the memory is given back.
    eventually("the buffer to be returned", || async {
        stat(&server, "kafka_buffered_request_bytes").await == 0
    })
    .await;
}

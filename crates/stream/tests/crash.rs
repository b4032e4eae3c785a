#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! Crash recovery with the real binary: SIGKILL during produce with `--fsync always`,
//! restart, every acknowledged message is at its offset; then a torn tail written by hand
//! is cut off on the next start.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use common::*;
use proto::Frame;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Process {
    child: Child,
    addr: std::net::SocketAddr,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn spawn_server(dir: &Path) -> (Process, Client) {
    spawn_server_with(dir, &["--fsync", "always"]).await
}

/// The server on `dir` with extra flags (`--fsync`, `--load-truncated`).
async fn spawn_server_with(dir: &Path, extra: &[&str]) -> (Process, Client) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_infralab-stream"))
        .args([
            "--port",
            &port.to_string(),
            "--kafka-port",
            "0",
            "--dir",
            dir.to_str().unwrap(),
        ])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    eventually("the server to listen", || {
        let ok = std::net::TcpStream::connect(addr).is_ok();
        async move { ok }
    })
    .await;
    (Process { child, addr }, Client::connect(addr).await)
}

/// (partition, offset, value) of every acknowledged produce.
type Acked = Arc<Mutex<Vec<(i64, i64, String)>>>;

async fn producer(addr: std::net::SocketAddr, id: usize, acked: Acked) {
    let Ok(c) = service::RespClient::connect(addr).await else {
        return;
    };
    let mut c = c;
    for i in 0.. {
        let value = format!("producer-{id}-message-{i}-{}", "x".repeat(i % 200));
        let key = format!("key-{}", i % 17);
        let Ok(reply) = c
            .call(["PRODUCE", "crash", value.as_str(), "KEY", key.as_str()].map(str::to_owned))
            .await
        else {
            return; // the server died: this message was not acknowledged
        };
        let Frame::Array(pair) = reply else { return };
        let (Frame::Integer(p), Frame::Integer(o)) = (&pair[0], &pair[1]) else {
            return;
        };
        acked.lock().unwrap().push((*p, *o, value));
    }
}

/// Eight producers write to topic `crash` until 3,000 produces are acknowledged, then the
/// server gets SIGKILL (no shutdown hook, no final fsync): the acknowledged records.
async fn sigkill_under_produce_load(server: &mut Process) -> Vec<(i64, i64, String)> {
    let acked: Acked = Arc::default();
    let producers: Vec<_> = (0..8)
        .map(|id| tokio::spawn(producer(server.addr, id, acked.clone())))
        .collect();
    eventually("3000 acknowledged produces", || {
        let n = acked.lock().unwrap().len();
        async move { n >= 3000 }
    })
    .await;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    for p in producers {
        p.await.unwrap();
    }
    acked.lock().unwrap().clone()
}

async fn check_acked(c: &mut Client, acked: &[(i64, i64, String)]) {
    for (p, o, value) in acked {
        let got = records(
            &c.ok(&[
                "FETCH",
                "crash",
                &p.to_string(),
                &o.to_string(),
                "COUNT",
                "1",
            ])
            .await,
        );
        assert_eq!(got.len(), 1, "acknowledged message at {p}/{o} missing");
        assert_eq!(&got[0].2, value, "at {p}/{o}");
    }
}

/// Under `--fsync everysec` a produce's records are written to the segment file before
/// its reply (only the fsync is once a second): killing the process loses none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_fsync_everysec_loses_no_acknowledged_message() {
    let dir = tmp_dir("crash-everysec");
    let (mut server, mut c) = spawn_server_with(&dir, &["--fsync", "everysec"]).await;
    c.ok(&["TOPIC.CREATE", "crash", "PARTITIONS", "4"]).await;
    let acked = sigkill_under_produce_load(&mut server).await;
    let (_server, mut c) = spawn_server_with(&dir, &["--fsync", "everysec"]).await;
    check_acked(&mut c, &acked).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The start of every batch in a segment file (the batch length is at bytes 8..12).
fn batch_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = 0;
    while at + 12 <= bytes.len() {
        starts.push(at);
        let len = i32::from_be_bytes(bytes[at + 8..at + 12].try_into().unwrap());
        at += 12 + len as usize;
    }
    starts
}

/// A flipped byte in a batch in the middle of the newest segment, with valid batches
/// after it, is not a torn tail: the server refuses to start and names the file and
/// the byte; `--load-truncated` starts it, cut at the damaged batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_mid_segment_refuses_to_start_unless_load_truncated() {
    let dir = tmp_dir("flipped");
    let (server, mut c) = spawn_server(&dir).await;
    c.ok(&["TOPIC.CREATE", "flip", "PARTITIONS", "1"]).await;
    for i in 0..200 {
        let value = format!("message-{i}");
        c.ok(&["PRODUCE", "flip", &value, "PARTITION", "0"]).await;
    }
    drop(c);
    drop(server);
    let path = dir.join("topics/flip/0/00000000000000000000.log");
    let mut bytes = std::fs::read(&path).unwrap();
    let starts = batch_starts(&bytes);
    assert_eq!(starts.len(), 200, "one batch per PRODUCE");
    // The last byte of batch 100's record: covered by its CRC.
    let damaged = starts[100];
    bytes[starts[101] - 1] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();

    let mut refused = Command::new(env!("CARGO_BIN_EXE_infralab-stream"));
    refused
        .args(["--port", "0", "--kafka-port", "0", "--dir"])
        .arg(&dir);
    let stderr = common::refuses_to_start(refused);
    let named = format!("{} is damaged at byte {damaged},", path.display());
    assert!(stderr.contains(&named), "expected {named:?} in: {stderr}");
    assert!(stderr.contains("--load-truncated"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the refusal changed the file"
    );

    let (_server, mut c) = spawn_server_with(&dir, &["--load-truncated"]).await;
    let end = int(&c.ok(&["LISTOFFSETS", "flip", "0", "LATEST"]).await);
    assert_eq!(end, 100, "cut at the damaged batch");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_produce_loses_no_acknowledged_message() {
    let dir = tmp_dir("crash");
    let (mut server, mut c) = spawn_server(&dir).await;
    c.ok(&[
        "TOPIC.CREATE",
        "crash",
        "PARTITIONS",
        "4",
        "SEGMENT.BYTES",
        "65536",
    ])
    .await;
    let acked = sigkill_under_produce_load(&mut server).await;

    let (server, mut c) = spawn_server(&dir).await;
    check_acked(&mut c, &acked).await;
    let mut ends = Vec::new();
    for p in ["0", "1"] {
        ends.push(int(&c.ok(&["LISTOFFSETS", "crash", p, "LATEST"]).await));
    }
    drop(c);
    drop(server); // SIGKILL again

    // A torn tail by hand: half a batch at the end of partition 0's newest segment, and
    // a corrupt last batch in partition 1's.
    let newest = |p: u32| {
        let mut logs: Vec<_> = std::fs::read_dir(dir.join(format!("topics/crash/{p}")))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        logs.sort();
        logs.pop().unwrap()
    };
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(newest(0))
        .unwrap();
    f.write_all(&[0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 200, 0xff, 0xff])
        .unwrap();
    drop(f);
    let path1 = newest(1);
    let mut bytes = std::fs::read(&path1).unwrap();
    let n = bytes.len();
    bytes[n - 2] ^= 0x55;
    std::fs::write(&path1, &bytes).unwrap();

    let (_server, mut c) = spawn_server(&dir).await;
    // Partition 0 lost only the garbage; partition 1 lost its (now corrupt) last batch,
    // which held one record.
    let end0 = int(&c.ok(&["LISTOFFSETS", "crash", "0", "LATEST"]).await);
    let end1 = int(&c.ok(&["LISTOFFSETS", "crash", "1", "LATEST"]).await);
    assert_eq!(end0, ends[0]);
    assert_eq!(end1, ends[1] - 1);
    let intact: Vec<_> = acked
        .iter()
        .filter(|a| a.0 != 1 || a.1 < end1)
        .cloned()
        .collect();
    check_acked(&mut c, &intact).await;
    // Appends continue right after the last whole batch.
    let reply = c.ok(&["PRODUCE", "crash", "after", "PARTITION", "0"]).await;
    assert_eq!(
        reply,
        Frame::Array(vec![Frame::Integer(0), Frame::Integer(end0)])
    );
    let _ = std::fs::remove_dir_all(&dir);
}

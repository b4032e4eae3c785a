#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! Crash test: writers SET keys against the real `infralab kv` binary and record every
//! acknowledged write; the process is killed with SIGKILL mid-stream and restarted from
//! the same directory. Every acknowledged key must be there with its value, under
//! `--fsync always` and under `everysec` alike: `everysec` writes the journal to the
//! kernel before the replies go out (only the fsync is once a second), so killing the
//! process loses nothing; only a crash of the machine could lose up to a second.

mod kv_process;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kv_process::{KvProcess, remove, temp_dir};
use proto::Frame;
use service::RespClient;

const WRITERS: usize = 8;
/// SETs a pipelining writer sends at once.
const PIPELINE: u64 = 16;

/// An acknowledged write: key number and when its reply arrived.
type Acked = Arc<Mutex<Vec<(u64, Instant)>>>;

fn key(n: u64) -> Bytes {
    Bytes::from(format!("key:{n}"))
}

fn value(n: u64) -> Bytes {
    Bytes::from(format!("value-{n}-{}", "x".repeat((n % 50) as usize)))
}

/// Writers SET distinct keys until the connection dies; every OK is recorded. Odd
/// writers pipeline [`PIPELINE`] SETs at a time (their replies share one journal
/// `write()`), even writers send one at a time.
fn spawn_writers(server: &KvProcess, acked: &Acked) -> Vec<tokio::task::JoinHandle<()>> {
    (0..WRITERS as u64)
        .map(|w| {
            let (addr, acked) = (server.addr, acked.clone());
            let depth = if w % 2 == 1 { PIPELINE } else { 1 };
            tokio::spawn(async move {
                let Ok(mut c) = RespClient::connect(addr).await else {
                    return;
                };
                for round in 0.. {
                    let first = round * depth;
                    let numbers: Vec<u64> = (first..first + depth)
                        .map(|i| i * WRITERS as u64 + w)
                        .collect();
                    for &n in &numbers {
                        c.queue([Bytes::from_static(b"SET"), key(n), value(n)]);
                    }
                    if c.flush().await.is_err() {
                        return;
                    }
                    for n in numbers {
                        match c.read_reply().await {
                            Ok(Frame::Simple(ok)) if ok == "OK" => {
                                acked.lock().unwrap().push((n, Instant::now()));
                            }
                            _ => return,
                        }
                    }
                }
            })
        })
        .collect()
}

/// Kills kv after `run` of writing, restarts it, and returns (acked, lost, acked in the
/// last `window` before the kill).
async fn crash_and_count(fsync: &str, run: Duration, window: Duration) -> (usize, usize, usize) {
    let dir = temp_dir(&format!("kv-crash-{fsync}"));
    let dir_arg = dir.to_str().unwrap();
    let mut server = KvProcess::start(&["--dir", dir_arg, "--fsync", fsync]);
    let acked: Acked = Arc::default();
    let writers = spawn_writers(&server, &acked);
    tokio::time::sleep(run).await;
    server.kill9();
    let killed_at = Instant::now();
    for w in writers {
        w.await.unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        acked.len() > 100,
        "only {} writes acknowledged",
        acked.len()
    );

    let server = KvProcess::start(&["--dir", dir_arg, "--fsync", fsync]);
    let mut c = RespClient::connect(server.addr).await.unwrap();
    let mut lost = 0;
    for chunk in acked.chunks(500) {
        let mut mget = vec![Bytes::from_static(b"MGET")];
        mget.extend(chunk.iter().map(|&(n, _)| key(n)));
        let Frame::Array(values) = c.call(mget).await.unwrap() else {
            panic!("MGET")
        };
        for (&(n, _), got) in chunk.iter().zip(values) {
            match got {
                Frame::Bulk(v) => assert_eq!(v, value(n), "key:{n} has the wrong value"),
                _ => lost += 1,
            }
        }
    }
    let recent = acked
        .iter()
        .filter(|(_, at)| killed_at.duration_since(*at) <= window)
        .count();
    drop(server);
    remove(&dir);
    (acked.len(), lost, recent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_always_loses_no_acknowledged_write() {
    let (acked, lost, _) =
        crash_and_count("always", Duration::from_millis(1500), Duration::ZERO).await;
    println!("fsync always: {acked} acknowledged, {lost} lost after SIGKILL");
    assert_eq!(lost, 0, "{lost} of {acked} acknowledged writes were lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_everysec_loses_no_acknowledged_write_when_the_process_dies() {
    let (acked, lost, recent) = crash_and_count(
        "everysec",
        Duration::from_millis(3000),
        Duration::from_secs(1),
    )
    .await;
    println!(
        "fsync everysec: {acked} acknowledged, {lost} lost after SIGKILL \
         ({recent} were acknowledged in the last second)"
    );
    assert_eq!(lost, 0, "{lost} of {acked} acknowledged writes were lost");
}

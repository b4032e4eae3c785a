#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! Crash test for transactions: writers run `MULTI`, ten `SET`s, `EXEC` against the real
//! `infralab kv` binary; the process is killed with SIGKILL mid-stream and restarted from
//! the same directory. For every transaction ever sent, its ten keys must be all there or
//! all missing — never part of one — and under `--fsync always` every acknowledged
//! transaction must be there whole.

mod kv_process;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kv_process::{KvProcess, remove, temp_dir};
use proto::Frame;
use service::RespClient;

const WRITERS: u64 = 4;
const KEYS: usize = 10;

fn key(n: u64, k: usize) -> Bytes {
    Bytes::from(format!("tx:{n}:{k}"))
}

fn value(n: u64, k: usize) -> Bytes {
    Bytes::from(format!("{n}-{k}-{}", "v".repeat((n % 200) as usize)))
}

/// Sends transactions until the connection dies; returns (acknowledged, highest sent).
fn spawn_writers(
    server: &KvProcess,
    acked: &Arc<Mutex<Vec<u64>>>,
) -> Vec<tokio::task::JoinHandle<u64>> {
    (0..WRITERS)
        .map(|w| {
            let (addr, acked) = (server.addr, acked.clone());
            tokio::spawn(async move {
                let Ok(mut c) = RespClient::connect(addr).await else {
                    return 0;
                };
                let mut sent = 0;
                for i in 0.. {
                    let n = i * WRITERS + w;
                    sent = n;
                    // The whole transaction in one pipeline, as redis-py sends it.
                    c.queue([Bytes::from_static(b"MULTI")]);
                    for k in 0..KEYS {
                        c.queue([Bytes::from_static(b"SET"), key(n, k), value(n, k)]);
                    }
                    c.queue([Bytes::from_static(b"EXEC")]);
                    if c.flush().await.is_err() {
                        return sent;
                    }
                    let mut exec = None;
                    for _ in 0..KEYS + 2 {
                        match c.read_reply().await {
                            Ok(reply) => exec = Some(reply),
                            Err(_) => return sent,
                        }
                    }
                    match exec {
                        Some(Frame::Array(replies)) if replies.len() == KEYS => {
                            acked.lock().unwrap().push(n);
                        }
                        other => panic!("EXEC answered {other:?}"),
                    }
                }
                sent
            })
        })
        .collect()
}

async fn crash_and_check(fsync: &str) {
    let dir = temp_dir(&format!("kv-tx-crash-{fsync}"));
    let dir_arg = dir.to_str().unwrap();
    let mut server = KvProcess::start(&["--dir", dir_arg, "--fsync", fsync]);
    let acked = Arc::default();
    let writers = spawn_writers(&server, &acked);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill9();
    let mut highest = 0;
    for w in writers {
        highest = highest.max(w.await.unwrap());
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        acked.len() > 50,
        "only {} transactions acknowledged",
        acked.len()
    );

    let server = KvProcess::start(&["--dir", dir_arg, "--fsync", fsync]);
    let mut c = RespClient::connect(server.addr).await.unwrap();
    let (mut whole, mut missing) = (0, std::collections::HashSet::new());
    for n in 0..=highest {
        let mut mget = vec![Bytes::from_static(b"MGET")];
        mget.extend((0..KEYS).map(|k| key(n, k)));
        let Frame::Array(values) = c.call(mget).await.unwrap() else {
            panic!("MGET")
        };
        let present = values
            .iter()
            .filter(|v| matches!(v, Frame::Bulk(_)))
            .count();
        match present {
            0 => {
                missing.insert(n);
            }
            KEYS => {
                for (k, v) in values.iter().enumerate() {
                    assert_eq!(v, &Frame::Bulk(value(n, k)), "transaction {n}, key {k}");
                }
                whole += 1;
            }
            part => panic!("transaction {n}: {part} of its {KEYS} keys survived the crash"),
        }
    }
    let lost: Vec<u64> = acked
        .iter()
        .copied()
        .filter(|n| missing.contains(n))
        .collect();
    println!(
        "fsync {fsync}: {} acknowledged, {whole} whole after SIGKILL, {} lost, none partial",
        acked.len(),
        lost.len()
    );
    if fsync == "always" {
        assert!(lost.is_empty(), "acknowledged transactions lost: {lost:?}");
    }
    drop(server);
    remove(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_always_keeps_every_acknowledged_transaction_whole() {
    crash_and_check("always").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_no_never_leaves_part_of_a_transaction() {
    crash_and_check("no").await;
}

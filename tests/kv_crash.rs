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

/// Writes `count` keys with `--fsync always` into `dir`, kills kv, and returns the
/// newest journal file with the start offset of each of its records.
async fn journal_of(dir: &std::path::Path, count: u64) -> (std::path::PathBuf, Vec<u64>) {
    let mut server = KvProcess::start(&["--dir", dir.to_str().unwrap(), "--fsync", "always"]);
    let mut c = RespClient::connect(server.addr).await.unwrap();
    for n in 0..count {
        c.queue([Bytes::from_static(b"SET"), key(n), value(n)]);
    }
    c.flush().await.unwrap();
    for _ in 0..count {
        assert_eq!(c.read_reply().await.unwrap(), Frame::Simple("OK".into()));
    }
    server.kill9();
    let journal_dir = kv::storage::journal::directory(dir);
    let last = *kv::storage::journal::generations(&journal_dir)
        .unwrap()
        .last()
        .unwrap();
    let mut reader = kv::storage::journal::Reader::open(&journal_dir, last, 0).unwrap();
    let mut starts = vec![reader.offset()];
    while let Some((_, next)) = reader.next_change().unwrap() {
        starts.push(next);
    }
    assert_eq!(reader.damage(), None);
    (kv::storage::journal::path(&journal_dir, last), starts)
}

/// Runs kv on `dir` expecting it to refuse to start (within 30 s); returns what it
/// printed. A kv that starts instead is killed and fails the test.
fn refused(dir: &std::path::Path) -> String {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_infralab"))
        .args(["kv", "--port", "0", "--dir", dir.to_str().unwrap()])
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kv started on a damaged journal instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "kv exited successfully: {stderr}");
    stderr
}

async fn dbsize(server: &KvProcess) -> i64 {
    let mut c = RespClient::connect(server.addr).await.unwrap();
    match c.call(["DBSIZE"]).await.unwrap() {
        Frame::Integer(n) => n,
        other => panic!("DBSIZE: {other:?}"),
    }
}

/// A record cut short at the very end of the journal is what a crash leaves: kv starts,
/// truncates the file there, and has every record before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_last_record_is_truncated_and_kv_starts() {
    let dir = temp_dir("kv-torn-tail");
    let (path, starts) = journal_of(&dir, 300).await;
    // The last record's second half never reached the disk.
    let (last_start, end) = (starts[starts.len() - 2], starts[starts.len() - 1]);
    let mut bytes = std::fs::read(&path).unwrap();
    let cut = (last_start + (end - last_start) / 2) as usize;
    bytes[cut..end as usize].fill(0);
    std::fs::write(&path, &bytes).unwrap();

    let server = KvProcess::start(&["--dir", dir.to_str().unwrap()]);
    assert_eq!(dbsize(&server).await, 299);
    assert!(server.log().contains("torn tail"), "{}", server.log());
    drop(server);
    remove(&dir);
}

/// One flipped byte in the middle of the journal, with valid records after it: kv
/// refuses to start, naming the file and the byte, instead of dropping (and then folding
/// away for good) every write after it. `--load-truncated` starts it anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_mid_journal_refuses_to_start_unless_load_truncated() {
    let dir = temp_dir("kv-flipped");
    let (path, starts) = journal_of(&dir, 1000).await;
    let damaged = starts[500];
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[damaged as usize + 12] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();

    let stderr = refused(&dir);
    let named = format!("{} is damaged at byte {damaged} ", path.display());
    assert!(stderr.contains(&named), "expected {named:?} in: {stderr}");
    assert!(stderr.contains("--load-truncated"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The refusal changed nothing: it refuses again.
    assert_eq!(std::fs::read(&path).unwrap(), bytes);

    let server = KvProcess::start(&["--dir", dir.to_str().unwrap(), "--load-truncated"]);
    assert_eq!(dbsize(&server).await, 500);
    drop(server);
    remove(&dir);
}

#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! Broker crash: SIGKILL the real broker binary (`--fsync always`) in the middle of a
//! send/receive/ack load, restart it on the same directory, and check that every send it
//! confirmed and no consumer acknowledged is still there, that nothing whose ack it
//! confirmed comes back, and that a message received but never acknowledged becomes
//! visible again after its visibility timeout, across the restart. Jobs are put over
//! both protocols: RESP's `QSEND` and beanstalkd's `put`.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{Client, parse_messages, temp_dir};
use proto::Frame;
use service::RespClient;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The broker process, SIGKILLed when dropped (also when an assertion fails).
struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the broker binary (`--fsync always`; RESP on `port`, beanstalkd on
/// `beanstalk_port`, SQS on a free port) and waits until it answers PING.
async fn spawn_broker(dir: &std::path::Path, port: u16, beanstalk_port: u16) -> Broker {
    spawn_broker_with(dir, (port, beanstalk_port, free_port()), "always").await
}

/// [`spawn_broker`] with another `--fsync`.
async fn spawn_broker_with(
    dir: &std::path::Path,
    (port, beanstalk_port, sqs_port): (u16, u16, u16),
    fsync: &str,
) -> Broker {
    let child = Broker(
        Command::new(env!("CARGO_BIN_EXE_infralab-broker"))
            .args(["--port", &port.to_string(), "--dir", dir.to_str().unwrap()])
            .args(["--fsync", fsync, "--on-disconnect", "keep"])
            .args(["--beanstalk-port", &beanstalk_port.to_string()])
            .args(["--sqs-port", &sqs_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    for _ in 0..500 {
        if let Ok(mut c) = RespClient::connect(addr).await
            && c.call(["PING"]).await.is_ok()
        {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the broker did not start");
}

/// Receives (with `options`) and acknowledges what came; returns how many.
async fn drain(c: &mut Client, options: &[&str], into: &mut Vec<common::Got>) -> usize {
    let got = c.recv("jobs", options).await;
    for g in &got {
        assert_eq!(c.ack("jobs", &g.receipt).await, Frame::ok());
    }
    let n = got.len();
    into.extend(got);
    n
}

#[derive(Default)]
struct Seen {
    /// Sends the broker confirmed.
    sent: HashSet<i64>,
    /// How many of them were beanstalkd `put`s, and SQS `SendMessage`s.
    puts: usize,
    sqs_sends: usize,
    /// Acks the broker confirmed.
    acked: HashSet<i64>,
    /// Acks sent, confirmed or not: one whose reply the crash swallowed may or may not
    /// have happened, so such a message may legitimately be gone.
    ack_sent: HashSet<i64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_confirmed_send_and_resurrects_no_confirmed_ack() {
    sigkill_under_load("always").await;
}

/// Under `--fsync everysec` every change is written to the kernel (the redo log) before
/// its reply, so killing the process loses no confirmed send or ack either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_fsync_everysec_loses_no_confirmed_send_and_resurrects_no_confirmed_ack() {
    sigkill_under_load("everysec").await;
}

async fn sigkill_under_load(fsync: &str) {
    let dir = temp_dir("crash");
    let ports = (free_port(), free_port(), free_port());
    let addr: SocketAddr = ([127, 0, 0, 1], ports.0).into();
    let beanstalk: SocketAddr = ([127, 0, 0, 1], ports.1).into();
    let sqs: SocketAddr = ([127, 0, 0, 1], ports.2).into();
    let broker = spawn_broker_with(&dir, ports, fsync).await;
    let mut admin = Client::connect(addr).await;
    // Short leases, so messages in flight at the crash come back quickly after it.
    assert_eq!(
        admin.call(&["QCREATE", "jobs", "VISIBILITY", "1000"]).await,
        Frame::ok()
    );
    // A worker takes one message and never acknowledges it.
    let held_id = admin.send("jobs", "held").await;
    let held_at = std::time::Instant::now();
    let held = admin.recv("jobs", &["VISIBILITY", "4000"]).await.remove(0);
    assert_eq!(held.id, held_id);

    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut load = Vec::new();
    for producer in 0..2 {
        let seen = seen.clone();
        load.push(tokio::spawn(async move {
            let mut c = RespClient::connect(addr).await.unwrap();
            for n in 0.. {
                let body = Bytes::from(format!("p{producer}-{n}"));
                match c
                    .call([Bytes::from_static(b"QSEND"), "jobs".into(), body])
                    .await
                {
                    Ok(Frame::Integer(id)) => seen.lock().unwrap().sent.insert(id),
                    Ok(other) => panic!("QSEND: {other:?}"),
                    Err(_) => return, // the broker is gone
                };
            }
        }));
    }
    // A beanstalkd producer: `INSERTED <id>` is a confirmed send like QSEND's reply.
    {
        let seen = seen.clone();
        load.push(tokio::spawn(async move {
            use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
            let stream = tokio::net::TcpStream::connect(beanstalk).await.unwrap();
            let (r, mut w) = stream.into_split();
            let mut r = tokio::io::BufReader::new(r);
            w.write_all(b"use jobs\r\n").await.unwrap();
            let mut line = String::new();
            r.read_line(&mut line).await.unwrap();
            assert_eq!(line, "USING jobs\r\n");
            for n in 0.. {
                let body = format!("b-{n}");
                let put = format!("put 0 0 60 {}\r\n{body}\r\n", body.len());
                line.clear();
                if w.write_all(put.as_bytes()).await.is_err()
                    || !matches!(r.read_line(&mut line).await, Ok(1..))
                {
                    return; // the broker is gone
                }
                let id = line.trim_end().strip_prefix("INSERTED ");
                let id: i64 = id.and_then(|id| id.parse().ok()).expect(&line);
                let mut seen = seen.lock().unwrap();
                seen.sent.insert(id);
                seen.puts += 1;
            }
        }));
    }
    // An SQS producer: a `SendMessage` answered 200 with its `MessageId` is confirmed too.
    {
        let seen = seen.clone();
        load.push(tokio::spawn(async move {
            let Ok(mut http) = SqsClient::connect(sqs).await else {
                return;
            };
            let url = format!("http://{sqs}/000000000000/jobs");
            for n in 0.. {
                let body = format!(r#"{{"QueueUrl": "{url}", "MessageBody": "s-{n}"}}"#);
                let Some(reply) = http.call("SendMessage", &body).await else {
                    return; // the broker is gone
                };
                let id: i64 = reply["MessageId"]
                    .as_str()
                    .and_then(|id| id.parse().ok())
                    .expect("a MessageId");
                let mut seen = seen.lock().unwrap();
                seen.sent.insert(id);
                seen.sqs_sends += 1;
            }
        }));
    }
    for _ in 0..2 {
        let seen = seen.clone();
        load.push(tokio::spawn(async move {
            let mut c = RespClient::connect(addr).await.unwrap();
            loop {
                let Ok(reply) = c
                    .call(["QRECV", "jobs", "COUNT", "5", "BLOCK", "100"])
                    .await
                else {
                    return;
                };
                for got in parse_messages(reply) {
                    seen.lock().unwrap().ack_sent.insert(got.id);
                    match c
                        .call(
                            ["QACK", "jobs", &got.receipt]
                                .map(|w| Bytes::copy_from_slice(w.as_bytes())),
                        )
                        .await
                    {
                        Ok(Frame::Simple(ok)) if ok == "OK" => {
                            seen.lock().unwrap().acked.insert(got.id)
                        }
                        Ok(other) => panic!("QACK: {other:?}"),
                        Err(_) => return,
                    };
                }
            }
        }));
    }
    // Let the load run until it has done real work, then pull the plug.
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let s = seen.lock().unwrap();
        if s.sent.len() >= 400 && s.acked.len() >= 100 && s.puts >= 50 && s.sqs_sends >= 50 {
            break;
        }
    }
    drop(broker); // SIGKILL: no shutdown hook, no final flush
    for task in load {
        task.await.unwrap();
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());

    let broker = spawn_broker_with(&dir, ports, fsync).await;
    let mut c = Client::connect(addr).await;
    // The held message is still under its lease right after the restart...
    let mut drained = Vec::new();
    // (Leased long enough to ack a thousand one by one under `--fsync always` on a busy
    // machine: the queue's 1 s lease would run out midway.)
    let lease = ["VISIBILITY", "60000"];
    drain(&mut c, &["COUNT", "1000", lease[0], lease[1]], &mut drained).await;
    if held_at.elapsed() < Duration::from_millis(4000) {
        // (Checked only if the lease surely had not ended: no timing assumption.)
        assert!(
            drained.iter().all(|g| g.id != held_id),
            "held message visible too early"
        );
    }
    // ...and comes back when it ends, with the messages that were in flight at the crash.
    let more = ["COUNT", "1000", "BLOCK", "5000", lease[0], lease[1]];
    while drain(&mut c, &more, &mut drained).await > 0 {}
    let ids: HashSet<i64> = drained.iter().map(|g| g.id).collect();
    assert_eq!(ids.len(), drained.len(), "each message delivered once");
    let back = drained
        .iter()
        .find(|g| g.id == held_id)
        .expect("held message came back");
    assert_eq!(back.deliveries, 2);
    let lost: Vec<_> = seen
        .sent
        .difference(&seen.ack_sent)
        .filter(|id| !ids.contains(id))
        .collect();
    assert!(lost.is_empty(), "confirmed sends lost: {lost:?}");
    // Each of the 2 consumers had at most one ack without its reply when the broker died.
    assert!(seen.ack_sent.difference(&seen.acked).count() <= 2);
    let resurrected: Vec<_> = seen.acked.intersection(&ids).collect();
    assert!(
        resurrected.is_empty(),
        "acked messages came back: {resurrected:?}"
    );
    println!(
        "confirmed {} sends ({} beanstalkd puts, {} SQS sends) and {} acks before SIGKILL; {} messages after restart",
        seen.sent.len(),
        seen.puts,
        seen.sqs_sends,
        seen.acked.len(),
        drained.len()
    );
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs the broker on `dir` until it either listens (`None`: it started; it is killed)
/// or exits (`Some(stderr)`), within 30 s.
fn start_or_refuse(dir: &std::path::Path) -> Option<String> {
    use std::io::{BufRead, BufReader};
    let mut child = Broker(
        Command::new(env!("CARGO_BIN_EXE_infralab-broker"))
            .args(["--port", "0", "--dir", dir.to_str().unwrap()])
            .args(["--beanstalk-port", "0", "--sqs-port", "0"])
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listening on") {
                let _ = tx.send(None);
            }
            all.push_str(&line);
            all.push('\n');
        }
        let _ = tx.send(Some(all));
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the broker neither started nor exited")
}

/// sled panics on some damage to its file ("tried to serialize Uninitialized"). A
/// damaged store must give a clear error naming the file, never a panic trace: bytes
/// are flipped, one position at a time, across the database file; every start either
/// serves or refuses with that error, and at least one position makes sled fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_is_a_clear_error_never_a_panic() {
    let dir = filled_store("damaged").await;
    let db = dir.join("db");
    let original = std::fs::read(&db).unwrap();
    let mut refusals = 0;
    for step in 1..16 {
        let at = original.len() * step / 16;
        let copy = damaged_copy(&dir, &original, at);
        if let Some(stderr) = start_or_refuse(&copy) {
            assert!(!stderr.contains("panicked"), "byte {at}: {stderr}");
            // sled's panic, or the seal's check (see the next test).
            let named = format!("{}: the message store", copy.join("db").display());
            assert!(stderr.contains(&named), "byte {at}: {stderr}");
            assert!(stderr.contains("damaged"), "byte {at}: {stderr}");
            refusals += 1;
        }
    }
    assert!(
        refusals > 0,
        "no damaged byte made sled fail: the test tests nothing"
    );
}

/// Messages [`filled_store`] sends.
const FILLED: usize = 3000;

/// A store directory holding [`FILLED`] messages in queue `q`, written by the real
/// broker (`--fsync always`) and closed cleanly.
async fn filled_store(tag: &str) -> common::TempDir {
    let dir = temp_dir(tag);
    let port = free_port();
    let broker = spawn_broker(&dir, port, free_port()).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut c = RespClient::connect(addr).await.unwrap();
    assert_eq!(c.call(["QCREATE", "q"]).await.unwrap(), Frame::ok());
    // Which flipped byte makes sled fail depends on where its pages fall: a 50-byte pad
    // keeps the records (format 2's are 10 bytes longer) the size format 1's were with a
    // 60-byte pad, where some of the bytes flipped below are known to make sled fail.
    let padding = "x".repeat(50);
    for i in 0..FILLED {
        let body = Bytes::from(format!("message-{i}-{padding}"));
        c.queue([Bytes::from_static(b"QSEND"), Bytes::from_static(b"q"), body]);
    }
    c.flush().await.unwrap();
    for _ in 0..FILLED {
        assert!(matches!(c.read_reply().await.unwrap(), Frame::Integer(_)));
    }
    drop(c);
    let status = Command::new("kill")
        .args(["-TERM", &broker.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Wait for the clean exit (its last flush), then it is reaped.
    let mut broker = broker;
    let _ = broker.0.wait();
    dir
}

/// A copy of the files of `dir` (not its subdirectories) with one byte of `db` flipped.
fn damaged_copy(dir: &std::path::Path, original: &[u8], at: usize) -> common::TempDir {
    let mut damaged = original.to_vec();
    damaged[at] ^= 0x40;
    let copy = temp_dir("damaged-copy");
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
        }
    }
    std::fs::write(copy.join("db"), &damaged).unwrap();
    copy
}

/// sled recovers some damage by dropping everything in its log after it: the flushes
/// made after the damaged byte vanish, messages the broker had confirmed with them. That
/// must not pass silently: each start on a copy with one byte flipped either has every
/// message, or refuses naming the file; sled's quiet truncation is caught by the seal
/// (`src/seal.rs`), and `--load-truncated` then starts on what sled recovered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_sled_recovers_from_by_dropping_flushes_refuses_to_start() {
    let dir = filled_store("sled-truncated").await;
    let original = std::fs::read(dir.join("db")).unwrap();
    let (mut intact, mut lost, mut unreadable) = (0, 0, 0);
    for step in 1..48 {
        let at = original.len() * step / 48;
        let copy = damaged_copy(&dir, &original, at);
        let db = copy.join("db").display().to_string();
        match open_when_released(&copy, false) {
            Ok((_store, (_queues, messages))) => {
                assert_eq!(messages.len(), FILLED, "byte {at}: messages lost silently");
                intact += 1;
            }
            Err(e) if e.0.contains("sled recovered it only up to flush") => {
                assert!(e.0.starts_with(&db), "byte {at}: {e}");
                assert!(e.0.contains("--load-truncated"), "byte {at}: {e}");
                let (_store, (_queues, messages)) = open_when_released(&copy, true).unwrap();
                assert!(messages.len() < FILLED, "byte {at}: nothing was lost");
                lost += 1;
            }
            Err(e) => {
                assert!(e.0.starts_with(&db), "byte {at}: {e}");
                unreadable += 1;
            }
        }
    }
    println!("{intact} intact, {lost} lost flushes refused, {unreadable} unreadable");
    assert!(
        lost > 0,
        "no damaged byte made sled drop flushes: the test tests nothing"
    );
}

/// Opens the store in `dir` in this process. sled's background threads hold its file
/// lock a moment after a refused open dropped the database: wait (at most 10 s) for it.
fn open_when_released(
    dir: &std::path::Path,
    load_truncated: bool,
) -> Result<(broker::store::Store, broker::store::Loaded), broker::journal::StorageError> {
    use broker::store::{Fsync, Store};
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match Store::open_and_load(dir, Fsync::Always, load_truncated) {
            Err(e)
                if e.0.contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            result => return result,
        }
    }
}

/// A keep-alive HTTP/1.1 connection to the SQS port, enough for `SendMessage`.
struct SqsClient {
    reader: tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    host: SocketAddr,
}

impl SqsClient {
    async fn connect(host: SocketAddr) -> std::io::Result<SqsClient> {
        let (r, w) = tokio::net::TcpStream::connect(host).await?.into_split();
        Ok(SqsClient {
            reader: tokio::io::BufReader::new(r),
            writer: w,
            host,
        })
    }

    /// The JSON reply of a 200, or `None` when the connection fails.
    async fn call(&mut self, action: &str, body: &str) -> Option<serde_json::Value> {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        let request = format!(
            "POST / HTTP/1.1\r\nhost: {}\r\nx-amz-target: AmazonSQS.{action}\r\n\
             content-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        self.writer.write_all(request.as_bytes()).await.ok()?;
        let mut line = String::new();
        let mut length = 0;
        let mut status = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line).await.ok()? == 0 {
                return None;
            }
            if status.is_empty() {
                status = line.clone();
            } else if line == "\r\n" {
                break;
            } else if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().ok()?;
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).await.ok()?;
        assert!(status.starts_with("HTTP/1.1 200"), "{status} {body:?}");
        serde_json::from_slice(&body).ok()
    }
}

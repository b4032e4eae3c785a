#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! Transactions end to end: with the `redis` crate (its atomic pipeline and a WATCH retry
//! loop under a concurrent writer), on a replica (never half an EXEC visible), and in the
//! journal (recovery applies a transaction whole or not at all, wherever a crash cut it).

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{call, connect, start, temp_dir};
use kv::codec;
use kv::keyspace::{Change, Keyspace};
use kv::storage::{Fsync, Storage, journal};
use kv::types::edit::Edit;
use kv::value::{Entry, Value};
use proto::Frame;
use redis::AsyncCommands;

async fn client(server: &service::Running) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://{}", server.addr()))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_atomic_pipeline_runs_as_one_transaction() {
    let server = start(&[]).await;
    let mut c = client(&server).await;
    let (a, n, list): (String, i64, Vec<String>) = redis::pipe()
        .atomic()
        .set("a", "1")
        .ignore()
        .incr("n", 5)
        .ignore()
        .rpush("l", &["x", "y"])
        .ignore()
        .get("a")
        .incr("n", 1)
        .lrange("l", 0, -1)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(
        (a.as_str(), n, list),
        ("1", 6, vec!["x".into(), "y".into()])
    );

    // A run-time error is reported in its place; the others ran.
    let result: redis::RedisResult<(String, i64)> = redis::pipe()
        .atomic()
        .set("s", "text")
        .incr("s", 1)
        .incr("n", 1)
        .query_async(&mut c)
        .await;
    assert!(result.is_err(), "INCR of a string must fail: {result:?}");
    assert_eq!(c.get::<_, i64>("n").await.unwrap(), 7);

    // A queueing error discards everything.
    let mut raw = connect(&server).await;
    assert_eq!(call(&mut raw, &["MULTI"]).await, Frame::ok());
    call(&mut raw, &["SET", "never", "1"]).await;
    call(&mut raw, &["GET"]).await;
    let abort = call(&mut raw, &["EXEC"]).await;
    assert_eq!(
        abort,
        Frame::error("EXECABORT Transaction discarded because of previous errors.")
    );
    assert!(!c.exists::<_, bool>("never").await.unwrap());
    server.stop().await;
}

/// Nothing of a transaction runs before EXEC, nor after DISCARD or a disconnect.
#[tokio::test]
async fn queued_commands_run_only_at_exec() {
    let server = start(&[]).await;
    let mut other = connect(&server).await;
    let mut c = connect(&server).await;
    call(&mut c, &["MULTI"]).await;
    call(&mut c, &["SET", "queued", "1"]).await;
    assert_eq!(
        call(&mut other, &["EXISTS", "queued"]).await,
        Frame::Integer(0)
    );
    assert_eq!(call(&mut c, &["DISCARD"]).await, Frame::ok());
    assert_eq!(
        call(&mut other, &["EXISTS", "queued"]).await,
        Frame::Integer(0)
    );
    call(&mut c, &["MULTI"]).await;
    call(&mut c, &["SET", "queued", "1"]).await;
    drop(c);
    // The server has dropped the connection (and its queue) once it no longer lists it.
    for _ in 0..500 {
        let list = call(&mut other, &["CLIENT", "LIST"]).await;
        if list
            .as_bytes()
            .unwrap()
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count()
            == 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        call(&mut other, &["EXISTS", "queued"]).await,
        Frame::Integer(0)
    );
    server.stop().await;
}

/// A clock that moves a second forward every time anything reads it.
struct Ticking(std::sync::atomic::AtomicU64);

impl kv::clock::Clock for Ticking {
    fn now_ms(&self) -> u64 {
        self.0.fetch_add(1000, std::sync::atomic::Ordering::SeqCst)
    }
}

/// The clock stops while `EXEC` runs (Redis 7): all its commands see the time it began,
/// so a key does not expire half-way through. Here time runs a second per clock read, so
/// any command reading the clock anew inside `EXEC` would see the key gone.
#[tokio::test]
async fn the_clock_stops_while_exec_runs() {
    let clock = std::sync::Arc::new(Ticking(std::sync::atomic::AtomicU64::new(
        1_700_000_000_000,
    )));
    let server = kv::start_with_clock(
        <kv::Args as clap::Parser>::parse_from(["kv", "--port", "0"]),
        service::CancellationToken::new(),
        clock,
    )
    .await
    .unwrap();
    let mut c = connect(&server).await;
    call(&mut c, &["MULTI"]).await;
    call(&mut c, &["SET", "k", "v", "PX", "2500"]).await;
    for _ in 0..4 {
        call(&mut c, &["GET", "k"]).await;
    }
    call(&mut c, &["PTTL", "k"]).await;
    let v = Frame::Bulk(Bytes::from_static(b"v"));
    assert_eq!(
        call(&mut c, &["EXEC"]).await,
        Frame::Array(vec![
            Frame::ok(),
            v.clone(),
            v.clone(),
            v.clone(),
            v,
            Frame::Integer(2500),
        ])
    );
    // Outside `EXEC` the clock runs again: the key is gone after a few reads.
    let mut gone = false;
    for _ in 0..4 {
        gone |= call(&mut c, &["GET", "k"]).await == Frame::Null;
    }
    assert!(gone);
    server.stop().await;
}

/// A write on a replica, or over `--maxmemory`, is refused while queueing, as in Redis:
/// the transaction is then aborted.
#[tokio::test]
async fn writes_a_server_refuses_abort_at_queue_time() {
    let primary = start(&["--maxmemory", "1"]).await;
    let address = format!("127.0.0.1:{}", primary.addr().port());
    let replica = start(&["--replicaof", address.as_str()]).await;
    let mut c = connect(&primary).await;
    // The first write is allowed (nothing used yet); after it memory is over the limit.
    assert_eq!(call(&mut c, &["SET", "filler", "x"]).await, Frame::ok());
    let mut r = connect(&replica).await;
    // Until the replica is linked, it is still a primary of its own.
    for _ in 0..1000 {
        if matches!(call(&mut r, &["SET", "probe", "x"]).await, Frame::Error(_)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for (client, code) in [(&mut r, "READONLY"), (&mut c, "OOM")] {
        call(client, &["MULTI"]).await;
        assert_eq!(call(client, &["GET", "k"]).await, Frame::simple("QUEUED"));
        let refused = call(client, &["SET", "k", "v"]).await;
        assert!(
            matches!(&refused, Frame::Error(e) if e.starts_with(code.as_bytes())),
            "{refused:?}"
        );
        let abort = call(client, &["EXEC"]).await;
        assert!(matches!(&abort, Frame::Error(e) if e.starts_with(b"EXECABORT")));
    }
    replica.stop().await;
    primary.stop().await;
}

/// The optimistic-locking loop: several clients increment one counter with
/// WATCH / GET / MULTI / SET / EXEC while another client keeps writing it. Every
/// increment must count exactly once, whatever the interleaving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_retry_loops_never_lose_an_increment() {
    const CLIENTS: i64 = 4;
    const EACH: i64 = 50;
    let server = start(&[]).await;
    let url = format!("redis://{}", server.addr());
    let mut setup = client(&server).await;
    let _: () = setup.set("counter", 0).await.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));

    // The concurrent writer: adds 1000 to the counter, over and over, by INCRBY.
    let writer = {
        let (url, stop) = (url.clone(), stop.clone());
        tokio::spawn(async move {
            let mut c = redis::Client::open(url)
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap();
            let mut added = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _: i64 = c.incr("counter", 1000).await.unwrap();
                added += 1000;
                tokio::task::yield_now().await;
            }
            added
        })
    };
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            // A connection of its own: WATCH belongs to a connection.
            let mut c = redis::Client::open(url)
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap();
            let mut retries = 0;
            for _ in 0..EACH {
                loop {
                    let _: () = redis::cmd("WATCH")
                        .arg("counter")
                        .query_async(&mut c)
                        .await
                        .unwrap();
                    let v: i64 = c.get("counter").await.unwrap();
                    let done: Option<(String,)> = redis::pipe()
                        .atomic()
                        .set("counter", v + 1)
                        .query_async(&mut c)
                        .await
                        .unwrap();
                    if done.is_some() {
                        break;
                    }
                    retries += 1;
                }
            }
            retries
        }));
    }
    let mut retries = 0;
    for t in tasks {
        retries += t.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let added = writer.await.unwrap();
    let total: i64 = setup.get("counter").await.unwrap();
    assert_eq!(total, CLIENTS * EACH + added, "({retries} retries)");
    server.stop().await;
}

/// A replica applies an EXEC in one step: a reader on it never sees one key of a
/// transaction updated and not the other. The values are large, so each transaction
/// spans many reads of the replication socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_never_shows_half_a_transaction() {
    let primary = start(&[]).await;
    let address = format!("127.0.0.1:{}", primary.addr().port());
    let replica = start(&["--replicaof", address.as_str()]).await;
    let mut w = connect(&primary).await;
    let mut r = connect(&replica).await;
    let filler = "x".repeat(200_000);
    let rounds = 40;
    let writer = tokio::spawn(async move {
        for i in 0..rounds {
            let value = format!("{i}:{filler}");
            assert_eq!(call(&mut w, &["MULTI"]).await, Frame::ok());
            for key in ["a", "big", "b"] {
                let v = if key == "big" {
                    value.as_str()
                } else {
                    &value[..4]
                };
                call(&mut w, &["SET", key, v]).await;
            }
            let Frame::Array(replies) = call(&mut w, &["EXEC"]).await else {
                panic!("EXEC")
            };
            assert_eq!(replies.len(), 3);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut reads = 0;
    let last = format!("{}:", rounds - 1);
    loop {
        let Frame::Array(v) = call(&mut r, &["MGET", "a", "b"]).await else {
            panic!("MGET")
        };
        reads += 1;
        assert_eq!(v[0], v[1], "a replica showed half a transaction");
        if v[0]
            .as_bytes()
            .is_some_and(|a| a.starts_with(last.as_bytes()))
        {
            break;
        }
        assert!(Instant::now() < deadline, "the replica did not catch up");
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    assert!(reads > 1);
    replica.stop().await;
    primary.stop().await;
}

/// What a replica receives for an EXEC: one change in the stream, holding the whole
/// transaction (read here by a client that speaks the replica's side of the protocol).
#[tokio::test]
async fn an_exec_reaches_replicas_as_one_change() {
    let primary = start(&[]).await;
    let mut link = connect(&primary).await;
    call(&mut link, &["REPLCONF", "listening-port", "0"]).await;
    let Frame::Simple(full) = call(&mut link, &["PSYNC", "?", "-1"]).await else {
        panic!("PSYNC")
    };
    assert!(full.starts_with(b"FULLRESYNC"));
    let Frame::Bulk(_snapshot) = link.read_reply().await.unwrap() else {
        panic!("snapshot")
    };
    let mut c = connect(&primary).await;
    for command in [
        &["MULTI"][..],
        &["SET", "a", "1"],
        &["INCR", "n"],
        &["RPUSH", "l", "x", "y"],
        &["EXEC"],
        &["SET", "after", "1"],
    ] {
        call(&mut c, command).await;
    }
    let mut changes = Vec::new();
    while changes.len() < 2 {
        let Frame::Array(items) = link.read_reply().await.unwrap() else {
            panic!("stream frame")
        };
        if let [Frame::Bulk(name), Frame::Bulk(record)] = items.as_slice()
            && name.as_ref() == b"CHANGE"
        {
            changes.push(codec::decode_change(record).unwrap());
        }
    }
    let Change::Transaction(inner) = &changes[0] else {
        panic!("the EXEC was not one change: {changes:?}")
    };
    assert_eq!(inner.len(), 3, "{inner:?}");
    assert_eq!(changes[1], put("after", "1"));
    primary.stop().await;
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn put(key: &str, value: &str) -> Change {
    Change::Put {
        db: 0,
        key: b(key),
        entry: Entry::new(Value::String(b(value).into()), None),
    }
}

const NOW: u64 = 1_700_000_000_000;

/// A crash can cut the journal anywhere inside a transaction's records: recovery then
/// applies none of it (and truncates it away), never part; the write before it survives.
#[tokio::test]
async fn recovery_applies_a_transaction_whole_or_not_at_all() {
    let mut before = Vec::new();
    codec::append_journal_record(&mut before, &put("before", "1"));
    let push = Change::Edit {
        db: 0,
        key: b("list"),
        edit: Edit::ListPush {
            left: true,
            values: vec![b("pushed")],
        },
    };
    let transaction = Change::Transaction(vec![put("x", "1"), push, put("y", "2")]);
    let mut tx = Vec::new();
    codec::append_journal_record(&mut tx, &transaction);
    let start = codec::JOURNAL_HEADER.len() + before.len();
    let whole = [&codec::JOURNAL_HEADER[..], &before, &tx].concat();

    for cut in (start..=whole.len())
        .step_by(3)
        .chain([whole.len() - 1, whole.len()])
    {
        let dir = temp_dir("tx-recovery");
        let journal_dir = journal::directory(&dir);
        std::fs::create_dir_all(&journal_dir).unwrap();
        let file = journal_dir.join(format!("{:020}.kvj", 1));
        std::fs::write(&file, &whole[..cut]).unwrap();

        let mut ks = Keyspace::new(true);
        let storage = Storage::open(&dir, Fsync::Always, false, &mut ks, NOW).unwrap();
        let present: Vec<bool> = ["x", "list", "y"]
            .iter()
            .map(|k| ks.holds(0, k.as_bytes()))
            .collect();
        assert!(
            ks.holds(0, b"before"),
            "cut at {cut}: the earlier write is lost"
        );
        if cut == whole.len() {
            assert_eq!(
                present,
                [true, true, true],
                "the whole transaction is replayed"
            );
        } else {
            assert_eq!(present, [false, false, false], "cut at {cut}: part applied");
            // The torn tail is cut off. Opening also folds the replayed journal into the
            // checkpoint in the background, which deletes the file: gone is fine too (the
            // reopen below shows what the fold kept).
            if let Ok(meta) = std::fs::metadata(&file) {
                assert_eq!(meta.len(), start as u64, "cut at {cut}: tail not truncated");
            }
        }
        storage.close().await;
        // And again after folding into the checkpoint: the same state.
        let mut again = Keyspace::new(true);
        let storage = Storage::open(&dir, Fsync::Always, false, &mut again, NOW).unwrap();
        assert_eq!(again.dataset(NOW), ks.dataset(NOW), "cut at {cut}");
        storage.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}

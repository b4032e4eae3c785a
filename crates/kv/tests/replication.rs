#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! Read replicas over the network: initial sync with TTLs, streaming in order, partial
//! and full resync, sync mode, WAIT, lag in INFO, expiry on replicas, READONLY.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{
    COLLECTION_EDITS, GEO_WRITES, bulk, call, check_edited, connect, dataset, err,
    frame_text as text, int, start, start_with_clock,
};
use kv::clock::ManualClock;
use proto::Frame;
use service::{RespClient, Running};

async fn info(server: &Running) -> String {
    let mut c = connect(server).await;
    text(&call(&mut c, &["INFO", "replication"]).await)
}

fn field(info: &str, name: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")).map(str::to_owned))
}

fn offset_of(info: &str, name: &str) -> u64 {
    field(info, name).unwrap().parse().unwrap()
}

async fn replica_of(primary: &Running, extra: &[&str]) -> Running {
    let address = format!("127.0.0.1:{}", primary.addr().port());
    let mut argv = vec!["--replicaof", address.as_str()];
    argv.extend_from_slice(extra);
    start(&argv).await
}

/// Waits until every replica's link is up and it has applied the primary's whole stream.
async fn synced(primary: &Running, replicas: &[&Running]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    'retry: loop {
        assert!(Instant::now() < deadline, "replicas did not catch up");
        let target = offset_of(&info(primary).await, "master_repl_offset");
        for r in replicas {
            let i = info(r).await;
            if field(&i, "master_link_status").as_deref() != Some("up")
                || offset_of(&i, "slave_repl_offset") < target
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue 'retry;
            }
        }
        return;
    }
}

/// A primary in sync mode waiting for one replica, at most `timeout_ms`.
async fn sync_primary(timeout_ms: &str) -> Running {
    start(&[
        "--replication",
        "sync",
        "--sync-replicas",
        "1",
        "--sync-timeout",
        timeout_ms,
    ])
    .await
}

async fn pipeline(c: &mut RespClient, commands: &[Vec<String>]) -> Vec<Frame> {
    for words in commands {
        c.queue(words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())));
    }
    c.flush().await.unwrap();
    let mut replies = Vec::new();
    for _ in commands {
        replies.push(c.read_reply().await.unwrap());
    }
    replies
}

fn words(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn two_replicas_get_the_snapshot_then_every_write_in_order() {
    let primary = start(&[]).await;
    let mut c = connect(&primary).await;
    call(&mut c, &["SET", "session", "alice", "EX", "1000"]).await;
    call(&mut c, &["SET", "plain", "v"]).await;
    call(&mut c, &["SELECT", "3"]).await;
    call(&mut c, &["SET", "in-db3", "x"]).await;
    call(&mut c, &["SELECT", "0"]).await;

    let first = replica_of(&primary, &[]).await;
    synced(&primary, &[&first]).await;
    // The snapshot carried the TTL as an absolute deadline, and every database.
    let mut r = connect(&first).await;
    assert_eq!(call(&mut r, &["GET", "session"]).await, bulk("alice"));
    assert_eq!(
        call(&mut r, &["PEXPIRETIME", "session"]).await,
        call(&mut c, &["PEXPIRETIME", "session"]).await
    );
    call(&mut r, &["SELECT", "3"]).await;
    assert_eq!(call(&mut r, &["GET", "in-db3"]).await, bulk("x"));

    // Load: counters whose final value depends on order, while a second replica joins.
    let mut second = None;
    for round in 0..20 {
        let batch: Vec<Vec<String>> = (0..200)
            .flat_map(|i| {
                [
                    words(&["INCR", "counter"]),
                    words(&["APPEND", "log", &format!("{round}.{i},")]),
                    words(&[
                        "SET",
                        &format!("key:{i}"),
                        &format!("{round}"),
                        "PX",
                        "600000",
                    ]),
                    words(&["DEL", &format!("key:{}", (i + 7) % 200)]),
                ]
            })
            .collect();
        pipeline(&mut c, &batch).await;
        if round == 5 {
            second = Some(replica_of(&primary, &[]).await);
        }
    }
    let second = second.unwrap();
    synced(&primary, &[&first, &second]).await;
    let expected = dataset(&primary).await;
    assert!(expected.len() > 100);
    assert_eq!(dataset(&first).await, expected);
    assert_eq!(dataset(&second).await, expected);

    let i = info(&primary).await;
    assert_eq!(field(&i, "role").as_deref(), Some("master"));
    assert_eq!(field(&i, "connected_slaves").as_deref(), Some("2"));
    assert!(
        field(&i, "slave0")
            .unwrap()
            .contains("state=online,offset=")
    );
    let i = info(&second).await;
    assert_eq!(field(&i, "role").as_deref(), Some("slave"));
    assert_eq!(field(&i, "master_host").as_deref(), Some("127.0.0.1"));
    // Writes are refused on a replica, with Redis's words.
    let mut r2 = connect(&second).await;
    assert_eq!(
        call(&mut r2, &["SET", "k", "v"]).await,
        err("READONLY You can't write against a read only replica.")
    );
    assert_eq!(
        call(&mut r2, &["FLUSHALL"]).await,
        err("READONLY You can't write against a read only replica.")
    );
    assert_eq!(call(&mut r2, &["GET", "counter"]).await, bulk("4000"));
    for s in [first, second, primary] {
        s.stop().await;
    }
}

/// The primary's connection to the replica (flag S in CLIENT LIST): killing it is a
/// network failure as the replica sees it.
async fn cut_link(primary: &Running) {
    let mut c = connect(primary).await;
    let list = text(&call(&mut c, &["CLIENT", "LIST"]).await);
    let line = list.lines().find(|l| l.contains(" flags=S ")).unwrap();
    let addr = line
        .split(' ')
        .find_map(|w| w.strip_prefix("addr="))
        .unwrap()
        .to_string();
    assert_eq!(
        call(&mut c, &["CLIENT", "KILL", "ADDR", &addr]).await,
        int(1)
    );
}

#[tokio::test]
async fn reconnect_resumes_from_the_backlog_or_resyncs_fully() {
    let primary = start(&["--repl-backlog-size", "64kb"]).await;
    let replica = replica_of(&primary, &[]).await;
    let mut c = connect(&primary).await;
    call(&mut c, &["SET", "a", "1"]).await;
    synced(&primary, &[&replica]).await;
    let stats = |i: &str| (offset_of(i, "sync_full"), offset_of(i, "sync_partial_ok"));
    assert_eq!(stats(&info(&primary).await), (1, 0));

    // A short outage: a few writes, well within 64kb of backlog.
    cut_link(&primary).await;
    for i in 0..50 {
        call(&mut c, &["SET", &format!("short{i}"), "v"]).await;
    }
    synced(&primary, &[&replica]).await;
    assert_eq!(stats(&info(&primary).await), (1, 1));
    assert_eq!(dataset(&replica).await, dataset(&primary).await);

    // A long one: 200 kb written while cut off; the backlog no longer covers it.
    cut_link(&primary).await;
    let value = "x".repeat(1000);
    let batch: Vec<Vec<String>> = (0..200)
        .map(|i| words(&["SET", &format!("long{i}"), &value]))
        .collect();
    pipeline(&mut c, &batch).await;
    synced(&primary, &[&replica]).await;
    assert_eq!(stats(&info(&primary).await).0, 2);
    assert_eq!(dataset(&replica).await, dataset(&primary).await);

    // A replica process that restarts knows no offset: it resyncs fully and catches up.
    replica.stop().await;
    call(&mut c, &["SET", "while-down", "v"]).await;
    let replica = replica_of(&primary, &[]).await;
    synced(&primary, &[&replica]).await;
    assert_eq!(stats(&info(&primary).await).0, 3);
    assert_eq!(dataset(&replica).await, dataset(&primary).await);
    replica.stop().await;
    primary.stop().await;
}

#[tokio::test]
async fn sync_mode_acknowledges_only_replicated_writes() {
    let primary = sync_primary("200").await;
    let mut c = connect(&primary).await;
    // No replica: the write is applied, but the client is told it is not replicated.
    let reply = call(&mut c, &["SET", "lonely", "v"]).await;
    assert!(text(&reply).starts_with(
        "NOTREPLICATED the write is applied and durable on the primary but not replicated: 0 of 1"
    ));
    assert_eq!(call(&mut c, &["GET", "lonely"]).await, bulk("v"));

    let replica = replica_of(&primary, &[]).await;
    synced(&primary, &[&replica]).await;
    let mut r = connect(&replica).await;
    for i in 0..300 {
        let key = format!("k{i}");
        assert_eq!(
            call(&mut c, &["SET", &key, &i.to_string()]).await,
            Frame::ok()
        );
        // Acknowledged means on the replica, now.
        assert_eq!(call(&mut r, &["GET", &key]).await, bulk(&i.to_string()));
    }
    // A pipeline of acknowledged writes, then the primary dies.
    let batch: Vec<Vec<String>> = (0..500)
        .map(|i| words(&["INCR", &format!("n{}", i % 10)]))
        .collect();
    assert!(
        pipeline(&mut c, &batch)
            .await
            .iter()
            .all(|f| matches!(f, Frame::Integer(_)))
    );
    primary.stop().await;
    assert_eq!(call(&mut r, &["REPLICAOF", "NO", "ONE"]).await, Frame::ok());
    for i in 0..300 {
        assert_eq!(
            call(&mut r, &["GET", &format!("k{i}")]).await,
            bulk(&i.to_string())
        );
    }
    for i in 0..10 {
        assert_eq!(call(&mut r, &["GET", &format!("n{i}")]).await, bulk("50"));
    }
    // Promoted: it takes writes now.
    assert_eq!(call(&mut r, &["SET", "after", "v"]).await, Frame::ok());
    assert_eq!(
        field(&info(&replica).await, "role").as_deref(),
        Some("master")
    );
    replica.stop().await;
}

/// The stream's next change as a replica sees it, and its size in bytes (the offset it
/// advances), skipping heartbeats.
async fn next_change(link: &mut RespClient) -> u64 {
    let mut size = 0;
    loop {
        let frame = link.read_reply().await.unwrap();
        let mut encoded = bytes::BytesMut::new();
        frame.encode(proto::Protocol::Resp2, &mut encoded);
        size += encoded.len() as u64;
        let Frame::Array(words) = frame else {
            panic!("stream command {frame:?}")
        };
        if words[0] == bulk("CHANGE") {
            return size;
        }
    }
}

/// Sync mode, against a replica played by the test: each write of a pipeline is
/// answered `OK` only once an acknowledgement covers *its* offset — one that covers the
/// first write does not release the second — and `WAIT` waits for this client's last
/// write, not for offset 0.
#[tokio::test]
async fn each_sync_write_waits_for_an_ack_that_covers_it() {
    let primary = sync_primary("300").await;
    let mut link = connect(&primary).await;
    assert_eq!(
        call(&mut link, &["REPLCONF", "listening-port", "1"]).await,
        Frame::ok()
    );
    let fullresync = text(&call(&mut link, &["PSYNC", "?", "-1"]).await);
    let start_offset: u64 = fullresync.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(matches!(link.read_reply().await.unwrap(), Frame::Bulk(_)));

    let mut c = connect(&primary).await;
    c.queue(["SET", "a", "1"]);
    c.queue(["SET", "b", "2"]);
    c.flush().await.unwrap();
    let first = start_offset + next_change(&mut link).await;
    let second = first + next_change(&mut link).await;
    // Only the first write is acknowledged.
    link.queue(["REPLCONF".to_string(), "ACK".into(), first.to_string()]);
    link.flush().await.unwrap();
    assert_eq!(c.read_reply().await.unwrap(), Frame::ok());
    assert!(
        text(&c.read_reply().await.unwrap())
            .starts_with("NOTREPLICATED the write is applied and durable on the primary")
    );
    // WAIT counts the replicas that have this client's last write (the second).
    assert_eq!(call(&mut c, &["WAIT", "1", "50"]).await, int(0));
    link.queue(["REPLCONF".to_string(), "ACK".into(), second.to_string()]);
    link.flush().await.unwrap();
    assert_eq!(call(&mut c, &["WAIT", "1", "5000"]).await, int(1));
    primary.stop().await;
}

/// Sync mode holds a batch's replies together, behind its first unacknowledged write:
/// the reads between the writes, a command the server refuses and the writes after it
/// still come back in request order, and each write is judged by its own offset.
#[tokio::test]
async fn held_replies_keep_request_order_and_each_write_its_own_verdict() {
    let primary = sync_primary("300").await;
    let mut link = connect(&primary).await;
    call(&mut link, &["REPLCONF", "listening-port", "1"]).await;
    let fullresync = text(&call(&mut link, &["PSYNC", "?", "-1"]).await);
    let start_offset: u64 = fullresync.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(matches!(link.read_reply().await.unwrap(), Frame::Bulk(_)));

    let mut c = connect(&primary).await;
    c.queue(["SET", "a", "1"]);
    c.queue(["GET", "a"]);
    c.queue(["NOSUCHCOMMAND"]);
    c.queue(["SET", "b", "2"]);
    c.queue(["GET", "b"]);
    c.flush().await.unwrap();
    let first = start_offset + next_change(&mut link).await;
    next_change(&mut link).await;
    link.queue(["REPLCONF".to_string(), "ACK".into(), first.to_string()]);
    link.flush().await.unwrap();
    assert_eq!(c.read_reply().await.unwrap(), Frame::ok());
    assert_eq!(c.read_reply().await.unwrap(), bulk("1"));
    assert!(text(&c.read_reply().await.unwrap()).starts_with("ERR unknown command"));
    assert!(
        text(&c.read_reply().await.unwrap())
            .starts_with("NOTREPLICATED the write is applied and durable on the primary")
    );
    assert_eq!(c.read_reply().await.unwrap(), bulk("2"));
    primary.stop().await;
}

#[tokio::test]
async fn wait_counts_replicas_that_have_the_write() {
    let primary = start(&[]).await;
    let replicas = [
        replica_of(&primary, &[]).await,
        replica_of(&primary, &[]).await,
    ];
    synced(&primary, &[&replicas[0], &replicas[1]]).await;
    let mut c = connect(&primary).await;
    call(&mut c, &["SET", "k", "v"]).await;
    assert_eq!(call(&mut c, &["WAIT", "2", "5000"]).await, int(2));
    assert_eq!(call(&mut c, &["WAIT", "3", "50"]).await, int(2));
    let mut r = connect(&replicas[0]).await;
    assert_eq!(call(&mut r, &["GET", "k"]).await, bulk("v"));
    assert!(
        text(&call(&mut r, &["WAIT", "1", "0"]).await)
            .starts_with("ERR WAIT cannot be used with replica instances")
    );
    let Frame::Array(role) = call(&mut c, &["ROLE"]).await else {
        panic!("ROLE")
    };
    assert_eq!(role[0], bulk("master"));
    for s in replicas {
        s.stop().await;
    }
    primary.stop().await;
}

/// A replica that stops acknowledging: the primary acknowledged the writes anyway
/// (async), and INFO shows how far behind the replica is, in bytes and milliseconds.
#[tokio::test]
async fn async_writes_do_not_wait_and_info_reports_the_lag() {
    let primary = start(&[]).await;
    // A hand-made replica: handshake, read the snapshot, then never acknowledge.
    let mut fake = connect(&primary).await;
    assert_eq!(
        call(&mut fake, &["REPLCONF", "listening-port", "9999"]).await,
        Frame::ok()
    );
    let reply = call(&mut fake, &["PSYNC", "?", "-1"]).await;
    assert!(text(&reply).starts_with("FULLRESYNC "));
    assert!(matches!(fake.read_reply().await.unwrap(), Frame::Bulk(_)));

    let mut c = connect(&primary).await;
    for i in 0..100 {
        assert_eq!(
            call(&mut c, &["SET", &format!("k{i}"), "v"]).await,
            Frame::ok()
        );
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let i = info(&primary).await;
    let line = field(&i, "slave0").unwrap();
    assert!(line.starts_with("ip=127.0.0.1,port=9999,state=online,offset=0,"));
    let lag = |name: &str| -> u64 {
        line.split(',')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(lag("lag_bytes"), offset_of(&i, "master_repl_offset"));
    // Time has passed since the first unacknowledged write (no bound on how much: a
    // loaded machine may have taken longer).
    assert!(lag("lag_ms") > 0);
    // The stream is RESP: the first write arrives as a CHANGE record (after any of the
    // primary's once-a-second PINGs that happened to come first).
    let first = loop {
        let Frame::Array(frame) = fake.read_reply().await.unwrap() else {
            panic!("stream frame")
        };
        if frame[0] != bulk("PING") {
            break frame;
        }
    };
    assert_eq!(first[0], bulk("CHANGE"));
    // Acknowledging everything clears the lag.
    let end = offset_of(&i, "master_repl_offset").to_string();
    fake.queue(["REPLCONF", "ACK", end.as_str()].map(|w| Bytes::copy_from_slice(w.as_bytes())));
    fake.flush().await.unwrap();
    let mut c2 = connect(&primary).await;
    assert_eq!(call(&mut c2, &["WAIT", "1", "5000"]).await, int(1));
    let line = field(&info(&primary).await, "slave0").unwrap();
    assert!(line.contains(&format!("offset={end},")), "{line}");
    primary.stop().await;
}

#[tokio::test]
async fn replicas_hide_expired_keys_but_only_the_primary_deletes_them() {
    let t0 = 1_700_000_000_000;
    let (pclock, rclock) = (
        Arc::new(ManualClock::new(t0)),
        Arc::new(ManualClock::new(t0)),
    );
    let primary = start_with_clock(&[], pclock.clone()).await;
    let address = format!("127.0.0.1:{}", primary.addr().port());
    let replica = start_with_clock(&["--replicaof", &address], rclock.clone()).await;
    let mut c = connect(&primary).await;
    call(&mut c, &["SET", "k", "v", "PX", "1000"]).await;
    synced(&primary, &[&replica]).await;
    let mut r = connect(&replica).await;
    assert_eq!(call(&mut r, &["GET", "k"]).await, bulk("v"));

    // The replica's clock passes the deadline before the primary noticed: the key is
    // hidden (the window is closed on reads)...
    rclock.advance(1000);
    assert_eq!(call(&mut r, &["GET", "k"]).await, Frame::Null);
    assert_eq!(call(&mut r, &["TTL", "k"]).await, int(-2));
    assert_eq!(call(&mut r, &["DBSIZE"]).await, int(0));
    // ...but not deleted: only the primary's stream deletes.
    rclock.set(t0);
    assert_eq!(call(&mut r, &["GET", "k"]).await, bulk("v"));

    // The primary expires it and streams the delete.
    pclock.advance(1000);
    assert_eq!(call(&mut c, &["GET", "k"]).await, Frame::Null);
    synced(&primary, &[&replica]).await;
    assert_eq!(call(&mut r, &["GET", "k"]).await, Frame::Null);
    replica.stop().await;
    primary.stop().await;
}

/// Collections replicate as edits (the elements a write touched), not as whole records:
/// after every kind of edit the replica's data must equal the primary's, key by key
/// (DUMP and absolute deadline), including the random picks of SPOP, HINCRBYFLOAT's
/// rounding, ZINCRBY's result and a collection emptied by pops.
#[tokio::test]
async fn every_kind_of_collection_edit_reaches_the_replica() {
    let primary = start(&[]).await;
    let mut c = connect(&primary).await;
    // Some collections exist before the replica joins (they travel in the snapshot).
    call(&mut c, &["RPUSH", "list", "a", "b", "c", "d", "e", "f"]).await;
    call(&mut c, &["HSET", "hash", "f1", "v1", "f2", "2"]).await;
    let replica = replica_of(&primary, &[]).await;
    synced(&primary, &[&replica]).await;
    assert_eq!(dataset(&replica).await, dataset(&primary).await);
    for step in COLLECTION_EDITS {
        call(&mut c, step).await;
        synced(&primary, &[&replica]).await;
        let expected = dataset(&primary).await;
        assert_eq!(dataset(&replica).await, expected, "after {step:?}");
    }
    let expected = dataset(&primary).await;
    check_edited(&expected);
    replica.stop().await;
    primary.stop().await;
}

/// Bitmap and HyperLogLog writes reach a replica, which answers PFCOUNT, GETBIT and
/// BITFIELD_RO itself and refuses the writes.
#[tokio::test]
async fn bitmaps_and_sketches_reach_the_replica() {
    let primary = start(&[]).await;
    let mut c = connect(&primary).await;
    call(&mut c, &["PFADD", "early", "a", "b"]).await;
    let replica = replica_of(&primary, &[]).await;
    let steps: &[&[&str]] = &[
        &["SETBIT", "bits", "100", "1"],
        &["BITFIELD", "bits", "INCRBY", "u8", "#3", "200"],
        &["BITOP", "NOT", "inverted", "bits"],
        &["PFADD", "hll", "x", "y", "z"],
        &["PFMERGE", "merged", "hll", "early"],
        // Caches the estimate in `merged`'s header: replicated like any write.
        &["PFCOUNT", "merged"],
    ];
    for step in steps {
        call(&mut c, step).await;
    }
    synced(&primary, &[&replica]).await;
    let mut r = connect(&replica).await;
    for key in ["early", "bits", "inverted", "hll", "merged"] {
        assert_eq!(
            call(&mut r, &["GET", key]).await,
            call(&mut c, &["GET", key]).await,
            "{key}"
        );
    }
    assert_eq!(call(&mut r, &["PFCOUNT", "merged"]).await, int(5));
    assert_eq!(call(&mut r, &["PFCOUNT", "hll"]).await, int(3));
    assert_eq!(call(&mut r, &["PFCOUNT", "hll", "early"]).await, int(5));
    assert_eq!(call(&mut r, &["GETBIT", "bits", "100"]).await, int(1));
    assert_eq!(
        call(&mut r, &["BITFIELD_RO", "bits", "GET", "u8", "#3"]).await,
        Frame::Array(vec![int(200)])
    );
    let readonly = err("READONLY You can't write against a read only replica.");
    assert_eq!(call(&mut r, &["SETBIT", "bits", "1", "1"]).await, readonly);
    assert_eq!(call(&mut r, &["PFADD", "hll", "w"]).await, readonly);
    replica.stop().await;
    primary.stop().await;
}

/// Geo sets and the sorted sets computed by the STORE forms replicate as their effects:
/// after each write the replica's data equals the primary's key by key (the geohash
/// scores, the stored search results, a STORE that deleted its destination), and the
/// replica answers geo searches itself while refusing the STORE forms.
#[tokio::test]
async fn geo_sets_and_stored_results_reach_the_replica() {
    let primary = start(&[]).await;
    let mut c = connect(&primary).await;
    call(&mut c, &["GEOADD", "early", "2.35", "48.85", "paris"]).await;
    let replica = replica_of(&primary, &[]).await;
    synced(&primary, &[&replica]).await;
    for step in GEO_WRITES {
        call(&mut c, step).await;
        synced(&primary, &[&replica]).await;
        assert_eq!(
            dataset(&replica).await,
            dataset(&primary).await,
            "after {step:?}"
        );
    }
    let mut r = connect(&replica).await;
    let search = [
        "GEOSEARCH",
        "Sicily",
        "FROMLONLAT",
        "15",
        "37",
        "BYRADIUS",
        "300",
        "km",
        "ASC",
        "WITHDIST",
    ];
    let found = call(&mut r, &search).await;
    assert_eq!(found, call(&mut c, &search).await);
    assert!(
        matches!(&found, Frame::Array(items) if items.len() == 3),
        "{found:?}"
    );
    assert_eq!(
        call(&mut r, &["GEODIST", "Sicily", "Palermo", "Catania", "km"]).await,
        call(&mut c, &["GEODIST", "Sicily", "Palermo", "Catania", "km"]).await
    );
    let readonly = err("READONLY You can't write against a read only replica.");
    let store = [
        "GEOSEARCHSTORE",
        "x",
        "Sicily",
        "FROMLONLAT",
        "15",
        "37",
        "BYRADIUS",
        "300",
        "km",
    ];
    assert_eq!(call(&mut r, &store).await, readonly);
    assert_eq!(
        call(&mut r, &["ZUNIONSTORE", "x", "1", "z1"]).await,
        readonly
    );
    replica.stop().await;
    primary.stop().await;
}

/// The multi-key pops, SORT ... STORE and MOVE (into another database) reach a replica
/// by their effects, as does a pop served to a blocked client.
#[tokio::test]
async fn pops_sorts_and_moves_reach_the_replica() {
    let primary = start(&[]).await;
    let replica = replica_of(&primary, &[]).await;
    let mut c = connect(&primary).await;
    for step in common::POP_STEPS {
        let reply = call(&mut c, step).await;
        assert!(!matches!(reply, Frame::Error(_)), "{step:?}: {reply:?}");
    }
    synced(&primary, &[&replica]).await;
    assert_eq!(
        common::pop_dataset(&replica).await,
        common::pop_dataset(&primary).await
    );
    common::check_popped(&replica).await;
    let mut r = connect(&replica).await;
    let readonly = err("READONLY You can't write against a read only replica.");
    assert_eq!(call(&mut r, &["LMPOP", "1", "l", "LEFT"]).await, readonly);
    assert_eq!(
        call(&mut r, &["SORT", "l", "ALPHA", "STORE", "x"]).await,
        readonly
    );
    assert_eq!(
        call(&mut r, &["SORT_RO", "l", "ALPHA", "DESC"]).await,
        Frame::Array(vec![bulk("d"), bulk("c")])
    );
    replica.stop().await;
    primary.stop().await;
}

/// Writes a bit, a bitfield, a sketch and a geo member, as one script.
const TYPES_SCRIPT: &str = "redis.call('SETBIT', KEYS[1], ARGV[1], 1) \
     redis.call('BITFIELD', KEYS[1], 'INCRBY', 'u8', '#0', ARGV[1]) \
     redis.call('PFADD', KEYS[2], ARGV[1], ARGV[1] .. 'x') \
     redis.call('GEOADD', KEYS[3], ARGV[2], ARGV[3], 'm' .. ARGV[1]) \
     return redis.call('PFCOUNT', KEYS[2])";

/// Bitmaps, sketches, geo sets and script effects written by several clients at once,
/// while a replica joins (part arrives in its snapshot, part in the stream): once synced,
/// every key's `DUMP` is byte-equal on both, geo keys show the same scores, and the
/// replica counts the sketches the same.
#[tokio::test]
async fn concurrent_bits_sketches_geo_and_script_effects_are_byte_equal_on_a_replica() {
    let primary = start(&[]).await;
    let mut c = connect(&primary).await;
    let sha = text(&call(&mut c, &["SCRIPT", "LOAD", TYPES_SCRIPT]).await);
    let writer = |w: u64, rounds: u64| {
        let (addr, sha) = (primary.addr(), sha.clone());
        tokio::spawn(async move {
            let mut c = RespClient::connect(addr).await.unwrap();
            for i in 0..rounds {
                let n = (i * 4 + w).to_string();
                let (lon, lat) = (
                    format!("{:.4}", 10.0 + i as f64 * 0.013),
                    format!("{:.4}", 40.0 + w as f64 * 0.5),
                );
                let commands: Vec<Vec<String>> = [
                    vec!["SETBIT", "bits", &n, "1"],
                    vec![
                        "BITFIELD", "bits", "INCRBY", "i5", "#1", "7", "OVERFLOW", "SAT",
                    ],
                    vec!["PFADD", "hll", &n],
                    vec!["PFMERGE", "union", "hll", "shll"],
                    vec!["GEOADD", "geo", &lon, &lat, &n],
                    vec![
                        "EVALSHA", &sha, "3", "sbits", "shll", "sgeo", &n, &lon, &lat,
                    ],
                ]
                .iter()
                .map(|words| words.iter().map(|w| w.to_string()).collect())
                .collect();
                for reply in pipeline(&mut c, &commands).await {
                    assert!(!matches!(reply, Frame::Error(_)), "{reply:?}");
                }
            }
        })
    };
    let early: Vec<_> = (0..4).map(|w| writer(w, 50)).collect();
    for w in early {
        w.await.unwrap();
    }
    let replica = replica_of(&primary, &[]).await;
    let late: Vec<_> = (0..4).map(|w| writer(w, 100)).collect();
    for w in late {
        w.await.unwrap();
    }
    // Counting caches the estimate in the sketch's header: a write, replicated too.
    for key in ["hll", "shll", "union"] {
        call(&mut c, &["PFCOUNT", key]).await;
    }
    synced(&primary, &[&replica]).await;
    let expected = dataset(&primary).await;
    assert_eq!(expected.len(), 7, "{expected:?}");
    assert_eq!(dataset(&replica).await, expected);
    let mut r = connect(&replica).await;
    for key in ["geo", "sgeo"] {
        let range = ["ZRANGE", key, "0", "-1", "WITHSCORES"];
        let on_primary = call(&mut c, &range).await;
        assert!(matches!(&on_primary, Frame::Array(a) if a.len() == 2 * 400));
        assert_eq!(call(&mut r, &range).await, on_primary, "{key}");
    }
    for key in ["hll", "shll", "union"] {
        assert_eq!(
            call(&mut r, &["PFCOUNT", key]).await,
            call(&mut c, &["PFCOUNT", key]).await,
            "{key}"
        );
    }
    assert_eq!(
        call(&mut r, &["BITCOUNT", "sbits"]).await,
        call(&mut c, &["BITCOUNT", "sbits"]).await
    );
    replica.stop().await;
    primary.stop().await;
}

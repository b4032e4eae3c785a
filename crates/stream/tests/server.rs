#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! The stream server over RESP: topics, produce/fetch, keys and partitions, consumer
//! groups, retention, durability of commits.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use common::*;
use proto::Frame;
use stream::partitioner::partition_for_key;

#[tokio::test]
async fn topics_produce_fetch_and_offsets() {
    let server = start("basics", &["--auto-create-topics", "false"]).await;
    let mut c = server.client().await;
    c.ok(&[
        "TOPIC.CREATE",
        "orders",
        "PARTITIONS",
        "3",
        "RETENTION.MS",
        "60000",
    ])
    .await;
    assert_eq!(
        error_text(&c.call(&["TOPIC.CREATE", "orders"]).await),
        "TOPIC_ALREADY_EXISTS topic 'orders' already exists"
    );
    assert!(
        error_text(&c.call(&["TOPIC.CREATE", "a/b"]).await).starts_with("INVALID_TOPIC_EXCEPTION")
    );
    assert!(
        error_text(&c.call(&["TOPIC.CREATE", "x", "NOPE", "1"]).await)
            .starts_with("INVALID_CONFIG")
    );
    assert_eq!(
        c.ok(&["TOPIC.LIST"]).await,
        Frame::Array(vec![Frame::bulk("orders")])
    );
    assert!(
        error_text(&c.call(&["PRODUCE", "nosuch", "v"]).await)
            .starts_with("UNKNOWN_TOPIC_OR_PARTITION")
    );

    // A keyed message: the partition is Kafka's murmur2 choice.
    let reply = c
        .ok(&[
            "PRODUCE",
            "orders",
            "hello",
            "KEY",
            "abc",
            "HEADER",
            "trace",
            "t1",
            "TIMESTAMP",
            "500",
        ])
        .await;
    let expected = i64::from(partition_for_key(b"abc", 3));
    assert_eq!(
        reply,
        Frame::Array(vec![Frame::Integer(expected), Frame::Integer(0)])
    );
    let p = expected.to_string();
    c.ok(&[
        "PRODUCE",
        "orders",
        "second",
        "PARTITION",
        &p,
        "TIMESTAMP",
        "1000",
    ])
    .await;
    assert!(
        error_text(&c.call(&["PRODUCE", "orders", "v", "PARTITION", "9"]).await)
            .contains("has 3 partition(s): 0 to 2")
    );

    let fetched = c.ok(&["FETCH", "orders", &p, "0"]).await;
    let recs = array(&fetched);
    assert_eq!(recs.len(), 2);
    // [offset, timestamp, key, value, header, value, ...]
    assert_eq!(
        recs[0],
        Frame::Array(vec![
            Frame::Integer(0),
            Frame::Integer(500),
            Frame::bulk("abc"),
            Frame::bulk("hello"),
            Frame::bulk("trace"),
            Frame::bulk("t1"),
        ])
    );
    let second = array(&recs[1]);
    assert_eq!((&second[2], int(&second[1])), (&Frame::Null, 1000));
    assert_eq!(second.len(), 4, "no headers: nothing after the value");
    assert_eq!(
        array(&c.ok(&["FETCH", "orders", &p, "1", "COUNT", "5"]).await).len(),
        1
    );
    assert_eq!(
        array(&c.ok(&["FETCH", "orders", &p, "0", "COUNT", "1"]).await).len(),
        1
    );
    // At the end: nothing (yet). Past the end: an error naming the range.
    assert_eq!(
        c.ok(&["FETCH", "orders", &p, "2"]).await,
        Frame::Array(vec![])
    );
    assert_eq!(
        error_text(&c.call(&["FETCH", "orders", &p, "7"]).await),
        "OFFSET_OUT_OF_RANGE offset 7 is out of range: the log holds offsets 0 to 2 (the end offset is the next one to be written)"
    );

    assert_eq!(
        c.ok(&["LISTOFFSETS", "orders", &p, "EARLIEST"]).await,
        Frame::Integer(0)
    );
    assert_eq!(
        c.ok(&["LISTOFFSETS", "orders", &p, "latest"]).await,
        Frame::Integer(2)
    );
    assert_eq!(
        c.ok(&["LISTOFFSETS", "orders", &p, "500"]).await,
        Frame::Integer(0)
    );
    assert_eq!(
        c.ok(&["LISTOFFSETS", "orders", &p, "999"]).await,
        Frame::Integer(1)
    );
    assert_eq!(
        c.ok(&["LISTOFFSETS", "orders", &p, "9999999999999"]).await,
        Frame::Null
    );

    let described = c.ok(&["TOPIC.DESCRIBE", "orders"]).await;
    let parts = array(field(&described, "partitions"));
    assert_eq!(parts.len(), 3);
    let mine = &parts[expected as usize];
    assert_eq!((int(field(mine, "start")), int(field(mine, "end"))), (0, 2));
    assert!(int(field(mine, "size")) > 0);
    assert_eq!(
        string(field(field(&described, "config"), "retention.ms")),
        "60000"
    );

    c.ok(&["TOPIC.ADDPARTITIONS", "orders", "5"]).await;
    assert!(
        c.call(&["TOPIC.ADDPARTITIONS", "orders", "2"])
            .await
            .is_error()
    );
    c.ok(&["TOPIC.ALTER", "orders", "retention.bytes", "1000000"])
        .await;
    let described = c.ok(&["TOPIC.DESCRIBE", "orders"]).await;
    assert_eq!(array(field(&described, "partitions")).len(), 5);
    assert_eq!(
        string(field(field(&described, "config"), "retention.bytes")),
        "1000000"
    );

    assert_eq!(c.ok(&["TOPIC.DELETE", "orders"]).await, Frame::Integer(1));
    assert_eq!(c.ok(&["TOPIC.DELETE", "orders"]).await, Frame::Integer(0));
    assert_eq!(c.ok(&["TOPIC.LIST"]).await, Frame::Array(vec![]));
    server.running.stop().await;
}

#[tokio::test]
async fn keyed_messages_keep_order_in_their_murmur2_partition() {
    let server = start("ordering", &["--fsync", "no"]).await;
    let mut c = server.client().await;
    c.ok(&["TOPIC.CREATE", "events", "PARTITIONS", "8"]).await;
    // Known vectors (Kafka's UtilsTest.testMurmur2) turned into partitions of 8:
    // murmur2("21") = -973932308 → 1173551340 % 8 = 4; "foobar" → 6; "abc" → 3.
    for (key, partition) in [("21", 4), ("foobar", 6), ("abc", 3)] {
        let reply = c.ok(&["PRODUCE", "events", "probe", "KEY", key]).await;
        assert_eq!(array(&reply)[0], Frame::Integer(partition), "key {key}");
    }
    // 100,000 keyed messages over 1,000 keys, in batches of 1,000.
    const TOTAL: usize = 100_000;
    const KEYS: usize = 1_000;
    for batch in 0..TOTAL / 1000 {
        let mut words = vec!["PRODUCE.BATCH".to_string(), "events".into(), "PAIRS".into()];
        for i in batch * 1000..(batch + 1) * 1000 {
            words.push(format!("key-{}", i % KEYS));
            words.push(format!("{}", i / KEYS));
        }
        let reply = c.call_owned(words).await;
        // One [partition, base_offset, count] per partition written: all eight here.
        let counts: u64 = array(&reply).iter().map(|e| int(&array(e)[2]) as u64).sum();
        assert_eq!((array(&reply).len(), counts), (8, 1000));
    }
    let mut partition_of: HashMap<String, u32> = HashMap::new();
    let mut last_seq: HashMap<String, i64> = HashMap::new();
    let mut count = 0;
    for p in 0..8u32 {
        for (_, key, value) in read_partition(&mut c, "events", p, 0).await {
            let key = key.unwrap();
            if value == "probe" {
                continue;
            }
            count += 1;
            // One partition per key, and the one Kafka's partitioner picks.
            assert_eq!(*partition_of.entry(key.clone()).or_insert(p), p, "{key}");
            assert_eq!(partition_for_key(key.as_bytes(), 8), p);
            // Send order within the key.
            let seq: i64 = value.parse().unwrap();
            let prev = last_seq.insert(key.clone(), seq).unwrap_or(-1);
            assert_eq!(seq, prev + 1, "{key}: {seq} after {prev}");
        }
    }
    assert_eq!(count, TOTAL);
    assert_eq!(partition_of.len(), KEYS);
    let used: BTreeSet<u32> = partition_of.values().copied().collect();
    assert_eq!(used.len(), 8, "keys spread over all partitions");
    server.running.stop().await;
}

/// Reads a topic fully as one member of a group: join, fetch each assigned partition from
/// the committed offset, commit. Returns the values read.
async fn consume_all(c: &mut Client, group: &str, topic: &str) -> Vec<String> {
    let joined = c.ok(&["GROUP.JOIN", group, "m1", "TOPICS", topic]).await;
    let generation = int(field(&joined, "generation")).to_string();
    let partitions = array(field(field(&joined, "assignment"), topic)).to_vec();
    let mut values = Vec::new();
    for p in partitions {
        let p = int(&p).to_string();
        let committed = c.ok(&["GROUP.COMMITTED", group, topic, &p]).await;
        let from = match &array(&committed)[0] {
            Frame::Null => 0,
            f => int(f) as u64,
        };
        let got = read_partition(c, topic, p.parse().unwrap(), from).await;
        if let Some(last) = got.last() {
            let next = (last.0 + 1).to_string();
            c.ok(&["GROUP.COMMIT", group, "m1", &generation, topic, &p, &next])
                .await;
        }
        values.extend(got.into_iter().map(|r| r.2));
    }
    values
}

#[tokio::test]
async fn two_groups_read_the_same_topic_independently() {
    let server = start("two-groups", &[]).await;
    let mut c = server.client().await;
    c.ok(&["TOPIC.CREATE", "news", "PARTITIONS", "2"]).await;
    for i in 0..50 {
        c.ok(&["PRODUCE", "news", &format!("n{i}")]).await;
    }
    let mut a = consume_all(&mut c, "analytics", "news").await;
    let mut b = consume_all(&mut c, "billing", "news").await;
    a.sort();
    b.sort();
    assert_eq!(a.len(), 50);
    assert_eq!(a, b, "each group reads everything");
    // Reading deleted nothing, and each group has its own position.
    for i in 50..60 {
        c.ok(&["PRODUCE", "news", &format!("n{i}")]).await;
    }
    assert_eq!(consume_all(&mut c, "analytics", "news").await.len(), 10);
    let described = c.ok(&["GROUP.DESCRIBE", "billing"]).await;
    let lag: i64 = array(field(&described, "partitions"))
        .iter()
        .map(|p| int(field(p, "lag")))
        .sum();
    assert_eq!(lag, 10, "billing has not read the last 10");
    assert_eq!(
        c.ok(&["GROUP.LIST"]).await,
        Frame::Array(vec![Frame::bulk("analytics"), Frame::bulk("billing")])
    );
    server.running.stop().await;
}

/// What the consumers in the rebalance test saw.
#[derive(Default)]
struct Seen {
    /// value → times processed.
    values: HashMap<String, usize>,
    /// generation → member → partitions it was given.
    assignments: BTreeMap<i64, BTreeMap<String, Vec<i64>>>,
}

/// A consumer loop: join, then fetch/process/commit its partitions and heartbeat, rejoining
/// when told the group rebalanced. Runs until the task is aborted ("killed").
async fn consumer(addr: std::net::SocketAddr, member: String, seen: Arc<Mutex<Seen>>) {
    let mut c = Client::connect(addr).await;
    'join: loop {
        let joined = c
            .ok(&[
                "GROUP.JOIN",
                "workers",
                &member,
                "SESSIONTIMEOUT",
                "400",
                "TOPICS",
                "jobs",
            ])
            .await;
        let generation = int(field(&joined, "generation"));
        let mine: Vec<i64> = match field(&joined, "assignment") {
            Frame::Map(pairs) if !pairs.is_empty() => array(&pairs[0].1).iter().map(int).collect(),
            _ => Vec::new(),
        };
        seen.lock()
            .unwrap()
            .assignments
            .entry(generation)
            .or_default()
            .insert(member.clone(), mine.clone());
        let g = generation.to_string();
        loop {
            for &p in &mine {
                let p = p.to_string();
                let committed = c.ok(&["GROUP.COMMITTED", "workers", "jobs", &p]).await;
                let from = match &array(&committed)[0] {
                    Frame::Null => 0,
                    f => int(f),
                };
                let got = records(
                    &c.ok(&["FETCH", "jobs", &p, &from.to_string(), "COUNT", "20"])
                        .await,
                );
                let Some(last) = got.last() else { continue };
                {
                    let mut s = seen.lock().unwrap();
                    for (_, _, v) in &got {
                        *s.values.entry(v.clone()).or_default() += 1;
                    }
                }
                let next = (last.0 + 1).to_string();
                let reply = c
                    .call(&["GROUP.COMMIT", "workers", &member, &g, "jobs", &p, &next])
                    .await;
                if reply.is_error() {
                    continue 'join; // rebalanced: processed but uncommitted → redelivered
                }
            }
            if c.call(&["GROUP.HEARTBEAT", "workers", &member, &g])
                .await
                .is_error()
            {
                continue 'join;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test]
async fn rebalance_after_a_consumer_dies_skips_nothing() {
    let server = start("rebalance", &[]).await;
    let mut c = server.client().await;
    c.ok(&["TOPIC.CREATE", "jobs", "PARTITIONS", "4"]).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut consumers = Vec::new();
    for m in ["c1", "c2", "c3"] {
        consumers.push(tokio::spawn(consumer(
            server.addr(),
            m.to_string(),
            seen.clone(),
        )));
    }
    let members = |d: &Frame| array(field(d, "members")).len();
    eventually("three members", || async {
        let d = server
            .client()
            .await
            .call(&["GROUP.DESCRIBE", "workers"])
            .await;
        !d.is_error() && members(&d) == 3
    })
    .await;
    const TOTAL: usize = 2000;
    for batch in 0..TOTAL / 100 {
        let mut words = vec!["PRODUCE.BATCH".to_string(), "jobs".into(), "PAIRS".into()];
        for i in batch * 100..(batch + 1) * 100 {
            words.push(format!("k{i}"));
            words.push(format!("job-{i}"));
        }
        c.call_owned(words).await;
        if batch == 5 {
            // Kill c3: no LEAVE, its heartbeats just stop.
            consumers[2].abort();
        }
    }
    // After the session timeout the other two own all four partitions.
    eventually("two members owning all partitions", || async {
        let d = server
            .client()
            .await
            .ok(&["GROUP.DESCRIBE", "workers"])
            .await;
        members(&d) == 2
            && array(field(&d, "partitions"))
                .iter()
                .all(|p| field(p, "owner") != &Frame::Null)
    })
    .await;
    // Everything gets processed and committed.
    eventually("all committed", || async {
        let d = server
            .client()
            .await
            .ok(&["GROUP.DESCRIBE", "workers"])
            .await;
        array(field(&d, "partitions"))
            .iter()
            .all(|p| field(p, "lag") == &Frame::Integer(0))
    })
    .await;
    for consumer in &consumers {
        consumer.abort();
    }
    server.running.stop().await;
    let seen = seen.lock().unwrap();
    for i in 0..TOTAL {
        assert!(
            seen.values.contains_key(&format!("job-{i}")),
            "job-{i} was skipped"
        );
    }
    let duplicates: usize = seen.values.values().map(|n| n - 1).sum();
    println!("{TOTAL} jobs, {duplicates} delivered more than once");
    // Within a generation no partition has two owners.
    for (generation, members) in &seen.assignments {
        let mut owned = BTreeSet::new();
        for parts in members.values() {
            for p in parts {
                assert!(
                    owned.insert(*p),
                    "generation {generation}: partition {p} owned twice"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_fifth_consumer_on_four_partitions_is_idle() {
    let server = start("idle", &[]).await;
    let mut c = server.client().await;
    c.ok(&["TOPIC.CREATE", "t", "PARTITIONS", "4"]).await;
    for m in ["a", "b", "c", "d"] {
        c.ok(&["GROUP.JOIN", "g", m, "TOPICS", "t"]).await;
    }
    let joined = c
        .ok(&["GROUP.JOIN", "g", "e", "STRATEGY", "range", "TOPICS", "t"])
        .await;
    assert_eq!(
        field(field(&joined, "assignment"), "t"),
        &Frame::Array(vec![])
    );
    let d = c.ok(&["GROUP.DESCRIBE", "g"]).await;
    assert_eq!(int(field(&d, "generation")), 5);
    let idle: Vec<String> = array(field(&d, "members"))
        .iter()
        .filter(|m| field(m, "idle") == &Frame::Boolean(true))
        .map(|m| string(field(m, "member")))
        .collect();
    assert_eq!(idle, ["e"]);
    // Members of an older generation are told to rejoin; a stale commit is refused.
    assert!(
        error_text(&c.call(&["GROUP.HEARTBEAT", "g", "a", "1"]).await)
            .starts_with("ILLEGAL_GENERATION")
    );
    assert!(
        error_text(
            &c.call(&["GROUP.COMMIT", "g", "a", "1", "t", "0", "5"])
                .await
        )
        .starts_with("ILLEGAL_GENERATION")
    );
    c.ok(&["GROUP.COMMIT", "g", "a", "5", "t", "0", "0"]).await;
    assert!(
        error_text(
            &c.call(&[
                "GROUP.JOIN",
                "g",
                "f",
                "STRATEGY",
                "roundrobin",
                "TOPICS",
                "t"
            ])
            .await
        )
        .starts_with("INCONSISTENT_GROUP_PROTOCOL")
    );
    // One leaving hands over at once: the idle member gets a partition.
    c.ok(&["GROUP.LEAVE", "g", "a"]).await;
    let joined = c.ok(&["GROUP.JOIN", "g", "e", "TOPICS", "t"]).await;
    assert_eq!(array(field(field(&joined, "assignment"), "t")).len(), 1);
    server.running.stop().await;
}

#[tokio::test]
async fn retention_deletes_old_segments_and_moves_the_start() {
    let server = start("retention", &["--retention-check-interval-ms", "20"]).await;
    let mut c = server.client().await;
    c.ok(&[
        "TOPIC.CREATE",
        "logs",
        "SEGMENT.BYTES",
        "1024",
        "RETENTION.BYTES",
        "4096",
    ])
    .await;
    let value = "x".repeat(100);
    for _ in 0..300 {
        c.ok(&["PRODUCE", "logs", &value]).await;
    }
    let start_offset = |d: &Frame| int(field(&array(field(d, "partitions"))[0], "start"));
    // Retention may have run mid-produce; wait for a pass after the last one.
    eventually("size retention", || async {
        let d = server.client().await.ok(&["TOPIC.DESCRIBE", "logs"]).await;
        start_offset(&d) > 0
            && int(field(&array(field(&d, "partitions"))[0], "size")) <= 4096 + 1024
    })
    .await;
    let d = c.ok(&["TOPIC.DESCRIBE", "logs"]).await;
    let part = &array(field(&d, "partitions"))[0];
    assert!(int(field(part, "size")) <= 4096 + 1024);
    let start = start_offset(&d);
    let below = (start - 1).to_string();
    assert!(
        error_text(&c.call(&["FETCH", "logs", "0", &below]).await)
            .starts_with("OFFSET_OUT_OF_RANGE")
    );
    assert_eq!(
        c.ok(&["LISTOFFSETS", "logs", "0", "EARLIEST"]).await,
        Frame::Integer(start)
    );
    let on_disk = std::fs::read_dir(server.dir.join("topics/logs/0"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count();
    assert_eq!(on_disk as i64, int(field(part, "segments")));

    // Time: with retention.ms 1, everything already written expires.
    c.ok(&["TOPIC.ALTER", "logs", "retention.ms", "1"]).await;
    eventually("time retention", || async {
        let d = server.client().await.ok(&["TOPIC.DESCRIBE", "logs"]).await;
        let p = &array(field(&d, "partitions"))[0];
        int(field(p, "start")) == 300 && int(field(p, "end")) == 300
    })
    .await;
    server.running.stop().await;
}

#[tokio::test]
async fn blocking_fetch_returns_when_data_arrives_or_times_out() {
    let server = start("block", &[]).await;
    let mut c = server.client().await;
    c.ok(&["TOPIC.CREATE", "t"]).await;
    let timed_out = c.ok(&["FETCH", "t", "0", "0", "BLOCK", "50"]).await;
    assert!(
        matches!(timed_out, Frame::Null | Frame::NullArray),
        "{timed_out:?}"
    );
    let addr = server.addr();
    let waiter = tokio::spawn(async move {
        let mut c = Client::connect(addr).await;
        c.ok(&["FETCH", "t", "0", "0", "BLOCK", "0"]).await
    });
    // The waiter is parked; a produce wakes it.
    eventually("the waiter to block", || async {
        let info = server.client().await.call(&["CLIENT", "LIST"]).await;
        string(&info).contains("cmd=fetch")
    })
    .await;
    c.ok(&["PRODUCE", "t", "wake"]).await;
    let got = records(&waiter.await.unwrap());
    assert_eq!(got, [(0, None, "wake".to_string())]);
    // Shutdown ends a blocked fetch promptly.
    let addr = server.addr();
    let blocked = tokio::spawn(async move {
        let mut c = Client::connect(addr).await;
        c.0.call(["FETCH", "t", "0", "1", "BLOCK", "0"]).await
    });
    eventually("the second waiter to block", || async {
        let info = server.client().await.call(&["CLIENT", "LIST"]).await;
        string(&info).matches("cmd=fetch").count() == 1
    })
    .await;
    server.running.stop().await;
    let _ = blocked.await.unwrap();
}

/// `PRODUCE.BATCH` answers `[partition, base_offset, count]` per partition it wrote to,
/// and each message is where that puts it: `base_offset` plus its index among the
/// partition's messages in the request. Unkeyed batches (whole, to the partition whose
/// turn it is, across 9 → 10, 99 → 100 and 999 → 1000 offsets), `PARTITION`, keys hashed
/// over several partitions, keys on a one-partition topic — each checked against what a
/// fetch finds there.
#[tokio::test]
async fn produce_batch_replies_where_each_message_landed() {
    let server = start("batch-replies", &[]).await;
    let mut c = server.client().await;
    c.ok(&["TOPIC.CREATE", "one"]).await;
    c.ok(&["TOPIC.CREATE", "three", "PARTITIONS", "3"]).await;
    // (topic, partition, offset, key, value) of every message, as the replies placed it.
    let mut sent: Vec<(String, u32, u64, Option<String>, String)> = Vec::new();
    let mut check =
        |topic: &str, keys: &[Option<String>], values: &[String], route: &[u32], reply: &Frame| {
            let placed = placements(reply, route);
            assert_eq!(placed.len(), values.len(), "{reply:?}");
            for ((key, value), (p, o)) in keys.iter().zip(values).zip(placed) {
                sent.push((topic.to_string(), p, o, key.clone(), value.clone()));
            }
        };
    // Unkeyed: the whole batch to one partition, round-robin between batches.
    let mut unkeyed_partitions = BTreeSet::new();
    for (topic, n) in [
        ("one", 7),
        ("one", 95),
        ("one", 900),
        ("three", 50),
        ("three", 5),
        ("three", 12),
    ] {
        let values: Vec<String> = (0..n).map(|i| format!("{topic}-{n}-{i}")).collect();
        let mut words = vec!["PRODUCE.BATCH".to_string(), topic.into(), "VALUES".into()];
        words.extend(values.iter().cloned());
        let reply = c.call_owned(words).await;
        let p = only_partition(&reply);
        if topic == "three" {
            unkeyed_partitions.insert(p);
        }
        check(topic, &vec![None; n], &values, &vec![p; n], &reply);
    }
    assert_eq!(unkeyed_partitions.len(), 3, "batches take turns");
    // PARTITION: keys or not, every message goes there.
    for keyed in [false, true] {
        let values: Vec<String> = (0..20).map(|i| format!("to-2-{keyed}-{i}")).collect();
        let keys: Vec<Option<String>> = (0..20).map(|i| keyed.then(|| format!("k{i}"))).collect();
        let mut words = vec![
            "PRODUCE.BATCH".to_string(),
            "three".into(),
            "PARTITION".into(),
            "2".into(),
        ];
        if keyed {
            words.push("PAIRS".into());
            for (k, v) in keys.iter().zip(&values) {
                words.push(k.clone().unwrap());
                words.push(v.clone());
            }
        } else {
            words.push("VALUES".into());
            words.extend(values.iter().cloned());
        }
        let reply = c.call_owned(words).await;
        assert_eq!(only_partition(&reply), 2);
        check("three", &keys, &values, &[2; 20], &reply);
    }
    // Keys: where they hash, several partitions in one batch; one on a one-partition topic.
    for (topic, partitions, n) in [("three", 3, 60), ("one", 1, 30)] {
        let keys: Vec<Option<String>> = (0..n).map(|i| Some(format!("k{}", i % 7))).collect();
        let values: Vec<String> = (0..n).map(|i| format!("{topic}-pair-{i}")).collect();
        let mut words = vec!["PRODUCE.BATCH".to_string(), topic.into(), "PAIRS".into()];
        for (k, v) in keys.iter().zip(&values) {
            words.push(k.clone().unwrap());
            words.push(v.clone());
        }
        let route: Vec<u32> = keys
            .iter()
            .map(|k| partition_for_key(k.as_ref().unwrap().as_bytes(), partitions))
            .collect();
        let reply = c.call_owned(words).await;
        check(topic, &keys, &values, &route, &reply);
    }
    let mut seen = BTreeSet::new();
    for (topic, p, offset, key, value) in &sent {
        assert!(
            seen.insert((topic.clone(), *p, *offset)),
            "{topic} {p} {offset} twice"
        );
        let got = records(
            &c.ok(&[
                "FETCH",
                topic,
                &p.to_string(),
                &offset.to_string(),
                "COUNT",
                "1",
            ])
            .await,
        );
        assert_eq!(got, [(*offset, key.clone(), value.clone())]);
    }
    // Every offset of "one" was handed out exactly once: 0 to 1,031.
    let one: Vec<u64> = sent.iter().filter(|s| s.0 == "one").map(|s| s.2).collect();
    assert_eq!(one, (0..1032).collect::<Vec<u64>>());
    server.running.stop().await;
}

/// Keyed `PAIRS` over eight partitions, keys interleaved, batch after batch: the reply has
/// one entry per partition the batch's keys hash to, ascending, and every message is
/// fetched back at its partition's `base_offset` plus its index among that partition's
/// messages in the request — nowhere else, and the partitions hold nothing unaccounted.
#[tokio::test]
async fn keyed_batches_reply_a_base_offset_per_partition() {
    let server = start("batch-keyed", &["--fsync", "no"]).await;
    let mut c = server.client().await;
    const PARTITIONS: u32 = 8;
    c.ok(&[
        "TOPIC.CREATE",
        "keyed",
        "PARTITIONS",
        &PARTITIONS.to_string(),
    ])
    .await;
    let mut expected: BTreeMap<u32, BTreeMap<u64, (String, String)>> = BTreeMap::new();
    for (batch, n, distinct) in [
        (0, 1, 1),
        (1, 2, 2),
        (2, 100, 13),
        (3, 257, 40),
        (4, 64, 3),
        (5, 500, 500),
    ] {
        let pairs: Vec<(String, String)> = (0..n)
            .map(|i| {
                (
                    format!("key-{}", (i * 7919) % distinct),
                    format!("b{batch}-m{i}"),
                )
            })
            .collect();
        let route: Vec<u32> = pairs
            .iter()
            .map(|(k, _)| partition_for_key(k.as_bytes(), PARTITIONS))
            .collect();
        let mut words = vec!["PRODUCE.BATCH".to_string(), "keyed".into(), "PAIRS".into()];
        for (k, v) in &pairs {
            words.push(k.clone());
            words.push(v.clone());
        }
        let reply = c.call_owned(words).await;
        let used: BTreeSet<u32> = route.iter().copied().collect();
        assert_eq!(array(&reply).len(), used.len(), "batch {batch}: {reply:?}");
        for ((p, offset), pair) in placements(&reply, &route).into_iter().zip(pairs) {
            assert!(
                expected
                    .entry(p)
                    .or_default()
                    .insert(offset, pair)
                    .is_none(),
                "{p}/{offset} handed out twice"
            );
        }
    }
    assert!(expected.len() > 1);
    for p in 0..PARTITIONS {
        let got: BTreeMap<u64, (String, String)> = read_partition(&mut c, "keyed", p, 0)
            .await
            .into_iter()
            .map(|(offset, key, value)| (offset, (key.unwrap(), value)))
            .collect();
        assert_eq!(
            got,
            expected.remove(&p).unwrap_or_default(),
            "partition {p}"
        );
    }
    server.running.stop().await;
}

#[tokio::test]
async fn topics_and_committed_offsets_survive_a_restart() {
    let dir = tmp_dir("restart");
    let server = start_in(&dir, &["--fsync", "always"]).await;
    let mut c = server.client().await;
    c.ok(&["TOPIC.CREATE", "t", "PARTITIONS", "2"]).await;
    let reply = c
        .ok(&[
            "PRODUCE.BATCH",
            "t",
            "PARTITION",
            "1",
            "VALUES",
            "a",
            "b",
            "c",
        ])
        .await;
    // Partition 1, offsets 0, 1, 2: [[1, 0, 3]].
    assert_eq!(placements(&reply, &[1, 1, 1]), [(1, 0), (1, 1), (1, 2)]);
    c.ok(&["GROUP.COMMIT", "solo", "me", "-1", "t", "1", "2", "0", "0"])
        .await;
    c.ok(&["GROUP.COMMIT", "solo", "me", "-1", "t", "1", "3"])
        .await;
    server.running.stop().await;

    let server = start_in(&dir, &[]).await;
    let mut c = server.client().await;
    assert_eq!(
        c.ok(&["GROUP.COMMITTED", "solo", "t"]).await,
        Frame::Array(vec![Frame::Integer(0), Frame::Integer(3)])
    );
    let got = read_partition(&mut c, "t", 1, 0).await;
    let values: Vec<&str> = got.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(values, ["a", "b", "c"]);
    assert_eq!(
        c.ok(&["PRODUCE", "t", "d", "PARTITION", "1"]).await,
        Frame::Array(vec![Frame::Integer(1), Frame::Integer(3)])
    );
    server.running.stop().await;
}

/// A Redis client library (the `redis` crate) as a producer and consumer: the commands are
/// plain RESP, so any Redis client can drive the stream.
#[tokio::test]
async fn a_redis_client_library_produces_and_consumes() {
    let server = start("redis-crate", &[]).await;
    let client = redis::Client::open(format!("redis://{}/", server.addr())).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("TOPIC.CREATE")
        .arg("clicks")
        .arg("PARTITIONS")
        .arg(2)
        .query_async(&mut con)
        .await
        .unwrap();
    let mut pipe = redis::pipe();
    for i in 0..100 {
        pipe.cmd("PRODUCE")
            .arg("clicks")
            .arg(format!("click-{i}"))
            .arg("KEY")
            .arg("page-7");
    }
    let placed: Vec<(u32, u64)> = pipe.query_async(&mut con).await.unwrap();
    let partition = partition_for_key(b"page-7", 2);
    for (i, (p, offset)) in placed.iter().enumerate() {
        assert_eq!((*p, *offset), (partition, i as u64));
    }
    // A record without headers reads as a 4-tuple.
    type Rec = (u64, i64, Option<Vec<u8>>, Vec<u8>);
    let fetched: Vec<Rec> = redis::cmd("FETCH")
        .arg("clicks")
        .arg(partition)
        .arg(40)
        .arg("COUNT")
        .arg(3)
        .query_async(&mut con)
        .await
        .unwrap();
    let values: Vec<String> = fetched
        .iter()
        .map(|r| String::from_utf8(r.3.clone()).unwrap())
        .collect();
    assert_eq!(values, ["click-40", "click-41", "click-42"]);
    assert_eq!(fetched[0].2.as_deref(), Some(&b"page-7"[..]));
    server.running.stop().await;
}

/// Group commit across a pipeline: under `--fsync always` a pipeline of produces is
/// written once and acknowledged after one shared fsync, not one fsync per produce.
#[tokio::test]
async fn a_pipeline_of_produces_shares_one_fsync_under_fsync_always() {
    let server = start("pipeline-fsync", &["--fsync", "always"]).await;
    let mut c = server.client().await;
    c.ok(&["TOPIC.CREATE", "t"]).await;
    let rounds = |info: &Frame| -> u64 {
        let text = string(info);
        let line = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("fsync_rounds:"))
            .unwrap();
        line.parse().unwrap()
    };
    let before = rounds(&c.ok(&["INFO", "stream"]).await);
    const N: usize = 200;
    for i in 0..N {
        c.0.queue(["PRODUCE".to_string(), "t".to_string(), format!("m{i}")]);
    }
    c.0.flush().await.unwrap();
    for i in 0..N {
        assert_eq!(
            c.0.read_reply().await.unwrap(),
            Frame::Array(vec![Frame::Integer(0), Frame::Integer(i as i64)])
        );
    }
    let after = rounds(&c.ok(&["INFO", "stream"]).await);
    // One fsync per read of the pipeline (it may arrive in a few reads), not one per
    // produce as when each produce synced before the next one ran.
    assert!(
        (1..=4).contains(&(after - before)),
        "{N} produces took {} fsyncs",
        after - before
    );
    let got = read_partition(&mut c, "t", 0, 0).await;
    assert_eq!(got.len(), N);
    server.running.stop().await;
}

/// Batches read twice are kept in memory (`stream::read_cache`): fetches answered from
/// there are byte for byte what the file gives, values large enough to be sent as
/// slices included, and retention still refuses offsets below the start.
#[tokio::test]
async fn repeated_fetches_from_memory_match_the_file_and_respect_retention() {
    let server = start("read-cache", &["--retention-check-interval-ms", "20"]).await;
    let mut c = server.client().await;
    c.ok(&[
        "TOPIC.CREATE",
        "fan",
        "SEGMENT.BYTES",
        "65536",
        "RETENTION.BYTES",
        "200000",
    ])
    .await;
    for i in 0..40 {
        let values: Vec<String> = (0..(i % 5 + 1))
            .map(|j| format!("{i}-{j}-{}", "v".repeat((i * 97 + j * 31) % 900)))
            .collect();
        let mut args = vec!["PRODUCE.BATCH", "fan", "VALUES"];
        args.extend(values.iter().map(String::as_str));
        c.ok(&args).await;
    }
    // Over RESP2 the reply goes out in parts (values as slices); over RESP3 re-encoded.
    let mut resp2 = server.client_resp2().await;
    for (offset, count, max_bytes) in [
        ("0", "100", "1048576"),
        ("3", "7", "2000"),
        ("50", "9", "1"),
    ] {
        let fetch = [
            "FETCH", "fan", "0", offset, "COUNT", count, "MAXBYTES", max_bytes,
        ];
        let first = c.ok(&fetch).await;
        assert!(!array(&first).is_empty());
        for _ in 0..3 {
            let over_resp2 = resp2.ok(&fetch).await;
            assert_eq!(
                array(&over_resp2),
                array(&first),
                "RESP2 FETCH from {offset}"
            );
            assert_eq!(
                c.ok(&fetch).await,
                first,
                "FETCH from {offset} COUNT {count}"
            );
        }
    }
    let info = c.ok(&["INFO", "stream"]).await;
    let info = String::from_utf8_lossy(match &info {
        Frame::Bulk(b) | Frame::Verbatim { text: b, .. } => b,
        other => panic!("INFO: {other:?}"),
    })
    .to_string();
    let hits: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("read_cache_hits:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(hits >= 6, "{info}");
    // Cached, then deleted by retention: refused like any offset below the start.
    for _ in 0..3 {
        c.ok(&["FETCH", "fan", "0", "0", "COUNT", "5"]).await;
    }
    let value = "x".repeat(1000);
    for _ in 0..300 {
        c.ok(&["PRODUCE", "fan", &value]).await;
    }
    eventually("size retention", || async {
        let d = server.client().await.ok(&["TOPIC.DESCRIBE", "fan"]).await;
        int(field(&array(field(&d, "partitions"))[0], "start")) > 0
    })
    .await;
    assert!(
        error_text(&c.call(&["FETCH", "fan", "0", "0", "COUNT", "5"]).await)
            .starts_with("OFFSET_OUT_OF_RANGE")
    );
    server.running.stop().await;
}

/// A reply far larger than the socket's buffer: its parts (values as slices) go out over
/// many partial `writev`s, resumed mid-part, and arrive whole and in order.
#[tokio::test]
async fn a_fetch_reply_larger_than_the_socket_buffer_arrives_whole() {
    let server = start("big-fetch", &[]).await;
    let mut c = server.client().await;
    c.ok(&["TOPIC.CREATE", "big"]).await;
    let values: Vec<String> = (0..96)
        .map(|i| {
            let fill = char::from(b'a' + (i % 26) as u8);
            format!("{i}:{}", fill.to_string().repeat(65_536 + i * 13))
        })
        .collect();
    let mut words = vec!["PRODUCE.BATCH".to_string(), "big".into(), "VALUES".into()];
    words.extend(values.iter().cloned());
    c.call_owned(words).await;
    let mut resp2 = server.client_resp2().await;
    for round in 0..4 {
        let client = if round % 2 == 0 { &mut resp2 } else { &mut c };
        let reply = client
            .ok(&[
                "FETCH", "big", "0", "0", "COUNT", "1000", "MAXBYTES", "16777216",
            ])
            .await;
        let records = array(&reply);
        assert_eq!(records.len(), values.len());
        for (record, value) in records.iter().zip(&values) {
            assert_eq!(
                array(record)[3],
                Frame::Bulk(bytes::Bytes::from(value.clone()))
            );
        }
    }
    server.running.stop().await;
}

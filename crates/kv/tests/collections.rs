#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! Hashes, lists, sets and sorted sets over the network: every type survives a restart
//! (with its TTL), travels through DUMP/RESTORE, reaches a replica equal to its primary,
//! and a blocked BLPOP ends when the server shuts down. Reply-by-reply equality with
//! Redis is `differential.rs`'s job.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    COLLECTION_EDITS, bulk, call, check_edited, connect, dataset, err, int, start,
    start_with_clock, temp_dir,
};
use kv::clock::ManualClock;
use proto::Frame;
use service::{RespClient, Running};

/// A key of each type, some with a TTL; the replies each write should give.
async fn write_collections(c: &mut RespClient) {
    let hset = ["HSET", "user:1", "name", "ada", "visits", "1"];
    assert_eq!(call(c, &hset).await, int(2));
    assert_eq!(
        call(c, &["HINCRBY", "user:1", "visits", "41"]).await,
        int(42)
    );
    assert_eq!(call(c, &["RPUSH", "queue", "a", "b", "c"]).await, int(3));
    assert_eq!(call(c, &["LPOP", "queue"]).await, bulk("a"));
    assert_eq!(call(c, &["SADD", "tags", "x", "y", "z"]).await, int(3));
    assert_eq!(call(c, &["SREM", "tags", "y"]).await, int(1));
    let zadd = ["ZADD", "board", "1500", "p1", "900", "p2", "2100", "p3"];
    assert_eq!(call(c, &zadd).await, int(3));
    assert_eq!(
        call(c, &["ZINCRBY", "board", "700", "p2"]).await,
        bulk("1600")
    );
    assert_eq!(call(c, &["EXPIRE", "tags", "100"]).await, int(1));
    // Emptied collections are gone, on disk too.
    assert_eq!(call(c, &["SADD", "gone", "m"]).await, int(1));
    assert_eq!(call(c, &["SPOP", "gone"]).await, bulk("m"));
}

async fn check_collections(c: &mut RespClient) {
    assert_eq!(call(c, &["HGET", "user:1", "visits"]).await, bulk("42"));
    assert_eq!(call(c, &["HLEN", "user:1"]).await, int(2));
    let lrange = call(c, &["LRANGE", "queue", "0", "-1"]).await;
    assert_eq!(lrange, Frame::bulk_array(["b", "c"]));
    assert_eq!(call(c, &["SISMEMBER", "tags", "z"]).await, int(1));
    assert_eq!(call(c, &["SCARD", "tags"]).await, int(2));
    let top = call(c, &["ZREVRANGE", "board", "0", "-1", "WITHSCORES"]).await;
    let expected = Frame::bulk_array(["p3", "2100", "p2", "1600", "p1", "1500"]);
    assert_eq!(top, expected);
    assert_eq!(call(c, &["ZRANK", "board", "p2"]).await, int(1));
    assert_eq!(call(c, &["EXISTS", "gone"]).await, int(0));
    for (key, kind) in [
        ("user:1", "hash"),
        ("queue", "list"),
        ("tags", "set"),
        ("board", "zset"),
    ] {
        assert_eq!(call(c, &["TYPE", key]).await, Frame::simple(kind));
    }
}

#[tokio::test]
async fn every_type_survives_a_restart_with_its_ttl() {
    let dir = temp_dir("collections");
    let dir_arg = dir.to_str().unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    for fsync in ["always", "everysec"] {
        let args = ["--dir", dir_arg, "--fsync", fsync];
        let server = start_with_clock(&args, clock.clone()).await;
        let mut c = connect(&server).await;
        call(&mut c, &["FLUSHALL"]).await;
        write_collections(&mut c).await;
        server.stop().await;

        clock.advance(10_000);
        let server = start_with_clock(&args, clock.clone()).await;
        let mut c = connect(&server).await;
        check_collections(&mut c).await;
        assert_eq!(call(&mut c, &["TTL", "tags"]).await, int(90));
        assert_eq!(call(&mut c, &["DBSIZE"]).await, int(4));
        server.stop().await;
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Every kind of collection edit reaches the disk: under `--fsync always` (each write
/// acknowledged only once durable), restart after each edit and compare every key —
/// value, order and deadline — with what the server held before it stopped.
#[tokio::test]
async fn every_kind_of_collection_edit_survives_a_restart() {
    let dir = temp_dir("edits");
    let args = ["--dir", dir.to_str().unwrap(), "--fsync", "always"];
    let mut server = start(&args).await;
    let mut c = connect(&server).await;
    call(&mut c, &["RPUSH", "list", "a", "b", "c", "d", "e", "f"]).await;
    call(&mut c, &["HSET", "hash", "f1", "v1", "f2", "2"]).await;
    for step in COLLECTION_EDITS {
        call(&mut c, step).await;
        let before = dataset(&server).await;
        server.stop().await;
        server = start(&args).await;
        c = connect(&server).await;
        assert_eq!(
            dataset(&server).await,
            before,
            "after {step:?} and a restart"
        );
    }
    check_edited(&dataset(&server).await);
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn dump_restore_rename_and_copy_carry_every_type() {
    let server = start(&[]).await;
    let mut c = connect(&server).await;
    write_collections(&mut c).await;
    for key in ["user:1", "queue", "tags", "board"] {
        let payload = call(&mut c, &["DUMP", key]).await;
        let Frame::Bulk(payload) = payload else {
            panic!("DUMP {key}: {payload:?}");
        };
        let restore = [
            bytes::Bytes::from_static(b"RESTORE"),
            bytes::Bytes::from(format!("{key}:copy")),
            bytes::Bytes::from_static(b"0"),
            payload,
        ];
        assert_eq!(c.call(restore).await.unwrap(), Frame::ok());
        // The restored copy answers like the original.
        let original = call(&mut c, &["DUMP", key]).await;
        assert_eq!(
            call(&mut c, &["DUMP", &format!("{key}:copy")]).await,
            original
        );
        assert_eq!(call(&mut c, &["DEL", key]).await, int(1));
        assert_eq!(
            call(&mut c, &["RENAME", &format!("{key}:copy"), key]).await,
            Frame::ok()
        );
    }
    check_collections(&mut c).await;
    // COPY is deep: changing the copy leaves the original alone.
    assert_eq!(call(&mut c, &["COPY", "board", "board2"]).await, int(1));
    assert_eq!(call(&mut c, &["ZADD", "board2", "1", "p9"]).await, int(1));
    assert_eq!(call(&mut c, &["ZCARD", "board"]).await, int(3));
    // SCAN TYPE filters by the new type names.
    let scan = call(&mut c, &["SCAN", "0", "TYPE", "zset", "COUNT", "100"]).await;
    let Frame::Array(parts) = scan else { panic!() };
    let Frame::Array(mut keys) = parts[1].clone() else {
        panic!()
    };
    keys.sort_by(|a, b| a.as_bytes().cmp(&b.as_bytes()));
    assert_eq!(keys, vec![bulk("board"), bulk("board2")]);
    let wrong = "WRONGTYPE Operation against a key holding the wrong kind of value";
    assert_eq!(call(&mut c, &["GET", "board"]).await, err(wrong));
    assert_eq!(call(&mut c, &["LPUSH", "user:1", "x"]).await, err(wrong));
    server.stop().await;
}

async fn info_field(server: &Running, section: &str, name: &str) -> Option<String> {
    let mut c = connect(server).await;
    let info = call(&mut c, &["INFO", section]).await;
    let text = String::from_utf8_lossy(info.as_bytes().unwrap()).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")).map(str::to_owned))
}

#[tokio::test]
async fn a_replica_holds_the_same_collections() {
    let primary = start(&[]).await;
    let mut c = connect(&primary).await;
    write_collections(&mut c).await;
    let address = format!("127.0.0.1:{}", primary.addr().port());
    let replica = start(&["--replicaof", &address]).await;
    // Streamed after the snapshot: more writes, including a blocked pop served by a push.
    let mut blocked = connect(&primary).await;
    blocked.queue([&b"BLPOP"[..], b"jobs", b"0"]);
    blocked.flush().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_field(&primary, "clients", "blocked_clients")
        .await
        .as_deref()
        != Some("1")
    {
        assert!(Instant::now() < deadline, "the client never blocked");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(call(&mut c, &["RPUSH", "jobs", "j1", "j2"]).await, int(2));
    let served = blocked.read_reply().await.unwrap();
    assert_eq!(served, Frame::bulk_array(["jobs", "j1"]));
    for i in 0..50 {
        let member = format!("m{i}");
        call(&mut c, &["ZADD", "board", &i.to_string(), &member]).await;
        call(&mut c, &["HSET", "user:1", &member, "v"]).await;
        call(&mut c, &["SADD", "tags", &member]).await;
    }
    call(&mut c, &["ZREMRANGEBYRANK", "board", "0", "9"]).await;
    call(&mut c, &["HDEL", "user:1", "m3"]).await;
    // Wait until the replica applied the whole stream, then compare every key.
    loop {
        assert!(Instant::now() < deadline, "the replica did not catch up");
        let target = info_field(&primary, "replication", "master_repl_offset").await;
        let done = info_field(&replica, "replication", "slave_repl_offset").await;
        let up = info_field(&replica, "replication", "master_link_status").await;
        if up.as_deref() == Some("up") && done.is_some() && done == target {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut r = connect(&replica).await;
    assert_eq!(
        call(&mut r, &["DBSIZE"]).await,
        call(&mut c, &["DBSIZE"]).await
    );
    assert_eq!(call(&mut r, &["ZCARD", "board"]).await, int(43));
    for key in ["user:1", "queue", "tags", "board", "jobs"] {
        assert_eq!(
            call(&mut r, &["DUMP", key]).await,
            call(&mut c, &["DUMP", key]).await,
            "{key}"
        );
    }
    assert_eq!(
        call(&mut r, &["LRANGE", "jobs", "0", "-1"]).await,
        Frame::bulk_array(["j2"])
    );
    replica.stop().await;
    primary.stop().await;
}

#[tokio::test]
async fn shutdown_ends_a_blocked_client() {
    let server = start(&[]).await;
    let mut c = connect(&server).await;
    c.queue([&b"BLPOP"[..], b"never", b"0"]);
    c.flush().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_field(&server, "clients", "blocked_clients")
        .await
        .as_deref()
        != Some("1")
    {
        assert!(Instant::now() < deadline, "the client never blocked");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // `stop` waits for every connection to finish: it returns only because the blocked
    // client was released.
    server.stop().await;
    // The blocked client got its answer before the connection closed.
    assert_eq!(c.read_reply().await.unwrap(), Frame::NullArray);
}

#[tokio::test]
async fn the_redis_client_library_drives_a_leaderboard() {
    use redis::AsyncCommands;
    let server = start(&[]).await;
    let client = redis::Client::open(format!("redis://{}/", server.addr())).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = con.zadd("leaderboard", "player1", 1500).await.unwrap();
    let _: () = con.zadd("leaderboard", "player2", 1800).await.unwrap();
    let score: f64 = con.zincr("leaderboard", "player1", 400).await.unwrap();
    assert_eq!(score, 1900.0);
    let top: Vec<(String, f64)> = con.zrevrange_withscores("leaderboard", 0, 9).await.unwrap();
    assert_eq!(
        top,
        vec![("player1".into(), 1900.0), ("player2".into(), 1800.0)]
    );
    let rank: Option<i64> = con.zrevrank("leaderboard", "player2").await.unwrap();
    assert_eq!(rank, Some(1));
    let _: () = con
        .hset_multiple("session:1", &[("user", "ada"), ("cart", "3")])
        .await
        .unwrap();
    let cart: i64 = con.hincr("session:1", "cart", 1).await.unwrap();
    assert_eq!(cart, 4);
    let _: () = con.rpush("jobs", &["a", "b"]).await.unwrap();
    let job: Option<(String, String)> = con.blpop("jobs", 0.0).await.unwrap();
    assert_eq!(job, Some(("jobs".into(), "a".into())));
    let members: std::collections::HashSet<String> = {
        let _: () = con.sadd("online", &["ada", "bob"]).await.unwrap();
        con.smembers("online").await.unwrap()
    };
    assert_eq!(members.len(), 2);
    server.stop().await;
}

/// Pushes `n` elements in pipelined chunks: LPUSH for even i, RPUSH for odd i.
async fn push_many(c: &mut RespClient, key: &str, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        for &i in chunk {
            let side = if i % 2 == 0 { "LPUSH" } else { "RPUSH" };
            c.queue([side, key, &i.to_string()].map(|w| bytes::Bytes::from(w.to_owned())));
        }
        c.flush().await.unwrap();
        for &i in chunk {
            assert_eq!(c.read_reply().await.unwrap(), int(i as i64 + 1));
        }
    }
}

/// 20,000 pushes to one list under `--dir` (stored in pages of 64 positions, not as one
/// record rewritten per push), then a restart: the same list, in the same order.
#[tokio::test]
async fn a_long_list_built_by_pushes_survives_a_restart_in_order() {
    let dir = temp_dir("long-list");
    let args = ["--dir", dir.to_str().unwrap()];
    let server = start(&args).await;
    let mut c = connect(&server).await;
    push_many(&mut c, "big", 20_000).await;
    assert_eq!(call(&mut c, &["LPOP", "big"]).await, bulk("19998"));
    assert_eq!(call(&mut c, &["RPOP", "big"]).await, bulk("19999"));
    assert_eq!(
        call(&mut c, &["LSET", "big", "1", "second"]).await,
        Frame::ok()
    );
    let before = call(&mut c, &["LRANGE", "big", "0", "-1"]).await;
    let Frame::Array(items) = &before else {
        panic!("{before:?}")
    };
    assert_eq!(items.len(), 19_998);
    // Even numbers were pushed left (so they come out descending), odd ones right.
    assert_eq!(items[0], bulk("19996"));
    assert_eq!(items[1], bulk("second"));
    assert_eq!(items[9_998], bulk("0"));
    assert_eq!(items[9_999], bulk("1"));
    assert_eq!(items[19_997], bulk("19997"));
    server.stop().await;
    // 9,999 positions on each side of the list's origin, 64 to a page: 157 pages each.
    assert_eq!(kv::storage::count_elements(&dir).unwrap(), 2 * 157);

    let server = start(&args).await;
    let mut c = connect(&server).await;
    assert_eq!(call(&mut c, &["LRANGE", "big", "0", "-1"]).await, before);
    // Pushing and popping after the restart continues from the stored head and tail.
    assert_eq!(call(&mut c, &["LPUSH", "big", "new"]).await, int(19_999));
    assert_eq!(
        call(&mut c, &["RPOP", "big", "2"]).await,
        Frame::bulk_array(["19997", "19995"])
    );
    server.stop().await;
    let server = start(&args).await;
    let mut c = connect(&server).await;
    assert_eq!(call(&mut c, &["LINDEX", "big", "0"]).await, bulk("new"));
    assert_eq!(call(&mut c, &["LINDEX", "big", "-1"]).await, bulk("19993"));
    assert_eq!(call(&mut c, &["LLEN", "big"]).await, int(19_997));
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A collection whose TTL passes while the server is down is gone after the restart —
/// its header and every element; one whose TTL has not passed is there with it. A
/// deleted collection leaves no element behind either.
#[tokio::test]
async fn collections_that_expire_while_down_leave_no_elements() {
    let dir = temp_dir("expired-elements");
    let args = ["--dir", dir.to_str().unwrap(), "--fsync", "always"];
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let server = start_with_clock(&args, clock.clone()).await;
    let mut c = connect(&server).await;
    for (suffix, ttl) in [("short", "100"), ("long", "10000")] {
        let (h, s, z) = (
            format!("h:{suffix}"),
            format!("s:{suffix}"),
            format!("z:{suffix}"),
        );
        call(&mut c, &["HSET", &h, "f1", "v1", "f2", "v2"]).await;
        call(&mut c, &["SADD", &s, "a", "b", "c"]).await;
        call(&mut c, &["ZADD", &z, "1", "a", "2.5", "b"]).await;
        for key in [&h, &s, &z] {
            assert_eq!(call(&mut c, &["EXPIRE", key, ttl]).await, int(1));
        }
    }
    call(&mut c, &["RPUSH", "deleted", "x", "y"]).await;
    call(&mut c, &["DEL", "deleted"]).await;
    server.stop().await;
    assert_eq!(kv::storage::count_elements(&dir).unwrap(), 2 * (2 + 3 + 2));

    clock.advance(200_000);
    let server = start_with_clock(&args, clock.clone()).await;
    let mut c = connect(&server).await;
    assert_eq!(call(&mut c, &["DBSIZE"]).await, int(3));
    assert_eq!(
        call(&mut c, &["HGETALL", "h:short"]).await,
        Frame::Array(vec![])
    );
    assert_eq!(call(&mut c, &["TTL", "h:long"]).await, int(9_800));
    assert_eq!(call(&mut c, &["TTL", "s:long"]).await, int(9_800));
    assert_eq!(call(&mut c, &["HGET", "h:long", "f2"]).await, bulk("v2"));
    assert_eq!(call(&mut c, &["SCARD", "s:long"]).await, int(3));
    assert_eq!(call(&mut c, &["ZSCORE", "z:long", "b"]).await, bulk("2.5"));
    server.stop().await;
    // Only the live collections' elements remain.
    assert_eq!(kv::storage::count_elements(&dir).unwrap(), 2 + 3 + 2);
    let _ = std::fs::remove_dir_all(dir);
}

/// FLUSHDB and SWAPDB move or drop a database's elements with its keys.
#[tokio::test]
async fn flushdb_and_swapdb_carry_collections_across_a_restart() {
    let dir = temp_dir("flush-swap");
    let args = ["--dir", dir.to_str().unwrap(), "--fsync", "always"];
    let server = start(&args).await;
    let mut c = connect(&server).await;
    call(&mut c, &["RPUSH", "l", "a", "b", "c"]).await;
    call(&mut c, &["HSET", "h", "f", "v"]).await;
    call(&mut c, &["SELECT", "1"]).await;
    call(&mut c, &["SADD", "s", "m1", "m2"]).await;
    call(&mut c, &["ZADD", "z", "1", "m"]).await;
    call(&mut c, &["SELECT", "2"]).await;
    call(&mut c, &["RPUSH", "doomed", "x", "y", "z"]).await;
    call(&mut c, &["FLUSHDB"]).await;
    call(&mut c, &["SWAPDB", "0", "1"]).await;
    // Written after the swap: lands in the swapped database.
    call(&mut c, &["SELECT", "0"]).await;
    call(&mut c, &["SADD", "s", "m3"]).await;
    server.stop().await;
    // The list's 3 elements share one page.
    assert_eq!(kv::storage::count_elements(&dir).unwrap(), 1 + 1 + 3 + 1);

    let server = start(&args).await;
    let mut c = connect(&server).await;
    let members = call(&mut c, &["SMEMBERS", "s"]).await;
    let Frame::Array(mut members) = members else {
        panic!("{members:?}")
    };
    members.sort_by(|a, b| a.as_bytes().cmp(&b.as_bytes()));
    assert_eq!(members, vec![bulk("m1"), bulk("m2"), bulk("m3")]);
    assert_eq!(call(&mut c, &["ZSCORE", "z", "m"]).await, bulk("1"));
    assert_eq!(call(&mut c, &["DBSIZE"]).await, int(2));
    call(&mut c, &["SELECT", "1"]).await;
    let lrange = call(&mut c, &["LRANGE", "l", "0", "-1"]).await;
    assert_eq!(lrange, Frame::bulk_array(["a", "b", "c"]));
    assert_eq!(call(&mut c, &["HGET", "h", "f"]).await, bulk("v"));
    call(&mut c, &["SELECT", "2"]).await;
    assert_eq!(call(&mut c, &["DBSIZE"]).await, int(0));
    call(&mut c, &["FLUSHALL"]).await;
    server.stop().await;
    assert_eq!(kv::storage::count_elements(&dir).unwrap(), 0);
    let _ = std::fs::remove_dir_all(dir);
}

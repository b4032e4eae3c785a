#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! kv over the network: databases, expiry, persistence, SCAN, DUMP/RESTORE, limits.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{bulk, call, connect, err, int, start, start_with_clock, temp_dir};
use kv::clock::ManualClock;
use proto::Frame;

fn info_field(info: &Frame, name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(info.as_bytes()?).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")).map(str::to_owned))
}

#[tokio::test]
async fn sixteen_databases_and_select() {
    let server = start(&[]).await;
    let mut c = connect(&server).await;
    assert_eq!(call(&mut c, &["SET", "k", "zero"]).await, Frame::ok());
    assert_eq!(call(&mut c, &["SELECT", "15"]).await, Frame::ok());
    assert_eq!(call(&mut c, &["GET", "k"]).await, Frame::Null);
    assert_eq!(call(&mut c, &["SET", "k", "fifteen"]).await, Frame::ok());
    let list = call(&mut c, &["CLIENT", "INFO"]).await;
    assert!(String::from_utf8_lossy(list.as_bytes().unwrap()).contains(" db=15 "));
    assert_eq!(
        call(&mut c, &["SELECT", "16"]).await,
        err("ERR DB index is out of range")
    );
    assert_eq!(call(&mut c, &["SWAPDB", "0", "15"]).await, Frame::ok());
    assert_eq!(call(&mut c, &["GET", "k"]).await, bulk("zero"));
    let mut other = connect(&server).await;
    assert_eq!(call(&mut other, &["GET", "k"]).await, bulk("fifteen"));
    assert_eq!(
        call(&mut other, &["COPY", "k", "k", "DB", "15"]).await,
        int(0)
    );
    assert_eq!(
        call(&mut other, &["COPY", "k", "k", "DB", "15", "REPLACE"]).await,
        int(1)
    );
    assert_eq!(call(&mut c, &["GET", "k"]).await, bulk("fifteen"));
    let info = call(&mut other, &["INFO", "keyspace"]).await;
    assert_eq!(
        info_field(&info, "db0").as_deref(),
        Some("keys=1,expires=0,avg_ttl=0")
    );
    assert_eq!(
        info_field(&info, "db15").as_deref(),
        Some("keys=1,expires=0,avg_ttl=0")
    );
    server.stop().await;
}

#[tokio::test]
async fn expired_keys_vanish_and_the_sweep_reclaims_them() {
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let server = start_with_clock(&[], clock.clone()).await;
    let mut c = connect(&server).await;
    for i in 0..200 {
        let key = format!("tmp{i}");
        assert_eq!(
            call(&mut c, &["SET", &key, "v", "PX", "1000"]).await,
            Frame::ok()
        );
    }
    assert_eq!(call(&mut c, &["SET", "keep", "v"]).await, Frame::ok());
    assert_eq!(call(&mut c, &["PTTL", "tmp0"]).await, int(1000));
    assert_eq!(call(&mut c, &["TTL", "tmp0"]).await, int(1));
    assert_eq!(call(&mut c, &["DBSIZE"]).await, int(201));
    clock.advance(1000);
    // Gone the moment their deadline passes, before any sweep has run.
    assert_eq!(call(&mut c, &["DBSIZE"]).await, int(1));
    assert_eq!(call(&mut c, &["GET", "tmp1"]).await, Frame::Null);
    assert_eq!(call(&mut c, &["EXISTS", "tmp2", "tmp3"]).await, int(0));
    assert_eq!(
        call(&mut c, &["KEYS", "*"]).await,
        Frame::bulk_array(["keep"])
    );
    assert_eq!(
        call(&mut c, &["SCAN", "0", "COUNT", "1000"]).await,
        Frame::Array(vec![bulk("0"), Frame::bulk_array(["keep"])])
    );
    assert_eq!(call(&mut c, &["RANDOMKEY"]).await, bulk("keep"));
    // The untouched ones are reclaimed by the background sweep: expired_keys reaches 200.
    let mut expired = 0;
    for _ in 0..200 {
        let info = call(&mut c, &["INFO", "stats"]).await;
        expired = info_field(&info, "expired_keys").unwrap().parse().unwrap();
        if expired == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(expired, 200);
    server.stop().await;
}

#[tokio::test]
async fn data_and_deadlines_survive_a_restart() {
    let dir = temp_dir("restart");
    let dir_arg = dir.to_str().unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let server = start_with_clock(&["--dir", dir_arg], clock.clone()).await;
    let mut c = connect(&server).await;
    assert_eq!(call(&mut c, &["SET", "plain", "v1"]).await, Frame::ok());
    assert_eq!(
        call(&mut c, &["SET", "ttl", "v2", "EX", "100"]).await,
        Frame::ok()
    );
    assert_eq!(
        call(&mut c, &["SET", "short", "v3", "PX", "500"]).await,
        Frame::ok()
    );
    assert_eq!(call(&mut c, &["INCRBY", "n", "41"]).await, int(41));
    assert_eq!(call(&mut c, &["INCR", "n"]).await, int(42));
    assert_eq!(call(&mut c, &["SET", "gone", "x"]).await, Frame::ok());
    assert_eq!(call(&mut c, &["DEL", "gone"]).await, int(1));
    let binary = Bytes::from_static(b"\x00\xff\r\nbin");
    c.call([Bytes::from_static(b"SET"), binary.clone(), binary.clone()])
        .await
        .unwrap();
    // Database 3 gets data, is swapped to 4; database 5 is flushed.
    assert_eq!(call(&mut c, &["SELECT", "3"]).await, Frame::ok());
    assert_eq!(call(&mut c, &["SET", "moved", "yes"]).await, Frame::ok());
    assert_eq!(call(&mut c, &["SWAPDB", "3", "4"]).await, Frame::ok());
    assert_eq!(call(&mut c, &["SELECT", "5"]).await, Frame::ok());
    assert_eq!(call(&mut c, &["SET", "flushed", "no"]).await, Frame::ok());
    assert_eq!(call(&mut c, &["FLUSHDB"]).await, Frame::ok());
    assert_eq!(
        call(&mut c, &["SET", "after-flush", "yes"]).await,
        Frame::ok()
    );
    server.stop().await;

    // Ten seconds pass while the server is down: `short` expires, `ttl` has 90 s left.
    clock.advance(10_000);
    let server = start_with_clock(&["--dir", dir_arg], clock.clone()).await;
    let mut c = connect(&server).await;
    assert_eq!(call(&mut c, &["GET", "plain"]).await, bulk("v1"));
    assert_eq!(call(&mut c, &["GET", "ttl"]).await, bulk("v2"));
    assert_eq!(call(&mut c, &["TTL", "ttl"]).await, int(90));
    assert_eq!(call(&mut c, &["GET", "short"]).await, Frame::Null);
    assert_eq!(call(&mut c, &["GET", "n"]).await, bulk("42"));
    assert_eq!(call(&mut c, &["GET", "gone"]).await, Frame::Null);
    let got = c
        .call([Bytes::from_static(b"GET"), binary.clone()])
        .await
        .unwrap();
    assert_eq!(got, Frame::Bulk(binary));
    assert_eq!(call(&mut c, &["DBSIZE"]).await, int(4));
    assert_eq!(call(&mut c, &["SELECT", "4"]).await, Frame::ok());
    assert_eq!(call(&mut c, &["GET", "moved"]).await, bulk("yes"));
    assert_eq!(call(&mut c, &["SELECT", "5"]).await, Frame::ok());
    assert_eq!(
        call(&mut c, &["KEYS", "*"]).await,
        Frame::bulk_array(["after-flush"])
    );
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn fsync_always_and_save() {
    let dir = temp_dir("always");
    let server = start(&["--dir", dir.to_str().unwrap(), "--fsync", "always"]).await;
    let mut c = connect(&server).await;
    assert_eq!(call(&mut c, &["SET", "a", "1"]).await, Frame::ok());
    let info = call(&mut c, &["INFO", "persistence"]).await;
    assert_eq!(
        info_field(&info, "rdb_changes_since_last_save").as_deref(),
        Some("0")
    );
    assert_eq!(
        info_field(&info, "infralab_fsync").as_deref(),
        Some("always")
    );
    assert_eq!(call(&mut c, &["SAVE"]).await, Frame::ok());
    assert!(matches!(call(&mut c, &["LASTSAVE"]).await, Frame::Integer(t) if t > 0));
    // Concurrent writers share flushes (group commit) and all complete.
    let mut tasks = Vec::new();
    for w in 0..8 {
        let addr = server.addr();
        tasks.push(tokio::spawn(async move {
            let mut c = service::RespClient::connect(addr).await.unwrap();
            for i in 0..25 {
                let key = format!("w{w}-{i}");
                assert_eq!(call(&mut c, &["SET", &key, "v"]).await, Frame::ok());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(call(&mut c, &["DBSIZE"]).await, int(201));
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn scan_returns_every_stable_key_while_others_churn() {
    let server = start(&[]).await;
    let mut c = connect(&server).await;
    for i in 0..1000 {
        let key = format!("stable:{i}");
        c.queue([
            Bytes::from_static(b"SET"),
            Bytes::from(key),
            Bytes::from_static(b"v"),
        ]);
    }
    c.flush().await.unwrap();
    for _ in 0..1000 {
        assert_eq!(c.read_reply().await.unwrap(), Frame::ok());
    }
    // A second client adds and deletes other keys continuously.
    let addr = server.addr();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut c = service::RespClient::connect(addr).await.unwrap();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 100_000 {
                let key = format!("churn:{i}");
                call(&mut c, &["SET", &key, "v"]).await;
                if i >= 3 {
                    let old = format!("churn:{}", i - 3);
                    call(&mut c, &["DEL", &old]).await;
                }
                i += 1;
            }
        })
    };
    let mut seen = HashSet::new();
    let mut cursor = "0".to_string();
    loop {
        let reply = call(&mut c, &["SCAN", &cursor, "COUNT", "17"]).await;
        let Frame::Array(parts) = reply else {
            panic!("{reply:?}")
        };
        let Frame::Array(keys) = &parts[1] else {
            panic!()
        };
        for k in keys {
            seen.insert(k.as_bytes().unwrap().clone());
        }
        cursor = String::from_utf8(parts[0].as_bytes().unwrap().to_vec()).unwrap();
        tokio::task::yield_now().await;
        if cursor == "0" {
            break;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    churn.await.unwrap();
    for i in 0..1000 {
        assert!(
            seen.contains(format!("stable:{i}").as_bytes()),
            "missed stable:{i}"
        );
    }
    // MATCH and TYPE filter.
    let reply = call(
        &mut c,
        &["SCAN", "0", "MATCH", "stable:99?", "COUNT", "100000"],
    )
    .await;
    let Frame::Array(parts) = reply else { panic!() };
    let Frame::Array(keys) = &parts[1] else {
        panic!()
    };
    assert_eq!(keys.len(), 10);
    assert_eq!(
        call(&mut c, &["SCAN", "x"]).await,
        err("ERR invalid cursor")
    );
    server.stop().await;
}

#[tokio::test]
async fn dump_and_restore_move_values_with_a_checksum() {
    let server = start(&[]).await;
    let mut c = connect(&server).await;
    assert_eq!(
        call(&mut c, &["SET", "src", "payload\x00bytes"]).await,
        Frame::ok()
    );
    let Frame::Bulk(payload) = call(&mut c, &["DUMP", "src"]).await else {
        panic!("dump")
    };
    let restore = |key: &'static str, ttl: &'static str, payload: Bytes, extra: &[&'static str]| {
        let mut words = vec![
            Bytes::from_static(b"RESTORE"),
            Bytes::from_static(key.as_bytes()),
            Bytes::from_static(ttl.as_bytes()),
            payload,
        ];
        words.extend(extra.iter().map(|w| Bytes::from_static(w.as_bytes())));
        words
    };
    assert_eq!(
        c.call(restore("dst", "5000", payload.clone(), &[]))
            .await
            .unwrap(),
        Frame::ok()
    );
    assert_eq!(
        call(&mut c, &["GET", "dst"]).await,
        bulk("payload\x00bytes")
    );
    assert!(matches!(call(&mut c, &["PTTL", "dst"]).await, Frame::Integer(t) if t > 4000));
    assert_eq!(
        c.call(restore("dst", "0", payload.clone(), &[]))
            .await
            .unwrap(),
        err("BUSYKEY Target key name already exists.")
    );
    assert_eq!(
        c.call(restore("dst", "0", payload.clone(), &["REPLACE"]))
            .await
            .unwrap(),
        Frame::ok()
    );
    assert_eq!(call(&mut c, &["TTL", "dst"]).await, int(-1));
    let mut damaged = payload.to_vec();
    damaged[2] ^= 0x40;
    assert_eq!(
        c.call(restore("bad", "0", Bytes::from(damaged), &[]))
            .await
            .unwrap(),
        err("ERR DUMP payload version or checksum are wrong")
    );
    assert_eq!(call(&mut c, &["DUMP", "missing"]).await, Frame::Null);
    server.stop().await;
}

#[tokio::test]
async fn maxmemory_refuses_growing_writes_but_not_deletes() {
    let server = start(&["--maxmemory", "2000"]).await;
    let mut c = connect(&server).await;
    let big = "x".repeat(3000);
    assert_eq!(call(&mut c, &["SET", "big", &big]).await, Frame::ok());
    let oom = err("OOM command not allowed when used memory > 'maxmemory'.");
    assert_eq!(call(&mut c, &["SET", "more", "v"]).await, oom);
    assert_eq!(call(&mut c, &["APPEND", "big", "v"]).await, oom);
    assert_eq!(call(&mut c, &["GET", "big"]).await, bulk(&big));
    assert_eq!(call(&mut c, &["EXPIRE", "big", "100"]).await, int(1));
    assert_eq!(call(&mut c, &["DEL", "big"]).await, int(1));
    assert_eq!(call(&mut c, &["SET", "more", "v"]).await, Frame::ok());
    assert_eq!(
        call(&mut c, &["CONFIG", "GET", "maxmemory"]).await,
        Frame::bulk_array(["maxmemory", "2000"])
    );
    assert_eq!(
        call(&mut c, &["CONFIG", "SET", "maxmemory", "0"]).await,
        Frame::ok()
    );
    let info = call(&mut c, &["INFO", "memory"]).await;
    assert_eq!(info_field(&info, "maxmemory").as_deref(), Some("0"));
    server.stop().await;
}

#[tokio::test]
async fn info_counts_hits_and_misses() {
    let server = start(&[]).await;
    let mut c = connect(&server).await;
    call(&mut c, &["SET", "k", "v"]).await;
    call(&mut c, &["GET", "k"]).await;
    call(&mut c, &["GET", "nope"]).await;
    let info = call(&mut c, &["INFO"]).await;
    assert_eq!(info_field(&info, "keyspace_hits").as_deref(), Some("1"));
    assert_eq!(info_field(&info, "keyspace_misses").as_deref(), Some("1"));
    assert_eq!(info_field(&info, "aof_enabled").as_deref(), Some("0"));
    assert!(info_field(&info, "used_memory").is_some());
    let Frame::Array(time) = call(&mut c, &["TIME"]).await else {
        panic!()
    };
    assert_eq!(time.len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn a_redis_client_library_works_against_it() {
    let server = start(&[]).await;
    let client = redis::Client::open(format!("redis://{}/", server.addr())).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg("user:1")
        .arg("alice")
        .arg("EX")
        .arg(60)
        .query_async(&mut con)
        .await
        .unwrap();
    let name: String = redis::cmd("GET")
        .arg("user:1")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(name, "alice");
    let ttl: i64 = redis::cmd("TTL")
        .arg("user:1")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(ttl, 60);
    let n: i64 = redis::cmd("INCRBY")
        .arg("hits")
        .arg(5)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(n, 5);
    let missing: Option<String> = redis::cmd("GET")
        .arg("nope")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(missing, None);
    server.stop().await;
}

#[tokio::test]
async fn redis_benchmark_runs_without_errors() {
    let server = start(&[]).await;
    let port = server.addr().port().to_string();
    for pipeline in ["1", "16"] {
        let out = tokio::process::Command::from(testkit::peer("redis-benchmark"))
            .args([
                "-p",
                &port,
                "-t",
                "set,get,incr,mset",
                "-c",
                "10",
                "-n",
                "2000",
            ])
            .args(["-P", pipeline, "-q"])
            .output()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "redis-benchmark did not run ({e}): {}",
                    testkit::INSTALL_PEERS
                )
            });
        let text = String::from_utf8_lossy(&out.stdout).replace('\r', "\n")
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(!text.to_ascii_lowercase().contains("error"), "{text}");
        for test in ["SET", "GET", "INCR", "MSET"] {
            assert!(text.contains(test), "{test} did not run: {text}");
        }
    }
    server.stop().await;
}

#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! The cache as a Redis client sees it: the same command corpus sent to the cache and to
//! a real redis-server must get the same replies; memory stays bounded under concurrent
//! writers; policy and limit change at runtime with CONFIG SET.

mod common;

use bytes::Bytes;
use common::*;
use proto::Frame;
use service::RespClient;
use testkit::RedisServer;

/// Commands whose replies must be identical (TTL values are checked separately).
const CORPUS: &[&str] = &[
    "FLUSHALL",
    "GET missing",
    "SET k v",
    "GET k",
    "SET k v2 NX",
    "SET k v3 XX GET",
    "GET k",
    "SET fresh x XX",
    "SET fresh x NX GET",
    "SET k v EX 0",
    "SET k v EX -5",
    "SET k v EX 10 PX 100",
    "SET k v NX XX",
    "SET k v BOGUS",
    "SET k v EX",
    "SET k v EX notanumber",
    "SET k",
    "SET t v EX 100",
    "TTL t",
    "SET t v2 KEEPTTL",
    "TTL t",
    "SET t v3",
    "TTL t",
    "PERSIST t",
    "EXPIRE t 100",
    "PERSIST t",
    "PERSIST t",
    "EXPIRE t 100 XX",
    "EXPIRE t 100 NX",
    "EXPIRE t 100 XX",
    "EXPIRE t 50 GT",
    "EXPIRE t 500 GT",
    "EXPIRE t 50 LT",
    "EXPIRE t 500 LT",
    "EXPIRE t 5 NX XX",
    "EXPIRE t 5 GT LT",
    "EXPIRE t 5 FOO",
    "EXPIRE t abc",
    "EXPIRE missing 10",
    "TTL missing",
    "PTTL missing",
    "TTL k",
    "PEXPIRE k -1",
    "EXISTS k",
    "MSET a 1 b 2 c 3",
    "MSET a 1 b",
    "MGET a b nope c",
    "EXISTS a b nope a",
    "DEL a nope b",
    "UNLINK c",
    "INCR n",
    "INCRBY n 41",
    "DECR n",
    "DECRBY n 10",
    "INCRBY n notanumber",
    "SET s hello",
    "INCR s",
    "SET big 9223372036854775807",
    "INCR big",
    "DECRBY n -9223372036854775808",
    "TYPE n",
    "TYPE nope",
    "SETEX sx 100 v",
    "SETEX sx 0 v",
    "PSETEX px 100000 v",
    "SETNX sx other",
    "SETNX sn v",
    "DBSIZE",
    "GET",
    "MGET",
    "FLUSHALL BOGUS",
    "SCAN 0 COUNT 0",
    "FLUSHALL",
    "DBSIZE",
];

async fn run_corpus(c: &mut RespClient) -> Vec<Frame> {
    let mut replies = Vec::new();
    for command in CORPUS {
        let reply = call(c, command).await;
        // TTLs tick; compare their presence, not the exact number.
        let reply = match (
            command.starts_with("TTL") || command.starts_with("PTTL"),
            reply,
        ) {
            (true, Frame::Integer(n)) if n > 0 => Frame::simple("positive"),
            (_, other) => other,
        };
        replies.push(reply);
    }
    replies
}

#[tokio::test]
async fn replies_match_redis_server() {
    let redis = RedisServer::start(&[]);
    let cache = start_cache(&[]).await;
    let expected = run_corpus(&mut redis_client(&redis).await).await;
    let actual = run_corpus(&mut client(&cache).await).await;
    for ((command, want), got) in CORPUS.iter().zip(&expected).zip(&actual) {
        assert_eq!(got, want, "{command}");
    }
    cache.stop().await;
}

async fn sorted_keys(c: &mut RespClient, command: &str) -> Vec<Frame> {
    let Frame::Array(mut keys) = call(c, command).await else {
        panic!()
    };
    keys.sort_by(|a, b| a.as_bytes().cmp(&b.as_bytes()));
    keys
}

#[tokio::test]
async fn keys_and_scan_match_redis_server() {
    let redis = RedisServer::start(&[]);
    let cache = start_cache(&[]).await;
    let mut r = redis_client(&redis).await;
    let mut c = client(&cache).await;
    for i in 0..120 {
        let set = format!("SET {}:{i} v", if i % 3 == 0 { "user" } else { "post" });
        call(&mut r, &set).await;
        call(&mut c, &set).await;
    }
    assert_eq!(
        sorted_keys(&mut c, "KEYS user:*").await,
        sorted_keys(&mut r, "KEYS user:*").await
    );
    // A full SCAN with MATCH returns the same set, however the cursors differ.
    let mut seen = Vec::new();
    let mut cursor = "0".to_string();
    loop {
        let Frame::Array(reply) = c
            .call(["SCAN", &cursor, "MATCH", "post:*", "COUNT", "7"].map(str::to_owned))
            .await
            .unwrap()
        else {
            panic!()
        };
        let Frame::Array(keys) = &reply[1] else {
            panic!()
        };
        seen.extend(keys.iter().cloned());
        cursor = String::from_utf8(reply[0].as_bytes().unwrap().to_vec()).unwrap();
        if cursor == "0" {
            break;
        }
    }
    seen.sort_by(|a, b| a.as_bytes().cmp(&b.as_bytes()));
    seen.dedup();
    assert_eq!(seen, sorted_keys(&mut r, "KEYS post:*").await);
    cache.stop().await;
}

#[tokio::test]
async fn a_redis_client_library_works_unchanged() {
    use redis::AsyncCommands;
    let cache = start_cache(&["--default-ttl", "3600"]).await;
    let client = redis::Client::open(format!("redis://{}/", cache.addr())).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = con.set("greeting", "hello").await.unwrap();
    let got: String = con.get("greeting").await.unwrap();
    assert_eq!(got, "hello");
    let _: () = con.set_ex("session", "s", 30).await.unwrap();
    let ttl: i64 = con.ttl("session").await.unwrap();
    assert!((29..=30).contains(&ttl));
    let ttl: i64 = con.ttl("greeting").await.unwrap();
    assert!(
        (3599..=3600).contains(&ttl),
        "the default TTL applies: {ttl}"
    );
    let n: i64 = con.incr("visits", 5).await.unwrap();
    assert_eq!(n, 5);
    let values: Vec<Option<String>> = con.mget(&["greeting", "nope"]).await.unwrap();
    assert_eq!(values, vec![Some("hello".to_string()), None]);
    let deleted: i64 = con.del("greeting").await.unwrap();
    assert_eq!(deleted, 1);
    let size: i64 = redis::cmd("DBSIZE").query_async(&mut con).await.unwrap();
    assert_eq!(size, 2);
    cache.stop().await;
}

async fn memory(c: &mut RespClient) -> (u64, u64) {
    (
        info_u64(c, "used_memory").await,
        info_u64(c, "maxmemory").await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn used_memory_stays_within_maxmemory_under_concurrent_writes() {
    const MAX_VALUE: usize = 2000;
    for policy in ["lru", "lfu", "random", "ttl"] {
        let cache = start_cache(&[
            "--maxmemory",
            "200000",
            "--maxmemory-policy",
            policy,
            "--default-ttl",
            "600",
        ])
        .await;
        let mut writers = Vec::new();
        for w in 0..8 {
            let mut c = client(&cache).await;
            writers.push(tokio::spawn(async move {
                for i in 0..400usize {
                    let size = (i * 37 + w * 101) % MAX_VALUE;
                    let key = format!("w{w}:{i}");
                    // Pipelined in small batches: more writes in flight at once.
                    c.queue([
                        Bytes::from_static(b"SET"),
                        Bytes::from(key),
                        Bytes::from(vec![b'x'; size]),
                    ]);
                    if i % 8 == 7 {
                        c.flush().await.unwrap();
                        for _ in 0..8 {
                            assert_eq!(c.read_reply().await.unwrap(), Frame::ok());
                        }
                    }
                }
            }));
        }
        let mut monitor = client(&cache).await;
        let bound = 200_000 + cache::memory::entry_size(10, MAX_VALUE);
        while !writers.iter().all(|w| w.is_finished()) {
            let (used, max) = memory(&mut monitor).await;
            assert_eq!(max, 200_000);
            assert!(used <= bound, "{policy}: used_memory {used} > {bound}");
        }
        for w in writers {
            w.await.unwrap();
        }
        let (used, _) = memory(&mut monitor).await;
        assert!(used <= 200_000, "{policy}: {used}");
        assert!(info_u64(&mut monitor, "evicted_keys").await > 0, "{policy}");
        cache.stop().await;
    }
}

#[tokio::test]
async fn config_set_changes_limit_and_policy_at_runtime() {
    let cache = start_cache(&["--maxmemory", "0", "--maxmemory-policy", "lru"]).await;
    let mut c = client(&cache).await;
    for i in 0..100 {
        call(&mut c, &format!("SET key:{i:03} value")).await;
    }
    assert_eq!(
        call(&mut c, "CONFIG GET maxmemory*").await,
        Frame::Array(vec![
            bulk("maxmemory"),
            bulk("0"),
            bulk("maxmemory-policy"),
            bulk("lru"),
        ])
    );
    let entry = cache::memory::entry_size(7, 5);
    // Shrink to ten entries: the 90 least recently used leave at once.
    assert_eq!(
        call(&mut c, &format!("CONFIG SET maxmemory {}", 10 * entry)).await,
        Frame::ok()
    );
    assert_eq!(call(&mut c, "DBSIZE").await, Frame::Integer(10));
    assert_eq!(
        call(&mut c, "EXISTS key:089 key:090 key:099").await,
        Frame::Integer(2)
    );
    assert_eq!(info_u64(&mut c, "evicted_keys").await, 90);
    assert_eq!(
        call(&mut c, "CONFIG SET maxmemory-policy allkeys-lfu").await,
        Frame::ok()
    );
    assert_eq!(info_field(&mut c, "maxmemory_policy").await, "lfu");
    assert_eq!(
        call(&mut c, "CONFIG SET maxmemory-policy noeviction").await,
        Frame::ok()
    );
    let Frame::Error(oom) = call(&mut c, "SET another value").await else {
        panic!("noeviction refuses writes over the limit")
    };
    assert!(oom.starts_with(b"OOM command not allowed"), "{oom:?}");
    assert_eq!(
        call(&mut c, "GET key:099").await,
        bulk("value"),
        "reads still work"
    );
    assert!(
        call(&mut c, "CONFIG SET maxmemory-policy sometimes")
            .await
            .is_error()
    );
    assert!(call(&mut c, "CONFIG SET maxmemory lots").await.is_error());
    assert_eq!(call(&mut c, "CONFIG SET maxmemory 1mb").await, Frame::ok());
    assert_eq!(info_u64(&mut c, "maxmemory").await, 1024 * 1024);
    assert_eq!(call(&mut c, "CONFIG SET default-ttl 60").await, Frame::ok());
    call(&mut c, "SET later v").await;
    assert_eq!(call(&mut c, "TTL later").await, Frame::Integer(60));
    assert!(
        info_field(&mut c, "db0")
            .await
            .starts_with("keys=11,expires=1,")
    );
    cache.stop().await;
}

#![allow(clippy::unwrap_used)] // test code: a panic is a test failure

mod common;

use std::collections::HashMap;

use common::{RedisServer, client, conn, connect, eventually, router, routes_to, shard_info};
use redis::AsyncCommands;

/// Kill a shard's primary under load: reads go on from its replica, writes to that shard
/// fail with an error, the other shard is unaffected; after a restart the primary is
/// used again.
#[tokio::test]
async fn primary_killed_reads_fall_over_writes_fail_fast_then_recover() {
    let p0 = RedisServer::start(&[]);
    let mut p1 = RedisServer::start(&[]);
    let r1 = RedisServer::replica_of(&p1);
    let config = format!(
        "probe_interval_ms = 50\nserver_failure_limit = 2\nserver_retry_timeout_ms = 60000\n\
         timeout_ms = 500\n\
         [[shards]]\nname = \"s0\"\nprimary = \"{}\"\n\
         [[shards]]\nname = \"s1\"\nprimary = \"{}\"\nreplicas = [\"{}\"]\n",
        p0.addr(),
        p1.addr(),
        r1.addr()
    );
    let (running, _) = router(&config).await;
    let mut c = conn(&running).await;

    // Some keys on each shard, replicated.
    let mut on: HashMap<String, Vec<String>> = HashMap::new();
    for i in 0..100 {
        let key = format!("k{i}");
        let () = c.set(&key, i).await.unwrap();
        let info = shard_info(&mut c, &key).await;
        on.entry(info["shard"].clone()).or_default().push(key);
    }
    let replica = client(&r1.addr());
    let expected = on["s1"].len();
    eventually("the replica has every s1 key", || {
        let replica = replica.clone();
        async move {
            let mut r = replica.get_multiplexed_async_connection().await.unwrap();
            redis::cmd("DBSIZE")
                .query_async::<usize>(&mut r)
                .await
                .unwrap()
                == expected
        }
    })
    .await;

    // A background load of reads and writes on s0 keeps running across the failure.
    let s0_keys = on["s0"].clone();
    let router_client = redis::Client::open(format!("redis://{}/", running.addr())).unwrap();
    let load = tokio::spawn(async move {
        let mut c = router_client
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        for round in 0..50 {
            for key in &s0_keys {
                let () = c.set(key, round).await.unwrap();
                let v: i64 = c.get(key).await.unwrap();
                assert_eq!(v, round);
            }
        }
    });

    p1.kill();
    // Reads of s1 keys continue, from the replica (a failed read is retried there, and
    // once the primary is ejected reads go there directly).
    for round in 0..3 {
        for key in &on["s1"] {
            let v: i64 = c
                .get(key)
                .await
                .unwrap_or_else(|e| panic!("round {round} {key}: {e}"));
            assert_eq!(format!("k{v}"), *key);
        }
    }
    // Writes to s1 fail with an error, never land elsewhere.
    let key = &on["s1"][0];
    let e = c.set::<_, _, ()>(key, "new").await.unwrap_err();
    assert!(
        e.to_string().contains("s1") || e.to_string().contains("backend"),
        "{e}"
    );
    let shards: redis::Value = redis::cmd("ROUTER")
        .arg("SHARDS")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(format!("{shards:?}").contains("ejected"), "{shards:?}");
    let mut p0c = connect(&p0.addr()).await;
    let stray: Option<String> = p0c.get(key).await.unwrap();
    assert_eq!(stray, None, "a write for s1 must not be remapped to s0");
    load.await.unwrap();

    // The primary comes back: the probes notice and writes are accepted again.
    p1.restart();
    let client = redis::Client::open(format!("redis://{}/", running.addr())).unwrap();
    let key = key.clone();
    eventually("writes to s1 succeed again", || {
        let client = client.clone();
        let key = key.clone();
        async move {
            let mut c = client.get_multiplexed_async_connection().await.unwrap();
            c.set::<_, _, ()>(&key, "back").await.is_ok()
        }
    })
    .await;
    let mut p1c = connect(&p1.addr()).await;
    let v: String = p1c.get(&key).await.unwrap();
    assert_eq!(v, "back");
    running.stop().await;
}

/// A backend that takes requests but never answers: each request waiting on it gets
/// "timed out" once the connection's watchdog finds its oldest reply `timeout_ms` late,
/// the connection is dropped, and the next request (on a fresh connection) is failed the
/// same way rather than hanging.
#[tokio::test]
async fn a_backend_that_stops_answering_times_out() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = silent.accept().await.unwrap();
            tokio::spawn(async move {
                let mut sink = [0u8; 4096];
                while let Ok(n) = tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    let config = format!(
        "timeout_ms = 200\nprobe_interval_ms = 60000\nserver_failure_limit = 1000\n\
         [[shards]]\nname = \"s0\"\nprimary = \"{addr}\"\n"
    );
    let (running, _) = router(&config).await;
    let mut c = conn(&running).await;
    for _ in 0..2 {
        let err = redis::cmd("GET")
            .arg("k")
            .query_async::<Option<String>>(&mut c)
            .await
            .unwrap_err();
        let expected = format!("backend {addr} timed out");
        assert!(err.to_string().contains(&expected), "{err}");
    }
    running.stop().await;
}

/// `remap_on_failure` (twemproxy's `auto_eject_hosts`): while s1's primary is ejected its
/// keys go to s0, so writes succeed — and when s1 returns its keys go back to it, where the
/// write made meanwhile is not. Availability bought with consistency, as documented.
#[tokio::test]
async fn remap_on_failure_sends_an_ejected_shards_keys_to_the_next_shard() {
    let p0 = RedisServer::start(&[]);
    let mut p1 = RedisServer::start(&[]);
    let config = format!(
        "remap_on_failure = true\nprobe_interval_ms = 50\nserver_failure_limit = 1\n\
         server_retry_timeout_ms = 60000\ntimeout_ms = 500\n\
         [[shards]]\nname = \"s0\"\nprimary = \"{}\"\n\
         [[shards]]\nname = \"s1\"\nprimary = \"{}\"\n",
        p0.addr(),
        p1.addr()
    );
    let (running, _) = router(&config).await;
    let client = redis::Client::open(format!("redis://{}/", running.addr())).unwrap();
    let mut c = conn(&running).await;
    let mut key = String::new();
    for i in 0.. {
        key = format!("k{i}");
        if shard_info(&mut c, &key).await["shard"] == "s1" {
            break;
        }
    }

    p1.kill();
    routes_to(&client, &key, "s0").await;
    let mut c = conn(&running).await;
    let () = c.set(&key, "written during the outage").await.unwrap();
    let stored: String = c.get(&key).await.unwrap();
    assert_eq!(stored, "written during the outage");
    let mut p0c = connect(&p0.addr()).await;
    let on_s0: Option<String> = p0c.get(&key).await.unwrap();
    assert_eq!(on_s0.as_deref(), Some("written during the outage"));

    // s1 returns (empty): its keys route back to it, and the write above is not found.
    p1.restart();
    routes_to(&client, &key, "s1").await;
    let mut c = conn(&running).await;
    let after: Option<String> = c.get(&key).await.unwrap();
    assert_eq!(after, None, "the write made during the outage stayed on s0");
    running.stop().await;
}

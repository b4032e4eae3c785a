#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! The cache in front of an origin: read-through with singleflight, negative caching,
//! write-through, WARM, an origin that goes down, and pub/sub invalidation. The origin is
//! a real redis-server, except in the stampede test, which needs an origin it can hold.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use proto::{Args, Frame};
use service::{CancellationToken, Client, CommandSpec, Reply, Server, ServiceArgs};
use testkit::{RedisServer, eventually};

/// An origin that counts GETs and holds every reply until the test opens its gate: a
/// deliberately slow database.
struct GatedOrigin {
    gets: AtomicU64,
    gate: tokio::sync::watch::Receiver<bool>,
}

static ORIGIN_COMMANDS: &[CommandSpec] =
    &[CommandSpec::new("get", 2, &["readonly"], "string", "GET").keys(1, 1, 1)];

impl Server for GatedOrigin {
    type Session = ();
    fn name(&self) -> &'static str {
        "gated-origin"
    }
    fn commands(&self) -> &'static [CommandSpec] {
        ORIGIN_COMMANDS
    }
    async fn execute(&self, _client: &mut Client<()>, args: Args) -> Reply {
        if args.name() != "get" {
            return Reply::Unhandled(args);
        }
        self.gets.fetch_add(1, Ordering::SeqCst);
        let mut gate = self.gate.clone();
        let _ = gate.wait_for(|open| *open).await;
        Reply::One(bulk("from-origin"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stampede_of_200_misses_makes_one_origin_request() {
    let (open, gate) = tokio::sync::watch::channel(false);
    let origin = Arc::new(GatedOrigin {
        gets: AtomicU64::new(0),
        gate,
    });
    let origin_server = service::spawn(
        origin.clone(),
        &ServiceArgs::ephemeral(),
        0,
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let origin_addr = origin_server.addr().to_string();
    let cache = start_cache(&["--origin", &origin_addr, "--origin-timeout-ms", "30000"]).await;

    let mut clients = Vec::new();
    for _ in 0..200 {
        let mut c = client(&cache).await;
        clients.push(tokio::spawn(async move {
            c.call(["GET", "celebrity:post"]).await.unwrap()
        }));
    }
    // All 200 are in: one is the leader at the (held) origin, 199 wait for it.
    let mut monitor = client(&cache).await;
    eventually!(
        Duration::from_secs(10),
        "199 coalesced waiters",
        info_u64(&mut monitor, "coalesced_waits").await == 199
    );
    open.send(true).unwrap();
    for c in clients {
        assert_eq!(c.await.unwrap(), bulk("from-origin"));
    }
    assert_eq!(
        origin.gets.load(Ordering::SeqCst),
        1,
        "the origin saw one GET"
    );
    assert_eq!(info_u64(&mut monitor, "origin_fetches").await, 1);
    assert_eq!(info_u64(&mut monitor, "keyspace_misses").await, 200);
    // Now it is cached: more reads never reach the origin.
    assert_eq!(
        call(&mut monitor, "GET celebrity:post").await,
        bulk("from-origin")
    );
    assert_eq!(origin.gets.load(Ordering::SeqCst), 1);
    cache.stop().await;
    origin_server.stop().await;
}

#[tokio::test]
async fn read_through_with_ttl_negative_caching_and_hit_ratio() {
    let redis = RedisServer::start(&[]);
    let mut db = redis_client(&redis).await;
    call(&mut db, "SET user:1 alice").await;
    let cache = start_cache(&[
        "--origin",
        &redis.addr(),
        "--default-ttl",
        "60",
        "--negative-ttl",
        "30",
    ])
    .await;
    let mut c = client(&cache).await;
    assert_eq!(call(&mut c, "GET user:1").await, bulk("alice"));
    assert_eq!(call(&mut c, "GET user:1").await, bulk("alice"));
    let Frame::Integer(ttl) = call(&mut c, "TTL user:1").await else {
        panic!()
    };
    assert!(
        (59..=60).contains(&ttl),
        "read-through entries get the default TTL: {ttl}"
    );
    // Absent at the origin: nil, cached negatively, so the second miss stays local.
    assert_eq!(call(&mut c, "GET user:2").await, Frame::Null);
    assert_eq!(call(&mut c, "GET user:2").await, Frame::Null);
    assert_eq!(call(&mut c, "EXISTS user:2").await, Frame::Integer(0));
    assert_eq!(info_u64(&mut c, "origin_fetches").await, 2);
    assert_eq!(info_u64(&mut c, "keyspace_hits").await, 2);
    assert_eq!(info_u64(&mut c, "keyspace_misses").await, 2);
    assert_eq!(info_field(&mut c, "hit_ratio").await, "0.5000");
    // Lazy mode: a SET stays in the cache (cache-aside: the app writes the database).
    call(&mut c, "SET user:1 bob").await;
    assert_eq!(call(&mut db, "GET user:1").await, bulk("alice"));
    cache.stop().await;
}

#[tokio::test]
async fn origin_down_misses_fail_hits_keep_working() {
    let mut redis = RedisServer::start(&[]);
    call(&mut redis_client(&redis).await, "SET hot 1").await;
    let cache = start_cache(&["--origin", &redis.addr(), "--origin-timeout-ms", "500"]).await;
    let mut c = client(&cache).await;
    assert_eq!(call(&mut c, "GET hot").await, bulk("1"));
    redis.kill();
    assert_eq!(
        call(&mut c, "GET hot").await,
        bulk("1"),
        "a hit needs no origin"
    );
    let Frame::Error(e) = call(&mut c, "GET cold").await else {
        panic!("a miss with the origin down must be an error, not nil")
    };
    assert!(String::from_utf8_lossy(&e).contains("unavailable"), "{e:?}");
    assert_eq!(info_u64(&mut c, "origin_errors").await, 1);
    let Frame::Error(_) = call(&mut c, "WARM cold").await else {
        panic!()
    };
    cache.stop().await;
}

#[tokio::test]
async fn write_through_writes_the_origin_first_and_fails_without_it() {
    let mut redis = RedisServer::start(&[]);
    let mut db = redis_client(&redis).await;
    let cache = start_cache(&[
        "--origin",
        &redis.addr(),
        "--population",
        "write-through",
        "--origin-timeout-ms",
        "500",
    ])
    .await;
    let mut c = client(&cache).await;
    assert_eq!(call(&mut c, "SET k v1").await, Frame::ok());
    assert_eq!(
        call(&mut db, "GET k").await,
        bulk("v1"),
        "the origin has it"
    );
    assert_eq!(call(&mut c, "GET k").await, bulk("v1"));
    assert_eq!(
        info_u64(&mut c, "origin_fetches").await,
        0,
        "and so does the cache"
    );
    // Conditions are decided by the origin, the system of record.
    assert_eq!(call(&mut c, "SET k v9 NX").await, Frame::Null);
    assert_eq!(call(&mut c, "GET k").await, bulk("v1"));
    assert_eq!(call(&mut c, "MSET a 1 b 2").await, Frame::ok());
    assert_eq!(call(&mut c, "INCRBY a 41").await, Frame::Integer(42));
    assert_eq!(call(&mut db, "GET a").await, bulk("42"));
    assert_eq!(call(&mut c, "GET a").await, bulk("42"));
    assert_eq!(call(&mut c, "DEL b").await, Frame::Integer(1));
    assert_eq!(call(&mut db, "EXISTS b").await, Frame::Integer(0));
    // An error reply from the origin is the client's error; the cache is unchanged.
    call(&mut db, "SET text abc").await;
    assert!(call(&mut c, "INCR text").await.is_error());
    redis.kill();
    let Frame::Error(e) = call(&mut c, "SET k v2").await else {
        panic!("SET must fail when the origin is down")
    };
    assert!(String::from_utf8_lossy(&e).contains("unavailable"), "{e:?}");
    assert_eq!(call(&mut c, "GET k").await, bulk("v1"), "old value kept");
    assert!(call(&mut c, "DEL k").await.is_error());
    assert_eq!(call(&mut c, "GET k").await, bulk("v1"));
    cache.stop().await;
}

#[tokio::test]
async fn warm_loads_ahead_of_demand() {
    let redis = RedisServer::start(&[]);
    call(&mut redis_client(&redis).await, "MSET p:1 one p:2 two").await;
    let cache = start_cache(&["--origin", &redis.addr(), "--default-ttl", "300"]).await;
    let mut c = client(&cache).await;
    assert_eq!(call(&mut c, "WARM p:1 p:2 p:3").await, Frame::Integer(2));
    assert_eq!(call(&mut c, "DBSIZE").await, Frame::Integer(2));
    assert_eq!(call(&mut c, "GET p:2").await, bulk("two"));
    assert_eq!(info_u64(&mut c, "keyspace_hits").await, 1);
    assert_eq!(info_u64(&mut c, "keyspace_misses").await, 0);
    let uncached = start_cache(&[]).await;
    assert!(
        call(&mut client(&uncached).await, "WARM x")
            .await
            .is_error()
    );
    cache.stop().await;
    uncached.stop().await;
}

#[tokio::test]
async fn a_published_key_is_invalidated() {
    let redis = RedisServer::start(&[]);
    let mut bus = redis_client(&redis).await;
    let channel = format!("{}/invalidations", redis.addr());
    let cache = start_cache(&["--invalidate-channel", &channel]).await;
    eventually!(
        Duration::from_secs(5),
        "the cache subscribes",
        call(&mut bus, "PUBSUB NUMSUB invalidations").await
            == Frame::Array(vec![bulk("invalidations"), Frame::Integer(1)])
    );
    let mut c = client(&cache).await;
    call(&mut c, "MSET user:42 old user:43 other").await;
    assert_eq!(
        call(&mut bus, "PUBLISH invalidations user:42").await,
        Frame::Integer(1)
    );
    eventually!(
        Duration::from_secs(1),
        "user:42 is gone within 1 s",
        call(&mut c, "GET user:42").await == Frame::Null
    );
    assert_eq!(call(&mut c, "GET user:43").await, bulk("other"));
    assert_eq!(info_u64(&mut c, "invalidations").await, 1);
    cache.stop().await;
}

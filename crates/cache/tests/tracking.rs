#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! `CLIENT TRACKING` on the cache server (the engine kv uses, from `crates/hub`): a client
//! caching in front of the cache hears of writes, deletes, TTL changes, evictions and
//! flushes of what it read, and not of a read-through fill.

mod common;

use common::{bulk, call, client, start_cache};
use proto::Frame;

fn invalidate(keys: &[&str]) -> Frame {
    Frame::Push(vec![
        bulk("invalidate"),
        Frame::Array(keys.iter().map(|k| bulk(k)).collect()),
    ])
}

#[tokio::test]
async fn writes_deletes_and_flushes_invalidate_what_a_client_read() {
    let cache = start_cache(&[]).await;
    let mut reader = client(&cache).await;
    let mut writer = client(&cache).await;
    let Frame::Map(hello) = call(&mut reader, "HELLO 3").await else {
        panic!("HELLO 3");
    };
    assert!(hello.contains(&(bulk("version"), bulk("7.4.0"))));
    assert_eq!(
        call(&mut reader, "CLIENT TRACKING on").await,
        Frame::simple("OK")
    );
    call(&mut writer, "SET k v1").await;
    assert_eq!(call(&mut reader, "GET k").await, bulk("v1"));
    call(&mut writer, "SET k v2").await;
    assert_eq!(reader.read_reply().await.unwrap(), invalidate(&["k"]));
    assert_eq!(
        call(&mut reader, "MGET k j").await,
        Frame::Array(vec![bulk("v2"), Frame::Null])
    );
    call(&mut writer, "EXPIRE k 100").await;
    assert_eq!(reader.read_reply().await.unwrap(), invalidate(&["k"]));
    call(&mut reader, "GET k").await;
    call(&mut writer, "DEL k").await;
    assert_eq!(reader.read_reply().await.unwrap(), invalidate(&["k"]));
    call(&mut writer, "SET j x").await;
    assert_eq!(reader.read_reply().await.unwrap(), invalidate(&["j"]));
    call(&mut reader, "GET j").await;
    call(&mut writer, "FLUSHALL").await;
    assert_eq!(
        reader.read_reply().await.unwrap(),
        Frame::Push(vec![bulk("invalidate"), Frame::Null])
    );
    assert_eq!(
        call(&mut reader, "CLIENT TRACKINGINFO").await,
        Frame::Map(vec![
            (bulk("flags"), Frame::Set(vec![bulk("on")])),
            (bulk("redirect"), Frame::Integer(0)),
            (bulk("prefixes"), Frame::Array(vec![])),
        ])
    );
}

#[tokio::test]
async fn an_eviction_invalidates_and_bcast_sees_every_change_under_its_prefix() {
    let cache = start_cache(&["--maxmemory", "1mb", "--maxmemory-policy", "lru"]).await;
    let mut reader = client(&cache).await;
    let mut writer = client(&cache).await;
    call(&mut reader, "HELLO 3").await;
    call(&mut reader, "CLIENT TRACKING on").await;
    call(&mut writer, "SET old v").await;
    call(&mut reader, "GET old").await;
    // Fill the cache past its limit: `old`, least recently used, is evicted first.
    let value = "x".repeat(64 * 1024);
    for i in 0..32 {
        let key = format!("big:{i}");
        writer
            .call([String::from("SET"), key, value.clone()])
            .await
            .unwrap();
    }
    assert_eq!(reader.read_reply().await.unwrap(), invalidate(&["old"]));

    let mut bcast = client(&cache).await;
    call(&mut bcast, "HELLO 3").await;
    call(&mut bcast, "CLIENT TRACKING on BCAST PREFIX user:").await;
    call(&mut writer, "SET post:1 p").await;
    call(&mut writer, "SET user:1 u").await;
    assert_eq!(bcast.read_reply().await.unwrap(), invalidate(&["user:1"]));
}

/// A read-through fill is not a change: the reader whose miss filled the key is not told
/// to drop it (its reply is the value, with no push before it); a later write is.
#[tokio::test]
async fn a_read_through_fill_is_not_an_invalidation() {
    let redis = testkit::RedisServer::start(&[]);
    let mut origin = common::redis_client(&redis).await;
    call(&mut origin, "SET k from-origin").await;
    let cache = start_cache(&["--origin", &redis.addr()]).await;
    let mut reader = client(&cache).await;
    call(&mut reader, "HELLO 3").await;
    call(&mut reader, "CLIENT TRACKING on").await;
    assert_eq!(call(&mut reader, "GET k").await, bulk("from-origin"));
    assert_eq!(call(&mut reader, "GET k").await, bulk("from-origin"));
    let mut writer = client(&cache).await;
    call(&mut writer, "SET k local").await;
    assert_eq!(reader.read_reply().await.unwrap(), invalidate(&["k"]));
}

/// While nobody tracks, the store records no changes and a command's announce is one
/// load (`CacheLayer::announce`); a client turning tracking on again must switch the
/// recording back on, or its reads would never be invalidated.
#[tokio::test]
async fn tracking_turned_off_and_on_again_still_invalidates() {
    let cache = start_cache(&[]).await;
    let mut reader = client(&cache).await;
    let mut writer = client(&cache).await;
    call(&mut reader, "HELLO 3").await;
    call(&mut reader, "CLIENT TRACKING on").await;
    call(&mut reader, "CLIENT TRACKING off").await;
    // Nobody tracks now: this write is where the recording is switched off.
    call(&mut writer, "SET k v1").await;
    call(&mut writer, "SET k v2").await;
    assert_eq!(
        call(&mut reader, "CLIENT TRACKING on").await,
        Frame::simple("OK")
    );
    assert_eq!(call(&mut reader, "GET k").await, bulk("v2"));
    call(&mut writer, "SET k v3").await;
    // The invalidation is queued before the writer's reply, so it comes before PONG (a
    // missing one fails here instead of waiting forever).
    assert_eq!(call(&mut reader, "PING").await, invalidate(&["k"]));
}

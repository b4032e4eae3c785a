#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! `CLIENT TRACKING` over the wire: invalidation pushes (RESP3) and redirected messages
//! (RESP2), BCAST prefixes, NOLOOP, OPTIN, flushes, the bounded tracking table, and the
//! introspection subcommands, each checked against the replies Redis gives.

mod common;

use common::{bulk, call, connect, int};
use proto::Frame;
use service::{RespClient, Running};

fn ok() -> Frame {
    Frame::simple("OK")
}

fn invalidate(keys: &[&str]) -> Frame {
    Frame::Push(vec![
        bulk("invalidate"),
        Frame::Array(keys.iter().map(|k| bulk(k)).collect()),
    ])
}

async fn resp3(server: &Running) -> RespClient {
    let mut c = connect(server).await;
    call(&mut c, &["HELLO", "3"]).await;
    c
}

#[tokio::test]
async fn default_mode_invalidates_a_key_the_client_read_once() {
    let clock = std::sync::Arc::new(kv::clock::ManualClock::new(1_700_000_000_000));
    let server = common::start_with_clock(&[], clock.clone()).await;
    let mut reader = resp3(&server).await;
    let mut writer = connect(&server).await;
    assert_eq!(call(&mut reader, &["CLIENT", "TRACKING", "on"]).await, ok());
    call(&mut writer, &["SET", "k", "v1"]).await;
    assert_eq!(call(&mut reader, &["GET", "k"]).await, bulk("v1"));
    call(&mut writer, &["SET", "k", "v2"]).await;
    // The push arrives before the reply of the reader's next command.
    assert_eq!(reader.read_reply().await.unwrap(), invalidate(&["k"]));
    assert_eq!(call(&mut reader, &["PING"]).await, Frame::simple("PONG"));
    // Once told, the reader is forgotten until it reads the key again.
    call(&mut writer, &["SET", "k", "v3"]).await;
    assert_eq!(
        call(&mut reader, &["MGET", "k", "other"]).await,
        Frame::Array(vec![bulk("v3"), Frame::Null])
    );
    call(&mut writer, &["DEL", "other"]).await; // missing: nothing changes, nothing sent
    call(&mut writer, &["SET", "other", "x"]).await;
    assert_eq!(reader.read_reply().await.unwrap(), invalidate(&["other"]));
    // Expiry invalidates too (the clock is the test's: the key expires when it says).
    call(&mut writer, &["SET", "t", "v", "PX", "1000"]).await;
    assert_eq!(call(&mut reader, &["GET", "t"]).await, bulk("v"));
    clock.advance(1000);
    assert_eq!(call(&mut writer, &["GET", "t"]).await, Frame::Null);
    assert_eq!(reader.read_reply().await.unwrap(), invalidate(&["t"]));
    // FLUSHALL: a null instead of keys.
    call(&mut writer, &["FLUSHALL"]).await;
    assert_eq!(
        reader.read_reply().await.unwrap(),
        Frame::Push(vec![bulk("invalidate"), Frame::Null])
    );
}

#[tokio::test]
async fn bcast_sends_every_change_under_a_prefix_and_noloop_spares_own_writes() {
    let server = common::start(&[]).await;
    let mut reader = resp3(&server).await;
    let mut writer = connect(&server).await;
    assert_eq!(
        call(
            &mut reader,
            &[
                "CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "user:", "NOLOOP"
            ]
        )
        .await,
        ok()
    );
    call(&mut writer, &["SET", "post:1", "x"]).await;
    call(&mut writer, &["MSET", "user:1", "a", "user:2", "b"]).await;
    assert_eq!(
        reader.read_reply().await.unwrap(),
        invalidate(&["user:1", "user:2"])
    );
    call(&mut reader, &["SET", "user:3", "mine"]).await; // NOLOOP: not told
    call(&mut writer, &["HSET", "user:4", "f", "v"]).await;
    assert_eq!(reader.read_reply().await.unwrap(), invalidate(&["user:4"]));
    assert_eq!(
        call(&mut reader, &["CLIENT", "TRACKINGINFO"]).await,
        Frame::Map(vec![
            (
                bulk("flags"),
                Frame::Set(vec![bulk("on"), bulk("bcast"), bulk("noloop")])
            ),
            (bulk("redirect"), int(0)),
            (bulk("prefixes"), Frame::Array(vec![bulk("user:")])),
        ])
    );
    assert_eq!(
        call(&mut reader, &["CLIENT", "TRACKING", "on", "PREFIX", "u"]).await,
        Frame::error("ERR PREFIX option requires BCAST mode to be enabled")
    );
    assert_eq!(
        call(
            &mut reader,
            &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "use"]
        )
        .await,
        Frame::error(
            "ERR Prefix 'use' overlaps with an existing prefix 'user:'. Prefixes for a single \
             client must not overlap."
        )
    );
    assert_eq!(
        call(&mut reader, &["CLIENT", "TRACKING", "off"]).await,
        ok()
    );
    assert_eq!(call(&mut reader, &["CLIENT", "GETREDIR"]).await, int(-1));
}

#[tokio::test]
async fn optin_tracks_only_after_caching_yes() {
    let server = common::start(&[]).await;
    let mut reader = resp3(&server).await;
    let mut writer = connect(&server).await;
    call(&mut reader, &["CLIENT", "TRACKING", "on", "OPTIN"]).await;
    call(&mut reader, &["GET", "a"]).await;
    assert_eq!(call(&mut reader, &["CLIENT", "CACHING", "yes"]).await, ok());
    call(&mut reader, &["GET", "b"]).await;
    call(&mut writer, &["MSET", "a", "1", "b", "2"]).await;
    assert_eq!(reader.read_reply().await.unwrap(), invalidate(&["b"]));
    assert_eq!(
        call(&mut reader, &["CLIENT", "CACHING", "no"]).await,
        Frame::error(
            "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode."
        )
    );
    let mut plain = connect(&server).await;
    assert_eq!(
        call(&mut plain, &["CLIENT", "CACHING", "yes"]).await,
        Frame::error(
            "ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN \
             or OPTOUT mode enabled"
        )
    );
}

#[tokio::test]
async fn resp2_redirect_delivers_on_the_invalidate_channel() {
    let server = common::start(&[]).await;
    let mut target = connect(&server).await;
    let Frame::Integer(target_id) = call(&mut target, &["CLIENT", "ID"]).await else {
        panic!("CLIENT ID");
    };
    call(&mut target, &["SUBSCRIBE", "__redis__:invalidate"]).await;
    let mut reader = connect(&server).await;
    let id = target_id.to_string();
    assert_eq!(
        call(&mut reader, &["CLIENT", "TRACKING", "on", "REDIRECT", &id]).await,
        ok()
    );
    assert_eq!(
        call(&mut reader, &["CLIENT", "GETREDIR"]).await,
        int(target_id)
    );
    call(&mut reader, &["GET", "k"]).await;
    call(&mut reader, &["SET", "k", "v"]).await;
    assert_eq!(
        target.read_reply().await.unwrap(),
        Frame::Array(vec![
            bulk("message"),
            bulk("__redis__:invalidate"),
            Frame::Array(vec![bulk("k")]),
        ])
    );
    assert_eq!(
        call(
            &mut reader,
            &["CLIENT", "TRACKING", "on", "REDIRECT", "999999"]
        )
        .await,
        Frame::error("ERR The client ID you want redirect to does not exist (999999)")
    );
}

#[tokio::test]
async fn the_tracking_table_is_bounded() {
    let server = common::start(&[]).await;
    let mut reader = resp3(&server).await;
    let mut admin = connect(&server).await;
    assert_eq!(
        call(
            &mut admin,
            &["CONFIG", "SET", "tracking-table-max-keys", "2"]
        )
        .await,
        ok()
    );
    call(&mut reader, &["CLIENT", "TRACKING", "on"]).await;
    call(&mut reader, &["MGET", "a", "b"]).await;
    // Reading a third key evicts one from the table, and the reader is told to drop it:
    // the push comes before the GET's reply.
    let Frame::Push(parts) = call(&mut reader, &["GET", "c"]).await else {
        panic!("an invalidation");
    };
    assert_eq!(parts[0], bulk("invalidate"));
    assert_eq!(reader.read_reply().await.unwrap(), Frame::Null);
    let info = common::frame_text(&call(&mut admin, &["INFO", "stats"]).await);
    assert!(info.contains("tracking_total_keys:2"), "{info}");
}

/// A client's own write invalidates what it read after the write's reply, as in Redis: a
/// client that caches what a reply carries must hear that it is stale after it. Inside
/// `EXEC`, a read is remembered as it runs, not as it is queued, so a write queued before
/// it does not forget it.
#[tokio::test]
async fn own_writes_invalidate_after_the_reply_and_exec_remembers_reads_as_they_run() {
    let server = common::start(&[]).await;
    let mut reader = resp3(&server).await;
    let mut writer = connect(&server).await;
    assert_eq!(call(&mut reader, &["CLIENT", "TRACKING", "on"]).await, ok());
    assert_eq!(call(&mut reader, &["GET", "k"]).await, Frame::Null);
    // The reply first, then the push.
    assert_eq!(call(&mut reader, &["INCR", "k"]).await, int(1));
    assert_eq!(reader.read_reply().await.unwrap(), invalidate(&["k"]));

    // A write, then a read of the same key: the read is tracked, nothing is sent now,
    // and another client's write later invalidates it.
    assert_eq!(call(&mut reader, &["MULTI"]).await, ok());
    call(&mut reader, &["INCR", "k"]).await;
    call(&mut reader, &["GET", "k"]).await;
    assert_eq!(
        call(&mut reader, &["EXEC"]).await,
        Frame::Array(vec![int(2), bulk("2")])
    );
    call(&mut writer, &["SET", "k", "5"]).await;
    assert_eq!(reader.read_reply().await.unwrap(), invalidate(&["k"]));

    // A read, then a write: EXEC's reply carries the value read, the push follows it.
    assert_eq!(call(&mut reader, &["MULTI"]).await, ok());
    call(&mut reader, &["GET", "k"]).await;
    call(&mut reader, &["INCR", "k"]).await;
    assert_eq!(
        call(&mut reader, &["EXEC"]).await,
        Frame::Array(vec![bulk("5"), int(6)])
    );
    assert_eq!(reader.read_reply().await.unwrap(), invalidate(&["k"]));
    assert_eq!(call(&mut reader, &["PING"]).await, Frame::simple("PONG"));
}

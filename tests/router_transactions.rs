#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! Transactions through the shard router over three kv shards: pinned to the shard of
//! their keys and relayed as they are; a key of another shard is refused at queue time
//! (CROSSSLOT) and EXEC answers EXECABORT; no queued command ever runs outside its
//! transaction — not after an abort, not after a disconnect.

use bytes::Bytes;
use clap::Parser;
use proto::Frame;
use service::{CancellationToken, RespClient, Running};

async fn kv() -> Running {
    kv::start(
        kv::Args::parse_from(["kv", "--port", "0"]),
        CancellationToken::new(),
    )
    .await
    .unwrap()
}

async fn router(shards: &[&Running]) -> Running {
    // A directory of its own: the tests run at once, and a shared config file would let
    // one test's router read another's shards.
    let config = testkit::temp_dir("router-tx").join("router.toml");
    let text: String = shards
        .iter()
        .enumerate()
        .map(|(i, s)| format!("[[shards]]\nname = \"s{i}\"\nprimary = \"{}\"\n", s.addr()))
        .collect();
    std::fs::write(&config, text).unwrap();
    let args = shard_router::Args::parse_from([
        "router",
        "--port",
        "0",
        "--config",
        config.to_str().unwrap(),
    ]);
    shard_router::start(args, CancellationToken::new())
        .await
        .unwrap()
}

async fn call(c: &mut RespClient, words: &[&str]) -> Frame {
    c.call(words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())))
        .await
        .unwrap()
}

/// The shard `ROUTER SHARDOF` names for `key` (a map, flat in RESP2).
async fn shard_of(c: &mut RespClient, key: &str) -> Frame {
    let Frame::Array(fields) = call(c, &["ROUTER", "SHARDOF", key]).await else {
        panic!("ROUTER SHARDOF")
    };
    let at = fields
        .iter()
        .position(|f| f.as_bytes().is_some_and(|b| b.as_ref() == b"shard"))
        .unwrap();
    fields[at + 1].clone()
}

/// Two keys the router places on different shards, and one more on the first's.
async fn keys_on_two_shards(c: &mut RespClient) -> (String, String, String) {
    let a = "{a}:1".to_string();
    let home = shard_of(c, &a).await;
    for i in 0..1000 {
        let other = format!("other{i}");
        if shard_of(c, &other).await != home {
            return (a, "{a}:2".into(), other);
        }
    }
    panic!("every key on one shard");
}

#[tokio::test]
async fn a_transaction_runs_on_the_shard_of_its_keys() {
    let (s0, s1, s2) = (kv().await, kv().await, kv().await);
    let router = router(&[&s0, &s1, &s2]).await;
    let mut c = RespClient::connect(router.addr()).await.unwrap();
    let (a, b, _) = keys_on_two_shards(&mut c).await;
    assert_eq!(call(&mut c, &["MULTI"]).await, Frame::ok());
    assert_eq!(
        call(&mut c, &["SET", &a, "1"]).await,
        Frame::simple("QUEUED")
    );
    assert_eq!(call(&mut c, &["INCR", &b]).await, Frame::simple("QUEUED"));
    assert_eq!(
        call(&mut c, &["MGET", &a, &b]).await,
        Frame::simple("QUEUED")
    );
    let exec = call(&mut c, &["EXEC"]).await;
    assert_eq!(
        exec,
        Frame::Array(vec![
            Frame::ok(),
            Frame::Integer(1),
            Frame::Array(vec![Frame::Bulk("1".into()), Frame::Bulk("1".into())]),
        ])
    );
    // Misplaced commands get Redis's errors from the router itself.
    assert_eq!(
        call(&mut c, &["EXEC"]).await,
        Frame::error("ERR EXEC without MULTI")
    );
    assert_eq!(
        call(&mut c, &["DISCARD"]).await,
        Frame::error("ERR DISCARD without MULTI")
    );
    call(&mut c, &["MULTI"]).await;
    assert_eq!(
        call(&mut c, &["MULTI"]).await,
        Frame::error("ERR MULTI calls can not be nested")
    );
    assert_eq!(
        call(&mut c, &["WATCH", &a]).await,
        Frame::error("ERR WATCH inside MULTI is not allowed")
    );
    // A transaction with no command runs nowhere.
    assert_eq!(call(&mut c, &["EXEC"]).await, Frame::Array(vec![]));
    router.stop().await;
}

#[tokio::test]
async fn a_key_of_another_shard_aborts_and_nothing_runs() {
    let (s0, s1, s2) = (kv().await, kv().await, kv().await);
    let router = router(&[&s0, &s1, &s2]).await;
    let mut c = RespClient::connect(router.addr()).await.unwrap();
    let (a, _, other) = keys_on_two_shards(&mut c).await;
    call(&mut c, &["MULTI"]).await;
    assert_eq!(
        call(&mut c, &["SET", &a, "1"]).await,
        Frame::simple("QUEUED")
    );
    let refused = call(&mut c, &["SET", &other, "1"]).await;
    assert!(
        matches!(&refused, Frame::Error(e) if e.starts_with(b"CROSSSLOT")),
        "{refused:?}"
    );
    assert_eq!(
        call(&mut c, &["SET", &a, "2"]).await,
        Frame::simple("QUEUED")
    );
    assert_eq!(
        call(&mut c, &["EXEC"]).await,
        Frame::error("EXECABORT Transaction discarded because of previous errors.")
    );
    assert_eq!(
        call(&mut c, &["EXISTS", &a, &other]).await,
        Frame::Integer(0)
    );

    // A keyless command the router spreads over the shards, or answers for the client's
    // own connection, aborts too, saying why; and so does an unknown one.
    for bad in [
        &["DBSIZE"][..],
        &["FLUSHALL"],
        &["CLIENT", "SETNAME", "x"],
        &["NOSUCHCOMMAND", "x"],
    ] {
        call(&mut c, &["MULTI"]).await;
        call(&mut c, &["SET", &a, "1"]).await;
        let refused = call(&mut c, bad).await;
        let Frame::Error(text) = &refused else {
            panic!("{bad:?}: {refused:?}")
        };
        if bad[0] != "NOSUCHCOMMAND" {
            let text = String::from_utf8_lossy(text);
            assert!(text.contains("cannot run inside a transaction"), "{text}");
        }
        let abort = call(&mut c, &["EXEC"]).await;
        assert!(matches!(&abort, Frame::Error(e) if e.starts_with(b"EXECABORT")));
        assert_eq!(call(&mut c, &["EXISTS", &a]).await, Frame::Integer(0));
    }

    // WATCH keys count: a transaction's command on another shard than its WATCH.
    assert_eq!(call(&mut c, &["WATCH", &a]).await, Frame::ok());
    call(&mut c, &["MULTI"]).await;
    let refused = call(&mut c, &["SET", &other, "1"]).await;
    assert!(matches!(&refused, Frame::Error(e) if e.starts_with(b"CROSSSLOT")));
    let abort = call(&mut c, &["EXEC"]).await;
    assert!(matches!(&abort, Frame::Error(e) if e.starts_with(b"EXECABORT")));
    // And WATCH of keys on two shards is refused outright.
    let refused = call(&mut c, &["WATCH", &a, &other]).await;
    assert!(matches!(&refused, Frame::Error(e) if e.starts_with(b"CROSSSLOT")));
    router.stop().await;
}

/// PING and ECHO answer the same on every shard: queued on the transaction's shard as in
/// Redis Cluster, also before a key has chosen it (held by the router, then relayed after
/// MULTI), and a transaction of nothing else runs on the first shard.
#[tokio::test]
async fn ping_and_echo_are_queued_on_the_transactions_shard() {
    let (s0, s1, s2) = (kv().await, kv().await, kv().await);
    let router = router(&[&s0, &s1, &s2]).await;
    let mut c = RespClient::connect(router.addr()).await.unwrap();
    let (a, _, other) = keys_on_two_shards(&mut c).await;
    let queued = Frame::simple("QUEUED");
    call(&mut c, &["MULTI"]).await;
    assert_eq!(call(&mut c, &["PING"]).await, queued);
    assert_eq!(call(&mut c, &["ECHO", "before"]).await, queued);
    assert_eq!(call(&mut c, &["SET", &a, "1"]).await, queued);
    assert_eq!(call(&mut c, &["ECHO", "after"]).await, queued);
    assert_eq!(call(&mut c, &["INCR", &a]).await, queued);
    assert_eq!(
        call(&mut c, &["EXEC"]).await,
        Frame::Array(vec![
            Frame::simple("PONG"),
            Frame::Bulk("before".into()),
            Frame::ok(),
            Frame::Bulk("after".into()),
            Frame::Integer(2),
        ])
    );
    // Only keyless commands: they run, on one shard.
    call(&mut c, &["MULTI"]).await;
    assert_eq!(call(&mut c, &["PING", "hi"]).await, queued);
    assert_eq!(
        call(&mut c, &["EXEC"]).await,
        Frame::Array(vec![Frame::Bulk("hi".into())])
    );
    // A held PING does not save a transaction that a key of another shard aborted, and
    // DISCARD drops what was held.
    call(&mut c, &["MULTI"]).await;
    assert_eq!(call(&mut c, &["PING"]).await, queued);
    call(&mut c, &["SET", &a, "x"]).await;
    assert!(matches!(
        call(&mut c, &["SET", &other, "1"]).await,
        Frame::Error(_)
    ));
    let abort = call(&mut c, &["EXEC"]).await;
    assert!(matches!(&abort, Frame::Error(e) if e.starts_with(b"EXECABORT")));
    assert_eq!(call(&mut c, &["GET", &a]).await, Frame::Bulk("2".into()));
    call(&mut c, &["MULTI"]).await;
    assert_eq!(call(&mut c, &["PING"]).await, queued);
    assert_eq!(call(&mut c, &["DISCARD"]).await, Frame::ok());
    call(&mut c, &["MULTI"]).await;
    assert_eq!(call(&mut c, &["EXEC"]).await, Frame::Array(vec![]));
    router.stop().await;
}

#[tokio::test]
async fn watch_through_the_router_is_the_shards_optimistic_lock() {
    let (s0, s1, s2) = (kv().await, kv().await, kv().await);
    let router = router(&[&s0, &s1, &s2]).await;
    let mut c = RespClient::connect(router.addr()).await.unwrap();
    let mut other = RespClient::connect(router.addr()).await.unwrap();
    let (a, b, _) = keys_on_two_shards(&mut c).await;
    call(&mut c, &["SET", &a, "1"]).await;
    assert_eq!(call(&mut c, &["WATCH", &a]).await, Frame::ok());
    assert_eq!(call(&mut c, &["GET", &a]).await, Frame::Bulk("1".into()));
    call(&mut other, &["SET", &a, "changed"]).await;
    call(&mut c, &["MULTI"]).await;
    call(&mut c, &["SET", &b, "x"]).await;
    assert_eq!(call(&mut c, &["EXEC"]).await, Frame::NullArray);
    assert_eq!(call(&mut c, &["EXISTS", &b]).await, Frame::Integer(0));
    // Unchanged since WATCH: it runs.
    call(&mut c, &["WATCH", &a]).await;
    call(&mut c, &["MULTI"]).await;
    call(&mut c, &["SET", &b, "x"]).await;
    assert_eq!(
        call(&mut c, &["EXEC"]).await,
        Frame::Array(vec![Frame::ok()])
    );
    // UNWATCH forgets.
    call(&mut c, &["WATCH", &a]).await;
    call(&mut other, &["SET", &a, "again"]).await;
    assert_eq!(call(&mut c, &["UNWATCH"]).await, Frame::ok());
    call(&mut c, &["MULTI"]).await;
    call(&mut c, &["SET", &b, "y"]).await;
    assert_eq!(
        call(&mut c, &["EXEC"]).await,
        Frame::Array(vec![Frame::ok()])
    );
    router.stop().await;
}

#[tokio::test]
async fn a_client_that_disconnects_mid_transaction_runs_nothing() {
    let (s0, s1, s2) = (kv().await, kv().await, kv().await);
    let router = router(&[&s0, &s1, &s2]).await;
    let mut c = RespClient::connect(router.addr()).await.unwrap();
    let (a, _, _) = keys_on_two_shards(&mut c).await;
    call(&mut c, &["MULTI"]).await;
    assert_eq!(
        call(&mut c, &["SET", &a, "1"]).await,
        Frame::simple("QUEUED")
    );
    drop(c);
    // Every shard is asked directly: the queued SET ran nowhere. (The shard dropped the
    // queue with the pinned connection the router closed.)
    for shard in [&s0, &s1, &s2] {
        let mut direct = RespClient::connect(shard.addr()).await.unwrap();
        assert_eq!(call(&mut direct, &["EXISTS", &a]).await, Frame::Integer(0));
    }
    let mut again = RespClient::connect(router.addr()).await.unwrap();
    assert_eq!(
        call(&mut again, &["EXEC"]).await,
        Frame::error("ERR EXEC without MULTI")
    );
    router.stop().await;
}

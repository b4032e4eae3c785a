#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! Pub/sub on kv (the hub it shares with the pubsub server), keyspace notifications
//! compared with a real redis-server, and the bound on a slow subscriber's queue.

mod common;

use std::net::SocketAddr;

use common::{bulk, call, connect, int};
use proto::Frame;
use service::RespClient;
use testkit::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn words(frame: &Frame) -> Vec<String> {
    match frame {
        Frame::Array(items) | Frame::Push(items) => items
            .iter()
            .map(|f| match f {
                Frame::Integer(n) => n.to_string(),
                Frame::Null => "(nil)".into(),
                f => common::frame_text(f),
            })
            .collect(),
        other => panic!("not a message: {other:?}"),
    }
}

#[tokio::test]
async fn subscribe_publish_and_introspection_as_redis() {
    let server = common::start(&[]).await;
    let mut sub = connect(&server).await;
    let mut publisher = connect(&server).await;
    assert_eq!(
        call(&mut sub, &["SUBSCRIBE", "news"]).await,
        Frame::Array(vec![bulk("subscribe"), bulk("news"), int(1)])
    );
    assert_eq!(
        words(&call(&mut sub, &["PSUBSCRIBE", "n*"]).await),
        ["psubscribe", "n*", "2"]
    );
    // RESP2 subscribed mode: data commands are refused, PING answers in a message shape.
    assert_eq!(
        call(&mut sub, &["GET", "k"]).await,
        Frame::error(
            "ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / \
             RESET are allowed in this context"
        )
    );
    assert_eq!(words(&call(&mut sub, &["PING"]).await), ["pong", ""]);
    assert_eq!(
        call(&mut publisher, &["PUBLISH", "news", "hi"]).await,
        int(2)
    );
    assert_eq!(
        words(&sub.read_reply().await.unwrap()),
        ["message", "news", "hi"]
    );
    assert_eq!(
        words(&sub.read_reply().await.unwrap()),
        ["pmessage", "n*", "news", "hi"]
    );
    assert_eq!(
        call(&mut publisher, &["PUBSUB", "NUMSUB", "news", "other"]).await,
        Frame::Array(vec![bulk("news"), int(1), bulk("other"), int(0)])
    );
    assert_eq!(call(&mut publisher, &["PUBSUB", "NUMPAT"]).await, int(1));
    assert_eq!(
        call(&mut publisher, &["PUBSUB", "CHANNELS"]).await,
        Frame::Array(vec![bulk("news")])
    );
    // Sharded pub/sub: its own namespace.
    let mut shard = connect(&server).await;
    assert_eq!(
        words(&call(&mut shard, &["SSUBSCRIBE", "orders"]).await),
        ["ssubscribe", "orders", "1"]
    );
    assert_eq!(
        call(&mut publisher, &["SPUBLISH", "orders", "o1"]).await,
        int(1)
    );
    assert_eq!(
        words(&shard.read_reply().await.unwrap()),
        ["smessage", "orders", "o1"]
    );
    assert_eq!(
        call(&mut publisher, &["PUBSUB", "SHARDNUMSUB", "orders"]).await,
        Frame::Array(vec![bulk("orders"), int(1)])
    );
    // RESP3: messages are pushes and the client may run any command while subscribed.
    let mut resp3 = connect(&server).await;
    call(&mut resp3, &["HELLO", "3"]).await;
    call(&mut resp3, &["SUBSCRIBE", "news"]).await;
    assert_eq!(
        call(&mut resp3, &["SET", "k", "v"]).await,
        Frame::simple("OK")
    );
    assert_eq!(
        call(&mut publisher, &["PUBLISH", "news", "again"]).await,
        int(3)
    );
    assert_eq!(
        resp3.read_reply().await.unwrap(),
        Frame::Push(vec![bulk("message"), bulk("news"), bulk("again")])
    );
    assert_eq!(words(&sub.read_reply().await.unwrap())[2], "again");
    assert_eq!(words(&sub.read_reply().await.unwrap())[3], "again");
    assert_eq!(
        words(&call(&mut sub, &["UNSUBSCRIBE"]).await),
        ["unsubscribe", "news", "1"]
    );
}

#[tokio::test]
async fn hello_reports_the_redis_version_kv_implements() {
    let server = common::start(&[]).await;
    let mut c = connect(&server).await;
    let Frame::Map(fields) = call(&mut c, &["HELLO", "3"]).await else {
        panic!("HELLO 3 answers a map");
    };
    assert!(fields.contains(&(bulk("version"), bulk("7.4.0"))));
}

/// The messages a subscriber to every keyspace and keyevent channel of db 0 receives
/// while `commands` run, up to a final `PUBLISH done`.
async fn notifications(addr: SocketAddr, flags: &str, commands: &[&[&str]]) -> Vec<Vec<String>> {
    let mut writer = RespClient::connect(addr).await.unwrap();
    let mut sub = RespClient::connect(addr).await.unwrap();
    call(&mut writer, &["FLUSHALL"]).await;
    assert_eq!(
        call(
            &mut writer,
            &["CONFIG", "SET", "notify-keyspace-events", flags]
        )
        .await,
        Frame::simple("OK")
    );
    call(&mut sub, &["PSUBSCRIBE", "__key*@0__:*"]).await;
    call(&mut sub, &["SUBSCRIBE", "done"]).await;
    for command in commands {
        call(&mut writer, command).await;
        if command[0] == "SET" && command.contains(&"PX") {
            // Wait for the key to expire: a lookup (or the server's sweep) removes it.
            while call(&mut writer, &["GET", command[1]]).await != Frame::Null {
                tokio::task::yield_now().await;
            }
        }
    }
    call(&mut writer, &["PUBLISH", "done", "."]).await;
    let mut seen = Vec::new();
    loop {
        let message = words(&sub.read_reply().await.unwrap());
        if message[1] == "done" {
            break;
        }
        seen.push(message[2..].to_vec());
    }
    seen
}

#[tokio::test]
async fn keyspace_notifications_equal_redis_servers() {
    let commands: &[&[&str]] = &[
        &["SET", "a", "1"],
        &["SET", "a", "2", "NX"],
        &["SET", "a", "3", "EX", "100"],
        &["EXPIRE", "a", "200"],
        &["PERSIST", "a"],
        &["INCR", "n"],
        &["INCRBYFLOAT", "n", "1.5"],
        &["APPEND", "s", "x"],
        &["SETRANGE", "s", "2", "y"],
        &["RENAME", "s", "s2"],
        &["GETDEL", "s2"],
        &["DEL", "a", "missing"],
        &["LPUSH", "l", "x", "y"],
        &["RPUSH", "l", "z"],
        &["LPOP", "l"],
        &["LMOVE", "l", "l2", "LEFT", "RIGHT"],
        &["RPOP", "l"],
        &["LPOP", "nothing"],
        &["HSET", "h", "f", "v", "g", "w"],
        &["HINCRBY", "h", "c", "1"],
        &["HDEL", "h", "f", "g", "c"],
        &["SADD", "set", "m"],
        &["SREM", "set", "m"],
        &["ZADD", "z", "1", "m"],
        &["ZINCRBY", "z", "2", "m"],
        &["ZREM", "z", "m"],
        &["SET", "gone", "v"],
        &["EXPIRE", "gone", "0"],
        &["MSET", "m1", "1", "m2", "2"],
        &["SET", "e", "v", "PX", "1"],
    ];
    let kv = common::start(&[]).await;
    let redis = RedisServer::start(&[]);
    let ours = notifications(kv.addr(), "KEA", commands).await;
    let theirs = notifications(redis.socket_addr(), "KEA", commands).await;
    assert!(theirs.iter().any(|m| m[1] == "expired"), "{theirs:?}");
    assert_eq!(ours, theirs);
}

/// `n` (a write created the key) and `m` (a read found no key), which `A` leaves out.
#[tokio::test]
async fn new_key_and_key_miss_events_equal_redis_servers() {
    let commands: &[&[&str]] = &[
        &["SET", "a", "1"],
        &["SET", "a", "2"],
        &["GET", "missing"],
        &["GET", "a"],
        &["LPUSH", "l", "x"],
        &["LPUSH", "l", "y"],
        &["MSET", "m1", "1", "m2", "2", "a", "3"],
        &["RENAME", "a", "b"],
        &["HSET", "h", "f", "v"],
        &["HGET", "nohash", "f"],
        &["SADD", "s", "x"],
        &["ZADD", "z", "1", "m"],
        &["LMOVE", "l", "l2", "LEFT", "RIGHT"],
        &["INCR", "n"],
        &["SET", "e", "v", "PX", "1"],
    ];
    let kv = common::start(&[]).await;
    let redis = RedisServer::start(&[]);
    let ours = notifications(kv.addr(), "KEAnm", commands).await;
    let theirs = notifications(redis.socket_addr(), "KEAnm", commands).await;
    assert!(theirs.iter().any(|m| m[1] == "keymiss"), "{theirs:?}");
    assert!(theirs.iter().any(|m| m[1] == "new"), "{theirs:?}");
    assert_eq!(ours, theirs);
}

#[tokio::test]
async fn notification_flags_choose_the_classes() {
    let server = common::start(&[]).await;
    let mut c = connect(&server).await;
    assert_eq!(
        call(&mut c, &["CONFIG", "SET", "notify-keyspace-events", "El"]).await,
        Frame::simple("OK")
    );
    assert_eq!(
        call(&mut c, &["CONFIG", "GET", "notify-keyspace-events"]).await,
        Frame::Array(vec![bulk("notify-keyspace-events"), bulk("lE")])
    );
    assert!(matches!(
        call(&mut c, &["CONFIG", "SET", "notify-keyspace-events", "Kq"]).await,
        Frame::Error(_)
    ));
    let mut sub = connect(&server).await;
    call(&mut sub, &["PSUBSCRIBE", "__key*__:*"]).await;
    call(&mut c, &["SET", "s", "v"]).await; // a string: not in class l
    call(&mut c, &["RPUSH", "l", "x"]).await;
    assert_eq!(
        words(&sub.read_reply().await.unwrap()),
        ["pmessage", "__key*__:*", "__keyevent@0__:rpush", "l"]
    );
    call(&mut c, &["SELECT", "3"]).await;
    call(&mut c, &["LPUSH", "l", "y"]).await;
    assert_eq!(
        words(&sub.read_reply().await.unwrap())[2],
        "__keyevent@3__:lpush"
    );
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_cut_off_at_its_limit() {
    let server = common::start(&[]).await;
    let mut admin = connect(&server).await;
    call(
        &mut admin,
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "pubsub 1mb 0 0",
        ],
    )
    .await;
    let mut slow = TcpStream::connect(server.addr()).await.unwrap();
    slow.write_all(b"SUBSCRIBE feed\r\n").await.unwrap();
    let mut confirmation = [0u8; 33];
    slow.read_exact(&mut confirmation).await.unwrap();
    let payload = "x".repeat(64 * 1024);
    // Far more than the socket buffers and the 1 MB queue hold.
    let mut cut_off = false;
    for _ in 0..2000 {
        call(&mut admin, &["PUBLISH", "feed", &payload]).await;
        if call(&mut admin, &["PUBSUB", "NUMSUB", "feed"]).await
            == Frame::Array(vec![bulk("feed"), int(0)])
        {
            cut_off = true;
            break;
        }
    }
    assert!(cut_off, "the slow subscriber was disconnected");
    // The server goes on serving.
    assert_eq!(call(&mut admin, &["PING"]).await, Frame::simple("PONG"));
}

/// A replica never expires keys itself: the primary's expiry reaches it as a removal, which
/// it announces as `del` (as a Redis replica does on its primary's `DEL`), never `expired`.
#[tokio::test]
async fn a_replica_announces_the_primarys_expiry_as_del() {
    use std::sync::Arc;
    use std::time::Duration;

    let t0 = 1_700_000_000_000;
    let clock = Arc::new(kv::clock::ManualClock::new(t0));
    let primary = common::start_with_clock(&[], clock.clone()).await;
    let address = format!("127.0.0.1:{}", primary.addr().port());
    // The replica's clock agrees with the primary's: it hides keys past their deadline.
    let replica_clock = Arc::new(kv::clock::ManualClock::new(t0));
    let replica = common::start_with_clock(&["--replicaof", &address], replica_clock).await;
    let mut r = connect(&replica).await;
    call(&mut r, &["CONFIG", "SET", "notify-keyspace-events", "KEA"]).await;
    let mut sub = connect(&replica).await;
    call(&mut sub, &["PSUBSCRIBE", "__key*@0__:*"]).await;
    let mut p = connect(&primary).await;
    call(&mut p, &["SET", "k", "v", "PX", "1000"]).await;
    // Wait until the replica has the key, then expire it on the primary.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while call(&mut r, &["EXISTS", "k"]).await != int(1) {
        assert!(
            std::time::Instant::now() < deadline,
            "the replica never got the key"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    clock.advance(1000);
    assert_eq!(call(&mut p, &["GET", "k"]).await, Frame::Null);
    let mut next = async || {
        let frame = tokio::time::timeout(Duration::from_secs(10), sub.read_reply())
            .await
            .expect("a notification on the replica")
            .unwrap();
        words(&frame)[2..].to_vec()
    };
    assert_eq!(next().await, ["__keyspace@0__:k", "del"]);
    assert_eq!(next().await, ["__keyevent@0__:del", "k"]);
}

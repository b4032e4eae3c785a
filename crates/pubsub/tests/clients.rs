#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! Real clients, unchanged: the `redis` crate's RESP2 pub/sub connection and its RESP3
//! push interface, and `redis-cli`.

mod common;

use std::process::Stdio;
use std::time::Duration;

use proto::Frame;
use redis::AsyncCommands;
use service::RespClient;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn url(addr: std::net::SocketAddr, resp3: bool) -> String {
    format!(
        "redis://{addr}/{}",
        if resp3 { "?protocol=resp3" } else { "" }
    )
}

/// Waits for the next message from a `redis` crate pub/sub stream.
async fn next(stream: &mut redis::aio::PubSubStream) -> redis::Msg {
    let next = std::future::poll_fn(|cx| futures_core_poll(stream, cx));
    tokio::time::timeout(Duration::from_secs(10), next)
        .await
        .expect("a message within 10 s")
        .expect("stream open")
}

fn futures_core_poll(
    stream: &mut redis::aio::PubSubStream,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<Option<redis::Msg>> {
    use futures_core::Stream;
    std::pin::Pin::new(stream).poll_next(cx)
}

#[tokio::test]
async fn redis_crate_resp2_pubsub() {
    let server = common::start(&[]).await;
    let client = redis::Client::open(url(server.addr(), false)).unwrap();
    let (mut sink, mut stream) = client.get_async_pubsub().await.unwrap().split();
    sink.subscribe("news").await.unwrap();
    sink.psubscribe("n*").await.unwrap();
    let mut publisher = client.get_multiplexed_async_connection().await.unwrap();
    let receivers: i64 = publisher.publish("news", "hello").await.unwrap();
    assert_eq!(receivers, 2, "the channel subscription and the pattern");
    let first = next(&mut stream).await;
    assert_eq!(first.get_channel_name(), "news");
    assert_eq!(first.get_payload::<String>().unwrap(), "hello");
    assert!(!first.from_pattern());
    let second = next(&mut stream).await;
    assert_eq!(second.get_pattern::<String>().unwrap(), "n*");
    assert_eq!(second.get_payload::<String>().unwrap(), "hello");
    let numsub: Vec<(String, i64)> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg("news")
        .query_async(&mut publisher)
        .await
        .unwrap();
    assert_eq!(numsub, vec![("news".to_string(), 1)]);
    let numpat: i64 = redis::cmd("PUBSUB")
        .arg("NUMPAT")
        .query_async(&mut publisher)
        .await
        .unwrap();
    assert_eq!(numpat, 1);
    sink.unsubscribe("news").await.unwrap();
    sink.punsubscribe("n*").await.unwrap();
    let receivers: i64 = publisher.publish("news", "again").await.unwrap();
    assert_eq!(receivers, 0);
    let channels: Vec<String> = redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .query_async(&mut publisher)
        .await
        .unwrap();
    assert!(channels.is_empty(), "freed with the last subscriber");
    server.stop().await;
}

#[tokio::test]
async fn redis_crate_resp3_push() {
    let server = common::start(&[]).await;
    let client = redis::Client::open(url(server.addr(), true)).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let config = redis::AsyncConnectionConfig::new().set_push_sender(tx);
    let mut con = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap();
    con.subscribe("r3").await.unwrap();
    // In RESP3 a subscriber may run any command on the same connection.
    let receivers: i64 = con.publish("r3", "to-myself").await.unwrap();
    assert_eq!(receivers, 1);
    let mut pushes = Vec::new();
    while pushes.len() < 2 {
        let push = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        pushes.push(push);
    }
    assert_eq!(pushes[0].kind, redis::PushKind::Subscribe);
    assert_eq!(pushes[1].kind, redis::PushKind::Message);
    assert_eq!(
        pushes[1].data,
        vec![
            redis::Value::BulkString(b"r3".to_vec()),
            redis::Value::BulkString(b"to-myself".to_vec())
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn redis_cli_subscribe_and_publish() {
    let server = common::start(&[]).await;
    let port = server.addr().port().to_string();
    let mut subscriber = Command::from(testkit::peer("redis-cli"))
        .args(["-p", &port, "SUBSCRIBE", "alerts"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(subscriber.stdout.take().unwrap()).lines();
    let mut got = Vec::new();
    while got.len() < 3 {
        got.push(lines.next_line().await.unwrap().unwrap());
    }
    assert_eq!(got, ["subscribe", "alerts", "1"]);
    let publish = Command::from(testkit::peer("redis-cli"))
        .args(["-p", &port, "PUBLISH", "alerts", "disk full"])
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&publish.stdout), "1\n");
    got.clear();
    while got.len() < 3 {
        got.push(lines.next_line().await.unwrap().unwrap());
    }
    assert_eq!(got, ["message", "alerts", "disk full"]);
    let numsub = Command::from(testkit::peer("redis-cli"))
        .args(["-p", &port, "PUBSUB", "NUMSUB", "alerts"])
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&numsub.stdout), "alerts\n1\n");
    subscriber.kill().await.unwrap();
    server.stop().await;
}

/// Every subscriber of a busy channel receives every message, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_subscribers_receive_ten_thousand_messages_in_order() {
    const SUBSCRIBERS: usize = 1000;
    const MESSAGES: usize = 10_000;
    let server = common::start(&[]).await;
    let addr = server.addr();
    // What each subscriber must receive, byte for byte: the confirmation, then every
    // message in publish order.
    let mut expected = Vec::new();
    let confirmation = Frame::Array(vec![
        common::bulk("subscribe"),
        common::bulk("feed"),
        Frame::Integer(1),
    ])
    .to_bytes(proto::Protocol::Resp2);
    expected.extend_from_slice(&confirmation);
    for i in 0..MESSAGES {
        let message = Frame::Array(vec![
            common::bulk("message"),
            common::bulk("feed"),
            common::bulk(&format!("m{i:05}")),
        ]);
        expected.extend_from_slice(&message.to_bytes(proto::Protocol::Resp2));
    }
    let expected = std::sync::Arc::new(expected);
    let mut readers = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        socket
            .write_all(b"*2\r\n$9\r\nSUBSCRIBE\r\n$4\r\nfeed\r\n")
            .await
            .unwrap();
        // Wait for the confirmation before publishing, so the subscription exists.
        let mut received = vec![0u8; confirmation.len()];
        socket.read_exact(&mut received).await.unwrap();
        assert_eq!(received, confirmation);
        let expected = expected.clone();
        let skip = confirmation.len();
        readers.push(tokio::spawn(async move {
            let mut rest = vec![0u8; expected.len() - skip];
            socket.read_exact(&mut rest).await.unwrap();
            rest == expected[skip..]
        }));
    }
    let mut publisher = RespClient::connect(addr).await.unwrap();
    for chunk in (0..MESSAGES).collect::<Vec<_>>().chunks(100) {
        for i in chunk {
            publisher.queue(["PUBLISH".to_string(), "feed".into(), format!("m{i:05}")]);
        }
        publisher.flush().await.unwrap();
        for _ in chunk {
            assert_eq!(
                common::read(&mut publisher).await,
                Frame::Integer(SUBSCRIBERS as i64)
            );
        }
    }
    for reader in readers {
        let all_in_order = tokio::time::timeout(Duration::from_secs(60), reader)
            .await
            .unwrap()
            .unwrap();
        assert!(all_in_order);
    }
    server.stop().await;
}

#[tokio::test]
async fn info_and_config() {
    let server = common::start(&["--slow-consumer-policy", "drop-oldest"]).await;
    let mut c = RespClient::connect(server.addr()).await.unwrap();
    let info = c.call(["INFO", "pubsub"]).await.unwrap();
    let text = String::from_utf8_lossy(info.as_bytes().unwrap()).into_owned();
    for field in [
        "dropped_messages:0",
        "slow_subscriber_disconnections:0",
        "slow_consumer_policy:drop-oldest",
        "client_output_buffer_limit:pubsub 33554432 8388608 60",
    ] {
        assert!(text.contains(field), "{field} in {text}");
    }
    // Subscribers: clients with at least one subscription, each counted once.
    let mut sub = RespClient::connect(server.addr()).await.unwrap();
    sub.queue(["SUBSCRIBE", "a", "b"]);
    sub.queue(["PSUBSCRIBE", "a*"]);
    sub.flush().await.unwrap();
    for _ in 0..3 {
        sub.read_reply().await.unwrap();
    }
    let info = c.call(["INFO", "stats"]).await.unwrap();
    let text = String::from_utf8_lossy(info.as_bytes().unwrap()).into_owned();
    assert!(text.contains("subscribers:1\r\n"), "{text}");
    drop(sub);
    assert_eq!(
        c.call([
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "pubsub 1mb 512kb 5"
        ])
        .await
        .unwrap(),
        Frame::ok()
    );
    assert_eq!(
        c.call(["CONFIG", "GET", "client-output-buffer-limit"])
            .await
            .unwrap(),
        Frame::Array(vec![
            common::bulk("client-output-buffer-limit"),
            common::bulk("pubsub 1048576 524288 5")
        ])
    );
    assert_eq!(
        c.call(["CONFIG", "SET", "slow-consumer-policy", "drop-newest"])
            .await
            .unwrap(),
        Frame::ok()
    );
    assert!(
        c.call(["CONFIG", "SET", "slow-consumer-policy", "maybe"])
            .await
            .unwrap()
            .is_error()
    );
    server.stop().await;
}

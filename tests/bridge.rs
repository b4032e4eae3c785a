#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! The hybrid pub/sub + queue: `pubsub::bridge` subscribes to a pattern on the pub/sub
//! server and feeds every message into a broker queue, over the network, surviving a
//! restart of either server.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use proto::Frame;
use pubsub::bridge::{Bridge, BridgeArgs, BridgeStats};
use service::{CancellationToken, RespClient, Running};

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("infralab-bridge-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn start_pubsub(port: u16) -> Running {
    let args = pubsub::Args::parse_from(["pubsub", "--port", &port.to_string()]);
    pubsub::start(args, CancellationToken::new()).await.unwrap()
}

async fn start_broker(port: u16, dir: &std::path::Path) -> Running {
    let args = broker::Args::parse_from([
        "broker",
        "--port",
        &port.to_string(),
        "--beanstalk-port",
        "0",
        "--sqs-port",
        "0",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    broker::start(args, CancellationToken::new()).await.unwrap()
}

/// Polls until `check` holds (the bridge reconnects on its own schedule).
async fn eventually<F: AsyncFnMut() -> bool>(what: &str, mut check: F) {
    for _ in 0..500 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn bridge_subscribed(pubsub: SocketAddr) -> bool {
    match RespClient::connect(pubsub).await {
        Ok(mut c) => c.call(["PUBSUB", "NUMPAT"]).await.unwrap() == Frame::Integer(1),
        Err(_) => false,
    }
}

async fn publish_range(pubsub: SocketAddr, range: std::ops::Range<usize>) {
    let mut c = RespClient::connect(pubsub).await.unwrap();
    for i in range.clone() {
        let channel = if i % 2 == 0 { "orders.eu" } else { "orders.us" };
        c.queue([
            "PUBLISH".to_string(),
            channel.to_string(),
            format!("order-{i:05}"),
        ]);
    }
    c.flush().await.unwrap();
    for _ in range {
        assert_eq!(c.read_reply().await.unwrap(), Frame::Integer(1));
    }
}

/// Receives (and acks) messages from the queue until `n` have come; returns their bodies.
async fn receive(broker: SocketAddr, n: usize) -> Vec<String> {
    let mut c = RespClient::connect(broker).await.unwrap();
    let mut bodies = Vec::new();
    while bodies.len() < n {
        let reply = c
            .call(["QRECV", "orders", "COUNT", "1000", "BLOCK", "10000"])
            .await
            .unwrap();
        let Frame::Array(messages) = reply else {
            panic!("QRECV: {reply:?}")
        };
        assert!(
            !messages.is_empty(),
            "no message within 10 s after {bodies:?}"
        );
        for m in messages {
            // RESP2 lowers each message's map to [key, value, ...].
            let Frame::Array(fields) = m else { panic!() };
            let get = |key: &str| {
                let at = fields
                    .iter()
                    .position(|f| *f == Frame::bulk(Bytes::copy_from_slice(key.as_bytes())))
                    .unwrap();
                fields[at + 1].clone()
            };
            let Frame::Bulk(body) = get("body") else {
                panic!()
            };
            let receipt = get("receipt");
            bodies.push(String::from_utf8(body.to_vec()).unwrap());
            let ack = c
                .call([
                    Bytes::from_static(b"QACK"),
                    Bytes::from_static(b"orders"),
                    receipt.as_bytes().unwrap().clone(),
                ])
                .await
                .unwrap();
            assert_eq!(ack, Frame::ok(), "acked");
        }
    }
    bodies
}

fn expected(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("order-{i:05}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_reach_the_queue_in_order_across_restarts() {
    let dir = temp_dir();
    let mut pubsub = start_pubsub(0).await;
    let mut broker = start_broker(0, &dir).await;
    let (pubsub_addr, broker_addr) = (pubsub.addr(), broker.addr());
    let shutdown = CancellationToken::new();
    let bridge = Bridge::spawn(
        BridgeArgs::parse_from([
            "bridge",
            "--pubsub",
            &pubsub_addr.to_string(),
            "--pattern",
            "orders.*",
            "--broker",
            &broker_addr.to_string(),
            "--queue",
            "orders",
            "--report-every",
            "0",
        ]),
        shutdown.clone(),
    );
    eventually("the bridge to subscribe", || bridge_subscribed(pubsub_addr)).await;

    // 1. Both up: every message, in order.
    publish_range(pubsub_addr, 0..2000).await;
    assert_eq!(receive(broker_addr, 2000).await, expected(0..2000));

    // 2. The pub/sub server restarts: the bridge resubscribes and carries on.
    pubsub.stop().await;
    pubsub = start_pubsub(pubsub_addr.port()).await;
    eventually("the bridge to resubscribe", || {
        bridge_subscribed(pubsub_addr)
    })
    .await;
    publish_range(pubsub_addr, 2000..3000).await;
    assert_eq!(receive(broker_addr, 1000).await, expected(2000..3000));

    // 3. The broker is down: messages wait in the bridge's backlog, then arrive in order.
    broker.stop().await;
    publish_range(pubsub_addr, 3000..3500).await;
    broker = start_broker(broker_addr.port(), &dir).await;
    assert_eq!(receive(broker_addr, 500).await, expected(3000..3500));

    let stats = &bridge.stats;
    assert_eq!(BridgeStats::get(&stats.received), 3500);
    assert_eq!(BridgeStats::get(&stats.forwarded), 3500);
    assert_eq!(BridgeStats::get(&stats.dropped), 0);
    assert_eq!(BridgeStats::get(&stats.pubsub_connects), 2);
    assert!(BridgeStats::get(&stats.broker_connects) >= 2);
    shutdown.cancel();
    bridge.wait().await;
    pubsub.stop().await;
    broker.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

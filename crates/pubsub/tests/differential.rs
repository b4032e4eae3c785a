#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! The same pub/sub sessions replayed against `redis-server` and infralab: every
//! connection must receive the same frames, in the same order.
//!
//! After each step, every connection is sent `PING <marker>` and read up to the
//! marker's reply: that collects exactly what the step caused on each connection
//! (replies, confirmations, pushed messages), whatever the timing.

mod common;

use std::net::SocketAddr;

use proto::Frame;
use service::RespClient;

/// `(connection, command)`. Connections 0-3 start in RESP2.
const CORPUS: &[(usize, &str)] = &[
    // Plain commands and errors outside subscribed mode.
    (0, "PUBLISH news hello"),
    (0, "PUBSUB NUMPAT"),
    (0, "PUBSUB CHANNELS"),
    (0, "PUBSUB NUMSUB news other"),
    (0, "UNSUBSCRIBE"),
    (0, "PUNSUBSCRIBE"),
    (0, "UNSUBSCRIBE never"),
    (0, "SUBSCRIBE"),
    (0, "PUBLISH onlyone"),
    (0, "PUBSUB"),
    (0, "PUBSUB nosuch"),
    (0, "PUBSUB NUMPAT extra"),
    (0, "PUBSUB CHANNELS a b"),
    (0, "PUBSUB HELP"),
    (0, "PUBSUB SHARDCHANNELS"),
    (0, "PUBSUB SHARDNUMSUB x"),
    // Subscriptions, confirmations and counts.
    (1, "SUBSCRIBE news sport"),
    (1, "SUBSCRIBE news"),
    (2, "PSUBSCRIBE n* s?ort"),
    (3, "SUBSCRIBE news"),
    (3, "PSUBSCRIBE n*"),
    (0, "PUBSUB NUMSUB news sport nothing"),
    (0, "PUBSUB NUMPAT"),
    (0, "PUBSUB CHANNELS n*"),
    (0, "PUBSUB CHANNELS"),
    // Fan-out: a channel subscriber, two pattern subscriptions, and one client with
    // both (it gets the message twice).
    (0, "PUBLISH news breaking"),
    (0, "PUBLISH sport goal"),
    (0, "PUBLISH weather rain"),
    (0, "PUBLISH nothing-here x"),
    // Subscribed mode: PING's special reply, Redis's error for other commands.
    (1, "PING"),
    (1, "PING hi"),
    (1, "PUBLISH news x"),
    (1, "PUBSUB NUMPAT"),
    (1, "CLIENT ID"),
    (1, "HELLO 3"),
    (1, "NOSUCHCOMMAND a"),
    (1, "SUBSCRIBE"),
    // Leaving: counts go down; the last one leaves subscribed mode.
    (1, "UNSUBSCRIBE sport"),
    (1, "UNSUBSCRIBE sport"),
    (1, "PUNSUBSCRIBE"),
    (1, "UNSUBSCRIBE news"),
    (1, "PING"),
    (1, "PUBLISH news after"),
    (2, "PUNSUBSCRIBE s?ort nomatch"),
    (0, "PUBSUB NUMPAT"),
    (0, "PUBLISH sport nobody"),
    (3, "RESET"),
    (3, "PING"),
    (0, "PUBLISH news after-reset"),
    (0, "PUBSUB NUMSUB news"),
    // RESP3: confirmations and messages are push frames; any command is allowed.
    (4, "SUBSCRIBE r3"),
    (4, "PSUBSCRIBE r*"),
    (4, "PING"),
    (4, "PUBSUB NUMSUB r3"),
    (0, "PUBLISH r3 to-resp3"),
    (4, "PUBLISH r3 to-myself"),
    (4, "UNSUBSCRIBE r3"),
    (4, "PUNSUBSCRIBE"),
    (4, "UNSUBSCRIBE"),
    (0, "PUBSUB CHANNELS"),
    // Binary-safe names and payloads.
    (1, "SUBSCRIBE \"bin\\x00chan\""),
    (0, "PUBLISH \"bin\\x00chan\" \"\\xff\\x00\\r\\n\""),
    (1, "UNSUBSCRIBE"),
    // Glob patterns.
    (2, "PSUBSCRIBE h[ae]llo \\* a\\?b [^x]y"),
    (0, "PUBLISH hello 1"),
    (0, "PUBLISH hallo 2"),
    (0, "PUBLISH hxllo 3"),
    (0, "PUBLISH * 4"),
    (0, "PUBLISH a?b 5"),
    (0, "PUBLISH axb 6"),
    (0, "PUBLISH zy 7"),
    (0, "PUBLISH xy 8"),
    // Sharded pub/sub (Redis 7): shard channels are a namespace of their own.
    (0, "SPUBLISH orders nobody"),
    (0, "SSUBSCRIBE"),
    (0, "SPUBLISH onlyone"),
    (0, "SUNSUBSCRIBE"),
    (0, "SUNSUBSCRIBE never"),
    (1, "SSUBSCRIBE orders eu"),
    (1, "SSUBSCRIBE orders"),
    (2, "SUBSCRIBE orders"),
    (2, "PSUBSCRIBE o*"),
    (0, "PUBSUB SHARDCHANNELS"),
    (0, "PUBSUB SHARDCHANNELS o*"),
    (0, "PUBSUB SHARDCHANNELS a b"),
    (0, "PUBSUB SHARDNUMSUB orders eu none"),
    (0, "PUBSUB NUMSUB orders eu"),
    (0, "PUBSUB CHANNELS"),
    (0, "SPUBLISH orders s1"),
    (0, "PUBLISH orders p1"),
    (0, "SPUBLISH eu \"\\x00bin\\r\\n\""),
    // A shard subscription alone puts a RESP2 client in subscribed mode, and is counted
    // apart from channels and patterns.
    (1, "PING"),
    (1, "SPUBLISH orders self"),
    (1, "SUBSCRIBE plain"),
    (1, "SUNSUBSCRIBE eu"),
    (1, "UNSUBSCRIBE"),
    (1, "PING"),
    (1, "SUNSUBSCRIBE"),
    (1, "PING"),
    (1, "SUNSUBSCRIBE"),
    (2, "UNSUBSCRIBE orders"),
    (2, "PUNSUBSCRIBE o*"),
    // RESP3: `smessage` and the confirmations are push frames.
    (4, "SSUBSCRIBE r3s other"),
    (0, "SPUBLISH r3s hi"),
    (4, "SPUBLISH r3s me"),
    (4, "PUBSUB SHARDNUMSUB r3s"),
    (4, "SUNSUBSCRIBE r3s"),
    (4, "SUNSUBSCRIBE"),
    // RESET leaves shard channels too.
    (3, "SSUBSCRIBE gone"),
    (3, "RESET"),
    (0, "PUBSUB SHARDNUMSUB gone"),
    (0, "PUBSUB SHARDCHANNELS"),
];

/// Splits a command line like redis-cli: words, double quotes with `\xHH` and `\r\n` escapes.
fn words(line: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == ' ' {
            chars.next();
            continue;
        }
        let mut word = Vec::new();
        if c == '"' {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next() {
                        Some('x') => {
                            let hex: String = chars.by_ref().take(2).collect();
                            word.push(u8::from_str_radix(&hex, 16).unwrap());
                        }
                        Some('r') => word.push(b'\r'),
                        Some('n') => word.push(b'\n'),
                        Some(other) => word.push(other as u8),
                        None => {}
                    },
                    other => word.push(other as u8),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                word.push(c as u8);
                chars.next();
            }
        }
        out.push(word);
    }
    out
}

/// Replays the corpus; returns what each step delivered to each connection. With
/// `all_resp3`, every connection says `HELLO 3` first (not only connection 4).
async fn replay(addr: SocketAddr, all_resp3: bool) -> Vec<String> {
    let mut conns = Vec::new();
    for i in 0..5 {
        let mut c = RespClient::connect(addr).await.unwrap();
        if i == 4 || all_resp3 {
            // The HELLO reply names the server; only its shape is compared.
            assert!(matches!(
                c.call(["HELLO", "3"]).await.unwrap(),
                Frame::Map(_)
            ));
        }
        conns.push(c);
    }
    let mut transcript = Vec::new();
    for (step, (conn, line)) in CORPUS.iter().enumerate() {
        let c = &mut conns[*conn];
        c.queue(words(line));
        c.flush().await.unwrap();
        for (i, c) in conns.iter_mut().enumerate() {
            let marker = format!("marker-{step}-{i}");
            c.queue(["PING".to_string(), marker.clone()]);
            c.flush().await.unwrap();
            let mut frames = Vec::new();
            loop {
                let frame = common::read(c).await;
                let is_marker = match &frame {
                    Frame::Bulk(b) => b == marker.as_bytes(),
                    Frame::Array(items) => items.get(1) == Some(&common::bulk(&marker)),
                    _ => false,
                };
                if is_marker {
                    break;
                }
                frames.push(frame);
            }
            if line.starts_with("PUBSUB CHANNELS") || line.starts_with("PUBSUB SHARDCHANNELS") {
                // Redis lists channels in hash-table order.
                for f in &mut frames {
                    if let Frame::Array(items) | Frame::Set(items) = f {
                        items.sort_by_key(|i| format!("{i:?}"));
                    }
                }
            }
            if matches!(*line, "CLIENT ID" | "HELLO 3") {
                // Allowed in RESP3's subscribed mode, and each server's own (its name,
                // its client ids): only the reply's type is compared.
                for f in &mut frames {
                    *f = Frame::Simple(kind(f).into());
                }
            }
            if !frames.is_empty() {
                transcript.push(format!("step {step} `{line}` -> conn {i}: {frames:?}"));
            }
        }
    }
    transcript
}

/// A frame's type, for replies whose contents are each server's own.
fn kind(frame: &Frame) -> &'static str {
    match frame {
        Frame::Error(_) => "error",
        Frame::Integer(_) => "integer",
        Frame::Map(_) => "map",
        _ => "other",
    }
}

#[tokio::test]
async fn same_replies_as_redis_server() {
    compare(false).await;
}

/// The whole corpus with every connection in RESP3: confirmations and messages are push
/// frames, PUBSUB NUMSUB and friends have Redis 7's types, frame by frame.
#[tokio::test]
async fn same_resp3_replies_as_redis_server() {
    compare(true).await;
}

async fn compare(all_resp3: bool) {
    let redis = testkit::RedisServer::start(&[]);
    let ours = common::start(&[]).await;
    let expected = replay(redis.socket_addr(), all_resp3).await;
    let actual = replay(ours.addr(), all_resp3).await;
    for (e, a) in expected.iter().zip(&actual) {
        assert_eq!(a, e, "\n  infralab: {a}\n  redis:    {e}");
    }
    assert_eq!(actual.len(), expected.len());
    ours.stop().await;
}

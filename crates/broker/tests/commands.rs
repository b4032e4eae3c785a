#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! The broker's commands through a real client, against a broker on port 0.

mod common;

use std::time::Duration;

use common::{Client, err, start, temp_dir};
use proto::Frame;

#[tokio::test]
async fn send_receive_ack() {
    let dir = temp_dir("basic");
    let server = start(&dir, &[]).await;
    let mut c = Client::connect(server.addr()).await;
    let id = c.send("jobs", "caption video 1").await;
    assert_eq!(
        c.call(&["QSENDBATCH", "jobs", "v2", "v3"]).await,
        Frame::Array(vec![Frame::Integer(id + 1), Frame::Integer(id + 2)])
    );
    let got = c.recv("jobs", &["COUNT", "2"]).await;
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[0].id, got[0].body.as_ref(), got[0].deliveries),
        (id, &b"caption video 1"[..], 1)
    );
    // In flight: another consumer sees only the third.
    let mut other = Client::connect(server.addr()).await;
    let third = other.recv("jobs", &["COUNT", "10"]).await;
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].body.as_ref(), b"v3");
    for g in got.iter().chain(&third) {
        assert_eq!(c.ack("jobs", &g.receipt).await, Frame::ok());
    }
    assert_eq!(c.stat("jobs", "acked").await, 3);
    assert_eq!(c.stat("jobs", "ready").await, 0);
    assert_eq!(c.recv("jobs", &[]).await, vec![]);
    // Binary-safe payloads.
    c.0.call(vec![
        bytes::Bytes::from_static(b"QSEND"),
        bytes::Bytes::from_static(b"bin"),
        bytes::Bytes::from_static(b"\x00\r\n\xff"),
    ])
    .await
    .unwrap();
    assert_eq!(c.recv("bin", &[]).await[0].body.as_ref(), b"\x00\r\n\xff");
    assert_eq!(c.call(&["QLIST"]).await, Frame::bulk_array(["bin", "jobs"]));
    assert_eq!(c.call(&["QLIST", "j*"]).await, Frame::bulk_array(["jobs"]));
    server.stop().await;
}

#[tokio::test]
async fn a_stale_receipt_cannot_ack_what_another_worker_holds() {
    let dir = temp_dir("stale");
    let server = start(&dir, &[]).await;
    let mut slow = Client::connect(server.addr()).await;
    let mut fast = Client::connect(server.addr()).await;
    slow.send("jobs", "job").await;
    let first = slow.recv("jobs", &["VISIBILITY", "50"]).await.remove(0);
    // The lease runs out; the next receive (blocking until then) gets delivery 2.
    let second = fast.recv("jobs", &["BLOCK", "10000"]).await.remove(0);
    assert_eq!((second.id, second.deliveries), (first.id, 2));
    let Frame::Error(e) = slow.ack("jobs", &first.receipt).await else {
        panic!("a stale ack must fail")
    };
    assert!(e.starts_with(b"STALE "), "{e:?}");
    assert_eq!(fast.ack("jobs", &second.receipt).await, Frame::ok());
    assert!(
        fast.ack("jobs", &second.receipt).await.is_error(),
        "acked twice"
    );
    assert_eq!(fast.stat("jobs", "redelivered").await, 1);
    server.stop().await;
}

#[tokio::test]
async fn bad_input_is_an_error_reply() {
    let dir = temp_dir("bad");
    let server = start(&dir, &[]).await;
    let mut c = Client::connect(server.addr()).await;
    assert_eq!(
        c.ack("nope", "1-1-0000000000000000").await,
        err("NOQUEUE no such queue 'nope'")
    );
    c.send("jobs", "x").await;
    for bad in ["", "1", "abc", "1-1", "1-1-xyz", "1-1-00000000000000000"] {
        assert_eq!(
            c.ack("jobs", bad).await,
            err("ERR malformed receipt"),
            "{bad:?}"
        );
    }
    assert_eq!(
        c.call(&["QCREATE", "small", "MAXSIZE", "4"]).await,
        Frame::ok()
    );
    assert_eq!(
        c.call(&["QSEND", "small", "12345"]).await,
        err("ERR message too large (5 bytes; the queue's MAXSIZE is 4)")
    );
    assert_eq!(
        c.call(&["QRECV", "jobs", "BLOCK", "-1"]).await,
        err("ERR timeout is negative")
    );
    assert_eq!(
        c.call(&["QRECV", "jobs", "VISIBILITY", "-5"]).await,
        err("ERR VISIBILITY is negative")
    );
    assert_eq!(
        c.call(&["QSEND", "jobs", "x", "DELAY", "-1"]).await,
        err("ERR DELAY is negative")
    );
    assert_eq!(
        c.call(&["QEXTEND", "jobs", "1-1-0000000000000000", "-1"])
            .await,
        err("ERR timeout is negative")
    );
    assert_eq!(
        c.call(&["QRECV", "jobs", "COUNT", "0"]).await,
        err("ERR COUNT must be between 1 and 1000")
    );
    assert_eq!(
        c.call(&["QRECV", "jobs", "BLOCK", "x"]).await,
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(
        c.call(&["QSEND", "jobs", "x", "NOPE"]).await,
        err("ERR syntax error")
    );
    assert_eq!(
        c.call(&["QSEND", "jobs", "x", "PRIORITY", "-1"]).await,
        err("ERR PRIORITY must be between 0 and 4294967295")
    );
    assert_eq!(
        c.call(&["QACK", "jobs"]).await,
        err("ERR wrong number of arguments for 'qack' command")
    );
    assert_eq!(
        c.call(&["QCREATE", "loop", "DEADLETTER", "loop"]).await,
        err("ERR a queue cannot be its own dead-letter queue")
    );
    assert_eq!(
        c.call(&["QSTATS", "nope"]).await,
        err("NOQUEUE no such queue 'nope'")
    );
    // Still serving.
    assert_eq!(c.recv("jobs", &[]).await.len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn long_poll_wakes_when_a_message_arrives() {
    let dir = temp_dir("longpoll");
    let server = start(&dir, &[]).await;
    let addr = server.addr();
    let mut consumer = Client::connect(addr).await;
    // BLOCK 0 waits for ever: only a wake-up can end it (the outer timeout is a guard
    // against a hang, not a timing assertion).
    let waiting = tokio::spawn(async move {
        let got = consumer.recv("jobs", &["BLOCK", "0"]).await;
        assert_eq!(consumer.ack("jobs", &got[0].receipt).await, Frame::ok());
        got
    });
    let mut producer = Client::connect(addr).await;
    // Make sure the consumer is blocked before we send: it has created the queue.
    while producer.call(&["QLIST"]).await == Frame::Array(vec![]) {
        tokio::task::yield_now().await;
    }
    producer.send("jobs", "wake up").await;
    let got = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("long poll did not wake")
        .unwrap();
    assert_eq!(got[0].body.as_ref(), b"wake up");
    // A blocking receive with nothing to get returns an empty array at its deadline.
    let mut c = Client::connect(addr).await;
    assert_eq!(c.recv("jobs", &["BLOCK", "20"]).await, vec![]);
    server.stop().await;
}

#[tokio::test]
async fn long_poll_ends_on_shutdown() {
    let dir = temp_dir("shutdown");
    let server = start(&dir, &[]).await;
    let mut consumer = Client::connect(server.addr()).await;
    let waiting =
        tokio::spawn(async move { consumer.call(&["QRECV", "jobs", "BLOCK", "0"]).await });
    let mut other = Client::connect(server.addr()).await;
    while other.call(&["QLIST"]).await == Frame::Array(vec![]) {
        tokio::task::yield_now().await;
    }
    drop(other);
    tokio::time::timeout(Duration::from_secs(10), server.stop())
        .await
        .expect("shutdown waited for the long poll");
    assert_eq!(waiting.await.unwrap(), Frame::Array(vec![]));
}

#[tokio::test]
async fn delays_priorities_nack_and_extend() {
    let dir = temp_dir("delays");
    let server = start(&dir, &[]).await;
    let mut c = Client::connect(server.addr()).await;
    c.call(&["QSEND", "jobs", "later", "DELAY", "100"]).await;
    c.call(&["QSEND", "jobs", "low", "PRIORITY", "2000"]).await;
    c.call(&["QSEND", "jobs", "urgent", "PRIORITY", "0"]).await;
    c.send("jobs", "normal").await;
    assert_eq!(c.stat("jobs", "delayed").await, 1);
    let order: Vec<_> = c.recv("jobs", &["COUNT", "10"]).await;
    let bodies: Vec<&[u8]> = order.iter().map(|g| g.body.as_ref()).collect();
    assert_eq!(bodies, [&b"urgent"[..], b"normal", b"low"]);
    // The delayed one arrives once its delay has passed; a blocking receive waits for it.
    let later = c.recv("jobs", &["BLOCK", "10000"]).await.remove(0);
    assert_eq!(later.body.as_ref(), b"later");
    // Nack with a delay: back after it, as delivery 2.
    assert_eq!(
        c.call(&["QNACK", "jobs", &later.receipt, "DELAY", "50"])
            .await,
        Frame::ok()
    );
    let again = c.recv("jobs", &["BLOCK", "10000"]).await.remove(0);
    assert_eq!((again.id, again.deliveries), (later.id, 2));
    // Extend keeps it ours past its original visibility timeout.
    assert_eq!(
        c.call(&["QEXTEND", "jobs", &again.receipt, "60000"]).await,
        Frame::ok()
    );
    assert_eq!(c.ack("jobs", &again.receipt).await, Frame::ok());
    assert_eq!(c.stat("jobs", "nacked").await, 1);
    server.stop().await;
}

#[tokio::test]
async fn dead_letters_and_redrive() {
    let dir = temp_dir("dlq");
    let server = start(&dir, &[]).await;
    let mut c = Client::connect(server.addr()).await;
    assert_eq!(
        c.call(&[
            "QCREATE",
            "jobs",
            "MAXDELIVERIES",
            "2",
            "DEADLETTER",
            "jobs-dead"
        ])
        .await,
        Frame::ok()
    );
    let id = c.send("jobs", "poison").await;
    for _ in 0..2 {
        let g = c.recv("jobs", &[]).await.remove(0);
        assert_eq!(c.call(&["QNACK", "jobs", &g.receipt]).await, Frame::ok());
    }
    assert_eq!(c.recv("jobs", &[]).await, vec![]);
    assert_eq!(c.stat("jobs", "deadlettered").await, 1);
    assert_eq!(c.stat("jobs-dead", "ready").await, 1);
    let Frame::Array(peeked) = c.call(&["QPEEK", "jobs-dead"]).await else {
        panic!()
    };
    let Frame::Array(fields) = &peeked[0] else {
        panic!()
    };
    assert!(fields.contains(&Frame::bulk("origin")) && fields.contains(&Frame::bulk("jobs")));
    assert_eq!(c.call(&["QREDRIVE", "jobs-dead"]).await, Frame::Integer(1));
    let back = c.recv("jobs", &[]).await.remove(0);
    assert_eq!((back.id, back.deliveries), (id, 1));
    assert_eq!(c.call(&["QPURGE", "jobs"]).await, Frame::Integer(1));
    assert_eq!(c.call(&["QDEL", "jobs"]).await, Frame::Integer(1));
    assert_eq!(c.call(&["QDEL", "jobs"]).await, Frame::Integer(0));
    server.stop().await;
}

#[tokio::test]
async fn a_closed_connection_gives_its_messages_back() {
    let dir = temp_dir("disconnect");
    let server = start(&dir, &[]).await;
    let mut c = Client::connect(server.addr()).await;
    c.send("jobs", "a").await;
    let mut worker = Client::connect(server.addr()).await;
    assert_eq!(worker.recv("jobs", &[]).await.len(), 1);
    drop(worker); // the worker "crashes"
    // Visible again at once (not after 30 s): a blocking receive gets it.
    let got = c.recv("jobs", &["BLOCK", "10000"]).await.remove(0);
    assert_eq!(got.deliveries, 2);
    assert_eq!(c.stat("jobs", "released").await, 1);
    server.stop().await;

    // With --on-disconnect keep, it waits for its visibility timeout, as in SQS.
    let dir = temp_dir("disconnect-keep");
    let server = start(&dir, &["--on-disconnect", "keep"]).await;
    let mut c = Client::connect(server.addr()).await;
    c.send("jobs", "a").await;
    let mut worker = Client::connect(server.addr()).await;
    worker.recv("jobs", &["VISIBILITY", "60000"]).await;
    drop(worker);
    // The broker has noticed the close once CLIENT LIST no longer shows it.
    loop {
        let list = c.call(&["CLIENT", "LIST"]).await;
        if String::from_utf8_lossy(list.as_bytes().unwrap())
            .lines()
            .count()
            == 1
        {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(c.recv("jobs", &[]).await, vec![]);
    assert_eq!(c.stat("jobs", "inflight").await, 1);
    server.stop().await;
}

#[tokio::test]
async fn restart_keeps_unacked_messages_and_forgets_acked_ones() {
    let dir = temp_dir("restart");
    let server = start(&dir, &["--fsync", "always"]).await;
    let mut c = Client::connect(server.addr()).await;
    c.call(&[
        "QCREATE",
        "jobs",
        "VISIBILITY",
        "5000",
        "MAXDELIVERIES",
        "3",
    ])
    .await;
    for body in ["acked", "in-flight", "ready"] {
        c.send("jobs", body).await;
    }
    c.call(&["QSEND", "jobs", "delayed", "DELAY", "60000"])
        .await;
    let acked = c.recv("jobs", &[]).await.remove(0);
    c.ack("jobs", &acked.receipt).await;
    let in_flight = c.recv("jobs", &[]).await.remove(0);
    drop(c);
    server.stop().await;

    let server = start(&dir, &[]).await;
    let mut c = Client::connect(server.addr()).await;
    // Attributes survive; the in-flight message is visible again (released by the
    // restart: its consumer's connection is gone), ahead of the newer one.
    assert_eq!(c.stat("jobs", "maxdeliveries").await, 3);
    assert_eq!(c.stat("jobs", "delayed").await, 1);
    let got = c.recv("jobs", &["COUNT", "10"]).await;
    let summary: Vec<(&[u8], i64)> = got
        .iter()
        .map(|g| (g.body.as_ref(), g.deliveries))
        .collect();
    assert_eq!(summary, [(&b"in-flight"[..], 2), (&b"ready"[..], 1)]);
    assert_eq!(got[0].id, in_flight.id);
    // Ids keep increasing across restarts.
    assert!(c.send("jobs", "new").await > in_flight.id);
    server.stop().await;
}

#[tokio::test]
async fn command_docs_describe_every_command() {
    let dir = temp_dir("docs");
    let server = start(&dir, &[]).await;
    let mut c = Client::connect(server.addr()).await;
    let docs = c.call(&["COMMAND", "DOCS", "QRECV"]).await;
    let text = format!("{docs:?}");
    assert!(text.contains("long") || text.contains("BLOCK"), "{text}");
    let Frame::Array(info) = c.call(&["COMMAND", "INFO", "qsend", "qack"]).await else {
        panic!()
    };
    assert_eq!(info.len(), 2);
    let info = c.call(&["INFO", "broker"]).await;
    assert!(String::from_utf8_lossy(info.as_bytes().unwrap()).contains("fsync:everysec"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_always_under_concurrent_writers_shares_flushes() {
    // Regression: sled 0.34's own flush_async deadlocks when called concurrently; the
    // broker's group commit serialises flushes. Many writers at once must all complete.
    let dir = temp_dir("group-commit");
    let server = start(&dir, &["--fsync", "always"]).await;
    let addr = server.addr();
    let writers: Vec<_> = (0..16)
        .map(|w| {
            tokio::spawn(async move {
                let mut c = Client::connect(addr).await;
                for i in 0..50 {
                    c.send("jobs", &format!("{w}-{i}")).await;
                }
            })
        })
        .collect();
    for writer in writers {
        tokio::time::timeout(Duration::from_secs(60), writer)
            .await
            .expect("a writer hung waiting for its flush")
            .unwrap();
    }
    let mut c = Client::connect(addr).await;
    assert_eq!(c.stat("jobs", "ready").await, 800);
    server.stop().await;
}

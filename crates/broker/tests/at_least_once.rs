#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! At-least-once under failure: 4 consumers take 10,000 messages and ack them, while
//! being killed at random mid-job (connection dropped with messages in hand) and
//! restarted, or hanging (holding a message past its visibility timeout, then acking it
//! late). In the end every message was acknowledged exactly once, none was lost, the
//! late acks all failed, and the redeliveries were counted.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::{Client, parse_messages, start, temp_dir};
use proto::Frame;

const MESSAGES: usize = 10_000;
const CONSUMERS: u64 = 4;

/// xorshift: reproducible randomness without a dependency.
struct Rng(u64);

impl Rng {
    fn chance(&mut self, percent: u64) -> bool {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % 100 < percent
    }
}

#[derive(Default)]
struct Ledger {
    /// id → how many acks of it succeeded.
    acked: HashMap<i64, u32>,
    /// Deliveries seen with a delivery count above 1.
    redeliveries: u64,
    /// Receipts held by "hung" workers, acked at the very end.
    hung: Vec<(i64, String)>,
    crashes: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_acknowledged_exactly_once_despite_crashing_consumers() {
    let dir = temp_dir("alo");
    let server = start(&dir, &[]).await;
    let addr = server.addr();
    let mut producer = Client::connect(addr).await;
    // Hung workers' messages come back after 300 ms (they cut their lease to that).
    producer
        .call(&["QCREATE", "jobs", "VISIBILITY", "300"])
        .await;
    let mut sent = Vec::with_capacity(MESSAGES);
    for batch in 0..MESSAGES / 500 {
        let mut words: Vec<Bytes> = vec!["QSENDBATCH".into(), "jobs".into()];
        words.extend((0..500).map(|i| Bytes::from(format!("job-{}", batch * 500 + i))));
        let Frame::Array(ids) = producer.0.call(words).await.unwrap() else {
            panic!()
        };
        sent.extend(ids.into_iter().map(|f| match f {
            Frame::Integer(id) => id,
            other => panic!("{other:?}"),
        }));
    }

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut consumers = Vec::new();
    for seed in 1..=CONSUMERS {
        let ledger = ledger.clone();
        consumers.push(tokio::spawn(async move {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            'restart: loop {
                let mut c = Client::connect(addr).await;
                loop {
                    if ledger.lock().unwrap().acked.len() == MESSAGES {
                        return;
                    }
                    // A long lease, so a working consumer's ack is current however slow
                    // the machine is; a hung one shortens its lease to 300 ms (below).
                    let got = parse_messages(
                        c.call(&[
                            "QRECV",
                            "jobs",
                            "COUNT",
                            "10",
                            "VISIBILITY",
                            "60000",
                            "BLOCK",
                            "50",
                        ])
                        .await,
                    );
                    {
                        let mut l = ledger.lock().unwrap();
                        l.redeliveries += got.iter().filter(|g| g.deliveries > 1).count() as u64;
                    }
                    if got.is_empty() {
                        continue;
                    }
                    if rng.chance(3) {
                        // Killed mid-job: the connection goes, the messages come back.
                        ledger.lock().unwrap().crashes += 1;
                        drop(c);
                        continue 'restart;
                    }
                    let mut to_ack = Vec::new();
                    for g in got {
                        if rng.chance(1) {
                            // Hung: holds the message past its visibility timeout.
                            let reply = c.call(&["QEXTEND", "jobs", &g.receipt, "300"]).await;
                            assert_eq!(reply, Frame::ok());
                            ledger.lock().unwrap().hung.push((g.id, g.receipt));
                        } else {
                            to_ack.push(g);
                        }
                    }
                    // Pipelined acks: one write, then the replies in order.
                    for g in &to_ack {
                        c.0.queue(
                            ["QACK", "jobs", g.receipt.as_str()]
                                .map(|w| Bytes::copy_from_slice(w.as_bytes())),
                        );
                    }
                    c.0.flush().await.unwrap();
                    for g in &to_ack {
                        let reply = c.0.read_reply().await.unwrap();
                        assert_eq!(reply, Frame::ok(), "ack of a current delivery");
                        *ledger.lock().unwrap().acked.entry(g.id).or_default() += 1;
                    }
                }
            }
        }));
    }
    for consumer in consumers {
        consumer.await.unwrap();
    }

    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    assert_eq!(ledger.acked.len(), MESSAGES, "every message acknowledged");
    assert!(
        ledger.acked.values().all(|&n| n == 1),
        "none acknowledged twice"
    );
    let mut acked: Vec<i64> = ledger.acked.keys().copied().collect();
    acked.sort();
    sent.sort();
    assert_eq!(acked, sent, "exactly the messages sent");
    assert!(ledger.crashes > 0 && !ledger.hung.is_empty());
    // The hung workers wake up and ack late: every one fails, nothing is deleted twice.
    let mut c = Client::connect(addr).await;
    for (_, receipt) in &ledger.hung {
        let Frame::Error(e) = c.ack("jobs", receipt).await else {
            panic!("a late ack succeeded")
        };
        assert!(e.starts_with(b"STALE"));
    }
    assert_eq!(c.stat("jobs", "acked").await, MESSAGES as i64);
    assert_eq!(
        c.stat("jobs", "redelivered").await,
        ledger.redeliveries as i64
    );
    assert!(ledger.redeliveries > 0);
    assert_eq!(
        c.stat("jobs", "ready").await + c.stat("jobs", "inflight").await,
        0
    );
    println!(
        "{} crashes, {} hung deliveries, {} redeliveries",
        ledger.crashes,
        ledger.hung.len(),
        ledger.redeliveries
    );
    server.stop().await;
}

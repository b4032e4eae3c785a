#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! One subscriber stops reading while a publisher sends 1 GB: the server's memory stays
//! bounded by the output buffer limit, the slow subscriber is disconnected (or loses
//! messages, per policy), and a fast subscriber on the same channel receives every
//! message in order.
//!
//! This file holds one test so that the process's peak memory is this scenario's alone.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use proto::Frame;
use service::RespClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MESSAGE: usize = 64 * 1024;
const HARD_LIMIT: usize = 16 * 1024 * 1024;
/// Messages the fast subscriber may lag behind the publisher (2 MiB, well under the limit).
const WINDOW: u64 = 32;

/// A memory figure of this process from `/proc/self/status`, in bytes: `VmRSS` (resident
/// now) or `VmHWM` (resident at the peak since [`reset_peak`]).
fn memory(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    let kb: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

fn info_field(info: &Frame, name: &str) -> u64 {
    let text = String::from_utf8_lossy(info.as_bytes().unwrap()).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("{name} in INFO"))
        .trim()
        .parse()
        .unwrap()
}

struct Outcome {
    peak_growth: usize,
    slow_closed: bool,
    info: Frame,
}

/// Runs the scenario with one policy, publishing `total` bytes of payload.
async fn scenario(policy: &str, total: usize) -> Outcome {
    let limit = format!("{HARD_LIMIT} 0 0");
    let server = common::start(&[
        "--client-output-buffer-limit",
        &limit,
        "--slow-consumer-policy",
        policy,
    ])
    .await;
    let addr = server.addr();

    // The slow subscriber subscribes, then never reads again.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"SUBSCRIBE feed\r\n").await.unwrap();
    let mut confirmation = [0u8; 33];
    slow.read_exact(&mut confirmation).await.unwrap();
    assert_eq!(
        &confirmation,
        b"*3\r\n$9\r\nsubscribe\r\n$4\r\nfeed\r\n:1\r\n"
    );

    // The fast subscriber checks every message's sequence number.
    let mut fast = RespClient::connect(addr).await.unwrap();
    fast.call(["SUBSCRIBE", "feed"]).await.unwrap();
    let count = (total / MESSAGE) as u64;
    let received = Arc::new(AtomicU64::new(0));
    let reader = tokio::spawn({
        let received = received.clone();
        async move {
            for expected in 0..count {
                let Frame::Array(items) = common::read(&mut fast).await else {
                    panic!("a message")
                };
                let payload = items[2].as_bytes().unwrap();
                assert_eq!(payload.len(), MESSAGE);
                let seq = u64::from_be_bytes(payload[..8].try_into().unwrap());
                assert_eq!(seq, expected, "in order, none missing");
                received.store(seq + 1, Ordering::Release);
            }
        }
    });

    tokio::time::sleep(Duration::from_millis(50)).await; // let start-up allocations settle
    let baseline = memory("VmRSS:");
    reset_peak();
    let mut publisher = RespClient::connect(addr).await.unwrap();
    let mut payload = vec![b'x'; MESSAGE];
    for seq in 0..count {
        while received.load(Ordering::Acquire) + WINDOW < seq {
            tokio::task::yield_now().await;
        }
        payload[..8].copy_from_slice(&seq.to_be_bytes());
        let reply = publisher
            .call([
                Bytes::from_static(b"PUBLISH"),
                Bytes::from_static(b"feed"),
                Bytes::copy_from_slice(&payload),
            ])
            .await
            .unwrap();
        assert!(matches!(reply, Frame::Integer(1 | 2)), "{reply:?}");
    }
    tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .unwrap()
        .unwrap();
    let peak_growth = memory("VmHWM:").saturating_sub(baseline);
    eprintln!(
        "{policy}: {} MiB published, peak memory {} MiB above the baseline",
        total >> 20,
        peak_growth >> 20
    );
    let info = publisher.call(["INFO", "all"]).await.unwrap();

    // Is the slow subscriber still connected? Read what it was sent until EOF or quiet.
    let mut buf = vec![0u8; 1 << 20];
    let slow_closed = loop {
        match tokio::time::timeout(Duration::from_secs(2), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(_)) => {}
            Err(_) => break false,
        }
    };
    server.stop().await;
    Outcome {
        peak_growth,
        slow_closed,
        info,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_cannot_exhaust_memory() {
    // Allowance above the hard limit: the fast subscriber's and publisher's buffers,
    // the slow connection's one in-flight batch, allocator slack.
    const SMALL_CONSTANT: usize = 24 * 1024 * 1024;

    // Redis's policy: disconnect. 1 GB in total.
    let out = scenario("disconnect", 1 << 30).await;
    assert!(out.slow_closed, "the slow subscriber was disconnected");
    assert_eq!(info_field(&out.info, "slow_subscriber_disconnections"), 1);
    assert_eq!(
        info_field(&out.info, "client_output_buffer_limit_disconnections"),
        1
    );
    assert!(info_field(&out.info, "pubsub_queue_peak_bytes") <= HARD_LIMIT as u64);
    assert!(
        out.peak_growth < HARD_LIMIT + SMALL_CONSTANT,
        "peak memory grew by {} MiB",
        out.peak_growth >> 20
    );

    // The drop policies keep the subscriber connected and count what it lost.
    for policy in ["drop-oldest", "drop-newest"] {
        let out = scenario(policy, 256 << 20).await;
        assert!(!out.slow_closed, "{policy}: still connected");
        assert_eq!(info_field(&out.info, "slow_subscriber_disconnections"), 0);
        assert!(info_field(&out.info, "dropped_messages") > 0, "{policy}");
        assert!(info_field(&out.info, "pubsub_queue_peak_bytes") <= HARD_LIMIT as u64);
        assert!(
            out.peak_growth < HARD_LIMIT + SMALL_CONSTANT,
            "{policy}: peak memory grew by {} MiB",
            out.peak_growth >> 20
        );
    }
}

//! The client harness behind `bench/pubsub.sh`: one publisher, N subscribers, against
//! any Redis-protocol pub/sub server (infralab's and `redis-server` alike).
//!
//! ```text
//! cargo run --release -p pubsub --example pubsub_load -- \
//!     --server infralab=127.0.0.1:7381 --server redis=127.0.0.1:6379
//! ```
//!
//! For every point (subscribers × message size) and every run, servers alternating, it
//! measures:
//! - **delivered messages/s**: messages received by all subscribers together, divided by
//!   the time from the first publish to the last delivery;
//! - **publish-to-receive latency** (p50, p99): each payload carries the time it was
//!   sent; up to 10 subscribers record `now - sent` for every message.
//!
//! The publisher pipelines `PUBLISH` in batches and stays at most `--window` messages
//! ahead of the slowest subscriber, so neither server's output buffer limits are hit and
//! the figure is sustained throughput, not the speed of filling a buffer.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)] // a benchmark tool: a panic is a failed run

mod harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser)]
struct Cli {
    /// `name=host:port`, repeated: the servers to compare (the first is "ours").
    #[arg(long = "server", required = true)]
    servers: Vec<String>,
    /// Subscriber counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    subscribers: Vec<usize>,
    /// Payload sizes in bytes (at least 16: sequence number and send time).
    #[arg(long, value_delimiter = ',', default_value = "16,1024")]
    sizes: Vec<usize>,
    /// Runs per point and server; medians are reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Deliveries per run (messages × subscribers), roughly.
    #[arg(long, default_value_t = 2_000_000)]
    deliveries: usize,
    /// PUBLISH commands per pipelined batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// How many messages the publisher may run ahead of the slowest subscriber.
    #[arg(long, default_value_t = 2_000)]
    window: u64,
}

struct Sample {
    delivered_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let servers: Vec<(String, String)> = cli
        .servers
        .iter()
        .map(|s| {
            let (name, addr) = s.split_once('=').expect("--server name=host:port");
            (name.to_string(), addr.to_string())
        })
        .collect();
    println!(
        "{:<6} {:>6} {:<10} {:>14} {:>9} {:>9}   ratio of delivered/s to {} (median of {} runs)",
        "subs", "bytes", "server", "delivered/s", "p50 µs", "p99 µs", servers[0].0, cli.runs
    );
    for &subscribers in &cli.subscribers {
        for &size in &cli.sizes {
            let messages = (cli.deliveries / subscribers).max(10_000) as u64;
            let mut samples: Vec<Vec<Sample>> = servers.iter().map(|_| Vec::new()).collect();
            for run in 0..cli.runs {
                for (i, (_, addr)) in servers.iter().enumerate() {
                    let channel = format!("bench-{subscribers}-{size}-{run}");
                    samples[i]
                        .push(one_run(addr, &channel, subscribers, size, messages, &cli).await);
                }
            }
            let ours = median(samples[0].iter().map(|s| s.delivered_per_sec).collect());
            for (i, (name, _)) in servers.iter().enumerate() {
                let rate = median(samples[i].iter().map(|s| s.delivered_per_sec).collect());
                println!(
                    "{:<6} {:>6} {:<10} {:>14.0} {:>9.0} {:>9.0}   {}",
                    subscribers,
                    size,
                    name,
                    rate,
                    median(samples[i].iter().map(|s| s.p50_us).collect()),
                    median(samples[i].iter().map(|s| s.p99_us).collect()),
                    if i == 0 {
                        String::new()
                    } else {
                        format!("{}/{} = {:.2}", servers[0].0, name, ours / rate)
                    }
                );
            }
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

async fn one_run(
    addr: &str,
    channel: &str,
    subscribers: usize,
    size: usize,
    messages: u64,
    cli: &Cli,
) -> Sample {
    let epoch = Instant::now();
    let progress: Arc<Vec<AtomicU64>> =
        Arc::new((0..subscribers).map(|_| AtomicU64::new(0)).collect());
    let mut tasks = Vec::new();
    for i in 0..subscribers {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        socket.set_nodelay(true).unwrap();
        let subscribe = format!(
            "*2\r\n$9\r\nSUBSCRIBE\r\n${}\r\n{channel}\r\n",
            channel.len()
        );
        socket.write_all(subscribe.as_bytes()).await.unwrap();
        let mut input = BytesMut::with_capacity(256 * 1024);
        // The confirmation is a 3-element array, like a message: skip it.
        while next_payload(&mut input).is_none() {
            socket.read_buf(&mut input).await.unwrap();
        }
        let progress = progress.clone();
        let record_latency = i < 10;
        let addr = addr.to_string();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut received = 0u64;
            while received < messages {
                while let Some(payload) = next_payload(&mut input) {
                    let sent = u64::from_le_bytes(payload[8..16].try_into().unwrap());
                    if record_latency {
                        let now = epoch.elapsed().as_nanos() as u64;
                        latencies.push(now.saturating_sub(sent) / 1000);
                    }
                    received += 1;
                }
                progress[i].store(received, Ordering::Release);
                if received < messages && socket.read_buf(&mut input).await.unwrap() == 0 {
                    panic!("{addr} closed a subscriber after {received} messages");
                }
                if input.capacity() - input.len() < 64 * 1024 {
                    input.reserve(256 * 1024);
                }
            }
            (latencies, epoch.elapsed())
        }));
    }

    let mut publisher = TcpStream::connect(addr).await.unwrap();
    publisher.set_nodelay(true).unwrap();
    let mut out = BytesMut::new();
    let mut replies = BytesMut::with_capacity(64 * 1024);
    let filler = vec![b'x'; size - 16];
    let start = epoch.elapsed();
    let mut seq = 0u64;
    while seq < messages {
        // Stay within `window` of the slowest subscriber.
        loop {
            let slowest = progress
                .iter()
                .map(|p| p.load(Ordering::Acquire))
                .min()
                .unwrap_or(0);
            if seq < slowest + cli.window {
                break;
            }
            tokio::time::sleep(Duration::from_micros(50)).await;
        }
        let batch = (cli.batch as u64).min(messages - seq);
        for _ in 0..batch {
            let now = epoch.elapsed().as_nanos() as u64;
            out.extend_from_slice(
                format!(
                    "*3\r\n$7\r\nPUBLISH\r\n${}\r\n{channel}\r\n${size}\r\n",
                    channel.len()
                )
                .as_bytes(),
            );
            out.extend_from_slice(&seq.to_le_bytes());
            out.extend_from_slice(&now.to_le_bytes());
            out.extend_from_slice(&filler);
            out.extend_from_slice(b"\r\n");
            seq += 1;
        }
        harness::pipeline(&mut publisher, &mut out, &mut replies, batch).await;
    }

    let mut latencies = Vec::new();
    let mut last = start;
    for task in tasks {
        let (mut l, done) = task.await.unwrap();
        latencies.append(&mut l);
        last = last.max(done);
    }
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
    };
    Sample {
        delivered_per_sec: (messages * subscribers as u64) as f64 / (last - start).as_secs_f64(),
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    }
}

/// Takes the next complete 3-element array `*3 $.. $.. $payload` from `input` and
/// returns its last element. A lean parser for exactly the shape of `message` pushes
/// (and `subscribe` confirmations, whose last element is an integer).
fn next_payload(input: &mut BytesMut) -> Option<BytesMut> {
    fn line(buf: &[u8], at: usize) -> Option<(usize, usize)> {
        let end = buf[at..].windows(2).position(|w| w == b"\r\n")? + at;
        Some((at, end))
    }
    fn number(buf: &[u8], (start, end): (usize, usize)) -> usize {
        std::str::from_utf8(&buf[start + 1..end])
            .unwrap()
            .parse()
            .unwrap()
    }
    let buf = &input[..];
    let header = line(buf, 0)?;
    assert!(buf[0] == b'*' || buf[0] == b'>', "unexpected frame");
    let mut at = header.1 + 2;
    let mut last = (0, 0);
    for _ in 0..3 {
        let (start, end) = line(buf, at)?;
        if buf[start] == b':' {
            last = (start, end);
            at = end + 2;
        } else {
            let len = number(buf, (start, end));
            if buf.len() < end + 2 + len + 2 {
                return None;
            }
            last = (end + 2, end + 2 + len);
            at = end + 2 + len + 2;
        }
    }
    let mut frame = input.split_to(at);
    frame.truncate(last.1);
    frame.advance(last.0);
    Some(frame)
}

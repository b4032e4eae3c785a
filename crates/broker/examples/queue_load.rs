//! Load generator for `bench/broker.sh`: moves messages through a work queue with one of
//! two protocols, one message per request on each side, so both brokers do the same work:
//!
//! | step    | infralab broker (RESP)        | beanstalkd (text protocol)          |
//! |---------|-------------------------------|-------------------------------------|
//! | produce | `QSEND q payload`             | `put 1024 0 60 n` + payload         |
//! | receive | `QRECV q BLOCK 1000`          | `reserve-with-timeout 1`            |
//! | ack     | `QACK q receipt`              | `delete id`                         |
//!
//! Run one process as the producer and one as the consumer, at the same time:
//! `queue_load --protocol resp --role consume --addr 127.0.0.1:7382 --messages 20000`.
//! Each prints `<role> <messages> <seconds> <messages/s>`; the consumer's figure is the
//! end-to-end throughput (a message counts when its ack is confirmed).
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark tool: failing loudly is right

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use proto::Frame;
use service::RespClient;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Protocol {
    Resp,
    Beanstalk,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Role {
    Produce,
    Consume,
}

#[derive(Parser, Debug)]
struct Opts {
    #[arg(long, value_enum)]
    protocol: Protocol,
    #[arg(long, value_enum)]
    role: Role,
    #[arg(long, default_value = "127.0.0.1:7382")]
    addr: String,
    /// Messages in total (split over the connections).
    #[arg(long, default_value_t = 20_000)]
    messages: u64,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 16)]
    size: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 4)]
    connections: u64,
}

#[tokio::main]
async fn main() {
    let opts = Opts::parse();
    let payload = Bytes::from(vec![b'x'; opts.size]);
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..opts.connections {
        let share =
            opts.messages / opts.connections + u64::from(c < opts.messages % opts.connections);
        let (addr, payload, done, total) = (
            opts.addr.clone(),
            payload.clone(),
            done.clone(),
            opts.messages,
        );
        tasks.push(tokio::spawn(async move {
            match (opts.protocol, opts.role) {
                (Protocol::Resp, Role::Produce) => resp_produce(&addr, share, payload).await,
                (Protocol::Resp, Role::Consume) => resp_consume(&addr, &done, total).await,
                (Protocol::Beanstalk, Role::Produce) => {
                    Beanstalk::connect(&addr)
                        .await
                        .produce(share, &payload)
                        .await
                }
                (Protocol::Beanstalk, Role::Consume) => {
                    Beanstalk::connect(&addr).await.consume(&done, total).await
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // The consumer's clock stops at the last ack (other connections may still be blocked
    // in a receive that will time out).
    let secs = match FINISHED.get() {
        Some(at) => at.duration_since(started).as_secs_f64(),
        None => started.elapsed().as_secs_f64(),
    };
    let role = match opts.role {
        Role::Produce => "produce",
        Role::Consume => "consume",
    };
    println!(
        "{role} {} {secs:.3} {:.0}",
        opts.messages,
        opts.messages as f64 / secs
    );
}

static FINISHED: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Counts one consumed message; the last one stops the clock.
fn finish(done: &AtomicU64, total: u64) {
    if done.fetch_add(1, Ordering::Relaxed) + 1 == total {
        let _ = FINISHED.set(Instant::now());
    }
}

async fn resp_produce(addr: &str, n: u64, payload: Bytes) {
    let mut c = RespClient::connect(addr).await.unwrap();
    for _ in 0..n {
        let reply = c
            .call([
                Bytes::from_static(b"QSEND"),
                Bytes::from_static(b"bench"),
                payload.clone(),
            ])
            .await
            .unwrap();
        assert!(matches!(reply, Frame::Integer(_)), "{reply:?}");
    }
}

async fn resp_consume(addr: &str, done: &AtomicU64, total: u64) {
    let mut c = RespClient::connect(addr).await.unwrap();
    while done.load(Ordering::Relaxed) < total {
        let reply = c.call(["QRECV", "bench", "BLOCK", "1000"]).await.unwrap();
        let Frame::Array(messages) = reply else {
            panic!("{reply:?}")
        };
        for message in messages {
            let Frame::Array(fields) = message else {
                panic!("{message:?}")
            };
            // id, <id>, receipt, <receipt>, ...
            let receipt = fields[3].as_bytes().unwrap().clone();
            let ack = c
                .call([
                    Bytes::from_static(b"QACK"),
                    Bytes::from_static(b"bench"),
                    receipt,
                ])
                .await
                .unwrap();
            assert_eq!(ack, Frame::ok());
            finish(done, total);
        }
    }
}

/// A minimal beanstalkd client: put, reserve-with-timeout, delete.
struct Beanstalk {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    line: String,
}

impl Beanstalk {
    async fn connect(addr: &str) -> Beanstalk {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (read, writer) = stream.into_split();
        Beanstalk {
            reader: BufReader::new(read),
            writer,
            line: String::new(),
        }
    }

    async fn request(&mut self, bytes: &[u8]) -> &str {
        self.writer.write_all(bytes).await.unwrap();
        self.line.clear();
        self.reader.read_line(&mut self.line).await.unwrap();
        self.line.trim_end()
    }

    async fn produce(mut self, n: u64, payload: &[u8]) {
        let mut request = format!("put 1024 0 60 {}\r\n", payload.len()).into_bytes();
        request.extend_from_slice(payload);
        request.extend_from_slice(b"\r\n");
        for _ in 0..n {
            let reply = self.request(&request).await;
            assert!(reply.starts_with("INSERTED"), "{reply}");
        }
    }

    async fn consume(mut self, done: &AtomicU64, total: u64) {
        let mut body = Vec::new();
        while done.load(Ordering::Relaxed) < total {
            let reply = self
                .request(b"reserve-with-timeout 1\r\n")
                .await
                .to_string();
            if reply == "TIMED_OUT" {
                continue;
            }
            let mut words = reply.split(' ');
            let (Some("RESERVED"), Some(id), Some(len)) =
                (words.next(), words.next(), words.next())
            else {
                panic!("{reply}")
            };
            let len: usize = len.parse().unwrap();
            body.resize(len + 2, 0);
            self.reader.read_exact(&mut body).await.unwrap();
            let delete = format!("delete {id}\r\n");
            let reply = self.request(delete.as_bytes()).await;
            assert_eq!(reply, "DELETED");
            finish(done, total);
        }
    }
}

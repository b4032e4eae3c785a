#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! The beanstalkd listener: replies compared with the real beanstalkd, a real client
//! library (greenstalk), jobs crossing between beanstalkd's protocol and RESP, and bad
//! input answered while the connection keeps serving.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// A broker on free ports (RESP, beanstalkd, SQS) in `dir`.
async fn broker(dir: &std::path::Path) -> broker::Started {
    common::start_with_protocols(dir, &[]).await
}

/// A raw beanstalkd connection: bytes out, one reply (with its body) in.
struct Conn {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Conn {
    async fn connect(addr: SocketAddr) -> Conn {
        let (r, w) = TcpStream::connect(addr).await.unwrap().into_split();
        Conn {
            reader: BufReader::new(r),
            writer: w,
        }
    }

    async fn reply(&mut self) -> String {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(10), self.reader.read_line(&mut line))
            .await
            .expect("no reply within 10 s")
            .unwrap();
        assert!(n > 0, "the server closed the connection");
        let word = line.split(' ').next().unwrap_or_default();
        if ["RESERVED", "FOUND", "OK"].contains(&word) {
            let len: usize = line.trim_end().rsplit(' ').next().unwrap().parse().unwrap();
            let mut body = vec![0; len + 2];
            self.reader.read_exact(&mut body).await.unwrap();
            line.push_str(&String::from_utf8_lossy(&body));
        }
        line
    }

    async fn call(&mut self, request: &[u8]) -> String {
        self.writer.write_all(request).await.unwrap();
        self.reply().await
    }
}

/// The real beanstalkd on a free port, killed when dropped.
struct Beanstalkd(Child, SocketAddr);

impl Beanstalkd {
    async fn start() -> Beanstalkd {
        let port = testkit::free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        // Owned by the guard at once, so it is killed and waited for on every path.
        let peer = Beanstalkd(
            testkit::peer("beanstalkd")
                .args(["-l", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
            addr,
        );
        for _ in 0..500 {
            if TcpStream::connect(addr).await.is_ok() {
                return peer;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("beanstalkd did not start on {addr}");
    }
}

impl Drop for Beanstalkd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The YAML keys whose values both servers must agree on; the others (ages, times left,
/// connection counts, process facts) differ by nature or are not tracked (see stats.rs).
const COMPARED: &[&str] = &[
    "id",
    "tube",
    "state",
    "pri",
    "delay",
    "ttr",
    "name",
    "current-jobs-urgent",
    "current-jobs-ready",
    "current-jobs-reserved",
    "current-jobs-delayed",
    "current-jobs-buried",
    "total-jobs",
    "pause",
    "current-using",
    "current-watching",
    "current-waiting",
    "current-tubes",
    "current-connections",
    "current-producers",
    "current-workers",
    "max-job-size",
    "version",
    "draining",
];

/// A reply with its YAML reduced to every key and the values of [`COMPARED`] keys.
fn normalise(reply: &str) -> String {
    let Some(yaml) = reply.strip_prefix("OK ") else {
        return reply.to_string();
    };
    let body = yaml.split_once("\r\n").map_or("", |(_, body)| body);
    let mut out = String::from("OK\n");
    for line in body.lines() {
        match line.split_once(": ") {
            // `stats` has an `id` too: the server's, random in beanstalkd.
            Some(("id", value)) if value.parse::<u64>().is_err() => out += "id: _\n",
            Some((key, value)) if COMPARED.contains(&key) => {
                out += &format!("{key}: {value}\n");
            }
            Some((key, _)) => out += &format!("{key}: _\n"),
            None => out += &format!("{line}\n"),
        }
    }
    out
}

#[tokio::test]
async fn the_same_script_gets_the_same_replies_as_beanstalkd() {
    let dir = common::temp_dir("beanstalk-diff");
    let ours = broker(&dir).await;
    let peer = Beanstalkd::start().await;
    let mut too_big = b"put 0 0 1 70000\r\n".to_vec();
    too_big.extend(std::iter::repeat_n(b'x', 70_000));
    too_big.extend_from_slice(b"\r\n");
    let script: Vec<&[u8]> = vec![
        b"use jobs\r\n",
        b"put 10 0 60 5\r\nhello\r\n",
        b"put 5 0 60 5\r\nworld\r\n",
        b"put 1 100 60 3\r\nlat\r\n",
        b"peek-ready\r\n",
        b"peek-delayed\r\n",
        b"peek-buried\r\n",
        b"stats-tube jobs\r\n",
        b"watch jobs\r\n",
        b"ignore default\r\n",
        b"list-tubes-watched\r\n",
        b"reserve-with-timeout 0\r\n",
        b"stats-job 2\r\n",
        b"touch 2\r\n",
        b"release 2 7 0\r\n",
        b"reserve-with-timeout 0\r\n",
        b"bury 2 3\r\n",
        b"peek-buried\r\n",
        b"stats-job 2\r\n",
        b"stats-tube jobs\r\n",
        b"kick 10\r\n",
        b"stats-job 3\r\n",
        b"kick-job 3\r\n",
        b"reserve-with-timeout 0\r\n",
        b"delete 3\r\n",
        b"delete 3\r\n",
        b"delete 1\r\n",
        b"reserve\r\n",
        b"peek 2\r\n",
        b"delete 2\r\n",
        b"reserve-with-timeout 0\r\n",
        b"put 0 0 1 1\r\nx\r\n",
        b"reserve\r\n",
        b"reserve-with-timeout 2\r\n",
        b"delete 4\r\n",
        b"peek 99\r\n",
        b"stats-job 99\r\n",
        b"stats-tube nosuch\r\n",
        b"pause-tube nosuch 1\r\n",
        b"kick-job 99\r\n",
        b"touch 99\r\n",
        b"release 99 1 0\r\n",
        b"bury 99 1\r\n",
        b"ignore jobs\r\n",
        b"ignore nosuch\r\n",
        b"list-tube-used\r\n",
        b"use default\r\n",
        b"list-tube-used\r\n",
        // A paused tube keeps its jobs from reserves until the pause ends.
        b"use jobs\r\n",
        b"put 0 0 60 1\r\np\r\n",
        b"pause-tube jobs 60\r\n",
        b"reserve-with-timeout 0\r\n",
        b"peek-ready\r\n",
        b"stats-tube jobs\r\n",
        b"pause-tube jobs 0\r\n",
        b"reserve-with-timeout 0\r\n",
        b"delete 5\r\n",
        b"use default\r\n",
        b"stats-tube jobs\r\n",
        b"list-tubes\r\n",
        // Bad input: each answered, the connection still serving.
        b"delete x\r\n",
        b"delete\r\n",
        b"frobnicate\r\n",
        b"\r\n",
        b"put 1 0 1\r\n",
        b"put 1 0 1 -2\r\n",
        b"use -bad\r\n",
        b"put 0 0 1 2\r\nabXY",
        &too_big,
        b"stats\r\n",
    ];
    let mut a = Conn::connect(ours.beanstalk_addr.unwrap()).await;
    let mut b = Conn::connect(peer.1).await;
    let mut mismatches = Vec::new();
    for request in script {
        let (got, want) = (a.call(request).await, b.call(request).await);
        let shown = String::from_utf8_lossy(&request[..request.len().min(40)]).into_owned();
        if normalise(&got) != normalise(&want) {
            mismatches.push(format!(
                "{shown:?}\n  ours:       {got:?}\n  beanstalkd: {want:?}"
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    ours.running.stop().await;
}

#[tokio::test]
async fn bad_input_gets_an_error_and_the_connection_keeps_serving() {
    let dir = common::temp_dir("beanstalk-bad");
    let ours = broker(&dir).await;
    let mut c = Conn::connect(ours.beanstalk_addr.unwrap()).await;
    let overlong = format!("use {}\r\n", "a".repeat(10_000));
    let mut too_big = b"put 0 0 1 65536\r\n".to_vec();
    too_big.extend(std::iter::repeat_n(b'x', 65_536));
    too_big.extend_from_slice(b"\r\n");
    let table: Vec<(&[u8], &str)> = vec![
        (overlong.as_bytes(), "BAD_FORMAT\r\n"),
        (b"put 1 2\r\n", "BAD_FORMAT\r\n"),
        // (A put line refused is not followed by its body: beanstalkd would read it as a command.)
        (b"put 99999999999 0 1 1\r\n", "BAD_FORMAT\r\n"),
        (b"delete 1x\r\n", "BAD_FORMAT\r\n"),
        (b"reserve-with-timeout -1\r\n", "BAD_FORMAT\r\n"),
        (&too_big, "JOB_TOO_BIG\r\n"),
        (b"put 0 0 1 3\r\nabcde", "EXPECTED_CRLF\r\n"),
        (b"no-such-command\r\n", "UNKNOWN_COMMAND\r\n"),
    ];
    for (request, want) in table {
        assert_eq!(c.call(request).await, want);
        // Still serving, in step: the next command gets its own reply.
        assert_eq!(c.call(b"list-tube-used\r\n").await, "USING default\r\n");
    }
    // A job of exactly -z bytes is accepted.
    let mut max = b"put 0 0 1 65535\r\n".to_vec();
    max.extend(std::iter::repeat_n(b'y', 65_535));
    max.extend_from_slice(b"\r\n");
    assert!(c.call(&max).await.starts_with("INSERTED "));
    ours.running.stop().await;
}

/// A QRECV reply's (id, body) pairs, from the redis crate's values.
fn messages(value: redis::Value) -> Vec<(i64, Vec<u8>, String)> {
    let redis::Value::Array(items) = value else {
        panic!("QRECV: {value:?}")
    };
    items
        .into_iter()
        .map(|item| {
            let redis::Value::Array(fields) = item else {
                panic!("message: {item:?}")
            };
            let (mut id, mut body, mut receipt) = (0, Vec::new(), String::new());
            for pair in fields.chunks(2) {
                match pair {
                    [redis::Value::BulkString(k), redis::Value::Int(n)] if k == b"id" => id = *n,
                    [redis::Value::BulkString(k), redis::Value::BulkString(b)] if k == b"body" => {
                        body = b.clone()
                    }
                    [redis::Value::BulkString(k), redis::Value::BulkString(r)]
                        if k == b"receipt" =>
                    {
                        receipt = String::from_utf8(r.clone()).unwrap()
                    }
                    _ => {}
                }
            }
            (id, body, receipt)
        })
        .collect()
}

#[tokio::test]
async fn a_job_put_over_beanstalkd_is_received_over_resp_and_the_reverse() {
    let dir = common::temp_dir("beanstalk-cross");
    let ours = broker(&dir).await;
    let client = redis::Client::open(format!("redis://{}/", ours.running.addr())).unwrap();
    let mut resp = client.get_multiplexed_async_connection().await.unwrap();
    let mut b = Conn::connect(ours.beanstalk_addr.unwrap()).await;

    // beanstalkd -> RESP.
    assert_eq!(b.call(b"use cross\r\n").await, "USING cross\r\n");
    let inserted = b.call(b"put 0 0 60 5\r\nhello\r\n").await;
    let id: i64 = inserted
        .trim_end()
        .strip_prefix("INSERTED ")
        .unwrap()
        .parse()
        .unwrap();
    let got = messages(
        redis::cmd("QRECV")
            .arg("cross")
            .query_async(&mut resp)
            .await
            .unwrap(),
    );
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].0, &got[0].1[..]), (id, &b"hello"[..]));
    let acked: redis::Value = redis::cmd("QACK")
        .arg("cross")
        .arg(&got[0].2)
        .query_async(&mut resp)
        .await
        .unwrap();
    assert_eq!(acked, redis::Value::Okay);
    assert_eq!(
        b.call(format!("peek {id}\r\n").as_bytes()).await,
        "NOT_FOUND\r\n"
    );

    // RESP -> beanstalkd, and a reserve already waiting is woken by the send.
    let mut waiter = Conn::connect(ours.beanstalk_addr.unwrap()).await;
    assert_eq!(waiter.call(b"watch cross\r\n").await, "WATCHING 2\r\n");
    waiter
        .writer
        .write_all(b"reserve-with-timeout 30\r\n")
        .await
        .unwrap();
    // The reserve is waiting once the tube counts a waiting connection; send then.
    let mut probe = Conn::connect(ours.beanstalk_addr.unwrap()).await;
    let mut waiting = false;
    for _ in 0..500 {
        if probe
            .call(b"stats-tube cross\r\n")
            .await
            .contains("current-waiting: 1\n")
        {
            waiting = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(waiting, "the reserve never showed as waiting");
    let sent: i64 = redis::cmd("QSEND")
        .arg("cross")
        .arg("world")
        .query_async(&mut resp)
        .await
        .unwrap();
    assert_eq!(
        waiter.reply().await,
        format!("RESERVED {sent} 5\r\nworld\r\n")
    );
    // Reserved over beanstalkd: invisible to RESP until deleted or released.
    let none = messages(
        redis::cmd("QRECV")
            .arg("cross")
            .query_async(&mut resp)
            .await
            .unwrap(),
    );
    assert!(none.is_empty());
    assert_eq!(
        waiter
            .call(format!("release {sent} 0 0\r\n").as_bytes())
            .await,
        "RELEASED\r\n"
    );
    let again = messages(
        redis::cmd("QRECV")
            .arg("cross")
            .query_async(&mut resp)
            .await
            .unwrap(),
    );
    assert_eq!(again[0].0, sent);
    ours.running.stop().await;
}

/// The value of `key` in a YAML reply of `stats-job`.
fn yaml_field(yaml: &str, key: &str) -> String {
    yaml.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no {key} in {yaml}"))
        .to_string()
}

#[tokio::test]
async fn job_ids_and_ttrs_survive_a_restart() {
    let dir = common::temp_dir("beanstalk-restart");
    let ours = broker(&dir).await;
    let mut b = Conn::connect(ours.beanstalk_addr.unwrap()).await;
    // A TTR far from the tube's 30 s visibility timeout, so a lost TTR shows.
    let inserted = b.call(b"put 0 0 600 4\r\nkeep\r\n").await;
    let id = inserted
        .trim_end()
        .strip_prefix("INSERTED ")
        .unwrap()
        .to_string();
    ours.running.stop().await;
    let ours = broker(&dir).await;
    let mut b = Conn::connect(ours.beanstalk_addr.unwrap()).await;
    let stats = b.call(format!("stats-job {id}\r\n").as_bytes()).await;
    assert_eq!(yaml_field(&stats, "ttr"), "600", "{stats}");
    assert_eq!(
        b.call(b"reserve\r\n").await,
        format!("RESERVED {id} 4\r\nkeep\r\n")
    );
    // Reserved for its own TTR, not the tube's 30 s.
    let stats = b.call(format!("stats-job {id}\r\n").as_bytes()).await;
    let left: u64 = yaml_field(&stats, "time-left").parse().unwrap();
    assert!(left > 500, "time-left {left} after a restart: {stats}");
    let next = b.call(b"put 0 0 60 1\r\nn\r\n").await;
    let next: u64 = next
        .trim_end()
        .strip_prefix("INSERTED ")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        next > id.parse().unwrap(),
        "ids only grow: {next} after {id}"
    );
    ours.running.stop().await;
}

#[tokio::test]
async fn greenstalk_puts_reserves_buries_kicks_and_deletes() {
    let dir = common::temp_dir("beanstalk-greenstalk");
    let ours = broker(&dir).await;
    let addr = ours.beanstalk_addr.unwrap();
    let args = [addr.ip().to_string(), addr.port().to_string()];
    common::python("beanstalk/greenstalk_session.py", "greenstalk", &args).await;
    ours.running.stop().await;
}

#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! The scaffolding every server shares, exercised through a server that has no commands.

mod common;

use std::time::Duration;

use bytes::Bytes;
use proto::Frame;
use service::RespClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn bulk(s: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

fn err(s: &str) -> Frame {
    Frame::error(s)
}

#[tokio::test]
async fn connection_commands() {
    let server = common::start(|_| {}).await;
    let mut c = RespClient::connect(server.addr()).await.unwrap();
    assert_eq!(c.call(["PING"]).await.unwrap(), Frame::simple("PONG"));
    assert_eq!(c.call(["ping", "hi"]).await.unwrap(), bulk("hi"));
    assert_eq!(c.call(["ECHO", "x y"]).await.unwrap(), bulk("x y"));
    assert_eq!(
        c.call(["ECHO"]).await.unwrap(),
        err("ERR wrong number of arguments for 'echo' command")
    );
    assert_eq!(
        c.call(["NOSUCH", "a", "b"]).await.unwrap(),
        err("ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' ")
    );
    assert_eq!(c.call(["SELECT", "0"]).await.unwrap(), Frame::ok());
    assert_eq!(
        c.call(["SELECT", "1"]).await.unwrap(),
        err("ERR DB index is out of range")
    );
    assert_eq!(
        c.call(["CLIENT", "SETNAME", "worker-1"]).await.unwrap(),
        Frame::ok()
    );
    assert_eq!(
        c.call(["CLIENT", "GETNAME"]).await.unwrap(),
        bulk("worker-1")
    );
    assert_eq!(
        c.call(["CLIENT", "SETNAME", "a b"]).await.unwrap(),
        err("ERR Client names cannot contain spaces, newlines or special characters.")
    );
    let Frame::Integer(id) = c.call(["CLIENT", "ID"]).await.unwrap() else {
        panic!("id")
    };
    let list = c.call(["CLIENT", "LIST"]).await.unwrap();
    let text = String::from_utf8_lossy(list.as_bytes().unwrap()).into_owned();
    assert!(
        text.contains(&format!("id={id} ")) && text.contains("name=worker-1"),
        "{text}"
    );
    assert_eq!(
        c.call(["CONFIG", "GET", "max*"]).await.unwrap(),
        Frame::Array(vec![bulk("maxclients"), bulk("10000")])
    );
    let Frame::Array(pairs) = c
        .call(["CONFIG", "GET", "save", "appendonly", "port", "bind"])
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(pairs.len(), 8);
    assert_eq!(
        c.call(["CONFIG", "SET", "timeout", "100"]).await.unwrap(),
        Frame::ok()
    );
    assert_eq!(
        c.call(["CONFIG", "GET", "timeout"]).await.unwrap(),
        Frame::Array(vec![bulk("timeout"), bulk("100")])
    );
    assert_eq!(
        c.call(["CONFIG", "SET", "nosuch", "1"]).await.unwrap(),
        err("ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'")
    );
    let info = c.call(["INFO"]).await.unwrap();
    let text = String::from_utf8_lossy(info.as_bytes().unwrap()).into_owned();
    for needle in [
        "# Server",
        "redis_version:",
        "# Clients",
        "connected_clients:1",
        "# Stats",
    ] {
        assert!(text.contains(needle), "{needle} missing in {text}");
    }
    let clients_only = c.call(["INFO", "clients"]).await.unwrap();
    assert!(!String::from_utf8_lossy(clients_only.as_bytes().unwrap()).contains("# Server"));
    assert_eq!(c.call(["QUIT"]).await.unwrap(), Frame::ok());
    assert!(c.read_reply().await.is_err(), "closed after QUIT");
    server.stop().await;
}

#[tokio::test]
async fn hello_switches_protocol() {
    let server = common::start(|_| {}).await;
    let mut c = RespClient::connect(server.addr()).await.unwrap();
    let Frame::Map(fields) = c.call(["HELLO", "3"]).await.unwrap() else {
        panic!("map")
    };
    assert!(fields.contains(&(bulk("proto"), Frame::Integer(3))));
    // In RESP3 CONFIG GET is a real map.
    assert!(matches!(
        c.call(["CONFIG", "GET", "port"]).await.unwrap(),
        Frame::Map(_)
    ));
    assert_eq!(
        c.call(["HELLO", "4"]).await.unwrap(),
        err("NOPROTO unsupported protocol version")
    );
    let Frame::Array(flat) = c.call(["HELLO", "2"]).await.unwrap() else {
        panic!("array")
    };
    assert_eq!(flat.len() % 2, 0);
    server.stop().await;
}

#[tokio::test]
async fn requirepass_gates_every_command() {
    let server = common::start(|a| a.requirepass = Some("s3cret".into())).await;
    let mut c = RespClient::connect(server.addr()).await.unwrap();
    assert_eq!(
        c.call(["PING"]).await.unwrap(),
        err("NOAUTH Authentication required.")
    );
    assert_eq!(
        c.call(["AUTH", "wrong"]).await.unwrap(),
        err("WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert!(c.call(["HELLO", "3"]).await.unwrap().is_error());
    assert_eq!(c.call(["AUTH", "s3cret"]).await.unwrap(), Frame::ok());
    assert_eq!(c.call(["PING"]).await.unwrap(), Frame::simple("PONG"));
    let mut d = RespClient::connect(server.addr()).await.unwrap();
    assert!(matches!(
        d.call(["HELLO", "3", "AUTH", "default", "s3cret"])
            .await
            .unwrap(),
        Frame::Map(_)
    ));
    server.stop().await;
}

/// `CLIENT LIST` shows each client's latest command, though the connection records it
/// once per batch of pipelined commands (and before a built-in one such as `CLIENT`).
#[tokio::test]
async fn client_list_shows_the_last_command_of_a_pipeline() {
    let server = common::start(|_| {}).await;
    let mut worker = RespClient::connect(server.addr()).await.unwrap();
    assert_eq!(
        worker.call(["CLIENT", "SETNAME", "worker"]).await.unwrap(),
        Frame::ok()
    );
    worker.queue(["PING"]);
    worker.queue(["ECHO", "a"]);
    worker.queue(["NOSUCH"]);
    worker.flush().await.unwrap();
    for _ in 0..3 {
        worker.read_reply().await.unwrap();
    }
    let mut observer = RespClient::connect(server.addr()).await.unwrap();
    let list = observer.call(["CLIENT", "LIST"]).await.unwrap();
    let text = String::from_utf8_lossy(list.as_bytes().unwrap()).into_owned();
    let line = text.lines().find(|l| l.contains("name=worker")).unwrap();
    assert!(line.contains(" cmd=echo "), "{line}");
    // A client describing itself sees the command doing it.
    worker.queue(["PING"]);
    worker.queue(["CLIENT", "INFO"]);
    worker.flush().await.unwrap();
    worker.read_reply().await.unwrap();
    let info = worker.read_reply().await.unwrap();
    let text = String::from_utf8_lossy(info.as_bytes().unwrap()).into_owned();
    assert!(text.contains(" cmd=client "), "{text}");
    server.stop().await;
}

/// Sends raw bytes and returns everything the server sends back until it closes or
/// a non-error reply line has arrived (errors sent here are all followed by a close).
async fn raw(addr: std::net::SocketAddr, input: &[u8]) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(input).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    // A protocol error closes the connection; anything else leaves it open, so stop at
    // the first complete line.
    loop {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => return (out, true),
            Err(_) => return (out, false),
        }
        if out.ends_with(b"\r\n") && !out.starts_with(b"-") {
            return (out, false);
        }
    }
}

#[tokio::test]
async fn garbage_gets_protocol_errors_and_the_server_keeps_serving() {
    let server = common::start(|_| {}).await;
    let addr = server.addr();
    let mut bystander = RespClient::connect(addr).await.unwrap();
    let cases: &[(&[u8], &str)] = &[
        (
            b"*-5\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"$99999999999\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$99999999999\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*2\r\n:1\r\n",
            "-ERR Protocol error: expected '$', got ':'\r\n",
        ),
        (
            b"ECHO \"unbalanced\r\n",
            "-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
    ];
    for (input, expected) in cases {
        let (reply, closed) = raw(addr, input).await;
        assert_eq!(String::from_utf8_lossy(&reply), *expected);
        assert!(closed, "connection closed after a protocol error");
        assert_eq!(
            bystander.call(["PING"]).await.unwrap(),
            Frame::simple("PONG")
        );
    }
    // A truncated request then close: nothing to reply, nothing breaks.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"*1\r\n$3\r\nGET").await.unwrap();
    drop(s);
    // Random bytes: an error or a close, never a crash.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..20 {
        let junk: Vec<u8> = (0..200)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let mut s = TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(&junk).await;
        drop(s);
    }
    assert_eq!(
        bystander.call(["PING"]).await.unwrap(),
        Frame::simple("PONG")
    );
    // Malformed *commands* are errors, and the connection stays open.
    assert_eq!(
        bystander.call(["PING", "a", "b"]).await.unwrap(),
        err("ERR wrong number of arguments for 'ping' command")
    );
    assert_eq!(
        bystander.call(["PING"]).await.unwrap(),
        Frame::simple("PONG")
    );
    server.stop().await;
}

fn info_field(info: &Frame, field: &str) -> u64 {
    let text = String::from_utf8_lossy(info.as_bytes().unwrap()).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in {text}"))
}

#[tokio::test]
async fn ten_thousand_pipelined_pings_in_order_and_few_writes() {
    let server = common::start(|_| {}).await;
    let mut c = RespClient::connect(server.addr()).await.unwrap();
    let before = info_field(
        &c.call(["INFO", "stats"]).await.unwrap(),
        "total_writes_processed",
    );
    for i in 0..10_000 {
        c.queue(["PING".to_string(), format!("{i}")]);
    }
    c.flush().await.unwrap();
    for i in 0..10_000 {
        assert_eq!(c.read_reply().await.unwrap(), bulk(&i.to_string()));
    }
    let after = info_field(
        &c.call(["INFO", "stats"]).await.unwrap(),
        "total_writes_processed",
    );
    let writes = after - before - 1; // the INFO reply itself is one write
    assert!(
        writes < 1_000,
        "{writes} writes for 10,000 pipelined replies"
    );
    server.stop().await;
}

#[tokio::test]
async fn maxclients_rejects_with_redis_error() {
    let server = common::start(|a| a.maxclients = 1).await;
    let mut first = RespClient::connect(server.addr()).await.unwrap();
    assert_eq!(first.call(["PING"]).await.unwrap(), Frame::simple("PONG"));
    let (reply, closed) = raw(server.addr(), b"PING\r\n").await;
    assert_eq!(reply, b"-ERR max number of clients reached\r\n");
    assert!(closed);
    drop(first);
    server.stop().await;
}

#[tokio::test]
async fn client_kill_closes_the_target() {
    let server = common::start(|_| {}).await;
    let mut victim = RespClient::connect(server.addr()).await.unwrap();
    let Frame::Integer(id) = victim.call(["CLIENT", "ID"]).await.unwrap() else {
        panic!()
    };
    let mut admin = RespClient::connect(server.addr()).await.unwrap();
    assert_eq!(
        admin
            .call(["CLIENT", "KILL", "ID", &id.to_string()].map(String::from))
            .await
            .unwrap(),
        Frame::Integer(1)
    );
    assert!(victim.read_reply().await.is_err());
    server.stop().await;
}

#[tokio::test]
async fn stop_with_clients_connected_finishes_promptly() {
    let server = common::start(|_| {}).await;
    let mut clients = Vec::new();
    for _ in 0..5 {
        let mut c = RespClient::connect(server.addr()).await.unwrap();
        c.call(["PING"]).await.unwrap();
        clients.push(c);
    }
    tokio::time::timeout(Duration::from_secs(5), server.stop())
        .await
        .expect("stopped");
    for mut c in clients {
        assert!(
            c.read_reply().await.is_err(),
            "connection closed by shutdown"
        );
    }
}

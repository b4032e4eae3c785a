//! What a server does about the network around it: a listen backlog that takes a burst of
//! connects (`--tcp-backlog`), and protected mode, which refuses clients from other hosts
//! while no password is set. `ss` (iproute2) and `redis-cli` come from `.ci/run`.
#![allow(clippy::unwrap_used)] // test code: a panic is a test failure

mod common;

use std::net::SocketAddr;

use proto::Frame;
use service::RespClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The backlog the kernel holds for the listening socket on `port` (`ss` shows it as the
/// Send-Q of a listener).
fn kernel_backlog(port: u16) -> u32 {
    let out = std::process::Command::new("ss")
        .args(["-Hltn", &format!("sport = :{port}")])
        .output()
        .unwrap_or_else(|e| panic!("ss not runnable ({e}); install iproute2 (see .ci/run)"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let send_q = text.split_whitespace().nth(2);
    send_q
        .and_then(|q| q.parse().ok())
        .unwrap_or_else(|| panic!("no listener on port {port} in ss's output: {text:?}"))
}

/// Sends a PING on a fresh connection to `addr` and returns the first reply line.
async fn ping(addr: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(b"PING\r\n").await?;
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n") {
        if stream.read(&mut byte).await? == 0 {
            break;
        }
        reply.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&reply).trim_end().to_string())
}

#[tokio::test]
async fn the_listen_backlog_is_redis_tcp_backlog_and_a_flag() {
    let server = common::start(|_| {}).await;
    assert_eq!(kernel_backlog(server.addr().port()), 511);
    let mut c = RespClient::connect(server.addr()).await.unwrap();
    assert_eq!(
        c.call(["CONFIG", "GET", "tcp-backlog"]).await.unwrap(),
        Frame::Array(vec![Frame::bulk("tcp-backlog"), Frame::bulk("511")])
    );
    server.stop().await;

    let server = common::start(|args| args.tcp_backlog = 2048).await;
    assert_eq!(kernel_backlog(server.addr().port()), 2048);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_2000_connects_is_served() {
    const CLIENTS: usize = 2000;
    let server = common::start(|_| {}).await;
    let addr = server.addr();
    // Every client connects at once and holds its connection until all have replied, so
    // the server has 2000 connections open together.
    let all_replied = std::sync::Arc::new(tokio::sync::Barrier::new(CLIENTS));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let all_replied = all_replied.clone();
        clients.spawn(async move {
            let mut stream = TcpStream::connect(addr).await?;
            stream.write_all(b"*1\r\n$4\r\nPING\r\n").await?;
            let mut reply = [0u8; 7];
            stream.read_exact(&mut reply).await?;
            all_replied.wait().await;
            Ok::<_, std::io::Error>(reply)
        });
    }
    let mut pongs = 0;
    while let Some(joined) = clients.join_next().await {
        match joined.unwrap() {
            Ok(reply) if &reply == b"+PONG\r\n" => pongs += 1,
            Ok(reply) => panic!("unexpected reply {:?}", String::from_utf8_lossy(&reply)),
            Err(e) => panic!("a client failed: {e} (is `ulimit -n` at least 5000?)"),
        }
    }
    assert_eq!(pongs, CLIENTS);
    server.stop().await;
}

#[tokio::test]
async fn protected_mode_refuses_remote_clients_until_a_password_is_set() {
    let server = common::start(|args| args.bind = "0.0.0.0".into()).await;
    let port = server.addr().port();
    let remote = SocketAddr::new(testkit::non_loopback_ip(), port);
    let local = SocketAddr::from(([127, 0, 0, 1], port));

    // From another address: one line saying why and how to fix it, then the close.
    let refused = ping(remote).await.unwrap();
    assert!(refused.starts_with("-DENIED "), "{refused}");
    assert!(refused.contains("--requirepass") && refused.contains("--protected-mode no"));
    // The same with redis-cli, which prints the error.
    let out = tokio::process::Command::new("redis-cli")
        .args([
            "-h",
            &remote.ip().to_string(),
            "-p",
            &port.to_string(),
            "PING",
        ])
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("redis-cli not runnable ({e}); install redis-tools (see .ci/run)")
        });
    let printed =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(printed.contains("DENIED"), "{printed}");

    // From loopback: served as ever.
    assert_eq!(ping(local).await.unwrap(), "+PONG");

    // A password set from loopback lets remote clients in, to AUTH.
    let mut admin = RespClient::connect(local).await.unwrap();
    let set = |name: &'static str, value: &'static str| ["CONFIG", "SET", name, value];
    assert_eq!(
        admin.call(set("requirepass", "s3cret")).await.unwrap(),
        Frame::ok()
    );
    assert_eq!(
        ping(remote).await.unwrap(),
        "-NOAUTH Authentication required."
    );
    let mut remote_client = RespClient::connect(remote).await.unwrap();
    assert_eq!(
        remote_client.call(["AUTH", "s3cret"]).await.unwrap(),
        Frame::ok()
    );
    assert_eq!(
        remote_client.call(["PING"]).await.unwrap(),
        Frame::simple("PONG")
    );

    // Without a password again, and protected mode turned off: anyone is served.
    assert_eq!(admin.call(["AUTH", "s3cret"]).await.unwrap(), Frame::ok());
    assert_eq!(
        admin.call(set("requirepass", "")).await.unwrap(),
        Frame::ok()
    );
    assert!(ping(remote).await.unwrap().starts_with("-DENIED "));
    assert_eq!(
        admin.call(set("protected-mode", "no")).await.unwrap(),
        Frame::ok()
    );
    assert_eq!(ping(remote).await.unwrap(), "+PONG");
    server.stop().await;
}

#[tokio::test]
async fn protected_mode_off_by_flag_serves_remote_clients() {
    let server = common::start(|args| {
        args.bind = "0.0.0.0".into();
        args.protected_mode.on = false;
    })
    .await;
    let remote = SocketAddr::new(testkit::non_loopback_ip(), server.addr().port());
    assert_eq!(ping(remote).await.unwrap(), "+PONG");
    server.stop().await;
}

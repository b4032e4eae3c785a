//! Hostile and broken peers: malformed and oversized requests, slowloris, bodies over the
//! limit, origins that hang or reset. Each gets a clear status, and the server goes on
//! serving everyone else.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Lab, get, send};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Writes `request` raw and reads until the server closes (or 10 s pass).
async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // The server may answer and close before it has read everything: ignore write errors.
    let _ = stream.write_all(request).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

async fn still_serving(lab: &Lab) {
    let reply = lab.get("/test?cc=max-age=60&alive", &[]).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn a_malformed_request_gets_400() {
    let lab = Lab::start().await;
    for bad in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
    ] {
        let reply = raw(lab.edge.addr(), bad).await;
        assert!(
            reply.starts_with("HTTP/1.1 400"),
            "{:?} -> {reply:?}",
            String::from_utf8_lossy(bad)
        );
    }
    still_serving(&lab).await;
    lab.stop().await;
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let lab = Lab::start().await;
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let reply = raw(lab.edge.addr(), big.as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply:?}");
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let reply = raw(
        lab.edge.addr(),
        format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply:?}");
    still_serving(&lab).await;
    lab.stop().await;
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413() {
    let lab = Lab::with(|a| a.http.max_body_bytes = 1024).await;
    let reply = send(lab.edge.addr(), "POST", "/test", &[], &"x".repeat(4096)).await;
    assert_eq!(reply.status, 413);
    // Announced but never sent: refused before any of it is read.
    let reply = raw(
        lab.edge.addr(),
        b"POST /test HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply:?}");
    still_serving(&lab).await;
    lab.stop().await;
}

#[tokio::test]
async fn a_slowloris_client_is_disconnected_and_others_are_served() {
    let lab = Lab::with(|a| a.http.header_timeout = 1).await;
    let mut slow = TcpStream::connect(lab.edge.addr()).await.expect("connect");
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    // Meanwhile another client is served.
    still_serving(&lab).await;
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            // Trickle a header byte now and then, as slowloris does.
            if slow.write_all(b"X").await.is_err() {
                return;
            }
            match tokio::time::timeout(Duration::from_millis(300), slow.read_to_end(&mut rest))
                .await
            {
                Ok(_) => return,
                Err(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the slow client was not disconnected");
    still_serving(&lab).await;
    lab.stop().await;
}

#[tokio::test]
async fn a_connection_that_never_sends_a_request_is_closed() {
    let lab = Lab::with(|a| a.http.header_timeout = 1).await;
    let mut silent = TcpStream::connect(lab.edge.addr()).await.expect("connect");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), silent.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "a silent connection was kept open");
    still_serving(&lab).await;
    lab.stop().await;
}

#[tokio::test]
async fn an_origin_that_hangs_gets_504_and_one_that_is_down_502() {
    let lab = Lab::with(|a| a.origin_timeout = 1).await;
    let reply = lab.get("/test?delay=5000", &[]).await;
    assert_eq!(reply.status, 504, "{}", reply.body);
    still_serving(&lab).await;
    lab.stop().await;

    // An origin that accepts and resets every connection.
    let resetter = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = resetter.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = resetter.accept().await {
            let _ = stream.set_zero_linger();
            drop(stream);
        }
    });
    let edge = edge::start(
        edge::Args::ephemeral(&origin.to_string()),
        Default::default(),
    )
    .await
    .expect("edge");
    let reply = get(edge.addr(), "/x", &[]).await;
    assert_eq!(reply.status, 502, "{}", reply.body);
    edge.stop().await;
}

#[tokio::test]
async fn over_maxclients_gets_503() {
    let lab = Lab::with(|a| a.http.maxclients = 1).await;
    // Hold the one slot: a keep-alive connection that has had an answer (so it was accepted).
    let mut held = TcpStream::connect(lab.edge.addr()).await.expect("connect");
    held.write_all(b"GET /_edge/stats HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut first = [0u8; 12];
    held.read_exact(&mut first).await.expect("an answer");
    assert_eq!(&first, b"HTTP/1.1 200");
    let reply = raw(lab.edge.addr(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply:?}");
    lab.stop().await;
}

/// Protected mode (issue 28) on all three HTTP servers: bound to every interface, they
/// answer other hosts `403` with how to open them, serve loopback, and serve everyone with
/// `--protected-mode no`.
#[tokio::test]
async fn bound_to_every_interface_other_hosts_get_403_until_protected_mode_is_off() {
    let outside = testkit::non_loopback_ip();
    for protected in [true, false] {
        let mut web_args = edge::web::Args::ephemeral("web");
        web_args.http.bind = "0.0.0.0".into();
        web_args.http.protected_mode.on = protected;
        let web = edge::web::start(web_args, tokio_util::sync::CancellationToken::new())
            .await
            .expect("web");
        let mut lb_args = edge::lb::Args::ephemeral(&[web.addr().to_string()]);
        lb_args.http.bind = "0.0.0.0".into();
        lb_args.http.protected_mode.on = protected;
        let lb = edge::lb::start(lb_args, tokio_util::sync::CancellationToken::new())
            .await
            .expect("lb");
        let mut edge_args = edge::Args::ephemeral(&lb.addr().to_string());
        edge_args.http.bind = "0.0.0.0".into();
        edge_args.http.protected_mode.on = protected;
        let edge = edge::start(edge_args, tokio_util::sync::CancellationToken::new())
            .await
            .expect("edge");
        for port in [web.addr().port(), lb.addr().port(), edge.addr().port()] {
            let loopback = get(SocketAddr::from(([127, 0, 0, 1], port)), "/health", &[]).await;
            assert_eq!(loopback.status, 200, "loopback is always served");
            let remote = raw(
                SocketAddr::new(outside, port),
                b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .await;
            if protected {
                assert!(remote.starts_with("HTTP/1.1 403"), "{remote}");
                assert!(remote.contains("--protected-mode no"), "{remote}");
                assert!(remote.contains("connection: close"), "{remote}");
            } else {
                assert!(remote.starts_with("HTTP/1.1 200"), "{remote}");
            }
        }
        edge.stop().await;
        lb.stop().await;
        web.stop().await;
    }
}

#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! TLS termination on the load balancer (and the edge, which shares the listener): a
//! certificate made here with rcgen, a rustls client that keeps its sessions as a browser
//! does, and curl. The balancer counts full and resumed handshakes on its stats page: the
//! course's "SSL session caching".

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::{start_web, stat};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

/// A self-signed certificate for `localhost` and 127.0.0.1, written to a fresh directory.
struct Certificate {
    dir: std::path::PathBuf,
    cert_pem: String,
}

impl Certificate {
    fn new(test: &str) -> Certificate {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let dir = testkit::temp_dir(test);
        std::fs::write(dir.join("cert.pem"), made.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), made.key_pair.serialize_pem()).unwrap();
        Certificate {
            dir,
            cert_pem: made.cert.pem(),
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    /// `--tls-port 0 --tls-cert-file .. --tls-key-file ..` into `http`.
    fn configure(&self, http: &mut edge::http::HttpArgs) {
        http.tls.tls_port = Some(0);
        http.tls.tls_cert_file = Some(self.path("cert.pem"));
        http.tls.tls_key_file = Some(self.path("key.pem"));
    }

    /// A client that trusts this certificate and, like a browser, keeps the sessions it
    /// had (rustls's default in-memory resumption store).
    fn client(&self) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        let cert = CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).unwrap();
        roots.add(cert).unwrap();
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector::from(Arc::new(config))
    }
}

impl Drop for Certificate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A GET over a new TLS connection: the response, and whether the handshake resumed.
async fn https_get(client: &TlsConnector, addr: SocketAddr, path: &str) -> (String, bool) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = client.connect(name, tcp).await.unwrap();
    let resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    // To the end: TLS 1.3 session tickets arrive after the handshake, with the response.
    let _ = tls.read_to_end(&mut response).await;
    (String::from_utf8_lossy(&response).into_owned(), resumed)
}

async fn tls_addr(page_addr: SocketAddr, page: &str) -> SocketAddr {
    stat(page_addr, page, "tls_addr").await.parse().unwrap()
}

/// `(full, resumed, failed)` handshakes from a stats page.
async fn handshakes(page_addr: SocketAddr, page: &str) -> (u64, u64, u64) {
    let n = |v: String| v.parse::<u64>().unwrap();
    (
        n(stat(page_addr, page, "tls_handshakes_full").await),
        n(stat(page_addr, page, "tls_handshakes_resumed").await),
        n(stat(page_addr, page, "tls_handshakes_failed").await),
    )
}

/// `curl -s -i` over HTTPS to `localhost:port` (resolved to 127.0.0.1), trusting `cert`.
async fn curl(cert: &Certificate, port: u16, args: &[&str], paths: &[&str]) -> String {
    let resolve = format!("localhost:{port}:127.0.0.1");
    let out = tokio::process::Command::from(testkit::peer("curl"))
        .args([
            "-s",
            "-i",
            "--cacert",
            &cert.path("cert.pem"),
            "--resolve",
            &resolve,
        ])
        .args(args)
        .args(paths.iter().map(|p| format!("https://localhost:{port}{p}")))
        .output()
        .await
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn lb_with_tls(
    cert: &Certificate,
    tweak: impl FnOnce(&mut edge::lb::Args),
) -> (edge::http::Running, edge::http::Running, SocketAddr) {
    let web = start_web("web-tls").await;
    let mut args = edge::lb::Args::ephemeral(&[web.addr().to_string()]);
    cert.configure(&mut args.http);
    tweak(&mut args);
    let lb = edge::lb::start(args, CancellationToken::new())
        .await
        .unwrap();
    let secure = tls_addr(lb.addr(), "/_lb/stats").await;
    (web, lb, secure)
}

#[tokio::test]
async fn the_balancer_terminates_tls_and_resumes_sessions_from_its_cache() {
    let cert = Certificate::new("lb-cache");
    let (web, lb, secure) = lb_with_tls(&cert, |_| {}).await;
    let client = cert.client();

    let (first, resumed) = https_get(&client, secure, "/posts/1").await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(first.contains("x-served-by: web-tls"), "{first}");
    // The backend is reached over plain HTTP, and told the client used HTTPS.
    assert!(first.contains("x-echo-forwarded-proto: https"), "{first}");
    assert!(!resumed, "a first visit is a full handshake");
    // A new connection from the same client: the session it kept is resumed.
    let (second, resumed) = https_get(&client, secure, "/posts/1").await;
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    assert!(
        resumed,
        "the second connection resumes the first one's session"
    );

    assert_eq!(handshakes(lb.addr(), "/_lb/stats").await, (1, 1, 0));
    // The plain port still serves, and a client that speaks plain HTTP to the TLS port is
    // a failed handshake, not a crash.
    let plain = TcpStream::connect(secure).await.unwrap();
    let (mut r, mut w) = plain.into_split();
    w.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut junk = Vec::new();
    let _ = r.read_to_end(&mut junk).await;
    assert_eq!(handshakes(lb.addr(), "/_lb/stats").await, (1, 1, 1));
    lb.stop().await;
    web.stop().await;
}

#[tokio::test]
async fn without_a_session_cache_every_handshake_is_full_and_tickets_resume_too() {
    let cert = Certificate::new("lb-nocache");
    let (web, lb, secure) = lb_with_tls(&cert, |a| a.http.tls.tls_session_caching = false).await;
    let client = cert.client();
    for _ in 0..2 {
        let (reply, resumed) = https_get(&client, secure, "/health").await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(!resumed);
    }
    assert_eq!(handshakes(lb.addr(), "/_lb/stats").await, (2, 0, 0));
    lb.stop().await;
    web.stop().await;

    // Session tickets: the state travels with the client; the server keeps none.
    let (web, lb, secure) = lb_with_tls(&cert, |a| {
        a.http.tls.tls_session_caching = false;
        a.http.tls.tls_session_tickets = true;
    })
    .await;
    let client = cert.client();
    assert!(!https_get(&client, secure, "/health").await.1);
    assert!(https_get(&client, secure, "/health").await.1);
    assert_eq!(handshakes(lb.addr(), "/_lb/stats").await, (1, 1, 0));
    lb.stop().await;
    web.stop().await;
}

/// curl, as users run it: HTTPS through the edge (HTTP/2 by ALPN), and two URLs over
/// separate connections in one curl run, the second resuming the first's session.
#[tokio::test]
async fn curl_over_https_through_the_edge() {
    let cert = Certificate::new("edge-curl");
    let web = start_web("web").await;
    let mut args = edge::Args::ephemeral(&web.addr().to_string());
    cert.configure(&mut args.http);
    let edge = edge::start(args, CancellationToken::new()).await.unwrap();
    let secure = tls_addr(edge.addr(), "/_edge/stats").await;
    let port = secure.port();
    let text = curl(&cert, port, &[], &["/static/app.css"]).await;
    assert!(text.starts_with("HTTP/2 200"), "{text}");
    assert!(text.contains("x-cache: MISS"), "{text}");
    let two = ["/static/app.css", "/static/app.css"];
    let text = curl(&cert, port, &["-H", "Connection: close", "--http1.1"], &two).await;
    assert_eq!(text.matches("x-cache: HIT").count(), 2, "{text}");
    // One full handshake per curl run; curl's second connection resumed the first's session.
    assert_eq!(handshakes(edge.addr(), "/_edge/stats").await, (2, 1, 0));
    edge.stop().await;
    web.stop().await;
}

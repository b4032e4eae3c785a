//! The dashboard's HTTP side (hyper 1): `GET /` the page, `GET /api/state` the JSON
//! snapshot with history, `GET /events` a Server-Sent Events stream of the latest numbers.
//!
//! Server-Sent Events are the simplest push the web has: one long response of
//! `text/event-stream`, each event a `data: ...` line and a blank line; the browser's
//! `EventSource` reads them and reconnects by itself when the connection drops (after the
//! `retry:` milliseconds we send first). No WebSocket handshake, no framing of our own.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use service::protocol_port::Protocol;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::board::Shared;
use crate::poller::now_ms;

/// The page: one HTML file with its script and styles inline, compiled into the binary so
/// the dashboard works offline (no CDN, nothing to install).
pub const PAGE: &str = include_str!("page.html");

/// The course map the panels link to, served too so the links work offline.
pub const CHAPTERS: &str = include_str!("../../../docs/chapters.md");

type ResponseBody = BoxBody<Bytes, Infallible>;

/// The dashboard's HTTP side as a protocol of `service`'s accept loop (which checks
/// protected mode and `--maxclients` for every connection, as on every server here).
pub struct Page {
    pub shared: Arc<Shared>,
}

impl Protocol for Page {
    async fn serve(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        shutdown: CancellationToken,
    ) {
        let page = self.clone();
        let stop = shutdown.clone();
        let service = service_fn(move |req| {
            let response = route(&req, &page.shared, stop.clone());
            async move { Ok::<_, Infallible>(response) }
        });
        // Open `/events` streams end with the shutdown; then the connection closes.
        let result = service::http1::serve(stream, service, &shutdown).await;
        if let Err(e) = result {
            debug!("dashboard: connection from {peer}: {e}");
        }
    }

    /// A refused browser gets `403` with the reason, then the connection closes.
    async fn refuse(self: Arc<Self>, mut stream: TcpStream, reason: &'static str) {
        let response = format!(
            "HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{reason}",
            reason.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    }
}

fn route(
    req: &Request<Incoming>,
    shared: &Shared,
    shutdown: CancellationToken,
) -> Response<ResponseBody> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        );
    }
    match req.uri().path() {
        "/" | "/index.html" => text(StatusCode::OK, "text/html; charset=utf-8", PAGE.into()),
        "/api/state" => text(
            StatusCode::OK,
            "application/json",
            shared.state_json(now_ms()),
        ),
        "/events" => events(shared, shutdown),
        "/docs/chapters.md" => text(StatusCode::OK, "text/plain; charset=utf-8", CHAPTERS.into()),
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain",
            "try / or /api/state or /events\n".into(),
        ),
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `/events`: the latest numbers now, then each time the publisher has new ones, until
/// the page goes away or the dashboard shuts down.
fn events(shared: &Shared, shutdown: CancellationToken) -> Response<ResponseBody> {
    let mut latest = shared.subscribe();
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        if tx
            .send(Bytes::from_static(b"retry: 1000\n\n"))
            .await
            .is_err()
        {
            return;
        }
        latest.mark_changed();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = latest.changed() => if changed.is_err() { return },
            }
            let json = latest.borrow_and_update().clone();
            if json.is_empty() {
                continue;
            }
            if tx
                .send(Bytes::from(format!("data: {json}\n\n")))
                .await
                .is_err()
            {
                return; // the page went away
            }
        }
    });
    let mut response = Response::new(Events(rx).boxed());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A response body that is whatever arrives on a channel, for as long as it is open.
struct Events(mpsc::Receiver<Bytes>);

impl Body for Events {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut()
            .0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// Where the page is, for the line `infralab dashboard` and `--dashboard` print.
pub fn url(addr: SocketAddr) -> String {
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        addr.ip().to_string()
    };
    format!("http://{host}:{}/", addr.port())
}

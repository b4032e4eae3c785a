//! Serving one HTTP/1.1 connection for a [`Protocol`](crate::protocol_port::Protocol) whose
//! wire is HTTP (the broker's SQS API, the dashboard).
//!
//! hyper parses and writes the protocol; what every such listener here adds is the same two
//! rules, so they live once: a client has [`HEADER_TIMEOUT`] to send a request's head (a
//! slowloris that trickles a byte a minute holds no connection forever), and a shutdown
//! lets the request in flight finish — a long poll or an event stream ends with it — then
//! closes the connection, instead of cutting a reply in half.

use std::error::Error;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::HttpService;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// How long a client has to send a request's head (nginx's `client_header_timeout` is 60 s).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `stream` with `service` until the client leaves, or until `shutdown` is cancelled
/// and the request in flight is answered. The error is hyper's (a malformed request, a
/// timed-out head, a reset): the caller logs it as its own.
pub async fn serve<S>(
    stream: TcpStream,
    service: S,
    shutdown: &CancellationToken,
) -> Result<(), hyper::Error>
where
    S: HttpService<Incoming>,
    S::Error: Into<Box<dyn Error + Send + Sync>>,
    S::ResBody: 'static,
    <S::ResBody as Body>::Error: Into<Box<dyn Error + Send + Sync>>,
{
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => result,
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}

//! Bind, accept, serve HTTP/1.1 (and HTTP/2 over cleartext, "h2c" with prior knowledge:
//! `curl --http2-prior-knowledge`) with hyper, and shut down gracefully — once, for the
//! edge, the load balancer and the origin.
//!
//! The limits a client could abuse are set here, with nginx's defaults in mind:
//! - request head size (`--max-header-bytes`, like `large_client_header_buffers 4 8k`):
//!   hyper stops reading a head past its buffer and answers `431 Request Header Fields Too
//!   Large`; a malformed head gets `400 Bad Request`; both close the connection;
//! - time to send a whole head (`--header-timeout`, nginx's `client_header_timeout`): a
//!   slowloris client that trickles one header byte a second is disconnected, and so is one
//!   that connects and sends nothing;
//! - request body size (`--max-body-bytes`, `client_max_body_size`): `413` (see
//!   [`super::body`]);
//! - connections (`--maxclients`): one more gets `503` and is closed.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

pub use service::Running;

use super::Body;

/// How long shutdown waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Flags every HTTP server here takes (flattened into each server's `Args`).
#[derive(Debug, Clone, clap::Args)]
pub struct HttpArgs {
    /// Address to listen on. The default is loopback only: expose a server on purpose.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// TCP port (0 picks a free one). Each server has its own default.
    #[arg(long)]
    pub port: Option<u16>,
    /// Connections beyond this many get `503 Service Unavailable` and are closed.
    #[arg(long, default_value_t = 10_000)]
    pub maxclients: usize,
    /// Largest request head (request line + headers) in bytes; more gets `431` (min 8192).
    #[arg(long, default_value_t = 32 * 1024)]
    pub max_header_bytes: usize,
    /// Seconds a client has to send a whole request head (slowloris protection).
    #[arg(long, default_value_t = 60)]
    pub header_timeout: u64,
    /// Largest request body in bytes; more gets `413 Content Too Large`.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
}

impl HttpArgs {
    /// Settings for tests: loopback, port 0, defaults for everything else.
    pub fn ephemeral() -> Self {
        HttpArgs {
            bind: "127.0.0.1".into(),
            port: Some(0),
            maxclients: 10_000,
            max_header_bytes: 32 * 1024,
            header_timeout: 60,
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// What a server does with one request. `peer` is the client's address (for
/// `X-Forwarded-For`, rate limits and access logs).
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> impl Future<Output = Response<Body>> + Send;
}

/// Binds `--bind`:`--port` (or `default_port`) and serves `handler` until `shutdown` is
/// cancelled. Returns once the socket is bound. `background` tasks (health checks,
/// revalidations) are stopped with the server.
pub async fn spawn<H: Handler>(
    name: &'static str,
    handler: Arc<H>,
    args: &HttpArgs,
    default_port: u16,
    shutdown: CancellationToken,
) -> std::io::Result<Running> {
    let port = args.port.unwrap_or(default_port);
    let listener = TcpListener::bind((args.bind.as_str(), port)).await?;
    let addr = listener.local_addr()?;
    info!("{name} listening on http://{addr}");
    let task = tokio::spawn(accept_loop(
        name,
        listener,
        handler,
        args.clone(),
        shutdown.clone(),
    ));
    Ok(Running::new(addr, shutdown, task))
}

async fn accept_loop<H: Handler>(
    name: &'static str,
    listener: TcpListener,
    handler: Arc<H>,
    args: HttpArgs,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(args.maxclients));
    let connections = TaskTracker::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(args.header_timeout.max(1)))
        .max_buf_size(args.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(args.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Usually out of file descriptors: back off instead of spinning.
                warn!("{name}: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tokio::spawn(reject(stream));
            continue;
        };
        let handler = handler.clone();
        let builder = builder.clone();
        let shutdown = shutdown.clone();
        let header_timeout = Duration::from_secs(args.header_timeout.max(1));
        connections.spawn(async move {
            // hyper times out a slow request head, but not a client that sends nothing (or
            // half of HTTP/2's preface) before its first request: this does.
            let first_request = Arc::new(Notify::new());
            let arrived = first_request.clone();
            let service = service_fn(move |req| {
                arrived.notify_one();
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler.handle(req, peer).await) }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            let silent = async {
                if tokio::time::timeout(header_timeout, first_request.notified())
                    .await
                    .is_ok()
                {
                    std::future::pending::<()>().await;
                }
            };
            let result = tokio::select! {
                result = conn.as_mut() => result,
                _ = shutdown.cancelled() => {
                    // Finish the request in flight, then close.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
                _ = silent => {
                    debug!("{name}: {peer} sent no request within {header_timeout:?}");
                    Ok(())
                }
            };
            if let Err(e) = result {
                debug!("{name}: connection from {peer}: {e}");
            }
            drop(slot);
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, connections.wait())
        .await
        .is_err()
    {
        warn!(
            "{name}: {} connection(s) still busy; closing them",
            connections.len()
        );
    }
    info!("{name}: shut down");
}

/// Over `--maxclients`: say so, then close.
async fn reject(mut stream: TcpStream) {
    let _ = stream
        .write_all(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 30\r\nconnection: close\r\n\r\nmax number of clients reached\n",
        )
        .await;
    let _ = stream.shutdown().await;
}

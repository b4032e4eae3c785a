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
//! - connections (`--maxclients`): one more gets `503` and is closed;
//! - clients from other hosts while protected mode is on: `403` (see [`super::protected`]).
//!
//! With `--tls-port` a second listener serves the same handler over TLS ([`super::tls`]):
//! the handshake must finish within `--header-timeout` too, and every handshake is counted
//! as full or resumed.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::rt::{Read, Write};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use service::protected::ProtectedMode;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

pub use service::Running;

use super::headers::ArrivedOverTls;
use super::tls::{Tls, TlsArgs};
use super::{Body, protected};

/// How long shutdown waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Flags every HTTP server here takes (flattened into each server's `Args`).
#[derive(Debug, Clone, clap::Args)]
#[command(mut_arg("protected_mode", |arg| arg.help(
    "`yes`: bound to a non-loopback address, serve clients on this host only (others get \
     `403`), as Redis's protected mode. `no`: serve anyone who can reach the port"
)))]
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
    /// Seconds a client has to send a whole request head (slowloris protection), and to
    /// finish a TLS handshake.
    #[arg(long, default_value_t = 60)]
    pub header_timeout: u64,
    /// Largest request body in bytes; more gets `413 Content Too Large`.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// These servers have no password: protected mode alone decides who is served.
    #[command(flatten)]
    pub protected_mode: ProtectedMode,
    #[command(flatten)]
    pub tls: TlsArgs,
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
            protected_mode: ProtectedMode::ON,
            tls: TlsArgs::off(),
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

/// Binds `--bind`:`--port` (or `default_port`), and `--tls-port` when `tls` is given, and
/// serves `handler` on both until `shutdown` is cancelled. Returns once the sockets are
/// bound.
pub async fn spawn<H: Handler>(
    name: &'static str,
    handler: Arc<H>,
    args: &HttpArgs,
    default_port: u16,
    tls: Option<Arc<Tls>>,
    shutdown: CancellationToken,
) -> std::io::Result<Running> {
    let port = args.port.unwrap_or(default_port);
    let backlog = service::settings::DEFAULT_TCP_BACKLOG;
    let listener = service::listener::bind(name, &args.bind, port, backlog, "--port PORT").await?;
    let addr = listener.local_addr()?;
    info!("{name} listening on http://{addr}");
    protected::warn_if_exposed(name, addr, args.protected_mode.on);
    let secure = match (&tls, args.tls.tls_port) {
        (Some(tls), Some(tls_port)) => {
            let listener =
                service::listener::bind(name, &args.bind, tls_port, backlog, "--tls-port PORT")
                    .await?;
            let tls_addr = listener.local_addr()?;
            tls.bound(tls_addr);
            info!("{name} listening on https://{tls_addr}");
            protected::warn_if_exposed(name, tls_addr, args.protected_mode.on);
            Some((listener, tls.clone()))
        }
        _ => None,
    };
    let serving = Arc::new(Serving::new(name, handler, args, shutdown.clone()));
    let task = tokio::spawn(async move {
        let plain = tokio::spawn(accept_loop(serving.clone(), listener, None));
        if let Some((listener, tls)) = secure {
            let _ = accept_loop(serving.clone(), listener, Some(tls)).await;
        }
        let _ = plain.await;
        serving.drain().await;
    });
    Ok(Running::new(addr, shutdown, task))
}

/// What every connection of one server shares.
struct Serving<H> {
    name: &'static str,
    handler: Arc<H>,
    builder: auto::Builder<TokioExecutor>,
    slots: Arc<Semaphore>,
    connections: TaskTracker,
    header_timeout: Duration,
    protected_mode: bool,
    shutdown: CancellationToken,
}

impl<H: Handler> Serving<H> {
    fn new(
        name: &'static str,
        handler: Arc<H>,
        args: &HttpArgs,
        shutdown: CancellationToken,
    ) -> Self {
        let header_timeout = Duration::from_secs(args.header_timeout.max(1));
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .max_buf_size(args.max_header_bytes.max(8192));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(args.max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(256);
        Serving {
            name,
            handler,
            builder,
            slots: Arc::new(Semaphore::new(args.maxclients)),
            connections: TaskTracker::new(),
            header_timeout,
            protected_mode: args.protected_mode.on,
            shutdown,
        }
    }

    /// After the accept loops stopped: let requests in flight finish, for a while.
    async fn drain(&self) {
        self.connections.close();
        if tokio::time::timeout(DRAIN_TIMEOUT, self.connections.wait())
            .await
            .is_err()
        {
            warn!(
                "{}: {} connection(s) still busy; closing them",
                self.name,
                self.connections.len()
            );
        }
        info!("{}: shut down", self.name);
    }
}

async fn accept_loop<H: Handler>(
    serving: Arc<Serving<H>>,
    listener: TcpListener,
    tls: Option<Arc<Tls>>,
) {
    let name = serving.name;
    loop {
        let accepted = tokio::select! {
            _ = serving.shutdown.cancelled() => break,
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
        let Ok(slot) = serving.slots.clone().try_acquire_owned() else {
            if tls.is_none() {
                tokio::spawn(reject(stream));
            } // (a TLS client cannot read a plain-text answer: it is just closed)
            continue;
        };
        // No password exists for these servers: protected mode alone decides.
        let refused = stream.local_addr().is_ok_and(|local| {
            service::protected::refusal(serving.protected_mode, local.ip(), false, peer.ip())
                .is_some()
        });
        if refused {
            debug!("{name}: {peer} refused: protected mode");
        }
        let serving2 = serving.clone();
        let tls = tls.clone();
        serving.connections.spawn(async move {
            let serving = serving2;
            match tls {
                None => {
                    let io = TokioIo::new(stream);
                    serving.serve(io, peer, refused, false, slot).await;
                }
                Some(tls) => {
                    let handshake = tokio::select! {
                        _ = serving.shutdown.cancelled() => return,
                        done = tokio::time::timeout(serving.header_timeout, tls.acceptor.accept(stream)) => done,
                    };
                    match handshake {
                        Ok(Ok(stream)) => {
                            tls.handshake_done(stream.get_ref().1.handshake_kind());
                            let io = TokioIo::new(stream);
                            serving.serve(io, peer, refused, true, slot).await;
                        }
                        Ok(Err(e)) => {
                            tls.handshake_failed();
                            debug!("{name}: TLS handshake with {peer} failed: {e}");
                        }
                        Err(_) => {
                            tls.handshake_failed();
                            debug!("{name}: TLS handshake with {peer} timed out");
                        }
                    }
                }
            }
        });
    }
}

impl<H: Handler> Serving<H> {
    /// Serves one connection (plain or TLS) until it closes. A connection refused by
    /// protected mode gets `403` for each request; a TLS one marks its requests
    /// [`ArrivedOverTls`].
    async fn serve<I>(
        &self,
        io: I,
        peer: SocketAddr,
        refused: bool,
        over_tls: bool,
        slot: OwnedSemaphorePermit,
    ) where
        I: Read + Write + Unpin + Send + 'static,
    {
        let name = self.name;
        let header_timeout = self.header_timeout;
        // hyper times out a slow request head, but not a client that sends nothing (or
        // half of HTTP/2's preface) before its first request: this does.
        let first_request = Arc::new(Notify::new());
        let arrived = first_request.clone();
        let handler = self.handler.clone();
        let service = service_fn(move |mut req: Request<Incoming>| {
            arrived.notify_one();
            if over_tls {
                req.extensions_mut().insert(ArrivedOverTls);
            }
            let handler = handler.clone();
            async move {
                if refused {
                    return Ok::<_, Infallible>(protected::forbidden());
                }
                Ok::<_, Infallible>(handler.handle(req, peer).await)
            }
        });
        let conn = self.builder.serve_connection(io, service);
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
            _ = self.shutdown.cancelled() => {
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
    }
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

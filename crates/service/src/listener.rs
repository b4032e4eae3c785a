//! Bind, accept, enforce `--maxclients` and protected mode, and shut down gracefully.
//!
//! The listen backlog is the queue of connections the kernel has completed but the server
//! has not accepted yet. When a burst of clients connects at once (a pool warming up, every
//! worker of a restarted service) beyond it, the kernel drops their handshakes and they
//! retry a second or more later. `--tcp-backlog` sets it, 511 by default as Redis's
//! `tcp-backlog`, and the accept loop takes connections as fast as they come.
//!
//! Graceful shutdown, in order: stop accepting; tell every connection to finish (a
//! connection only notices between commands, so a command in flight completes and its
//! reply is written); wait for them, for a bounded time; run the server's own shutdown
//! hook (flush to disk); return.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::BoxError;
use crate::builtin;
use crate::client::{Shared, Stats};
use crate::command_table::CommandTable;
use crate::connection::{Context, serve};
use crate::protected;
use crate::server::Server;
use crate::settings::{ServiceArgs, Settings};

/// How long shutdown waits for connections still executing a command.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(500);

/// A server that is running in the background.
pub struct Running {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    /// The address it listens on (the real port when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The token that stops it.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until the server has shut down (after its token is cancelled).
    pub async fn wait(self) {
        if let Err(e) = self.task.await {
            warn!("server task failed: {e}");
        }
    }

    /// Shuts the server down and waits for it.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.wait().await;
    }
}

/// Runs `start` — a server's own start function — on a thread of its own with a
/// single-threaded runtime, and hands its [`Running`] handle back to the caller's runtime.
///
/// Every task the server spawns (each client connection, a proxy's backend connections)
/// then lives on that one thread, as in a classic event loop (Redis, twemproxy). Passing
/// work from one task to another — a client's request to a backend connection's writer,
/// a reply back to the client — is then a push on a local run queue. On the shared
/// multi-threaded runtime the same hand-off often wakes a parked worker on the other core
/// (a futex call and two context switches) for a few microseconds of work: for a proxy
/// doing one small request per client at a time, that costs more than the request.
pub async fn spawn_on_own_thread<F, Fut>(name: &str, start: F) -> Result<Running, BoxError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<Running, BoxError>>,
{
    let (running, ()) = spawn_on_own_thread_with(name, move || async move {
        start().await.map(|running| (running, ()))
    })
    .await?;
    Ok(running)
}

/// [`spawn_on_own_thread`] for a server whose start function also reports something
/// else about itself (the stream server: its Kafka listener's address).
pub async fn spawn_on_own_thread_with<T, F, Fut>(
    name: &str,
    start: F,
) -> Result<(Running, T), BoxError>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(Running, T), BoxError>>,
{
    let (started_tx, started_rx) = oneshot::channel::<Result<_, BoxError>>();
    let (stopped_tx, stopped_rx) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = started_tx.send(Err(e.into()));
                    return;
                }
            };
            runtime.block_on(async move {
                match start().await {
                    Ok((running, extra)) => {
                        let started = (running.addr, running.shutdown.clone(), extra);
                        let _ = started_tx.send(Ok(started));
                        running.wait().await;
                    }
                    Err(e) => {
                        let _ = started_tx.send(Err(e));
                    }
                }
            });
            drop(runtime);
            drop(stopped_tx);
        })?;
    let (addr, shutdown, extra) = started_rx
        .await
        .map_err(|_| format!("{name}: its thread stopped before it started"))??;
    let running = Running {
        addr,
        shutdown,
        // Finishes when the server's thread has shut it down and dropped its runtime.
        task: tokio::spawn(async move {
            let _ = stopped_rx.await;
        }),
    };
    Ok((running, extra))
}

/// Binds `--bind`:`--port` (or `default_port`) and serves `server` until `shutdown` is
/// cancelled. Returns once the socket is bound, so the caller knows the address.
pub async fn spawn<S: Server>(
    server: Arc<S>,
    args: &ServiceArgs,
    default_port: u16,
    shutdown: CancellationToken,
) -> std::io::Result<Running> {
    let port = args.port.unwrap_or(default_port);
    let listener = bind(
        server.name(),
        &args.bind,
        port,
        args.tcp_backlog,
        "--port PORT",
    )
    .await?;
    let addr = listener.local_addr()?;
    info!("{} listening on {addr}", server.name());
    let shared = Arc::new(Shared::new(Settings::new(args, addr.port())));
    protected::warn_if_exposed(
        server.name(),
        addr,
        shared.settings.protected_mode(),
        shared.settings.has_password(),
    );
    let ctx = Arc::new(Context {
        table: CommandTable::new(builtin::COMMANDS, server.commands()),
        server,
        shared,
    });
    let task = tokio::spawn(accept_loop(listener, ctx, shutdown.clone()));
    Ok(Running {
        addr,
        shutdown,
        task,
    })
}

/// Binds `host:port` for the server `name` with a listen backlog of `backlog` (the first of
/// the host's addresses that binds, as `TcpListener::bind` does). Every listener of every
/// server goes through here, so they all take `--tcp-backlog`.
///
/// A port already in use is the first thing a newcomer meets (a second `infralab up`, or the
/// compose topology still running), so the error names the server, the address and the flag
/// that moves it (`flag`, e.g. `--port PORT`) instead of only the OS's "Address already in use".
pub async fn bind(
    name: &str,
    host: &str,
    port: u16,
    backlog: u32,
    flag: &str,
) -> std::io::Result<TcpListener> {
    bind_with_backlog(host, port, backlog).await.map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => format!(
                "; another process (another infralab, or the compose topology) is listening \
                 there: stop it, or start {name} on another port with {flag}"
            ),
            _ => String::new(),
        };
        std::io::Error::new(
            e.kind(),
            format!("{name}: cannot listen on {host}:{port}: {e}{hint}"),
        )
    })
}

async fn bind_with_backlog(host: &str, port: u16, backlog: u32) -> std::io::Result<TcpListener> {
    let mut last_error = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // As `TcpListener::bind`: a restarted server can bind its port at once, while
        // connections of its previous run are still in TIME_WAIT.
        #[cfg(unix)]
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(backlog)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("could not resolve to any address: {host}"),
        )
    }))
}

async fn accept_loop<S: Server>(
    listener: TcpListener,
    ctx: Arc<Context<S>>,
    shutdown: CancellationToken,
) {
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, addr) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Usually out of file descriptors: back off instead of spinning.
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        Stats::add(&ctx.shared.stats.connections_received, 1);
        let local = stream.local_addr().unwrap_or(addr);
        let settings = &ctx.shared.settings;
        let refused = protected::refusal(
            settings.protected_mode(),
            local.ip(),
            settings.has_password(),
            addr.ip(),
        );
        if let Some(reason) = refused {
            debug!("refusing {addr}: protected mode");
            Stats::add(&ctx.shared.stats.rejected_connections, 1);
            tokio::spawn(refuse(stream, reason));
            continue;
        }
        if !ctx.shared.try_reserve_slot() {
            Stats::add(&ctx.shared.stats.rejected_connections, 1);
            tokio::spawn(refuse(stream, "ERR max number of clients reached"));
            continue;
        }
        let registration = ctx.shared.register(addr, local, shutdown.child_token());
        let ctx = ctx.clone();
        connections.spawn(async move {
            serve(stream, ctx.clone(), registration).await;
            ctx.shared.release_slot();
        });
    }
    drop(listener);
    connections.close();
    info!(
        "{}: stopped accepting; waiting for {} connection(s) to finish",
        ctx.server.name(),
        connections.len()
    );
    if tokio::time::timeout(DRAIN_TIMEOUT, connections.wait())
        .await
        .is_err()
    {
        warn!(
            "{}: {} connection(s) still busy; closing them",
            ctx.server.name(),
            connections.len()
        );
    }
    ctx.server.shutdown().await;
    info!("{}: shut down", ctx.server.name());
}

/// Refused (over `maxclients`, or by protected mode): tell the client why in one error
/// line, then close, as Redis does.
async fn refuse(mut stream: TcpStream, reason: &str) {
    let line = format!("-{reason}\r\n");
    let _ = stream.write_all(line.as_bytes()).await;
    let _ = stream.shutdown().await;
}

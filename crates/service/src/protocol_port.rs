//! A second protocol's port beside a server's RESP port: its flag and its accept loop.
//!
//! One engine, several listeners: the stream server also speaks Kafka's protocol, the
//! broker beanstalkd's and the SQS API. Each extra listener is configured the same way
//! ([`ProtocolPort`]: a port, `0` for none, `auto` for a free one) and accepts the same
//! way ([`listen`], [`accept_loop`]): protected mode and `--maxclients` are checked for every new
//! connection, each connection runs in its own task, and shutdown waits a bounded time
//! for the connections to finish. Only what is said on the wire differs, so that is all a
//! protocol supplies ([`Protocol`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::listener;
use crate::protected;
use crate::settings::ServiceArgs;

/// How long shutdown waits for connections still busy.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(500);

/// The flag of a second protocol's port (`--kafka-port`, `--beanstalk-port`,
/// `--sqs-port`): a port, `0` for no listener (as Redis's `port 0` turns its TCP port
/// off), or `auto` for a free port the OS picks (what tests use; the RESP side's `--port 0`
/// means that).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolPort {
    Off,
    Port(u16),
    Auto,
}

impl ProtocolPort {
    /// The port to bind (0: the OS picks), or `None` for no listener.
    pub fn to_bind(self) -> Option<u16> {
        match self {
            ProtocolPort::Off => None,
            ProtocolPort::Port(port) => Some(port),
            ProtocolPort::Auto => Some(0),
        }
    }
}

impl std::fmt::Display for ProtocolPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtocolPort::Off => f.write_str("0"),
            ProtocolPort::Port(port) => write!(f, "{port}"),
            ProtocolPort::Auto => f.write_str("auto"),
        }
    }
}

impl std::str::FromStr for ProtocolPort {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(ProtocolPort::Auto),
            "0" => Ok(ProtocolPort::Off),
            _ => s
                .parse()
                .map(ProtocolPort::Port)
                .map_err(|_| format!("'{s}' is not a port (a number, 0 for no listener, or auto)")),
        }
    }
}

/// What a protocol does with the connections its listener accepts.
pub trait Protocol: Send + Sync + 'static {
    /// Serves one connection until the client leaves or `shutdown` is cancelled.
    fn serve(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        shutdown: CancellationToken,
    ) -> impl Future<Output = ()> + Send;

    /// Tells a refused client why (`reason`: protected mode's text, or that
    /// `--maxclients` is reached) in the protocol's own words, then closes. The default
    /// closes at once: some protocols have no way to say it before a request.
    fn refuse(
        self: Arc<Self>,
        stream: TcpStream,
        reason: &'static str,
    ) -> impl Future<Output = ()> + Send {
        async move { drop((stream, reason)) }
    }
}

/// Who may connect: the limits every listener of a server shares.
#[derive(Debug, Clone, Copy)]
pub struct Admission {
    pub protected_mode: bool,
    pub password_set: bool,
    pub maxclients: usize,
}

/// Binds `--bind`:`port` for the protocol `name` (`flag` is the option that moves it, for
/// the error if the port is taken), warns if it is exposed without a password, and serves
/// the protocol `make` builds (told the bound address) until `shutdown`. Returns once
/// listening: the bound address, and the accept loop's task, which ends when the listener
/// has shut down (its connections finished or, after a bounded wait, abandoned).
pub async fn listen<P: Protocol>(
    name: &'static str,
    flag: &str,
    args: &ServiceArgs,
    port: u16,
    make: impl FnOnce(SocketAddr) -> P,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = listener::bind(name, &args.bind, port, args.tcp_backlog, flag).await?;
    let addr = listener.local_addr()?;
    info!("{name} listening on {addr}");
    let admission = Admission {
        protected_mode: args.protected_mode.on,
        password_set: args.requirepass.is_some(),
        maxclients: args.maxclients,
    };
    protected::warn_if_exposed(name, addr, admission.protected_mode, admission.password_set);
    let protocol = Arc::new(make(addr));
    let task = tokio::spawn(accept_loop(name, listener, protocol, admission, shutdown));
    Ok((addr, task))
}

/// The reason given to a client past `--maxclients`.
pub const MAX_CLIENTS: &str = "max number of clients reached";

/// Accepts connections on `listener` for `protocol` until `shutdown`, then waits (a
/// bounded time) for the connections to finish. `name` is for the log.
pub async fn accept_loop<P: Protocol>(
    name: &'static str,
    listener: TcpListener,
    protocol: Arc<P>,
    admission: Admission,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(admission.maxclients));
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    warn!("{name}: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().map_or(peer.ip(), |a| a.ip());
        let refused = protected::refusal(
            admission.protected_mode,
            local,
            admission.password_set,
            peer.ip(),
        );
        if let Some(reason) = refused {
            warn!(
                "{name}: refused {peer}: protected mode is on and no password is set \
                 (--requirepass, or --protected-mode no)"
            );
            tokio::spawn(protocol.clone().refuse(stream, reason));
            continue;
        }
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            debug!("{name}: refused {peer}: --maxclients reached");
            tokio::spawn(protocol.clone().refuse(stream, MAX_CLIENTS));
            continue;
        };
        let protocol = protocol.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            protocol.serve(stream, peer, shutdown).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_off_and_auto_is_any_free_port() {
        let parse = |s: &str| s.parse::<ProtocolPort>();
        assert_eq!(parse("0"), Ok(ProtocolPort::Off));
        assert_eq!(parse("auto"), Ok(ProtocolPort::Auto));
        assert_eq!(parse("11300"), Ok(ProtocolPort::Port(11300)));
        assert!(parse("70000").unwrap_err().contains("not a port"));
        assert_eq!(ProtocolPort::Off.to_bind(), None);
        assert_eq!(ProtocolPort::Auto.to_bind(), Some(0));
        assert_eq!(ProtocolPort::Port(9324).to_string(), "9324");
    }
}

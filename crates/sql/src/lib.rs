//! # sql — a relational database with ACID transactions, over the PostgreSQL protocol
//!
//! Read in this order: [`types`] (values), [`catalog`] (schemas), [`mvcc`] (transaction
//! ids, snapshots, visibility), [`storage`] (row versions and indexes), [`locks`] (waits
//! and deadlocks), [`engine`] (the write path: locks, constraints, undo/redo), [`wal`]
//! (the log and group commit), [`recovery`], [`planner`] and [`executor`] (queries),
//! [`session`] (transaction blocks, savepoints), [`isolation`] (the four levels),
//! [`predicate_locks`] (serializable's shared locks), [`vacuum`] (old versions),
//! [`server`] (the protocol).
#![forbid(unsafe_code)]

pub mod admission;
pub mod cancel;
pub mod catalog;
pub mod copy;
pub mod database;
pub mod describe;
pub mod dump;
pub mod engine;
pub mod error;
pub mod executor;
pub mod expr;
pub mod generated;
pub mod isolation;
pub mod locks;
pub mod mvcc;
pub mod params;
pub mod parse;
pub mod pg_catalog;
pub mod pg_locks;
pub mod pg_stat;
pub mod plancache;
pub mod planner;
pub mod predicate_locks;
pub mod recovery;
pub mod server;
pub mod session;
pub mod storage;
pub mod triggers;
pub mod types;
pub mod vacuum;
pub mod wal;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use service::Running;
use service::protected::ProtectedMode;
use service::{BoxError, CancellationToken};
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::database::Database;
use crate::engine::Engine;
use crate::isolation::Isolation;
use crate::server::{Connection, Open, Secured};
use crate::wal::{Fsync, Wal};

pub const DEFAULT_PORT: u16 = 7432;

/// `infralab sql`: the house flags. (`service::ServiceArgs` is shaped for RESP servers —
/// `--requirepass`, `--proto-max-bulk-len` — so this server has its own, with the same
/// names where they mean the same; `--password` is also accepted as `--requirepass`.
/// `--protected-mode` is the one every server flattens, `service::protected::ProtectedMode`.)
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "sql")]
pub struct Args {
    /// Address to listen on. The default is loopback only: expose a server on purpose.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// TCP port (0 picks a free one).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Data directory (write-ahead log and checkpoints). Without it the database lives
    /// in memory only.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// When a COMMIT is acknowledged: after fsync (always), after the write with an fsync
    /// every second (everysec), or after the write (no).
    #[arg(long, value_enum, default_value_t = Fsync::Always)]
    pub fsync: Fsync,
    /// Connections beyond this many are refused with SQLSTATE 53300.
    #[arg(long, default_value_t = 1000)]
    pub maxclients: usize,
    /// Take a checkpoint (and start a new log) after this many bytes of log.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub checkpoint_bytes: u64,
    /// Require this password (SCRAM-SHA-256) from every client.
    #[arg(long, alias = "requirepass", env = "INFRALAB_REQUIREPASS")]
    pub password: Option<String>,
    /// The isolation level every session starts with (`SET SESSION CHARACTERISTICS`
    /// changes it for one session). Repeatable read, as the course says; PostgreSQL's
    /// own default is read committed.
    #[arg(long, value_enum, default_value_t = Isolation::RepeatableRead)]
    pub default_isolation: Isolation,
    #[command(flatten)]
    pub protected_mode: ProtectedMode,
}

impl Args {
    /// Settings for tests: loopback, port 0, in memory.
    pub fn ephemeral() -> Args {
        Args {
            bind: "127.0.0.1".into(),
            port: 0,
            dir: None,
            fsync: Fsync::Always,
            maxclients: 1000,
            checkpoint_bytes: 64 * 1024 * 1024,
            password: None,
            default_isolation: Isolation::RepeatableRead,
            protected_mode: ProtectedMode::ON,
        }
    }
}

/// Recovers the database, binds, and serves until `shutdown` is cancelled.
pub async fn start(args: Args, shutdown: CancellationToken) -> Result<Running, BoxError> {
    let (engine, wal, generation) = match &args.dir {
        Some(dir) => {
            let dir = dir.clone();
            let fsync = args.fsync;
            tokio::task::spawn_blocking(move || -> Result<(Engine, Wal, u64), BoxError> {
                let (engine, generation) = recovery::recover(&dir)?;
                let wal = Wal::open(&dir, generation, fsync)?;
                Ok((engine, wal, generation))
            })
            .await?
            .map(|(e, w, g)| (e, Some(w), g))?
        }
        None => (Engine::default(), None, 0),
    };
    let db = Arc::new(
        Database::new(engine, wal, generation, args.checkpoint_bytes)
            .with_default_isolation(args.default_isolation),
    );
    let listener = service::listener::bind(
        "sql",
        &args.bind,
        args.port,
        service::settings::DEFAULT_TCP_BACKLOG,
        "--port PORT",
    )
    .await?;
    let addr = listener.local_addr()?;
    info!("sql listening on {addr}");
    service::protected::warn_if_exposed(
        "sql",
        addr,
        args.protected_mode.on,
        args.password.is_some(),
    );
    let token = shutdown.clone();
    let task = tokio::spawn(accept_loop(listener, db, args, token));
    Ok(Running::new(addr, shutdown, task))
}

/// `start`, then wait for shutdown.
pub async fn run(args: Args, shutdown: CancellationToken) -> Result<(), BoxError> {
    start(args, shutdown).await?.wait().await;
    Ok(())
}

async fn accept_loop(
    listener: TcpListener,
    db: Arc<Database>,
    args: Args,
    shutdown: CancellationToken,
) {
    let clients = Arc::new(AtomicUsize::new(0));
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let (socket, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = socket.set_nodelay(true);
        let local = socket.local_addr().map_or(peer.ip(), |a| a.ip());
        let password_set = args.password.is_some();
        if service::protected::refusal(args.protected_mode.on, local, password_set, peer.ip())
            .is_some()
        {
            warn!("sql: refused {peer}: protected mode is on and no password is set");
            let message = admission::protected_mode_message(peer.ip());
            tokio::spawn(async move { admission::refuse(socket, "28000", &message).await });
            continue;
        }
        if clients.fetch_add(1, Ordering::SeqCst) >= args.maxclients {
            clients.fetch_sub(1, Ordering::SeqCst);
            tokio::spawn(admission::refuse(
                socket,
                "53300",
                admission::TOO_MANY_CLIENTS,
            ));
            continue;
        }
        let connection = Connection::new(db.clone(), args.password.clone());
        let secured = args.password.is_some();
        let clients = clients.clone();
        let stop = shutdown.clone();
        connections.spawn(async move {
            let serve = async {
                let result = if secured {
                    pgwire::tokio::process_socket(socket, None, Secured(connection)).await
                } else {
                    pgwire::tokio::process_socket(socket, None, Open(connection)).await
                };
                if let Err(e) = result {
                    tracing::debug!("connection ended: {e}");
                }
            };
            tokio::select! {
                _ = serve => {}
                _ = stop.cancelled() => {}
            }
            clients.fetch_sub(1, Ordering::SeqCst);
        });
    }
    connections.close();
    connections.wait().await;
    if let Some(wal) = &db.wal {
        wal.close();
    }
    info!("sql: shut down");
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// `service`'s flag, flattened: on by default, `no` turns it off.
    #[test]
    fn protected_mode_is_the_shared_flag() {
        let default = Args::try_parse_from(["sql"]).map(|a| a.protected_mode);
        let off = Args::try_parse_from(["sql", "--protected-mode", "no"]).map(|a| a.protected_mode);
        assert_eq!(default.ok(), Some(ProtectedMode::ON));
        assert_eq!(off.ok(), Some(ProtectedMode::OFF));
    }
}

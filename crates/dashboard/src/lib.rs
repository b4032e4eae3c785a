//! # dashboard — the whole topology, live, in a browser
//!
//! `infralab dashboard` polls every server it is pointed at once a second, over that
//! server's own protocol — `INFO` and the stats commands over RESP, `/_edge/stats` over
//! HTTP, a query over the PostgreSQL protocol — exactly what an operator could fetch by
//! hand, and serves one page that draws the numbers as they move.
//!
//! Layers, as in every server crate:
//! - [`topology`], [`sample`], [`history`]: the model — which servers, one poll's numbers,
//!   and a bounded time series per number. No sockets; unit-tested.
//! - [`poller`]: one task per server asking for its stats; one publishing the board.
//! - [`http`]: the page, `/api/state` and the `/events` stream.
#![forbid(unsafe_code)]

mod board;
pub mod history;
pub mod http;
pub mod poller;
pub mod sample;
pub mod topology;

use std::sync::Arc;
use std::time::Duration;

use service::protected::ProtectedMode;
use service::protocol_port::{Admission, accept_loop};
use service::{BoxError, CancellationToken, Running};
use tracing::info;

pub use topology::{Kind, Target, Topology};

/// The dashboard's port.
pub const DEFAULT_PORT: u16 = 7300;

/// `infralab dashboard`: where to listen and which servers to watch. Every server flag
/// takes a comma-separated list (`--kv 127.0.0.1:7379,127.0.0.1:7479`); the defaults are
/// the addresses `infralab up` and the compose topology publish. An empty value (`--sql ''`)
/// watches none of that kind.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "dashboard")]
#[command(mut_arg("protected_mode", |arg| arg.help(
    "`yes`: bound to a non-loopback address, serve browsers on this host only (others get \
     `403`), as Redis's protected mode; the page has no password. `no`: serve anyone who \
     can reach the port (the compose image sets `INFRALAB_PROTECTED_MODE=no`)"
)))]
pub struct Args {
    /// Address the page is served on. The page shows stats only (no commands can be sent
    /// from it), but anyone who can reach it sees the topology: expose it on purpose
    /// (see `--protected-mode`).
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// Port of the page (0 picks a free one).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// kv nodes (the shards' primaries, replicas too).
    #[arg(long, default_value = "127.0.0.1:7379")]
    pub kv: String,
    #[arg(long, default_value = "127.0.0.1:7380")]
    pub cache: String,
    #[arg(long, default_value = "127.0.0.1:7390")]
    pub router: String,
    #[arg(long, default_value = "127.0.0.1:7382")]
    pub broker: String,
    /// The stream server's RESP port.
    #[arg(long, default_value = "127.0.0.1:7383")]
    pub stream: String,
    #[arg(long, default_value = "127.0.0.1:7381")]
    pub pubsub: String,
    #[arg(long, default_value = "127.0.0.1:7432")]
    pub sql: String,
    /// Edge caches (HTTP; their `/_edge/stats` is read).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub edge: String,
    /// The page has no password: protected mode alone decides who is served.
    #[command(flatten)]
    pub protected_mode: ProtectedMode,
    /// Browsers (connections) beyond this many are refused.
    #[arg(long, default_value_t = 1000)]
    pub maxclients: usize,
    /// Milliseconds between polls of each server.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
    /// The servers' `--requirepass`, sent with AUTH (and as the sql password).
    #[arg(long, env = "INFRALAB_REQUIREPASS")]
    pub password: Option<String>,
}

impl Args {
    /// Watching nothing yet, on a free loopback port (tests, and demos that add servers as
    /// they start them): set the fields you need, `..Args::ephemeral()` for the rest.
    pub fn ephemeral() -> Self {
        Args {
            bind: "127.0.0.1".into(),
            port: 0,
            kv: String::new(),
            cache: String::new(),
            router: String::new(),
            broker: String::new(),
            stream: String::new(),
            pubsub: String::new(),
            sql: String::new(),
            edge: String::new(),
            protected_mode: ProtectedMode::ON,
            maxclients: 1000,
            interval_ms: 1000,
            password: None,
        }
    }

    /// The servers these flags name, in the README diagram's order.
    pub fn topology(&self) -> Topology {
        let mut t = Topology::default();
        t.add(Kind::Cache, &self.cache);
        t.add(Kind::Router, &self.router);
        t.add(Kind::Kv, &self.kv);
        t.add(Kind::Stream, &self.stream);
        t.add(Kind::Pubsub, &self.pubsub);
        t.add(Kind::Broker, &self.broker);
        t.add(Kind::Edge, &self.edge);
        t.add(Kind::Sql, &self.sql);
        t
    }
}

/// A running dashboard: the server's handle, and a way to watch more servers.
pub struct Dashboard {
    pub running: Running,
    poller: Arc<poller::Poller>,
}

impl Dashboard {
    /// Where the page is.
    pub fn url(&self) -> String {
        http::url(self.running.addr())
    }

    /// Watches one more server of `kind` at `addr` (a demo adds each server it starts).
    pub fn watch(&self, kind: Kind, addr: &str) {
        self.poller.watch(kind, addr);
    }
}

/// Binds the page's port, starts the pollers, and returns once it serves.
pub async fn start(args: Args, shutdown: CancellationToken) -> Result<Dashboard, BoxError> {
    let listener = service::listener::bind(
        "dashboard",
        &args.bind,
        args.port,
        service::settings::DEFAULT_TCP_BACKLOG,
        "--port PORT",
    )
    .await?;
    let addr = listener.local_addr()?;
    // The page has no password: off this host, protected mode refuses other hosts.
    service::protected::warn_if_exposed_without_password(
        "dashboard",
        addr,
        args.protected_mode.on,
        "403 Forbidden",
        "",
    );
    info!("dashboard on {}", http::url(addr));
    let shared = Arc::new(board::Shared::new(&args.topology()));
    let interval = Duration::from_millis(args.interval_ms.max(50));
    let poller = Arc::new(poller::Poller::start(
        shared.clone(),
        interval,
        args.password,
        shutdown.clone(),
    ));
    let admission = Admission {
        protected_mode: args.protected_mode.on,
        password_set: false,
        maxclients: args.maxclients,
    };
    let token = shutdown.clone();
    let pollers = poller.clone();
    let page = Arc::new(http::Page { shared });
    let task = tokio::spawn(async move {
        accept_loop("dashboard", listener, page, admission, shutdown).await;
        pollers.stopped().await;
    });
    Ok(Dashboard {
        running: Running::new(addr, token, task),
        poller,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    /// `service`'s flag, flattened; only its `--help` line is the page's own.
    #[test]
    fn protected_mode_is_the_shared_flag_with_the_pages_own_help() {
        let off = Args::try_parse_from(["dashboard", "--protected-mode", "no"]);
        assert_eq!(off.map(|a| a.protected_mode).ok(), Some(ProtectedMode::OFF));
        let help = Args::command().render_help().to_string();
        assert!(help.contains("the page has no password"), "{help}");
    }
}

//! `infralab demo <scenario> --dashboard`: a dashboard over the demo's servers, so the
//! scenario's activity can be watched in a browser while it runs.
//!
//! The flag is process-wide (set once by `demo::run`, read by every [`super::Lab`]), so
//! that the scenarios, which each start their servers their own way, need not pass it
//! along: a lab adds every server it starts to the dashboard as it starts it.

use std::sync::atomic::{AtomicBool, Ordering};

use dashboard::{Dashboard, Kind};

use super::Endpoints;

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// `--dashboard` was given.
pub fn request() {
    REQUESTED.store(true, Ordering::Relaxed);
}

pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// A dashboard watching nothing yet (servers are added as they start), on its default
/// port or, when that is taken (by `infralab up`'s), on any free one, polling four times a
/// second. Prints its URL.
pub async fn start(shutdown: service::CancellationToken) -> Option<Dashboard> {
    if !requested() {
        return None;
    }
    for port in [dashboard::DEFAULT_PORT, 0] {
        // Four polls a second: a demo's steps take a second or two each.
        let args = dashboard::Args {
            port,
            interval_ms: 250,
            ..dashboard::Args::ephemeral()
        };
        if let Ok(d) = dashboard::start(args, shutdown.clone()).await {
            println!(
                "dashboard: {} (the demo's servers appear as they start)",
                d.url()
            );
            return Some(d);
        }
    }
    eprintln!("demo: could not start the dashboard");
    None
}

/// Watches a running topology's servers (`--against compose`).
pub fn watch_endpoints(d: &Dashboard, e: &Endpoints) {
    d.watch(Kind::Cache, &e.cache);
    d.watch(Kind::Router, &e.router);
    for shard in &e.kv_shards {
        d.watch(Kind::Kv, shard);
    }
    d.watch(Kind::Stream, &e.stream);
    d.watch(Kind::Pubsub, &e.pubsub);
    d.watch(Kind::Broker, &e.broker);
}

/// After the scenario: the servers stay up, and the page live, until Ctrl-C.
pub async fn linger(d: &Dashboard) {
    println!(
        "\nThe demo is done; its servers stay up for the dashboard at {} — Ctrl-C to stop.",
        d.url()
    );
    let _ = tokio::signal::ctrl_c().await;
}

//! `cargo run --release -p cache --example cache_server -- --port 7380 --maxmemory 64mb`:
//! the cache server alone, for `bench/cache.sh` (the same as `infralab cache`).
#![forbid(unsafe_code)]

use clap::Parser;

/// The cache runs on an event-loop thread of its own (`cache::start`); this runtime only
/// waits for a signal, so it needs no worker threads of its own — pinned to one core by
/// `bench/cache.sh`, idle workers would only share that core with the event loop.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), service::BoxError> {
    let args = cache::Args::parse();
    service::telemetry::init_logging(None);
    cache::run(args, service::telemetry::shutdown_on_signal()).await
}

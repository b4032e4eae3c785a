//! `cargo run --release -p cache --example cache_server -- --port 7380 --maxmemory 64mb`:
//! the cache server alone, for `bench/cache.sh` (the same as `infralab cache`).
#![forbid(unsafe_code)]

use clap::Parser;

#[tokio::main]
async fn main() -> Result<(), service::BoxError> {
    let args = cache::Args::parse();
    service::telemetry::init_logging(None);
    cache::run(args, service::telemetry::shutdown_on_signal()).await
}

//! `cargo run --release -p service --example ping -- --port 7400`: a server made only of
//! the shared scaffolding, for `redis-cli` and `redis-benchmark`.
#![forbid(unsafe_code)]

use std::sync::Arc;

use clap::Parser;
use service::ServiceArgs;
use service::ping::PingServer;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    service: ServiceArgs,
}

#[tokio::main]
async fn main() -> Result<(), service::BoxError> {
    let cli = Cli::parse();
    service::telemetry::init_logging(None);
    let shutdown = service::telemetry::shutdown_on_signal();
    let running = service::spawn(Arc::new(PingServer), &cli.service, 7400, shutdown).await?;
    running.wait().await;
    Ok(())
}

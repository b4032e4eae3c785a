#![allow(clippy::unwrap_used)] // test code: a panic is a test failure

use std::sync::Arc;

use service::ping::PingServer;
use service::{CancellationToken, Running, ServiceArgs};

/// Starts the scaffolding-only server on a free loopback port.
pub async fn start(configure: impl FnOnce(&mut ServiceArgs)) -> Running {
    let mut args = ServiceArgs::ephemeral();
    configure(&mut args);
    service::spawn(Arc::new(PingServer), &args, 0, CancellationToken::new())
        .await
        .expect("bind")
}

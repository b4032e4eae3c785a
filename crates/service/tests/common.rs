#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! A minimal server built on `service`: it has no commands of its own, so everything it
//! answers comes from the scaffolding (PING, ECHO, HELLO, CLIENT, CONFIG, INFO...).

use std::sync::Arc;

use proto::Args;
use service::{CancellationToken, Client, CommandSpec, Reply, Running, Server, ServiceArgs};

pub struct PingServer;

impl Server for PingServer {
    type Session = ();

    fn name(&self) -> &'static str {
        "ping"
    }

    fn commands(&self) -> &'static [CommandSpec] {
        &[]
    }

    async fn execute(&self, _client: &mut Client<()>, args: Args) -> Reply {
        Reply::Unhandled(args)
    }
}

pub async fn start(configure: impl FnOnce(&mut ServiceArgs)) -> Running {
    let mut args = ServiceArgs::ephemeral();
    configure(&mut args);
    service::spawn(Arc::new(PingServer), &args, 0, CancellationToken::new())
        .await
        .expect("bind")
}

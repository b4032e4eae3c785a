//! The smallest server you can build on this crate: no commands of its own, so it
//! answers only the built-ins (PING, ECHO, HELLO, CLIENT, CONFIG, INFO...). It proves the
//! scaffolding in tests and is what `bench/ping.sh` measures against `redis-server`.

use proto::Args;

use crate::{Client, CommandSpec, Reply, Server};

/// A server whose every command is a connection-level built-in.
#[derive(Debug, Default)]
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

//! Pub/sub on kv, and the `CLIENT` subcommands of client-side caching.
//!
//! SUBSCRIBE ... PUBSUB and `CLIENT TRACKING|CACHING|GETREDIR|TRACKINGINFO` are the `hub`
//! library's commands, shared with the pubsub and cache servers; kv adds what only a
//! database has to say: keyspace notifications ([`crate::notify`]) and the invalidations
//! of the keys its writes change ([`crate::events`]).

use proto::Args;
use service::{Client, CommandSpec, Reply};

use crate::server::{Kv, Session};

/// The pub/sub commands, for kv's command table.
pub static COMMANDS: &[CommandSpec] = hub::commands::COMMANDS;

/// In RESP2 subscribed mode, Redis's error for a command that is not allowed (and
/// `PING`'s reply): checked before anything else, `MULTI` included.
pub fn subscribed_mode(client: &Client<Session>, args: &Args) -> Option<Reply> {
    hub::commands::subscribe::subscribed_mode(client, args)
}

/// Runs a pub/sub or tracking command; hands anything else back.
pub fn execute(kv: &Kv, client: &mut Client<Session>, args: Args) -> Reply {
    let tracker = &kv.events.tracker;
    match args.name() {
        "subscribe" | "psubscribe" | "ssubscribe" => {
            let reply = hub::commands::execute(&kv.events.hub, client, args);
            hub::commands::tracking::attach(tracker, client);
            reply
        }
        "unsubscribe" | "punsubscribe" | "sunsubscribe" | "publish" | "spublish" | "pubsub" => {
            hub::commands::execute(&kv.events.hub, client, args)
        }
        "client" => {
            let reply = hub::commands::tracking::client(tracker, client, args);
            if !matches!(reply, Reply::Unhandled(_)) {
                kv.observe_changes();
            }
            reply
        }
        _ => Reply::Unhandled(args),
    }
}

//! RESP commands → hub calls → reply frames.
//!
//! - [`subscribe`]: (P|S)SUBSCRIBE, (P|S)UNSUBSCRIBE, and the rules of
//!   *subscribed mode*.
//! - [`publish`]: PUBLISH, SPUBLISH and the PUBSUB introspection subcommands.
//! - [`tracking`]: the tracking subcommands of CLIENT, and [`tracking::Reads`], what a
//!   server does around each command of a tracking client.
//!
//! SSUBSCRIBE / SUNSUBSCRIBE / SPUBLISH are Redis 7's *sharded* pub/sub: the same
//! commands on a separate namespace of shard channels (see [`crate::fanout`]).

pub mod publish;
pub mod subscribe;
pub mod tracking;

use proto::Args;
use service::{Client, CommandSpec, Reply};

use crate::Subscriptions;
use crate::fanout::Hub;

/// Arity as Redis counts it (the name included; negative: at least).
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "subscribe",
        -2,
        &["pubsub", "noscript", "loading", "stale"],
        "pubsub",
        "Listens for messages published to channels.",
    )
    .syntax("channel [channel ...]"),
    CommandSpec::new(
        "unsubscribe",
        -1,
        &["pubsub", "noscript", "loading", "stale"],
        "pubsub",
        "Stops listening to messages posted to channels.",
    )
    .syntax("[channel [channel ...]]"),
    CommandSpec::new(
        "psubscribe",
        -2,
        &["pubsub", "noscript", "loading", "stale"],
        "pubsub",
        "Listens for messages published to channels that match one or more patterns.",
    )
    .syntax("pattern [pattern ...]"),
    CommandSpec::new(
        "punsubscribe",
        -1,
        &["pubsub", "noscript", "loading", "stale"],
        "pubsub",
        "Stops listening to messages published to channels that match one or more patterns.",
    )
    .syntax("[pattern [pattern ...]]"),
    CommandSpec::new(
        "ssubscribe",
        -2,
        &["pubsub", "noscript", "loading", "stale"],
        "pubsub",
        "Listens for messages published to shard channels.",
    )
    .keys(1, -1, 1)
    .syntax("shardchannel [shardchannel ...]"),
    CommandSpec::new(
        "sunsubscribe",
        -1,
        &["pubsub", "noscript", "loading", "stale"],
        "pubsub",
        "Stops listening to messages posted to shard channels.",
    )
    .keys(1, -1, 1)
    .syntax("[shardchannel [shardchannel ...]]"),
    CommandSpec::new(
        "spublish",
        3,
        &["pubsub", "loading", "stale", "fast"],
        "pubsub",
        "Post a message to a shard channel",
    )
    .keys(1, 1, 1)
    .syntax("shardchannel message"),
    CommandSpec::new(
        "publish",
        3,
        &["pubsub", "loading", "stale", "fast"],
        "pubsub",
        "Posts a message to a channel.",
    )
    .syntax("channel message"),
    CommandSpec::new(
        "pubsub",
        -2,
        &[],
        "pubsub",
        "A container for Pub/Sub commands.",
    )
    .syntax("CHANNELS|NUMSUB|NUMPAT|SHARDCHANNELS|SHARDNUMSUB|HELP [arg ...]"),
];

/// Executes one command; anything not pub/sub goes back to the service's built-ins.
pub fn execute<S>(hub: &std::sync::Arc<Hub>, client: &mut Client<S>, args: Args) -> Reply
where
    S: AsMut<Subscriptions> + AsRef<Subscriptions>,
{
    if let Some(refused) = subscribe::subscribed_mode(client, &args) {
        return refused;
    }
    match args.name() {
        "subscribe" | "psubscribe" | "ssubscribe" => subscribe::subscribe(hub, client, args),
        "unsubscribe" | "punsubscribe" | "sunsubscribe" => subscribe::unsubscribe(client, args),
        "publish" | "spublish" => publish::publish(hub, client.session.as_mut(), args),
        "pubsub" => publish::pubsub(hub, args),
        _ => Reply::Unhandled(args),
    }
}

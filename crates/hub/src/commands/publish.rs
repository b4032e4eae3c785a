//! PUBLISH, SPUBLISH, and PUBSUB CHANNELS / NUMSUB / NUMPAT / SHARDCHANNELS / SHARDNUMSUB.

use std::time::Instant;

use bytes::Bytes;
use proto::{Args, CommandError, Frame};
use service::Reply;

use crate::Subscriptions;
use crate::fanout::{Hub, Kind};

/// `PUBLISH channel message` / `SPUBLISH shardchannel message` → the number of
/// subscriptions that received it.
pub fn publish(hub: &Hub, session: &mut Subscriptions, mut args: Args) -> Reply {
    let (channel, message) = match (args.next_bytes(), args.next_bytes()) {
        (Ok(c), Ok(m)) => (c, m),
        (Err(e), _) | (_, Err(e)) => return e.into(),
    };
    let wakes = &mut session.wakes;
    let received = if args.name() == "spublish" {
        hub.spublish(&channel, &message, &Instant::now, wakes)
    } else {
        hub.publish(&channel, &message, &Instant::now, wakes)
    };
    Frame::Integer(received as i64).into()
}

const HELP: &[&str] = &[
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
];

/// `PUBSUB <subcommand>`. The SHARD* subcommands report the shard channel table.
pub fn pubsub(hub: &Hub, mut args: Args) -> Reply {
    let raw_sub = args.next_bytes().unwrap_or_default();
    let sub = String::from_utf8_lossy(&raw_sub).to_ascii_uppercase();
    let arity_error = || CommandError::WrongArity(format!("pubsub|{}", sub.to_ascii_lowercase()));
    let syntax_error = || {
        CommandError::err(format!(
            "unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
            String::from_utf8_lossy(&raw_sub[..raw_sub.len().min(128)])
        ))
    };
    let reply = match sub.as_str() {
        "CHANNELS" | "SHARDCHANNELS" => {
            if args.remaining() > 1 {
                return syntax_error().into();
            }
            let pattern = args.next_bytes().ok();
            let kind = if sub == "SHARDCHANNELS" {
                Kind::Shard
            } else {
                Kind::Channel
            };
            Frame::bulk_array(hub.channels(kind, pattern.as_deref()))
        }
        // A flat array `[channel, count, ...]`, in RESP3 too (as Redis 7 replies).
        "NUMSUB" | "SHARDNUMSUB" => Frame::Array(
            args.rest()
                .into_iter()
                .flat_map(|channel| {
                    let kind = if sub == "NUMSUB" {
                        Kind::Channel
                    } else {
                        Kind::Shard
                    };
                    let n = hub.numsub(kind, &channel);
                    [Frame::Bulk(channel), Frame::Integer(n as i64)]
                })
                .collect(),
        ),
        "NUMPAT" if args.is_empty() => Frame::Integer(hub.numpat() as i64),
        "HELP" if args.is_empty() => Frame::Array(
            HELP.iter()
                .map(|line| Frame::Simple(Bytes::from_static(line.as_bytes())))
                .collect(),
        ),
        "NUMPAT" | "HELP" => return arity_error().into(),
        _ => {
            return CommandError::err(format!(
                "unknown subcommand '{}'. Try PUBSUB HELP.",
                String::from_utf8_lossy(&raw_sub[..raw_sub.len().min(128)])
            ))
            .into();
        }
    };
    reply.into()
}

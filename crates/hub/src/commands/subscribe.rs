//! (P|S)SUBSCRIBE, (P|S)UNSUBSCRIBE, and subscribed mode.
//!
//! Every (un)subscription is confirmed by its own reply, `[kind, name, count]`, where
//! `count` is how many channels *and* patterns the client is still subscribed to (for
//! `SSUBSCRIBE`/`SUNSUBSCRIBE`: how many shard channels, counted apart as Redis 7 does). These
//! confirmations are push frames in RESP3 and plain arrays in RESP2, exactly like the
//! messages themselves: a RESP2 client cannot tell a reply from a message, which is why
//! Redis restricts a RESP2 client in *subscribed mode* (count > 0) to the commands
//! below. A RESP3 client can tell them apart, so it may run any command while subscribed.

use bytes::Bytes;
use proto::{Args, CommandError, Frame, Protocol};
use service::{Client, Reply};

use crate::Subscriptions;
use crate::fanout::{Hub, Kind};

/// Commands a RESP2 client may send while subscribed.
const ALLOWED_WHEN_SUBSCRIBED: &[&str] = &[
    "subscribe",
    "unsubscribe",
    "psubscribe",
    "punsubscribe",
    "ssubscribe",
    "sunsubscribe",
    "ping",
    "quit",
    "reset",
];

/// Commands with subcommands, which Redis names `pubsub|numpat` in errors.
const CONTAINERS: &[&str] = &["pubsub", "client", "config", "command"];

/// In RESP2 subscribed mode: Redis's error for a command that is not allowed, and
/// PING's special reply. `None`: execute the command normally.
pub fn subscribed_mode<S: AsRef<Subscriptions>>(client: &Client<S>, args: &Args) -> Option<Reply> {
    let subscribed = client.session.as_ref().subscribed();
    if !subscribed || client.protocol == Protocol::Resp3 {
        return None;
    }
    let name = args.name();
    if name == "ping" {
        // `["pong", message]`: a RESP2 subscriber reads every reply as a message-shaped array.
        let message = args
            .peek_all()
            .next()
            .map(Bytes::copy_from_slice)
            .unwrap_or_default();
        return Some(match args.remaining() {
            0 | 1 => Frame::Push(vec![Frame::bulk("pong"), Frame::Bulk(message)]).into(),
            _ => args.wrong_arity().into(),
        });
    }
    if ALLOWED_WHEN_SUBSCRIBED.contains(&name) {
        return None;
    }
    let full_name = match args.peek_all().next() {
        Some(sub) if CONTAINERS.contains(&name) => {
            format!(
                "{name}|{}",
                String::from_utf8_lossy(sub).to_ascii_lowercase()
            )
        }
        _ => name.to_string(),
    };
    Some(
        CommandError::err(format!(
            "Can't execute '{full_name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT \
             / RESET are allowed in this context"
        ))
        .into(),
    )
}

fn kind_of(args: &Args) -> (Kind, &'static str) {
    match args.name() {
        "psubscribe" => (Kind::Pattern, "psubscribe"),
        "punsubscribe" => (Kind::Pattern, "punsubscribe"),
        "unsubscribe" => (Kind::Channel, "unsubscribe"),
        "ssubscribe" => (Kind::Shard, "ssubscribe"),
        "sunsubscribe" => (Kind::Shard, "sunsubscribe"),
        _ => (Kind::Channel, "subscribe"),
    }
}

fn confirmation(word: &'static str, name: Option<Bytes>, count: usize) -> Frame {
    Frame::Push(vec![
        Frame::bulk(word),
        name.map_or(Frame::Null, Frame::Bulk),
        Frame::Integer(count as i64),
    ])
}

/// `SUBSCRIBE channel...` / `PSUBSCRIBE pattern...` / `SSUBSCRIBE shardchannel...`: one
/// confirmation per name.
pub fn subscribe<S: AsMut<Subscriptions>>(
    hub: &std::sync::Arc<Hub>,
    client: &mut Client<S>,
    mut args: Args,
) -> Reply {
    let (kind, word) = kind_of(&args);
    let protocol = client.protocol;
    let evict = client.evict_token();
    let subscriber = client
        .session
        .as_mut()
        .subscriber
        .get_or_insert_with(|| hub.subscriber(protocol, evict));
    let replies = args
        .rest()
        .into_iter()
        .map(|name| {
            subscriber.subscribe(kind, name.clone());
            confirmation(word, Some(name), subscriber.count(kind))
        })
        .collect();
    client.set_flags("P");
    Reply::Many(replies)
}

/// `UNSUBSCRIBE [channel...]` / `PUNSUBSCRIBE [pattern...]` / `SUNSUBSCRIBE
/// [shardchannel...]`; no names: all of that kind.
/// With nothing to unsubscribe from, one confirmation with a null name.
pub fn unsubscribe<S: AsMut<Subscriptions>>(client: &mut Client<S>, mut args: Args) -> Reply {
    let (kind, word) = kind_of(&args);
    let mut names = args.rest();
    let Some(subscriber) = client.session.as_mut().subscriber.as_mut() else {
        return Reply::Many(if names.is_empty() {
            vec![confirmation(word, None, 0)]
        } else {
            names
                .into_iter()
                .map(|name| confirmation(word, Some(name), 0))
                .collect()
        });
    };
    if names.is_empty() {
        names = subscriber.names(kind);
    }
    if names.is_empty() {
        return confirmation(word, None, subscriber.count(kind)).into();
    }
    let replies = names
        .into_iter()
        .map(|name| {
            subscriber.unsubscribe(kind, &name);
            confirmation(word, Some(name), subscriber.count(kind))
        })
        .collect();
    if subscriber.total() == 0 {
        client.set_flags("N");
    }
    Reply::Many(replies)
}

//! Pub/sub on kv, and the `CLIENT` subcommands of client-side caching.
//!
//! SUBSCRIBE ... PUBSUB are the pubsub server's own commands, from the `hub` library both
//! servers share; kv adds what only a database has to say: keyspace notifications
//! ([`crate::notify`]) and invalidations ([`crate::tracking`]) on the same hub.
//!
//! `CLIENT TRACKING on|off [REDIRECT id] [PREFIX p ...] [BCAST] [OPTIN] [OPTOUT] [NOLOOP]`,
//! `CLIENT CACHING yes|no`, `CLIENT GETREDIR` and `CLIENT TRACKINGINFO` are answered here;
//! every other `CLIENT` subcommand goes on to the service.

use std::sync::LazyLock;

use bytes::Bytes;
use proto::{Args, CommandError, Frame};
use service::{Client, CommandSpec, Reply};

use crate::server::{Kv, Session};
use crate::tracking::Options;

/// The pub/sub commands, for kv's command table.
pub static COMMANDS: &[CommandSpec] = hub::commands::COMMANDS;

/// In RESP2 subscribed mode, Redis's error for a command that is not allowed (and
/// `PING`'s reply): checked before anything else, `MULTI` included.
pub fn subscribed_mode(client: &Client<Session>, args: &Args) -> Option<Reply> {
    hub::commands::subscribe::subscribed_mode(client, args)
}

/// Runs a pub/sub or tracking command; hands anything else back.
pub fn execute(kv: &Kv, client: &mut Client<Session>, args: Args) -> Reply {
    match args.name() {
        "subscribe" | "psubscribe" | "ssubscribe" => {
            let reply = hub::commands::execute(&kv.events.hub, client, args);
            attach(kv, client);
            reply
        }
        "unsubscribe" | "punsubscribe" | "sunsubscribe" | "publish" | "spublish" | "pubsub" => {
            hub::commands::execute(&kv.events.hub, client, args)
        }
        "client" => client_command(kv, client, args),
        _ => Reply::Unhandled(args),
    }
}

/// Gives the client a queue for pushes, if it has none yet, and registers it as a
/// possible `REDIRECT` target.
fn attach(kv: &Kv, client: &mut Client<Session>) {
    let id = client.id();
    let protocol = client.protocol;
    let evict = client.evict_token();
    let subscriptions = &mut client.session.pubsub;
    let subscriber = subscriptions
        .subscriber
        .get_or_insert_with(|| kv.events.hub.subscriber(protocol, evict));
    if client.session.listener.is_none() {
        kv.events.register(id, &subscriber.outbox_handle());
        client.session.listener = Some(crate::server::Listener::new(id, kv.events.clone()));
    }
}

fn client_command(kv: &Kv, client: &mut Client<Session>, mut args: Args) -> Reply {
    let Some(sub) = args.peek_all().next().map(|s| s.to_ascii_uppercase()) else {
        return Reply::Unhandled(args);
    };
    let result = match sub.as_slice() {
        b"TRACKING" => {
            args.next_bytes().ok();
            tracking(kv, client, &mut args)
        }
        b"CACHING" => {
            args.next_bytes().ok();
            caching(kv, client, &mut args)
        }
        b"GETREDIR" => {
            args.next_bytes().ok();
            args.finish().map(|()| {
                Frame::Integer(
                    kv.events
                        .tracking(|t| (t.getredir(client.id()), Vec::new())),
                )
            })
        }
        b"TRACKINGINFO" => {
            args.next_bytes().ok();
            args.finish().map(|()| trackinginfo(kv, client.id()))
        }
        _ => return Reply::Unhandled(args),
    };
    result.map_or_else(Reply::from, Reply::from)
}

/// `CLIENT TRACKING on|off [options]`.
fn tracking(kv: &Kv, client: &mut Client<Session>, args: &mut Args) -> Result<Frame, CommandError> {
    let on = match args.next_keyword().as_deref() {
        Some("ON") => true,
        Some("OFF") => false,
        Some(_) => return Err(CommandError::Syntax),
        None => return Err(CommandError::WrongArity("client|tracking".into())),
    };
    let mut options = Options::default();
    while let Some(option) = args.next_keyword() {
        match option.as_str() {
            "REDIRECT" => {
                let id = args.next_int().map_err(|_| CommandError::Syntax)?;
                options.redirect = Some(u64::try_from(id).map_err(|_| CommandError::Syntax)?);
            }
            "BCAST" => options.bcast = true,
            "OPTIN" => options.optin = true,
            "OPTOUT" => options.optout = true,
            "NOLOOP" => options.noloop = true,
            "PREFIX" => options.prefixes.push(Bytes::copy_from_slice(
                &args.next_bytes().map_err(|_| CommandError::Syntax)?,
            )),
            _ => return Err(CommandError::Syntax),
        }
    }
    let id = client.id();
    if !on {
        kv.events.tracking(|t| {
            t.disable(id);
            ((), Vec::new())
        });
        client.session.tracking = false;
        return Ok(Frame::ok());
    }
    let redirect_exists = options.redirect.is_none_or(|r| kv.events.has_queue(r));
    kv.events
        .tracking(|t| (t.enable(id, options, redirect_exists), Vec::new()))?;
    attach(kv, client);
    client.session.tracking = true;
    kv.observe_changes();
    Ok(Frame::ok())
}

/// `CLIENT CACHING yes|no`.
fn caching(kv: &Kv, client: &Client<Session>, args: &mut Args) -> Result<Frame, CommandError> {
    let yes = match args.next_keyword().as_deref() {
        Some("YES") => true,
        Some("NO") => false,
        Some(_) => return Err(CommandError::Syntax),
        None => return Err(CommandError::WrongArity("client|caching".into())),
    };
    args.finish()?;
    let id = client.id();
    kv.events.tracking(|t| (t.caching(id, yes), Vec::new()))?;
    Ok(Frame::ok())
}

/// `CLIENT TRACKINGINFO`: a map of `flags`, `redirect` and `prefixes`.
fn trackinginfo(kv: &Kv, id: u64) -> Frame {
    let (flags, redirect, prefixes) = kv.events.tracking(|t| (t.info(id), Vec::new()));
    Frame::Map(vec![
        (
            Frame::bulk("flags"),
            Frame::Set(flags.into_iter().map(Frame::bulk).collect()),
        ),
        (Frame::bulk("redirect"), Frame::Integer(redirect)),
        (Frame::bulk("prefixes"), Frame::bulk_array(prefixes)),
    ])
}

/// The keys a read-only command reads, by the command table's key positions: what a
/// tracking client may now cache. `None` for a command that is not a read.
pub fn read_keys(args: &Args) -> Option<Vec<Bytes>> {
    static BY_NAME: LazyLock<std::collections::HashMap<&'static str, &'static CommandSpec>> =
        LazyLock::new(|| super::TABLE.iter().map(|s| (s.name, s)).collect());
    let spec = BY_NAME.get(args.name())?;
    if !spec.flags.contains(&"readonly") || spec.first_key <= 0 {
        return None;
    }
    let words: Vec<&[u8]> = args.peek_all().collect();
    // Positions count the command name as 0; `words` starts after it.
    let argc = words.len() as i64 + 1;
    let last = if spec.last_key < 0 {
        argc + spec.last_key
    } else {
        spec.last_key
    };
    let step = spec.step.max(1) as usize;
    Some(
        (spec.first_key..=last)
            .step_by(step)
            .filter_map(|i| words.get(i as usize - 1))
            .map(|k| Bytes::copy_from_slice(k))
            .collect(),
    )
}

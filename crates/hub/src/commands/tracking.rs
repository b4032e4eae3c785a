//! `CLIENT TRACKING on|off [REDIRECT id] [PREFIX p ...] [BCAST] [OPTIN] [OPTOUT] [NOLOOP]`,
//! `CLIENT CACHING yes|no`, `CLIENT GETREDIR` and `CLIENT TRACKINGINFO`, for any server
//! whose session holds [`Subscriptions`] and a [`ClientCache`]; and what a server does
//! around each command of a tracking client ([`Reads`]).

use std::sync::Arc;

use bytes::Bytes;
use proto::{Args, CommandError, Frame};
use service::{Client, CommandSpec, Reply};

use crate::Subscriptions;
use crate::tracker::{ClientCache, Tracker};
use crate::tracking::Options;

/// A `CLIENT` command: the tracking subcommands are answered here, the others handed
/// back (the service answers them).
pub fn client<S>(tracker: &Arc<Tracker>, client: &mut Client<S>, mut args: Args) -> Reply
where
    S: AsMut<Subscriptions> + AsMut<ClientCache>,
{
    let Some(sub) = args.peek_all().next().map(|s| s.to_ascii_uppercase()) else {
        return Reply::Unhandled(args);
    };
    if !matches!(
        sub.as_slice(),
        b"TRACKING" | b"CACHING" | b"GETREDIR" | b"TRACKINGINFO"
    ) {
        return Reply::Unhandled(args);
    }
    args.next_bytes().ok();
    let id = client.id();
    let result = match sub.as_slice() {
        b"TRACKING" => tracking(tracker, client, &mut args),
        b"CACHING" => caching(tracker, id, &mut args),
        b"GETREDIR" => args
            .finish()
            .map(|()| Frame::Integer(tracker.with(|t| (t.getredir(id), Vec::new())))),
        _ => args.finish().map(|()| trackinginfo(tracker, id)),
    };
    result.map_or_else(Reply::from, Reply::from)
}

/// Gives the client a queue for pushes, if it has none yet, and registers it with the
/// tracker as a possible `REDIRECT` target. A server calls it after `SUBSCRIBE` too.
pub fn attach<S>(tracker: &Arc<Tracker>, client: &mut Client<S>)
where
    S: AsMut<Subscriptions> + AsMut<ClientCache>,
{
    let id = client.id();
    let protocol = client.protocol;
    let evict = client.evict_token();
    let subscriptions: &mut Subscriptions = client.session.as_mut();
    let queue = subscriptions
        .subscriber
        .get_or_insert_with(|| tracker.hub().subscriber(protocol, evict))
        .outbox_handle();
    let cache: &mut ClientCache = client.session.as_mut();
    cache.register(tracker, id, &queue);
}

/// `CLIENT TRACKING on|off [options]`.
fn tracking<S>(
    tracker: &Arc<Tracker>,
    client: &mut Client<S>,
    args: &mut Args,
) -> Result<Frame, CommandError>
where
    S: AsMut<Subscriptions> + AsMut<ClientCache>,
{
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
            "PREFIX" => {
                let prefix = args.next_bytes().map_err(|_| CommandError::Syntax)?;
                options.prefixes.push(Bytes::copy_from_slice(&prefix));
            }
            _ => return Err(CommandError::Syntax),
        }
    }
    let id = client.id();
    if !on {
        tracker.with(|t| {
            t.disable(id);
            ((), Vec::new())
        });
        AsMut::<ClientCache>::as_mut(&mut client.session).tracking = false;
        return Ok(Frame::ok());
    }
    let redirect_exists = options.redirect.is_none_or(|r| tracker.has_queue(r));
    tracker.with(|t| (t.enable(id, options, redirect_exists), Vec::new()))?;
    attach(tracker, client);
    AsMut::<ClientCache>::as_mut(&mut client.session).tracking = true;
    Ok(Frame::ok())
}

/// `CLIENT CACHING yes|no`.
fn caching(tracker: &Tracker, id: u64, args: &mut Args) -> Result<Frame, CommandError> {
    let yes = match args.next_keyword().as_deref() {
        Some("YES") => true,
        Some("NO") => false,
        Some(_) => return Err(CommandError::Syntax),
        None => return Err(CommandError::WrongArity("client|caching".into())),
    };
    args.finish()?;
    tracker.with(|t| (t.caching(id, yes), Vec::new()))?;
    Ok(Frame::ok())
}

/// `CLIENT TRACKINGINFO`: a map of `flags`, `redirect` and `prefixes`.
fn trackinginfo(tracker: &Tracker, id: u64) -> Frame {
    let (flags, redirect, prefixes) = tracker.with(|t| (t.info(id), Vec::new()));
    Frame::Map(vec![
        (
            Frame::bulk("flags"),
            Frame::Set(flags.into_iter().map(Frame::bulk).collect()),
        ),
        (Frame::bulk("redirect"), Frame::Integer(redirect)),
        (Frame::bulk("prefixes"), Frame::bulk_array(prefixes)),
    ])
}

/// A tracking client's command, seen before it runs: the keys it reads (if it is a
/// read) and whether it is a `CLIENT` subcommand (which does not spend `CLIENT CACHING`:
/// Redis spends the flag on the next command that is not one).
#[derive(Debug)]
pub struct Reads {
    client: u64,
    keys: Option<Vec<Bytes>>,
    client_command: bool,
}

impl Reads {
    /// Before a command of a client with tracking on (`None` otherwise): `spec` is the
    /// command's table entry, whose key positions name what a read reads.
    pub fn before<S: AsRef<ClientCache>>(
        client: &Client<S>,
        spec: Option<&CommandSpec>,
        args: &Args,
    ) -> Option<Reads> {
        if !client.session.as_ref().tracking {
            return None;
        }
        Some(Reads {
            client: client.id(),
            keys: spec.and_then(|spec| read_keys(spec, args)),
            client_command: args.name() == "client",
        })
    }

    /// Remembers the keys the command reads (the client may cache them) and spends a
    /// `CLIENT CACHING` given for it. kv calls it after the command, the cache before.
    pub fn remember(self, tracker: &Tracker) {
        tracker.with(|t| {
            let evicted = self
                .keys
                .map(|keys| t.remember(self.client, &keys))
                .unwrap_or_default();
            if !self.client_command {
                t.command_done(self.client);
            }
            ((), evicted)
        });
    }
}

/// The keys a read-only command reads, by its table entry's key positions. `None` for a
/// command that is not a read.
fn read_keys(spec: &CommandSpec, args: &Args) -> Option<Vec<Bytes>> {
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

//! RESP command → route → backend(s) → reply. One module per kind of routing:
//!
//! - single-key commands (and multi-key ones whose keys share a shard) are forwarded
//!   here, in [`forward`];
//! - [`multikey`]: MGET, MSET, DEL, UNLINK, EXISTS, TOUCH split by shard and merged;
//! - [`fanout`]: FLUSHALL, FLUSHDB, DBSIZE, INFO sent to every shard and aggregated;
//! - [`admin`]: `ROUTER SHARDOF | SHARDS | STATS | RELOAD`;
//! - [`table`]: what the router knows, and the commands it refuses with a reason.

pub mod admin;
pub mod fanout;
pub mod multikey;
pub mod table;

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use bytes::BytesMut;
use proto::{Args, Frame, Protocol, encode_command};
use service::command_table::NameHasher;
use service::{CommandSpec, Deferred, Reply, Settled};

use crate::migrate;
use crate::server::{Layout, Router};

/// Executes one client command. `protocol` is the client's: its forwarded commands are
/// answered by the backend in that dialect (see `backend`, "each client's protocol").
pub async fn execute(router: &Router, lane: u64, protocol: Protocol, args: Args) -> Reply {
    // Every branch but the single-key one is boxed: an async fn's future is as large as
    // its largest branch, and this one is built and moved for every request (boxing the
    // others took 1.6% off a forwarded GET's instructions). A split or a fan-out pays one
    // allocation instead, next to several backend requests.
    match args.name() {
        "router" => Box::pin(admin::execute(router, lane, args)).await,
        "mget" | "mset" | "del" | "unlink" | "exists" | "touch" => {
            Box::pin(multikey::execute(router, lane, protocol, args)).await
        }
        "flushall" | "flushdb" | "dbsize" => Box::pin(fanout::execute(router, lane, args)).await,
        "info" => Box::pin(fanout::info(router, lane, args)).await,
        name => match spec(name) {
            Some(spec) if spec.first_key > 0 => keyed(router, lane, protocol, spec, args).await,
            Some(spec) if spec.group == "router" => Frame::error(table::refusal(name)).into(),
            _ => Reply::Unhandled(args),
        },
    }
}

/// The router's own spec of a command, hashed with the service's command-table hash
/// (FNV-1a: these names come from the source, so SipHash's resistance to crafted keys buys
/// nothing here, and it cost 3% of a forwarded GET's instructions).
fn spec(name: &str) -> Option<&'static CommandSpec> {
    type ByName = HashMap<&'static str, &'static CommandSpec, BuildHasherDefault<NameHasher>>;
    static BY_NAME: OnceLock<ByName> = OnceLock::new();
    BY_NAME
        .get_or_init(|| table::COMMANDS.iter().map(|s| (s.name, s)).collect())
        .get(name)
        .copied()
}

/// A command whose keys must all live on one shard (one key, or RENAME-like pairs).
async fn keyed(
    router: &Router,
    lane: u64,
    protocol: Protocol,
    spec: &CommandSpec,
    args: Args,
) -> Reply {
    let layout = router.layout();
    // Borrowed from the request: routing and forwarding only read the words.
    let words: Vec<&[u8]> = args.peek_all().collect();
    let mut shard = None;
    for key in table::keys(spec, &words) {
        let owner = match layout.shard_of(key, lane).await {
            Ok(owner) => owner,
            Err(e) => return e.into(),
        };
        match shard {
            Some(first) if first != owner => {
                return cross_shard(&layout, spec.name, first, owner).into();
            }
            _ => shard = Some(owner),
        }
    }
    let Some(shard) = shard else {
        return Frame::error("ERR no key to route by").into();
    };
    if layout.previous.is_some() {
        let keys: Vec<&[u8]> = table::keys(spec, &words).collect();
        // Boxed: only while migrating, and a large future (see `Node::enqueue`).
        if let Err(e) = Box::pin(migrate::pull_keys(&layout, &keys, lane)).await {
            return e.into();
        }
    }
    let write = spec.flags.contains(&"write");
    // The request goes out as the client sent it: its name as spelt, then its words.
    let request = std::iter::once(args.raw_name()).chain(words.iter().copied());
    let to = Route {
        shard,
        write,
        lane,
        protocol,
    };
    Reply::Deferred(send(router, &layout, to, request).await)
}

/// The error for keys of one command on different shards.
pub fn cross_shard(layout: &Layout, command: &str, a: usize, b: usize) -> Frame {
    Frame::error(format!(
        "CROSSSLOT keys of '{command}' map to different shards ('{}' and '{}'); \
         put them under one hash tag, e.g. {{user:1}}:a and {{user:1}}:b",
        layout.shards[a].name, layout.shards[b].name
    ))
}

/// Where [`send`] sends a client's request, and how.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub shard: usize,
    /// A write goes to the primary and is never retried elsewhere.
    pub write: bool,
    /// The client's id: its requests to a node share one connection, in order.
    pub lane: u64,
    /// The client's protocol, which the backend is asked to answer in.
    pub protocol: Protocol,
}

/// Sends a request — its words, name first — to the node serving `to.shard` *now*, and
/// returns the reply as a deferred future, so the client's next pipelined command is sent
/// before this one's reply is back. The words are encoded straight into the backend
/// connection's output buffer, and the reply comes back as the backend's own bytes, in
/// the client's protocol ([`Settled::Resp2`] or [`Settled::Resp3`]), which the client's
/// connection copies to its socket as they are: forwarding a GET costs no `Frame` on the
/// way out or back.
///
/// A failed read is retried once on a healthy replica (reads are idempotent); a failed
/// write is reported, never retried elsewhere.
pub async fn send<'a>(
    router: &Router,
    layout: &Arc<Layout>,
    to: Route,
    request: impl Iterator<Item = &'a [u8]> + Clone + Send,
) -> Deferred {
    let Route {
        shard,
        write,
        lane,
        protocol,
    } = to;
    let s = &layout.shards[shard];
    s.requests.fetch_add(1, Ordering::Relaxed);
    let node = match router.node_for(layout, s, write) {
        Ok(node) => node,
        Err(refused) => {
            s.errors.fetch_add(1, Ordering::Relaxed);
            return Deferred::new(std::future::ready(refused));
        }
    };
    // Only a read with somewhere to retry keeps a copy of its request.
    let retry = (!write && !s.replicas.is_empty()).then(|| {
        let mut copy = BytesMut::new();
        encode_command(&mut copy, request.clone());
        copy.freeze()
    });
    let sent = node.send_command(lane, protocol, request).await;
    let layout = layout.clone();
    Deferred::settled(async move {
        let result = match sent {
            Ok(pending) => pending.settled().await,
            Err(e) => Err(e),
        };
        node.record(&result);
        let shard = &layout.shards[shard];
        match result {
            Ok(reply) => reply,
            Err(e) => {
                let fallback = shard
                    .replicas
                    .iter()
                    .find(|r| r.available() && !Arc::ptr_eq(r, &node));
                if let (Some(request), Some(replica)) = (retry, fallback)
                    // Boxed: a rare retry must not enlarge every request's reply future.
                    && let Ok(reply) =
                        Box::pin(replica.call_encoded(lane, protocol, &request)).await
                {
                    return reply;
                }
                shard.errors.fetch_add(1, Ordering::Relaxed);
                Settled::Frame(e.to_frame())
            }
        }
    })
}

/// Words of a sub-request: the command name, then the `step`-word chunks of arguments at
/// `positions` (`MSET`'s key-value pairs are chunks of 2).
pub fn sub_request<'a>(
    name: &'a [u8],
    words: &[&'a [u8]],
    positions: &[usize],
    step: usize,
) -> Vec<&'a [u8]> {
    let mut part = Vec::with_capacity(1 + positions.len() * step);
    part.push(name);
    for &i in positions {
        part.extend_from_slice(&words[i * step..(i + 1) * step]);
    }
    part
}

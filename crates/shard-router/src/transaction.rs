//! Transactions through the router: `MULTI`/`EXEC`/`DISCARD`/`WATCH`/`UNWATCH`, pinned to
//! one shard.
//!
//! A transaction is a backend's: only the server that holds the keys can run the queued
//! commands with nobody in between, and only it knows whether a watched key changed. So
//! the router does what Redis Cluster asks of its clients: every key of a transaction,
//! the `WATCH`ed ones included, must map to one shard. The first key decides the shard;
//! from then on the client is *pinned* to it, on a backend connection of its own
//! ([`crate::backend::Dedicated`]) — `WATCH` and a queued `MULTI` are state of a
//! connection, so they cannot ride the pooled connections every client shares. The
//! router relays `WATCH`, `MULTI`, each queued command and `EXEC` on it as they are, and
//! the backend answers them (`+QUEUED`, the `EXEC` array, its null when a watched key
//! changed): the router adds no semantics of its own.
//!
//! Commands without keys: in Redis Cluster a client's transaction runs on the node it is
//! connected to, and `PING` or `ECHO` queued in it run there like the rest. The router
//! does the same with the commands whose answer is the same on every shard ([`ANYWHERE`]):
//! they are queued on the transaction's shard. Before a key has chosen the shard the
//! router holds them, answers `+QUEUED` itself, and relays them (after `MULTI`) when the
//! first key pins the transaction; a transaction of such commands only runs on the first
//! shard. The other keyless commands are the router's own business, not one shard's: the
//! connection's (`CLIENT SETNAME` would name the router's connection to the shard, not
//! the client's), the ones the router spreads over every shard (`DBSIZE`, `FLUSHALL`,
//! `INFO`), and those it never proxies (`KEYS`). A shard's transaction cannot run those,
//! so they are refused at queue time, with an error saying why.
//!
//! The router refuses, at queue time, a command whose key maps to another shard
//! (`CROSSSLOT`, as Redis Cluster does) or that it cannot relay inside a transaction.
//! Like an unknown command, that marks the transaction failed: its `EXEC` answers
//! `EXECABORT`, and the router sends `DISCARD` to the backend, so no queued command ever
//! runs. A client that disconnects closes its pinned connection, and the backend drops
//! what it had queued.
//!
//! `MULTI` itself names no key, so the router answers it and relays it only once the
//! first key has chosen the shard (at once if a `WATCH` already had). A transaction with
//! no command at all runs nowhere: its `EXEC` answers an empty array, as Redis would.

use std::sync::Arc;

use proto::{Args, CommandError, Frame, Protocol};
use service::{Deferred, Reply, Settled};

use crate::backend::{Dedicated, Pending};
use crate::commands::{self, cross_shard, table};
use crate::server::{Layout, Router};

/// A client's transaction state: the router's per-connection session.
#[derive(Default)]
pub struct Transaction {
    /// Between `MULTI` and `EXEC`/`DISCARD`.
    multi: bool,
    /// A command was refused while queueing: `EXEC` answers `EXECABORT`.
    failed: bool,
    /// The shard the transaction's keys map to, and the connection to it.
    pinned: Option<Pinned>,
    /// The client's protocol: a pinned connection speaks it too (`HELLO 3` for RESP3),
    /// so `EXEC`'s replies keep their types.
    protocol: Protocol,
    /// Keyless commands queued before a key chose the shard ([`ANYWHERE`]).
    held: Vec<Args>,
}

/// Keyless commands that answer the same on every shard: queued on the transaction's.
const ANYWHERE: &[&str] = &["ping", "echo"];

struct Pinned {
    shard: usize,
    connection: Dedicated,
    /// `MULTI` was relayed on `connection`.
    in_multi: bool,
}

impl Transaction {
    /// Does this command need the transaction's handling? Every other command takes the
    /// router's usual path (pooled connections).
    pub fn handles(&self, name: &str) -> bool {
        self.multi || matches!(name, "multi" | "exec" | "discard" | "watch" | "unwatch")
    }

    /// A command was refused before the router saw it (unknown, wrong arity).
    pub fn refused(&mut self) {
        if self.multi {
            self.failed = true;
        }
    }
}

/// Executes a transaction command, or queues a command inside `MULTI`.
pub async fn execute(
    router: &Router,
    tx: &mut Transaction,
    lane: u64,
    protocol: Protocol,
    args: Args,
) -> Reply {
    tx.protocol = protocol;
    let err = |text: &str| Reply::One(CommandError::err(text).to_frame());
    match (args.name(), tx.multi) {
        ("multi", true) => err("MULTI calls can not be nested"),
        ("watch", true) => err("WATCH inside MULTI is not allowed"),
        ("exec", false) => err("EXEC without MULTI"),
        ("discard", false) => err("DISCARD without MULTI"),
        ("multi", false) => {
            tx.multi = true;
            match &mut tx.pinned {
                Some(pinned) => {
                    pinned.in_multi = true;
                    relay(&pinned.connection, &args)
                }
                None => Reply::One(Frame::ok()),
            }
        }
        ("watch", false) => match pin(router, tx, lane, &args).await {
            Ok(pinned) => relay(&pinned.connection, &args),
            Err(refusal) => Reply::One(refusal),
        },
        ("unwatch", false) => {
            // Closing the pinned connection makes the backend forget the watches.
            tx.pinned = None;
            Reply::One(Frame::ok())
        }
        ("exec", true) => {
            if tx.pinned.is_none() && !tx.held.is_empty() && !tx.failed {
                // Only keyless commands: any shard answers them the same.
                if let Err(refusal) = pin_to(router, tx, 0).await {
                    tx.failed = true;
                    tx.held.clear();
                    return Reply::One(refusal);
                }
            }
            finish(tx, &args, true)
        }
        ("discard", true) => finish(tx, &args, false),
        // The service answers these, and they end the session (and its transaction).
        ("quit" | "reset", true) => Reply::Unhandled(args),
        (_, true) => queue(router, tx, lane, args).await,
        (_, false) => commands::execute(router, lane, protocol, args).await,
    }
}

/// A command inside `MULTI`: relayed to the pinned shard for the backend to queue, held
/// until a key pins the transaction ([`ANYWHERE`]), or refused (and the transaction
/// failed).
async fn queue(router: &Router, tx: &mut Transaction, lane: u64, args: Args) -> Reply {
    if ANYWHERE.contains(&args.name()) && tx.pinned.is_none() {
        tx.held.push(args);
        return Reply::One(Frame::simple("QUEUED"));
    }
    let held = std::mem::take(&mut tx.held);
    let pinned = if ANYWHERE.contains(&args.name()) {
        tx.pinned
            .as_mut()
            .ok_or_else(|| Frame::error("ERR no shard pinned"))
    } else {
        pin(router, tx, lane, &args).await
    };
    match pinned {
        Ok(pinned) => {
            start_multi(pinned, held);
            relay(&pinned.connection, &args)
        }
        Err(refusal) => {
            tx.failed = true;
            Reply::One(refusal)
        }
    }
}

/// Starts the backend's transaction on the pinned connection, if not yet: `MULTI`, then
/// the commands held until the shard was known. Their replies (`+OK`, `+QUEUED`) were
/// answered already; a failure shows in `EXEC`'s (`EXECABORT`).
fn start_multi(pinned: &mut Pinned, held: Vec<Args>) {
    if pinned.in_multi {
        return;
    }
    pinned.in_multi = true;
    let _ = pinned
        .connection
        .send_command(std::iter::once(&b"MULTI"[..]));
    for args in held {
        let words = std::iter::once(args.raw_name()).chain(args.peek_all());
        let _ = pinned.connection.send_command(words);
    }
}

/// Pins a transaction of keyless commands only to `shard`, and starts it there.
async fn pin_to(router: &Router, tx: &mut Transaction, shard: usize) -> Result<(), Frame> {
    let layout = router.layout();
    let pinned = tx
        .pinned
        .insert(connect(router, &layout, shard, tx.protocol).await?);
    start_multi(pinned, std::mem::take(&mut tx.held));
    Ok(())
}

/// Why a keyless command cannot be queued through the router.
fn keyless_refusal(name: &str) -> Frame {
    let why = match name {
        "flushall" | "flushdb" | "dbsize" | "info" => {
            "the router runs it on every shard, and a transaction runs on one"
        }
        "router" => "it is the router's own command, not a shard's",
        _ if commands::spec(name).is_some() => "the router does not relay it to a shard",
        _ => "it acts on the client's connection to the router, not on a shard",
    };
    Frame::error(format!(
        "ERR '{name}' cannot run inside a transaction through the shard router: {why}; \
         a transaction queues commands with keys, and PING and ECHO"
    ))
}

/// Pins the client to the shard of every key of `args` (opening its connection), or
/// says why not: no keys, keys on several shards, or on another shard than the one the
/// transaction is pinned to.
async fn pin<'t>(
    router: &Router,
    tx: &'t mut Transaction,
    lane: u64,
    args: &Args,
) -> Result<&'t mut Pinned, Frame> {
    let name = args.name();
    let spec = commands::spec(name).filter(|s| s.first_key > 0 && s.group != "router");
    let Some(spec) = spec else {
        return Err(keyless_refusal(name));
    };
    let layout = router.layout();
    let words: Vec<&[u8]> = args.peek_all().collect();
    let mut shard = tx.pinned.as_ref().map(|p| p.shard);
    for key in table::keys(spec, &words) {
        let owner = layout.shard_of(key, lane).await?;
        match shard {
            Some(first) if first != owner => return Err(cross_shard(&layout, name, first, owner)),
            _ => shard = Some(owner),
        }
    }
    let Some(shard) = shard else {
        return Err(Frame::error("ERR no key to route by"));
    };
    if tx.pinned.is_none() {
        tx.pinned = Some(connect(router, &layout, shard, tx.protocol).await?);
    }
    tx.pinned
        .as_mut()
        .ok_or_else(|| Frame::error("ERR no shard pinned"))
}

/// A connection of the client's own to the primary of `shard`.
async fn connect(
    router: &Router,
    layout: &Arc<Layout>,
    shard: usize,
    protocol: Protocol,
) -> Result<Pinned, Frame> {
    let node = router.node_for(layout, &layout.shards[shard], true)?;
    let connection = node.dedicated(protocol).await.map_err(|e| e.to_frame())?;
    Ok(Pinned {
        shard,
        connection,
        in_multi: false,
    })
}

/// `EXEC` (`run`) or `DISCARD`: ends the transaction and unpins the client. The pinned
/// connection lives until the backend's reply is in, then closes.
fn finish(tx: &mut Transaction, args: &Args, run: bool) -> Reply {
    let failed = std::mem::take(&mut tx.failed);
    tx.multi = false;
    tx.held.clear();
    let pinned = tx.pinned.take();
    let execabort = || {
        CommandError::coded(
            "EXECABORT",
            "Transaction discarded because of previous errors.",
        )
        .to_frame()
    };
    let Some(pinned) = pinned.filter(|p| p.in_multi) else {
        // Nothing was relayed: nothing to run or discard on any backend.
        return Reply::One(match (run, failed) {
            (true, true) => execabort(),
            (true, false) => Frame::Array(Vec::new()),
            (false, _) => Frame::ok(),
        });
    };
    if run && failed {
        // Discard what the backend queued; the client gets Redis's answer.
        let discard = pinned
            .connection
            .send_command(std::iter::once(&b"DISCARD"[..]));
        return Reply::Deferred(Deferred::new(async move {
            if let Ok(pending) = discard {
                let _ = pending.settled().await;
            }
            drop(pinned);
            execabort()
        }));
    }
    let sent = pinned
        .connection
        .send_command(std::iter::once(args.raw_name()));
    Reply::Deferred(Deferred::settled(async move {
        let reply = settle(sent).await;
        drop(pinned);
        reply
    }))
}

/// Relays a command on the pinned connection; its reply is the backend's, as it is.
fn relay(connection: &Dedicated, args: &Args) -> Reply {
    let words = std::iter::once(args.raw_name()).chain(args.peek_all());
    let sent = connection.send_command(words);
    Reply::Deferred(Deferred::settled(settle(sent)))
}

/// The backend's reply as it came, in the protocol the pinned connection speaks.
async fn settle(sent: Result<Pending, crate::backend::BackendError>) -> Settled {
    let result = match sent {
        Ok(pending) => pending.settled().await,
        Err(e) => Err(e),
    };
    result.unwrap_or_else(|e| Settled::Frame(e.to_frame()))
}

//! Transactions: `MULTI`, `EXEC`, `DISCARD`, `WATCH`, `UNWATCH`, with Redis's rules.
//!
//! ## What a Redis transaction promises
//!
//! After `MULTI` the server does not run a client's commands: it checks that each one
//! exists and has a plausible number of arguments, queues it, and answers `+QUEUED`.
//! `EXEC` then runs the whole queue at once, and no other client's command runs in
//! between — kv, like Redis, serves every client from one event loop, and `EXEC` never
//! waits for anything while it runs the queue (a blocking pop inside it pops now or
//! answers null). That is the *isolation* half of atomicity.
//!
//! The other half — all or nothing — Redis gives only in part, on purpose:
//!
//! - A command refused *while queueing* (unknown, wrong arity, not allowed in a
//!   transaction, a write on a replica or over `--maxmemory`) marks the transaction
//!   failed, and `EXEC` runs nothing: `-EXECABORT`.
//! - A command that fails *while running* (`INCR` of a string: `WRONGTYPE`, a syntax
//!   error in `SET`'s options) reports its error in its slot of `EXEC`'s reply, and the
//!   other commands still run. Nothing is rolled back.
//!
//! Redis chose this because run-time errors are programming errors (the wrong type for a
//! key, a typo in an option) that a test finds, not conditions to recover from, and
//! because a rollback needs an undo log of every change, kept in memory and paid for by
//! every command, on a server built to be fast and simple. The sql server makes the other
//! choice: its transactions undo everything on any error (see the crate README).
//!
//! ## Optimistic locking
//!
//! `WATCH key...` before `MULTI` makes `EXEC` conditional: if any watched key changed
//! since (written by any client, deleted, expired, flushed, swapped), `EXEC` runs nothing
//! and answers a null reply, and the client retries. See [`crate::keyspace::Watch`].
//!
//! ## One unit on disk and on the wire
//!
//! While `EXEC` runs, the journal keeps its changes ([`Kv::begin`]), and publishes them
//! at the end as one [`crate::keyspace::Change::Transaction`] ([`Kv::commit`]):
//! recovery applies all of it or none (`crate::storage::journal`), and a replica applies
//! it in one step, so neither a crash nor a replica ever shows half a transaction.

use hub::commands::tracking::Reads;
use proto::{Args, CommandError, Frame, Protocol};
use service::{Client, CommandSpec, Reply, Settled};

use crate::keyspace::Watch;
use crate::server::{Kv, Session};

/// The transaction commands, for `COMMAND` and the arity check.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "multi",
        1,
        &["fast", "loading", "stale"],
        "transactions",
        "Starts a transaction.",
    ),
    CommandSpec::new(
        "exec",
        1,
        &["loading", "stale"],
        "transactions",
        "Executes all commands in a transaction.",
    ),
    CommandSpec::new(
        "discard",
        1,
        &["fast", "loading", "stale"],
        "transactions",
        "Discards a transaction.",
    ),
    CommandSpec::new(
        "watch",
        -2,
        &["fast", "loading", "stale"],
        "transactions",
        "Monitors changes to keys to determine the execution of a transaction.",
    )
    .keys(1, -1, 1),
    CommandSpec::new(
        "unwatch",
        1,
        &["fast", "loading", "stale"],
        "transactions",
        "Forgets about watched keys of a transaction.",
    ),
];

/// A connection's transaction state, part of its [`Session`].
#[derive(Debug, Default)]
pub struct Transaction {
    /// Between `MULTI` and `EXEC`/`DISCARD`: the commands queued.
    queue: Option<Queue>,
    /// The keys `WATCH`ed since the last `EXEC`, `DISCARD` or `UNWATCH`.
    watching: Vec<Watch>,
    /// The last queue's vector, empty, for the next `MULTI`: a client that sends
    /// transaction after transaction queues into the same memory.
    spare: Vec<Queued>,
}

/// A spare queue this long or shorter is kept for the next `MULTI` (see
/// [`Transaction::spare`]); a longer one is let go.
const KEEP_QUEUE: usize = 64;

#[derive(Debug, Default)]
struct Queue {
    commands: Vec<Queued>,
    /// A command was refused while queueing: `EXEC` will answer `EXECABORT`.
    failed: bool,
}

impl Transaction {
    /// Between `MULTI` and `EXEC`/`DISCARD`: every command but those is queued.
    pub(crate) fn queueing(&self) -> bool {
        self.queue.is_some()
    }

    /// A command was refused before it could be queued (see `Server::refused`).
    pub(crate) fn refused(&mut self) {
        if let Some(queue) = &mut self.queue {
            queue.failed = true;
        }
    }
}

/// A command waiting for `EXEC`: its arguments as they arrived (a view of the request,
/// not a copy or a parsed form), and its entry in the command table, looked up once, when
/// the connection admitted it. Redis's queue is the same: each command keeps its `argv`
/// and the command it resolved to, and `EXEC` calls that command directly.
#[derive(Debug)]
struct Queued {
    args: Args,
    spec: Option<&'static CommandSpec>,
}

/// Redis's answer to a command it does not queue ([`NOT_QUEUED`]).
fn not_allowed() -> CommandError {
    CommandError::err("Command not allowed inside a transaction")
}

/// Handles the transaction commands, and every command while `MULTI` is queueing.
/// `Err(args)`: not this module's, run it as usual.
pub fn queue(kv: &Kv, client: &mut Client<Session>, args: Args) -> Result<Reply, Args> {
    let spec = client.spec();
    let tx = &mut client.session.tx;
    let Some(queue) = &mut tx.queue else {
        let frame = match args.name() {
            "multi" => {
                tx.queue = Some(Queue {
                    commands: std::mem::take(&mut tx.spare),
                    failed: false,
                });
                Frame::ok()
            }
            "exec" => CommandError::err("EXEC without MULTI").to_frame(),
            "discard" => CommandError::err("DISCARD without MULTI").to_frame(),
            "watch" => {
                let keys = args.peek_bytes();
                let db = client.session.db;
                let watches = kv.watch(db, &keys);
                client.session.tx.watching.extend(watches);
                Frame::ok()
            }
            "unwatch" => {
                kv.unwatch(std::mem::take(&mut tx.watching));
                Frame::ok()
            }
            _ => return Err(args),
        };
        return Ok(Reply::One(frame));
    };
    let frame = match args.name() {
        "exec" => return Ok(exec(kv, client)),
        "discard" => {
            tx.queue = None;
            kv.unwatch(std::mem::take(&mut tx.watching));
            Frame::ok()
        }
        // Errors that leave the transaction as it was, as in Redis.
        "multi" => CommandError::err("MULTI calls can not be nested").to_frame(),
        "watch" => CommandError::err("WATCH inside MULTI is not allowed").to_frame(),
        // The connection closes or resets: the queue goes with the session.
        "quit" | "reset" => return Err(args),
        name if NOT_QUEUED.contains(&name) => {
            queue.failed = true;
            not_allowed().to_frame()
        }
        // Every other command is queued, kv's own and the service's alike (`CLIENT
        // SETNAME`, `CONFIG GET`, `INFO`, `HELLO`): its name, arity and subcommand were
        // checked already, before kv saw it, so a mistake there aborted the transaction.
        _ => match kv.refuses_queued(spec.map_or(&[][..], |spec| spec.flags)) {
            None => {
                queue.commands.push(Queued { args, spec });
                Frame::simple("QUEUED")
            }
            // A write on a replica, or over `--maxmemory`: refused now, as in Redis.
            Some(refused) => {
                queue.failed = true;
                refused.to_frame()
            }
        },
    };
    Ok(Reply::One(frame))
}

/// The commands Redis 7 refuses inside `MULTI` (its `no-multi` flag), of those kv has:
/// `SAVE` and `SHUTDOWN` wait for the disk, and `SYNC`/`PSYNC` turn the connection into a
/// replica's link, none of which can happen in `EXEC`'s turn.
const NOT_QUEUED: &[&str] = &["save", "shutdown", "sync", "psync"];

/// `EXEC`: runs the queue (see the module docs) and answers each command's reply in an
/// array; `EXECABORT` if queueing failed; a null reply if a watched key changed.
fn exec(kv: &Kv, client: &mut Client<Session>) -> Reply {
    let tx = &mut client.session.tx;
    let queue = tx.queue.take().unwrap_or_default();
    let watching = std::mem::take(&mut tx.watching);
    if queue.failed {
        kv.unwatch(watching);
        return CommandError::coded(
            "EXECABORT",
            "Transaction discarded because of previous errors.",
        )
        .into();
    }
    if !kv.begin(watching) {
        return Frame::NullArray.into();
    }
    // Committed even if a command panics: the journal must never stay held open.
    let open = Open {
        kv,
        committed: false,
    };
    let mut commands = queue.commands;
    let mut replies = Replies::new(client.protocol, commands.len());
    for Queued { args, spec } in commands.drain(..) {
        // What a read reads is remembered for `CLIENT TRACKING` as it runs, not when it
        // was queued: a write earlier in the queue must not invalidate it first.
        let reads = Reads::before(client, spec, &args);
        let reply = run(kv, client, args, spec);
        kv.remember(reads);
        replies.push(client.protocol, reply);
    }
    open.commit(&mut client.session);
    if commands.capacity() <= KEEP_QUEUE {
        client.session.tx.spare = commands;
    }
    replies.finish()
}

/// Runs one queued command inside `EXEC`; `spec`: its table entry, from queueing.
fn run(
    kv: &Kv,
    client: &mut Client<Session>,
    mut args: Args,
    spec: Option<&'static CommandSpec>,
) -> Frame {
    // kv's data commands (most of what transactions hold) go straight to their handler,
    // on borrowed arguments, as outside a transaction (see `Kv::execute_now`): the table
    // row found when queueing says which they are, so no name is compared first.
    let command = spec.and_then(crate::server::data_command);
    if let Some(command) = command
        && let Some(reply) = crate::commands::execute_command(kv, client, command, &mut args)
    {
        return frame_of(reply);
    }
    let s = &mut client.session;
    let reply = match args.name() {
        // The commands that wait elsewhere, in their forms that do not.
        "blpop" => return crate::blocking::bpop_now(kv, s, &mut args, true),
        "brpop" => return crate::blocking::bpop_now(kv, s, &mut args, false),
        "blmove" => return crate::blocking::bmove_now(kv, s, &mut args, false),
        "brpoplpush" => return crate::blocking::bmove_now(kv, s, &mut args, true),
        "blmpop" | "bzmpop" | "bzpopmin" | "bzpopmax" => {
            return crate::commands::blocking_pop_now(kv, s, &mut args).unwrap_or(Frame::NullArray);
        }
        "bgsave" => {
            kv.request_save();
            return Frame::simple("Background saving started");
        }
        // `SAVE`, `SHUTDOWN`.
        _ if command.is_some() => not_allowed().into(),
        // The watches were handed back when `EXEC` began.
        "unwatch" => return Frame::ok(),
        _ => match crate::replication::execute(kv, client, args) {
            Reply::Unhandled(args) => match crate::commands::execute_now(kv, client, args) {
                // The service's commands, run in their turn like kv's.
                Reply::Unhandled(args) => client.run_builtin(args),
                reply => reply,
            },
            reply => reply,
        },
    };
    frame_of(reply)
}

/// One command's reply as an element of `EXEC`'s array.
fn frame_of(reply: Reply) -> Frame {
    match reply {
        Reply::One(frame) => frame,
        Reply::Many(frames) => Frame::Array(frames),
        // Bytes meant for the socket (`LRANGE`): the array needs them as a frame.
        Reply::Encoded(bytes) => Settled::Resp2(bytes).into_frame(),
        Reply::Unhandled(_) | Reply::Close(_) | Reply::Deferred(_) => not_allowed().to_frame(),
    }
}

/// `EXEC`'s reply, one command's reply at a time.
///
/// Redis writes each reply in the protocol of the moment, so a `HELLO 3` queued in the
/// middle turns the replies after it (and its own) into RESP3 while those before it stay
/// RESP2. The connection encodes a reply frame once, in the protocol of the end, so in
/// that rare case the array is encoded here, piece by piece.
struct Replies {
    frames: Vec<Frame>,
    /// The array encoded so far, once the protocol has changed.
    encoded: Option<bytes::BytesMut>,
    /// The protocol when `EXEC` began.
    started: Protocol,
    /// How many replies the array holds.
    len: usize,
}

impl Replies {
    fn new(protocol: Protocol, len: usize) -> Self {
        Replies {
            frames: Vec::with_capacity(len),
            encoded: None,
            started: protocol,
            len,
        }
    }

    /// `reply`, made while the connection spoke `protocol`.
    fn push(&mut self, protocol: Protocol, reply: Frame) {
        if self.encoded.is_none() && protocol != self.started {
            let mut encoded = bytes::BytesMut::new();
            encoded.extend_from_slice(format!("*{}\r\n", self.len).as_bytes());
            for frame in self.frames.drain(..) {
                frame.encode(self.started, &mut encoded);
            }
            self.encoded = Some(encoded);
        }
        match &mut self.encoded {
            Some(encoded) => reply.encode(protocol, encoded),
            None => self.frames.push(reply),
        }
    }

    fn finish(self) -> Reply {
        match self.encoded {
            Some(encoded) => Reply::Encoded(encoded.freeze()),
            None => Reply::One(Frame::Array(self.frames)),
        }
    }
}

/// An `EXEC` under way: commits its changes when dropped, however it ends.
struct Open<'a> {
    kv: &'a Kv,
    committed: bool,
}

impl Open<'_> {
    fn commit(mut self, session: &mut Session) {
        self.committed = true;
        self.kv.commit(session);
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        if !self.committed {
            self.kv.commit(&mut Session::default());
        }
    }
}

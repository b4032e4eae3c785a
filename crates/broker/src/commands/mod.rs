//! RESP commands → engine calls → reply frames. One module per family:
//! [`queues`] (create, inspect, purge, delete, redrive), [`messages`] (send, receive) and
//! [`deliveries`] (ack, nack, extend — what a consumer does with a receipt).
//!
//! Every duration is in milliseconds, as in Redis streams (`XREADGROUP BLOCK`,
//! `XAUTOCLAIM min-idle-time`).

mod deliveries;
mod messages;
mod queues;

use std::sync::Arc;

use bytes::Bytes;
use proto::{Args, CommandError, Frame};
use service::{CommandSpec, Reply};

use crate::clock::Millis;
use crate::consumer::Session;
use crate::engine::Error;
use crate::receipt::Receipt;
use crate::shared_engine::SharedEngine;
use crate::visibility::Stale;

const fn spec(
    name: &'static str,
    arity: i64,
    flags: &'static [&'static str],
    summary: &'static str,
    syntax: &'static str,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, "broker", summary)
        .keys(1, 1, 1)
        .syntax(syntax)
}

/// The command table (`COMMAND DOCS` and redis-cli's hints read it).
pub static COMMANDS: &[CommandSpec] = &[
    spec(
        "qcreate",
        -2,
        &["write", "fast"],
        "Creates a queue, or changes its attributes (durations in ms).",
        "queue [VISIBILITY ms] [MAXDELIVERIES n] [DEADLETTER queue] [RETENTION ms] [MAXSIZE bytes] [DELAY ms]",
    ),
    spec(
        "qsend",
        -3,
        &["write", "fast"],
        "Sends a message; replies with its id. Lower PRIORITY is served first.",
        "queue payload [DELAY ms] [PRIORITY n]",
    ),
    spec(
        "qsendbatch",
        -3,
        &["write"],
        "Sends several messages at once, all or none; replies with their ids.",
        "queue payload [payload ...]",
    ),
    spec(
        "qrecv",
        -2,
        &["write", "blocking"],
        "Receives up to COUNT messages, each invisible to others until acked or its visibility timeout ends; BLOCK waits for one (0: for ever).",
        "queue [COUNT n] [VISIBILITY ms] [BLOCK ms]",
    ),
    spec(
        "qack",
        3,
        &["write", "fast"],
        "Acknowledges a delivery: deletes its message. Fails if the delivery has expired.",
        "queue receipt",
    ),
    spec(
        "qnack",
        -3,
        &["write", "fast"],
        "Gives a delivery back: the message is visible again now, or after DELAY.",
        "queue receipt [DELAY ms]",
    ),
    spec(
        "qextend",
        4,
        &["write", "fast"],
        "Heartbeat: the delivery's visibility timeout now ends ms from now.",
        "queue receipt ms",
    ),
    spec(
        "qpeek",
        -2,
        &["readonly"],
        "Shows the next ready messages without receiving them.",
        "queue [COUNT n]",
    ),
    spec(
        "qpurge",
        2,
        &["write"],
        "Deletes every message of a queue, in flight or not; replies with how many.",
        "queue",
    ),
    spec(
        "qstats",
        2,
        &["readonly", "fast"],
        "A queue's counts (ready, in flight, delayed, sent, acked, dead-lettered...) and attributes.",
        "queue",
    ),
    CommandSpec::new(
        "qlist",
        -1,
        &["readonly"],
        "broker",
        "Lists queue names, optionally only those matching a glob pattern.",
    )
    .syntax("[pattern]"),
    spec(
        "qdel",
        2,
        &["write"],
        "Deletes a queue and its messages; 1 if it existed, else 0.",
        "queue",
    ),
    spec(
        "qredrive",
        -2,
        &["write"],
        "Moves dead letters back to the queues they came from; replies with how many.",
        "dead-letter-queue [COUNT n]",
    ),
];

pub(crate) async fn execute(
    inner: &Arc<SharedEngine>,
    session: &mut Session,
    mut args: Args,
) -> Reply {
    let result = match args.name() {
        "qcreate" => queues::create(inner, &mut args).await,
        "qsend" => messages::send(inner, &mut args).await,
        "qsendbatch" => messages::send_batch(inner, &mut args).await,
        "qrecv" => messages::receive(inner, session, &mut args).await,
        "qack" => deliveries::ack(inner, session, &mut args).await,
        "qnack" => deliveries::nack(inner, session, &mut args).await,
        "qextend" => deliveries::extend(inner, &mut args).await,
        "qpeek" => queues::peek(inner, &mut args),
        "qpurge" => queues::purge(inner, &mut args).await,
        "qstats" => queues::stats(inner, &mut args),
        "qlist" => queues::list(inner, &mut args),
        "qdel" => queues::delete(inner, &mut args).await,
        "qredrive" => queues::redrive(inner, &mut args).await,
        _ => return Reply::Unhandled(args),
    };
    match result {
        Ok(frame) => Reply::One(frame),
        Err(e) => Reply::One(e.to_frame()),
    }
}

/// The reply an engine error becomes.
impl From<Error> for CommandError {
    fn from(e: Error) -> CommandError {
        match e {
            Error::NoQueue(name) => CommandError::coded(
                "NOQUEUE",
                format_args!("no such queue '{}'", String::from_utf8_lossy(&name)),
            ),
            Error::Stale(Stale::NotInFlight) => CommandError::coded(
                "STALE",
                "the receipt's delivery is over: the message was acknowledged, nacked, deleted or redelivered",
            ),
            Error::Stale(Stale::Superseded) => CommandError::coded(
                "STALE",
                "the receipt's delivery has expired: the message was delivered again",
            ),
            Error::TooLarge { size, max } => CommandError::err(format_args!(
                "message too large ({size} bytes; the queue's MAXSIZE is {max})"
            )),
            Error::Invalid(why) => CommandError::err(why),
            Error::Storage(e) => CommandError::err(e),
        }
    }
}

/// The next argument: a queue name, copied out of the request buffer (it may be kept).
fn queue_name(args: &mut Args) -> Result<Bytes, CommandError> {
    args.next_bytes().map(|b| Bytes::copy_from_slice(&b))
}

/// The next argument: a receipt.
fn receipt(args: &mut Args) -> Result<Receipt, CommandError> {
    let text = args.next_bytes()?;
    Receipt::parse(&text).map_err(|_| CommandError::err("malformed receipt"))
}

/// The next argument: a duration in milliseconds, `0..=max`, named `what` in errors.
fn millis(args: &mut Args, what: &str, max: Millis) -> Result<Millis, CommandError> {
    let n = args.next_int()?;
    if n < 0 {
        return Err(CommandError::err(format_args!("{what} is negative")));
    }
    let n = n as Millis;
    if n > max {
        return Err(CommandError::err(format_args!(
            "{what} is too large (at most {max} ms)"
        )));
    }
    Ok(n)
}

/// The next argument: a count in `1..=max`.
fn count(args: &mut Args, max: usize) -> Result<usize, CommandError> {
    match args.next_int()? {
        n @ 1.. if n as u64 <= max as u64 => Ok(n as usize),
        _ => Err(CommandError::err(format_args!(
            "COUNT must be between 1 and {max}"
        ))),
    }
}

fn integer(n: impl TryInto<i64>) -> Frame {
    Frame::Integer(n.try_into().unwrap_or(i64::MAX))
}

fn field(name: &'static str, value: Frame) -> (Frame, Frame) {
    (Frame::bulk(name), value)
}

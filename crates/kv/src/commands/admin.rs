//! Server administration: `SLOWLOG`, `LATENCY`, `MONITOR` and `SHUTDOWN`. The state
//! behind them lives in [`crate::slowlog`] and [`crate::monitor`]; the timing and the
//! feeding of monitors happen around every command in the server's dispatch.

use std::net::SocketAddr;

use proto::{Args, CommandError, Frame};
use service::Reply;

use super::Result;
use crate::server::{Kv, Session};

/// `SLOWLOG GET [count] | LEN | RESET | HELP`.
pub fn slowlog(kv: &Kv, args: &mut Args) -> Result {
    let log = &kv.slowlog;
    match args.next_keyword().unwrap_or_default().as_str() {
        "GET" => {
            let count = match args.is_empty() {
                true => 10,
                false => proto::decode::parse_int(&args.next_bytes()?)
                    .filter(|&n| n >= -1)
                    .ok_or_else(|| {
                        CommandError::err("count should be greater than or equal to -1")
                    })?,
            };
            let count = usize::try_from(count).unwrap_or(usize::MAX);
            let entry = |(id, at, micros, words, client): (u64, u64, u64, Vec<_>, SocketAddr)| {
                Frame::Array(vec![
                    Frame::Integer(id as i64),
                    Frame::Integer(at as i64),
                    Frame::Integer(micros as i64),
                    Frame::bulk_array(words),
                    Frame::bulk(client.to_string()),
                    Frame::bulk(""),
                ])
            };
            Ok(Frame::Array(
                log.newest(count).into_iter().map(entry).collect(),
            ))
        }
        "LEN" => Ok(Frame::Integer(log.len() as i64)),
        "RESET" => {
            log.reset();
            Ok(Frame::ok())
        }
        _ => Ok(super::object::help(&[
            "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            "    Entries are made of:",
            "    id, timestamp, time in microseconds, arguments array, client IP and port,",
            "    client name",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
            "HELP",
            "    Prints this help.",
        ])),
    }
}

/// `LATENCY LATEST | RESET [event...] | HELP`.
pub fn latency(kv: &Kv, args: &mut Args) -> Result {
    match args.next_keyword().unwrap_or_default().as_str() {
        "LATEST" => Ok(Frame::Array(
            kv.slowlog
                .latest_events()
                .into_iter()
                .map(|(name, at, last, worst)| {
                    Frame::Array(vec![
                        Frame::bulk(name),
                        Frame::Integer(at as i64),
                        Frame::Integer(last as i64),
                        Frame::Integer(worst as i64),
                    ])
                })
                .collect(),
        )),
        "RESET" => Ok(Frame::Integer(kv.slowlog.reset_events(&args.rest()) as i64)),
        _ => Ok(super::object::help(&[
            "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "LATEST",
            "    Return the latest latency samples for all events.",
            "RESET [<event> ...]",
            "    Reset latency data of one or more <event> classes.",
            "    (default: reset all data for all event classes)",
            "HELP",
            "    Prints this help.",
        ])),
    }
}

/// `MONITOR`: from now on this connection receives every command the server runs.
pub fn monitor(kv: &Kv, s: &mut Session) -> Result {
    if s.monitor.is_none() {
        s.monitor = Some(kv.monitors.add());
    }
    Ok(Frame::ok())
}

/// How `SHUTDOWN` leaves the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leave {
    /// The default: the journal is flushed and folded into the checkpoint, as at any stop.
    Default,
    /// `SAVE`: a checkpoint first (as `SAVE`), then the stop.
    Save,
    /// `NOSAVE`: no fold at the stop; the journal, fsynced, is what the restart replays.
    NoSave,
}

/// `SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]`: stops this server (its listener, its
/// connections, its background tasks) cleanly. As in Redis, a successful shutdown sends
/// no reply: the client sees its connection close.
pub async fn shutdown(kv: &Kv, args: &mut Args) -> Reply {
    let (mut save, mut nosave, mut abort, mut other) = (false, false, false, false);
    while let Some(option) = args.next_keyword() {
        match option.as_str() {
            "SAVE" => save = true,
            "NOSAVE" => nosave = true,
            "NOW" | "FORCE" => other = true,
            "ABORT" => abort = true,
            _ => return CommandError::Syntax.into(),
        }
    }
    if (save && nosave) || (abort && (save || nosave || other)) {
        return CommandError::Syntax.into();
    }
    if abort {
        return CommandError::err("No shutdown in progress.").into();
    }
    let leave = match (save, nosave) {
        (true, _) => Leave::Save,
        (_, true) => Leave::NoSave,
        _ => Leave::Default,
    };
    kv.stop(leave).await;
    // Nothing to write: the connection sees the stop and closes.
    Reply::Many(Vec::new())
}

//! Server administration: `SLOWLOG`, `LATENCY`, `MONITOR` and `SHUTDOWN`. The state
//! behind them lives in [`crate::slowlog`] and [`crate::monitor`]; the timing and the
//! feeding of monitors happen around every command in the server's dispatch.

use proto::{Args, CommandError, Frame};
use service::Reply;

use super::Result;
use crate::server::{Kv, Session};

pub fn slowlog(kv: &Kv, args: &mut Args) -> Result {
    kv.slowlog.command(args)
}

pub fn latency(kv: &Kv, args: &mut Args) -> Result {
    kv.slowlog.latency(args)
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

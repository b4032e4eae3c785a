//! Multi-key pops: `LMPOP`, `ZMPOP` and their blocking forms `BLMPOP`, `BZMPOP`, plus
//! `BZPOPMIN`/`BZPOPMAX`.
//!
//! The `M` commands take the first of several keys that has something, in argument
//! order, and pop up to `COUNT` elements from it: one call drains a batch from the
//! highest-priority queue that is not empty. Their blocking forms, and the blocking
//! sorted-set pops that make a sorted set a priority queue (`BZPOPMIN jobs 0`: the job
//! with the lowest score, waiting if there is none), wait in [`crate::blocking`] like
//! `BLPOP`: served in the order clients blocked, by the write that fills a key.
//!
//! This module only parses; the popping is [`blocking::serve_now`] (first key with
//! elements, now) and [`blocking::block`] (or wait).

use bytes::Bytes;
use proto::{Args, CommandError, Frame};

use super::Result;
use crate::blocking::{self, Action, Request};
use crate::server::{Kv, Session};

/// `numkeys key... LEFT|RIGHT [COUNT n]` (`zset`: `MIN|MAX`), Redis's checks in its order.
fn parse_mpop(args: &mut Args, zset: bool) -> Result<(Vec<Bytes>, Action)> {
    let numkeys = at_least_one(&args.next_bytes()?, "numkeys")?;
    if numkeys as u64 >= args.remaining() as u64 {
        return Err(CommandError::Syntax);
    }
    let mut keys = Vec::with_capacity(numkeys as usize);
    for _ in 0..numkeys {
        keys.push(args.next_bytes()?);
    }
    // `next_flag` compares in place; `next_keyword` would allocate an uppercased copy.
    let (first, last) = if zset {
        ("MIN", "MAX")
    } else {
        ("LEFT", "RIGHT")
    };
    let end = if args.next_flag(first) {
        true
    } else if args.next_flag(last) {
        false
    } else {
        return Err(CommandError::Syntax);
    };
    let mut count = None;
    while !args.is_empty() {
        match args.next_keyword().as_deref() {
            Some("COUNT") if count.is_none() && !args.is_empty() => {
                count = Some(at_least_one(&args.next_bytes()?, "count")? as usize);
            }
            _ => return Err(CommandError::Syntax),
        }
    }
    // `end` is "left" for lists and "min" for sorted sets; the op wants "max".
    let end = if zset { !end } else { end };
    let count = count.unwrap_or(1);
    Ok((keys, Action::MPop { zset, end, count }))
}

/// A positive integer argument; Redis answers one message for "not a number" and "< 1".
fn at_least_one(text: &[u8], what: &str) -> Result<i64> {
    proto::decode::parse_int(text)
        .filter(|&n| n >= 1)
        .ok_or_else(|| CommandError::err(format!("{what} should be greater than 0")))
}

/// `LMPOP`/`ZMPOP`: pops now, or a null array if every key is empty or missing.
pub fn mpop(kv: &Kv, s: &mut Session, args: &mut Args, zset: bool) -> Result {
    let (keys, action) = parse_mpop(args, zset)?;
    Ok(blocking::serve_now(kv, s, &keys, &action).unwrap_or(Frame::NullArray))
}

/// `BLMPOP`/`BZMPOP timeout numkeys key... LEFT|RIGHT|MIN|MAX [COUNT n]`.
fn parse_bmpop(args: &mut Args, zset: bool) -> Result<Request> {
    let timeout = blocking::parse_timeout(&args.next_bytes()?)?;
    let (keys, action) = parse_mpop(args, zset)?;
    Ok((keys, timeout, action))
}

/// `BZPOPMIN`/`BZPOPMAX key... timeout`.
fn parse_bzpop(args: &mut Args, max: bool) -> Result<Request> {
    blocking::keys_then_timeout(args, Action::ZPop { max })
}

/// The blocking pop named by `args`, parsed (`None`: not one of this module's).
fn parse_blocking(args: &mut Args) -> Option<Result<Request>> {
    Some(match args.name() {
        "blmpop" => parse_bmpop(args, false),
        "bzmpop" => parse_bmpop(args, true),
        "bzpopmin" => parse_bzpop(args, false),
        "bzpopmax" => parse_bzpop(args, true),
        _ => return None,
    })
}

/// Pops now or waits (see [`crate::blocking`]). `None`: not one of this module's commands.
pub async fn wait(kv: &Kv, s: &mut Session, args: &mut Args) -> Option<Frame> {
    Some(match parse_blocking(args)? {
        Ok((keys, timeout, action)) => blocking::block(kv, s, keys, timeout, action).await,
        Err(e) => e.to_frame(),
    })
}

/// The blocking pops inside `EXEC`: a transaction never waits, so, as in Redis, they pop
/// now or answer a null array, as if the timeout had passed.
pub fn now(kv: &Kv, s: &mut Session, args: &mut Args) -> Option<Frame> {
    Some(match parse_blocking(args)? {
        Ok((keys, _, action)) => {
            blocking::serve_now(kv, s, &keys, &action).unwrap_or(Frame::NullArray)
        }
        Err(e) => e.to_frame(),
    })
}

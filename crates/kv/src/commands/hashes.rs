//! Hash commands: HSET, HGET, HMGET, HGETALL, HDEL, HEXISTS, HLEN, HKEYS, HVALS, HINCRBY,
//! HINCRBYFLOAT, HSETNX, HSTRLEN, HSCAN, HRANDFIELD.

use bytes::Bytes;
use proto::{Args, CommandError, Frame};

use super::Result;
use super::collections::{bulk, random_count, read, scan_args, scan_reply, write};
use crate::server::{Kv, Session};
use crate::types::hash::Hash;
use crate::types::ops::Op;
use crate::value::Value;

/// Runs `f` on the hash at `key` (`None` if missing).
fn with_hash<R>(
    kv: &Kv,
    s: &Session,
    key: &Bytes,
    f: impl FnOnce(Option<&Hash>) -> R,
) -> Result<R> {
    read(kv, s, key, |v| v.map(Value::as_hash).transpose().map(f))
}

/// `HSET key field value [field value ...]` (and `HMSET`, which answers `OK`).
pub fn hset(kv: &Kv, s: &mut Session, args: &mut Args, hmset: bool) -> Result {
    let key = args.next_bytes()?;
    let rest = args.rest();
    if !rest.len().is_multiple_of(2) {
        return Err(args.wrong_arity());
    }
    let mut it = rest.into_iter();
    let mut pairs = Vec::new();
    while let (Some(f), Some(v)) = (it.next(), it.next()) {
        pairs.push((f, v));
    }
    let op = Op::HSet {
        key,
        pairs,
        only_if_new: false,
    };
    let reply = write(kv, s, op)?;
    Ok(if hmset { Frame::ok() } else { reply })
}

/// `HSETNX key field value`.
pub fn hsetnx(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let (key, field, value) = (args.next_bytes()?, args.next_bytes()?, args.next_bytes()?);
    let op = Op::HSet {
        key,
        pairs: vec![(field, value)],
        only_if_new: true,
    };
    write(kv, s, op)
}

pub fn hget(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let (key, field) = (args.next_bytes()?, args.next_bytes()?);
    with_hash(kv, s, &key, |h| {
        h.and_then(|h| h.get(&field)).map_or(Frame::Null, bulk)
    })
}

pub fn hmget(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let fields = args.rest();
    with_hash(kv, s, &key, |h| {
        Frame::Array(
            fields
                .iter()
                .map(|f| h.and_then(|h| h.get(f)).map_or(Frame::Null, bulk))
                .collect(),
        )
    })
}

/// `HGETALL` (a map of fields to values), `HKEYS`, `HVALS` (arrays).
pub fn hgetall(kv: &Kv, s: &mut Session, args: &mut Args, keys: bool, values: bool) -> Result {
    let key = args.next_bytes()?;
    with_hash(kv, s, &key, |h| {
        let fields = h.into_iter().flat_map(Hash::iter);
        if keys && values {
            return Frame::Map(fields.map(|(f, v)| (bulk(f), bulk(v))).collect());
        }
        let mut out = Vec::new();
        for (f, v) in fields {
            if keys {
                out.push(bulk(f));
            }
            if values {
                out.push(bulk(v));
            }
        }
        Frame::Array(out)
    })
}

pub fn hdel(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let fields = args.rest();
    write(kv, s, Op::HDel { key, fields })
}

pub fn hexists(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let (key, field) = (args.next_bytes()?, args.next_bytes()?);
    with_hash(kv, s, &key, |h| {
        Frame::Integer(i64::from(h.is_some_and(|h| h.get(&field).is_some())))
    })
}

pub fn hlen(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    with_hash(kv, s, &key, |h| {
        Frame::Integer(h.map_or(0, Hash::len) as i64)
    })
}

pub fn hstrlen(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let (key, field) = (args.next_bytes()?, args.next_bytes()?);
    with_hash(kv, s, &key, |h| {
        Frame::Integer(h.and_then(|h| h.get(&field)).map_or(0, <[u8]>::len) as i64)
    })
}

pub fn hincrby(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let (key, field) = (args.next_bytes()?, args.next_bytes()?);
    let delta = args.next_int()?;
    write(kv, s, Op::HIncrBy { key, field, delta })
}

pub fn hincrbyfloat(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let (key, field) = (args.next_bytes()?, args.next_bytes()?);
    let delta = proto::args::parse_f64(&args.next_bytes()?).ok_or(CommandError::NotFloat)?;
    if !delta.is_finite() {
        return Err(CommandError::err("value is NaN or Infinity"));
    }
    write(kv, s, Op::HIncrByFloat { key, field, delta })
}

/// `HSCAN key cursor [MATCH pattern] [COUNT count]`.
pub fn hscan(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let scan = scan_args(args)?;
    with_hash(kv, s, &key, |h| {
        let mut items = Vec::new();
        let cursor = h.map_or(0, |h| {
            h.scan(scan.cursor, scan.count, scan.pattern.as_deref(), |f, v| {
                items.push(Bytes::copy_from_slice(f));
                items.push(Bytes::copy_from_slice(v));
            })
        });
        scan_reply(cursor, items)
    })
}

/// `HRANDFIELD key [count [WITHVALUES]]`.
pub fn hrandfield(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let count = if args.is_empty() {
        None
    } else {
        Some(random_count(args)?)
    };
    let with_values = args.next_flag("WITHVALUES");
    if !args.is_empty() {
        return Err(CommandError::Syntax);
    }
    with_hash(kv, s, &key, |h| match count {
        None => h
            .and_then(|h| h.random(1).first().map(|&(f, _)| bulk(f)))
            .unwrap_or(Frame::Null),
        Some(count) => {
            let picked = h.map(|h| h.random(count)).unwrap_or_default().into_iter();
            if with_values {
                // [field, value] pairs: a field may repeat, so not a map.
                Frame::Pairs(picked.map(|(f, v)| (bulk(f), bulk(v))).collect())
            } else {
                Frame::Array(picked.map(|(f, _)| bulk(f)).collect())
            }
        }
    })
}

//! String commands: GET, SET and friends, counters, ranges.

use bytes::Bytes;
use proto::{Args, CommandError, Frame};

use super::expiry::{WriteOptions, set_deadline};
use super::{Result, reply};
use crate::keyspace::{Condition, Mutation, Ttl};
use crate::server::{Kv, Session};

pub fn get(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let value = kv.read(|ks, now| ks.get(s.db, &key, now))?;
    Ok(value.map_or(Frame::Null, Frame::Bulk))
}

/// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT ts|PXAT ts|KEEPTTL]`.
pub fn set(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let value = args.next_bytes()?;
    let options = WriteOptions::parse(args, true)?;
    let ttl = options.ttl(Ttl::Clear, kv, "set")?;
    let condition = match (options.nx, options.xx) {
        (true, _) => Condition::IfAbsent,
        (_, true) => Condition::IfPresent,
        _ => Condition::Always,
    };
    let m = Mutation::Set {
        key,
        value,
        condition,
        ttl,
        get: options.get,
    };
    kv.write(s, m).map(reply)
}

fn plain_set(key: Bytes, value: Bytes, condition: Condition, ttl: Ttl, get: bool) -> Mutation {
    Mutation::Set {
        key,
        value,
        condition,
        ttl,
        get,
    }
}

pub fn setnx(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let (key, value) = (args.next_bytes()?, args.next_bytes()?);
    let set = kv.write(
        s,
        plain_set(key, value, Condition::IfAbsent, Ttl::Clear, false),
    )?;
    Ok(Frame::Integer(i64::from(
        set == crate::keyspace::Outcome::Ok,
    )))
}

/// `SETEX key seconds value` (`unit` 1000) and `PSETEX key ms value` (`unit` 1).
pub fn setex(kv: &Kv, s: &mut Session, args: &mut Args, unit: i64) -> Result {
    let key = args.next_bytes()?;
    let amount = args.next_int()?;
    let value = args.next_bytes()?;
    let ttl = set_deadline(amount, unit, true, kv.now(), args.name())?;
    kv.write(s, plain_set(key, value, Condition::Always, ttl, false))
        .map(reply)
}

pub fn getset(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let (key, value) = (args.next_bytes()?, args.next_bytes()?);
    kv.write(
        s,
        plain_set(key, value, Condition::Always, Ttl::Clear, true),
    )
    .map(reply)
}

pub fn getdel(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    kv.write(s, Mutation::GetDel { key }).map(reply)
}

/// `GETEX key [EX s|PX ms|EXAT ts|PXAT ts|PERSIST]`.
pub fn getex(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let options = WriteOptions::parse(args, false)?;
    let ttl = options.ttl(Ttl::Keep, kv, "getex")?;
    kv.write(s, Mutation::GetEx { key, ttl }).map(reply)
}

/// `MGET key...`: a nil for a missing key or one that is not a string.
pub fn mget(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let keys = args.rest();
    let values = kv.read(|ks, now| {
        keys.iter()
            .map(|k| match ks.get(s.db, k, now) {
                Ok(Some(v)) => Frame::Bulk(v),
                _ => Frame::Null,
            })
            .collect()
    });
    Ok(Frame::Array(values))
}

/// `MSET k v [k v ...]` and `MSETNX`.
pub fn mset(kv: &Kv, s: &mut Session, args: &mut Args, only_if_none_exist: bool) -> Result {
    let words = args.rest();
    if !words.len().is_multiple_of(2) {
        return Err(args.wrong_arity());
    }
    let pairs = words
        .chunks_exact(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect();
    kv.write(
        s,
        Mutation::MSet {
            pairs,
            only_if_none_exist,
        },
    )
    .map(reply)
}

pub fn append(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let (key, value) = (args.next_bytes()?, args.next_bytes()?);
    kv.write(s, Mutation::Append { key, value }).map(reply)
}

pub fn strlen(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let value = kv.read(|ks, now| ks.get(s.db, &key, now))?;
    Ok(Frame::Integer(value.map_or(0, |v| v.len() as i64)))
}

/// `GETRANGE key start end`, inclusive, negative offsets counting from the end.
pub fn getrange(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let (start, end) = (args.next_int()?, args.next_int()?);
    let value = kv
        .read(|ks, now| ks.get(s.db, &key, now))?
        .unwrap_or_default();
    Ok(Frame::Bulk(substring(&value, start, end)))
}

/// Redis's `getrangeCommand` arithmetic.
fn substring(value: &Bytes, start: i64, end: i64) -> Bytes {
    let len = value.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Bytes::new();
    }
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let end = if end < 0 { (len + end).max(0) } else { end }.min(len - 1);
    if len == 0 || start > end {
        return Bytes::new();
    }
    value.slice(start as usize..=end as usize)
}

/// `SETRANGE key offset value`.
pub fn setrange(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let offset = args.next_int()?;
    let value = args.next_bytes()?;
    let offset =
        usize::try_from(offset).map_err(|_| CommandError::err("offset is out of range"))?;
    kv.write(s, Mutation::SetRange { key, offset, value })
        .map(reply)
}

/// `INCR`/`DECR` (`fixed` delta) and `INCRBY key delta`.
pub fn incr(kv: &Kv, s: &mut Session, args: &mut Args, fixed: Option<i64>) -> Result {
    let key = args.next_bytes()?;
    let delta = match fixed {
        Some(d) => d,
        None => args.next_int()?,
    };
    kv.write(s, Mutation::IncrBy { key, delta }).map(reply)
}

pub fn decrby(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let delta = args.next_int()?;
    let delta = delta
        .checked_neg()
        .ok_or_else(|| CommandError::err("decrement would overflow"))?;
    kv.write(s, Mutation::IncrBy { key, delta }).map(reply)
}

pub fn incrbyfloat(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let delta = args.next_f64()?;
    kv.write(s, Mutation::IncrByFloat { key, delta }).map(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substrings_follow_redis() {
        let v = Bytes::from_static(b"This is a string");
        let sub = |a, b| substring(&v, a, b);
        assert_eq!(sub(0, 3), "This");
        assert_eq!(sub(-3, -1), "ing");
        assert_eq!(sub(0, -1), v);
        assert_eq!(sub(10, 100), "string");
        assert_eq!(sub(-1, -5), "");
        assert_eq!(sub(5, 3), "");
        assert_eq!(substring(&Bytes::new(), 0, -1), "");
    }
}

//! Set commands: SADD, SREM, SISMEMBER, SMISMEMBER, SMEMBERS, SCARD, SPOP, SRANDMEMBER,
//! SINTER, SUNION, SDIFF (and their STORE forms), SMOVE, SSCAN.

use bytes::Bytes;
use proto::{Args, Frame};

use super::Result;
use super::collections::{bulk, positive_count, random_count, read, scan_args, scan_reply, write};
use crate::server::{Kv, Session};
use crate::types::ops::{Algebra, Op, combine};
use crate::types::set::Set;
use crate::value::Value;

fn with_set<R>(kv: &Kv, s: &Session, key: &Bytes, f: impl FnOnce(Option<&Set>) -> R) -> Result<R> {
    read(kv, s, key, |v| v.map(Value::as_set).transpose().map(f))
}

pub fn sadd(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let members = args.rest();
    write(kv, s, Op::SAdd { key, members })
}

pub fn srem(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let members = args.rest();
    write(kv, s, Op::SRem { key, members })
}

pub fn sismember(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let (key, member) = (args.next_bytes()?, args.next_bytes()?);
    with_set(kv, s, &key, |set| {
        Frame::Integer(i64::from(set.is_some_and(|set| set.contains(&member))))
    })
}

pub fn smismember(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let members = args.rest();
    with_set(kv, s, &key, |set| {
        Frame::Array(
            members
                .iter()
                .map(|m| Frame::Integer(i64::from(set.is_some_and(|set| set.contains(m)))))
                .collect(),
        )
    })
}

pub fn smembers(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    with_set(kv, s, &key, |set| {
        Frame::bulk_set(
            set.into_iter()
                .flat_map(Set::iter)
                .map(Bytes::copy_from_slice)
                .collect::<Vec<_>>(),
        )
    })
}

pub fn scard(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    with_set(kv, s, &key, |set| {
        Frame::Integer(set.map_or(0, Set::len) as i64)
    })
}

/// `SPOP key [count]`. The random choice is made here and carried in the op, so the
/// write itself is deterministic.
pub fn spop(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let count = positive_count(args)?;
    let seed = rand::random();
    write(kv, s, Op::SPop { key, count, seed })
}

/// `SRANDMEMBER key [count]`.
pub fn srandmember(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let count = if args.is_empty() {
        None
    } else {
        Some(random_count(args)?)
    };
    with_set(kv, s, &key, |set| match count {
        None => set
            .and_then(|set| set.random(1).first().map(|m| bulk(m)))
            .unwrap_or(Frame::Null),
        Some(count) => Frame::bulk_array(
            set.map(|set| set.random(count))
                .unwrap_or_default()
                .into_iter()
                .map(Bytes::copy_from_slice)
                .collect::<Vec<_>>(),
        ),
    })
}

/// `SINTER`/`SUNION`/`SDIFF key...`.
pub fn algebra(kv: &Kv, s: &mut Session, args: &mut Args, algebra: Algebra) -> Result {
    let keys = args.rest();
    let members = kv.read(|ks, now| combine(ks, s.db, &keys, algebra, now))?;
    Ok(Frame::bulk_set(members))
}

/// `SINTERSTORE`/`SUNIONSTORE`/`SDIFFSTORE destination key...`.
pub fn store(kv: &Kv, s: &mut Session, args: &mut Args, algebra: Algebra) -> Result {
    let dest = args.next_bytes()?;
    let keys = args.rest();
    write(
        kv,
        s,
        Op::SStore {
            dest,
            keys,
            algebra,
        },
    )
}

pub fn smove(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let (from, to, member) = (args.next_bytes()?, args.next_bytes()?, args.next_bytes()?);
    write(kv, s, Op::SMove { from, to, member })
}

pub fn sscan(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let scan = scan_args(args)?;
    with_set(kv, s, &key, |set| {
        let mut items = Vec::new();
        let cursor = set.map_or(0, |set| {
            set.scan(scan.cursor, scan.count, scan.pattern.as_deref(), |m| {
                items.push(Bytes::copy_from_slice(m));
            })
        });
        scan_reply(cursor, items)
    })
}

//! List commands: LPUSH, RPUSH, LPUSHX, RPUSHX, LPOP, RPOP, LLEN, LRANGE, LINDEX, LSET,
//! LINSERT, LREM, LTRIM, LPOS, LMOVE, RPOPLPUSH. The blocking forms (BLPOP, BRPOP,
//! BLMOVE, BRPOPLPUSH) are in [`crate::blocking`].

use bytes::{Bytes, BytesMut};
use proto::{Args, CommandError, Frame};

use super::Result;
use super::collections::{positive_count, read, write};
use crate::server::{Kv, Session};
use crate::types::list::List;
use crate::types::ops::{Op, index_range};
use crate::value::Value;

fn with_list<R>(
    kv: &Kv,
    s: &Session,
    key: &Bytes,
    f: impl FnOnce(Option<&List>) -> Result<R>,
) -> Result<R> {
    read(kv, s, key, |v| f(v.map(Value::as_list).transpose()?))
}

/// `LPUSH`/`RPUSH`/`LPUSHX`/`RPUSHX key element...`.
pub fn push(kv: &Kv, s: &mut Session, args: &mut Args, left: bool, only_if_exists: bool) -> Result {
    let key = args.next_bytes()?;
    let values = args.rest();
    let op = Op::Push {
        key,
        values,
        left,
        only_if_exists,
    };
    write(kv, s, op)
}

/// `LPOP`/`RPOP key [count]`.
pub fn pop(kv: &Kv, s: &mut Session, args: &mut Args, left: bool) -> Result {
    let key = args.next_bytes()?;
    let count = positive_count(args)?;
    write(kv, s, Op::Pop { key, left, count })
}

pub fn llen(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    with_list(kv, s, &key, |l| {
        Ok(Frame::Integer(l.map_or(0, List::len) as i64))
    })
}

/// The reply is encoded straight from the list's chunks, under the lock, into bytes the
/// connection copies as they are ([`service::Reply::Encoded`]): no `Bytes` and no
/// [`Frame`] per element, as Redis writes `LRANGE` from its listpacks.
pub fn lrange(kv: &Kv, s: &mut Session, args: &mut Args) -> Result<Bytes> {
    let key = args.next_bytes()?;
    let (start, stop) = (args.next_int()?, args.next_int()?);
    with_list(kv, s, &key, |l| {
        let mut out = BytesMut::new();
        match l {
            None => proto::encode_bulk_array(&mut out, 0, []),
            Some(l) => {
                let (a, b) = index_range(start, stop, l.len());
                let count = b.min(l.len()).saturating_sub(a);
                out.reserve(16 + count * 16);
                proto::encode_bulk_array(&mut out, count, l.range(a, a + count));
            }
        }
        Ok(out.freeze())
    })
}

pub fn lindex(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let index = args.next_int()?;
    with_list(kv, s, &key, |l| {
        let Some(l) = l else {
            return Ok(Frame::Null);
        };
        let i = if index < 0 {
            l.len() as i64 + index
        } else {
            index
        };
        Ok(usize::try_from(i)
            .ok()
            .and_then(|i| l.get(i))
            .map(Bytes::copy_from_slice)
            .map_or(Frame::Null, Frame::Bulk))
    })
}

pub fn lset(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let index = args.next_int()?;
    let value = args.next_bytes()?;
    write(kv, s, Op::LSet { key, index, value })
}

/// `LINSERT key BEFORE|AFTER pivot element`.
pub fn linsert(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let before = match args.next_keyword().as_deref() {
        Some("BEFORE") => true,
        Some("AFTER") => false,
        _ => return Err(CommandError::Syntax),
    };
    let (pivot, value) = (args.next_bytes()?, args.next_bytes()?);
    let op = Op::LInsert {
        key,
        before,
        pivot,
        value,
    };
    write(kv, s, op)
}

pub fn lrem(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let count = args.next_int()?;
    let value = args.next_bytes()?;
    write(kv, s, Op::LRem { key, count, value })
}

pub fn ltrim(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let (start, stop) = (args.next_int()?, args.next_int()?);
    write(kv, s, Op::LTrim { key, start, stop })
}

/// `LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]`.
pub fn lpos(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let (key, element) = (args.next_bytes()?, args.next_bytes()?);
    let (mut rank, mut count, mut maxlen) = (1i64, None, 0usize);
    while let Some(option) = args.next_keyword() {
        if args.is_empty() {
            return Err(CommandError::Syntax);
        }
        let n = args.next_int()?;
        match option.as_str() {
            "RANK" => {
                if n == 0 {
                    return Err(CommandError::err(
                        "RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                    ));
                }
                if n == i64::MIN {
                    return Err(CommandError::err(
                        "value is out of range, value must between -9223372036854775807 and 9223372036854775807",
                    ));
                }
                rank = n;
            }
            "COUNT" => {
                count = Some(
                    usize::try_from(n).map_err(|_| CommandError::err("COUNT can't be negative"))?,
                );
            }
            "MAXLEN" => {
                maxlen = usize::try_from(n)
                    .map_err(|_| CommandError::err("MAXLEN can't be negative"))?;
            }
            _ => return Err(CommandError::Syntax),
        }
    }
    with_list(kv, s, &key, |l| {
        let want = match count {
            Some(0) => usize::MAX,
            Some(n) => n,
            None => 1,
        };
        let mut found = Vec::new();
        if let Some(l) = l {
            let limit = if maxlen == 0 { usize::MAX } else { maxlen };
            let skip = (rank.unsigned_abs() - 1) as usize;
            let hits = |it: &mut dyn Iterator<Item = (usize, &[u8])>| -> Vec<i64> {
                it.take(limit)
                    .filter(|(_, x)| *x == &element[..])
                    .skip(skip)
                    .take(want)
                    .map(|(i, _)| i as i64)
                    .collect()
            };
            found = if rank > 0 {
                hits(&mut l.iter().enumerate())
            } else {
                hits(&mut l.iter().enumerate().rev())
            };
        }
        Ok(match count {
            Some(_) => Frame::Array(found.into_iter().map(Frame::Integer).collect()),
            None => found.first().map_or(Frame::Null, |&i| Frame::Integer(i)),
        })
    })
}

/// `LEFT`/`RIGHT` of `LMOVE`.
pub fn side(args: &mut Args) -> Result<bool> {
    match args.next_keyword().as_deref() {
        Some("LEFT") => Ok(true),
        Some("RIGHT") => Ok(false),
        _ => Err(CommandError::Syntax),
    }
}

/// `LMOVE source destination LEFT|RIGHT LEFT|RIGHT`, and `RPOPLPUSH source destination`
/// (`rpoplpush`: RIGHT LEFT).
pub fn lmove(kv: &Kv, s: &mut Session, args: &mut Args, rpoplpush: bool) -> Result {
    let (from, to) = (args.next_bytes()?, args.next_bytes()?);
    let (from_left, to_left) = if rpoplpush {
        (false, true)
    } else {
        (side(args)?, side(args)?)
    };
    let op = Op::LMove {
        from,
        to,
        from_left,
        to_left,
    };
    write(kv, s, op)
}

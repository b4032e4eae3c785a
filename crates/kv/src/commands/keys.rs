//! Generic key commands: DEL, EXISTS, TYPE, RENAME, KEYS, SCAN, RANDOMKEY, FLUSHDB,
//! SWAPDB, COPY, MOVE, DUMP/RESTORE.

use bytes::Bytes;
use proto::{Args, CommandError, Frame};

use super::{Result, db_index, reply};
use crate::codec;
use crate::keyspace::{DATABASES, Mutation};
use crate::server::{Kv, Session};

/// `DEL`/`UNLINK key...`: the number of keys removed.
pub fn del(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let keys = args.rest();
    kv.write(s, Mutation::Del { keys }).map(reply)
}

/// `EXISTS`/`TOUCH key...`: how many of the keys exist (a repeated key counts again).
pub fn exists(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let keys = args.rest();
    let n = kv.read(|ks, now| ks.count_existing(s.db, &keys, now));
    Ok(Frame::Integer(n))
}

pub fn type_of(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let name = kv.read(|ks, now| ks.type_of(s.db, &key, now));
    Ok(Frame::simple(name))
}

/// `RENAME`/`RENAMENX from to`.
pub fn rename(kv: &Kv, s: &mut Session, args: &mut Args, only_if_absent: bool) -> Result {
    let (from, to) = (args.next_bytes()?, args.next_bytes()?);
    let m = Mutation::Rename {
        from,
        to,
        only_if_absent,
    };
    kv.write(s, m).map(reply)
}

/// `KEYS pattern`.
pub fn keys(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let pattern = args.next_bytes()?;
    let keys = kv.read(|ks, now| ks.keys(s.db, &pattern, now));
    Ok(Frame::bulk_array(keys))
}

/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`.
pub fn scan(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let cursor = args.next_bytes()?;
    let cursor = parse_cursor(&cursor).ok_or_else(|| CommandError::err("invalid cursor"))?;
    let (mut pattern, mut count, mut type_name) = (None, 10usize, None);
    while let Some(option) = args.next_keyword() {
        match option.as_str() {
            "MATCH" => pattern = Some(args.next_bytes().map_err(|_| CommandError::Syntax)?),
            "COUNT" => {
                let n = args.next_int().map_err(|e| match e {
                    CommandError::NotInteger => e,
                    _ => CommandError::Syntax,
                })?;
                if n < 1 {
                    return Err(CommandError::Syntax);
                }
                count = usize::try_from(n).unwrap_or(usize::MAX);
            }
            "TYPE" => type_name = Some(args.next_str().map_err(|_| CommandError::Syntax)?),
            _ => return Err(CommandError::Syntax),
        }
    }
    let page = kv.read(|ks, now| {
        ks.scan(
            s.db,
            cursor,
            count,
            pattern.as_deref(),
            type_name.as_deref(),
            now,
        )
    });
    Ok(Frame::Array(vec![
        Frame::Bulk(Bytes::from(page.cursor.to_string())),
        Frame::bulk_array(page.keys),
    ]))
}

/// A cursor as Redis reads it (`strtoul`): an unsigned number, where a leading `-`
/// wraps around (`-1` is the largest cursor, which ends the iteration at once).
fn parse_cursor(text: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(text).ok()?;
    match text.strip_prefix('-') {
        Some(digits) => digits.parse::<u64>().ok().map(u64::wrapping_neg),
        None => text.parse().ok(),
    }
}

pub fn randomkey(kv: &Kv, s: &mut Session) -> Result {
    let key = kv.read(|ks, now| ks.random_key(s.db, now, rand::random::<u64>));
    Ok(key.map_or(Frame::Null, Frame::Bulk))
}

/// `FLUSHDB [ASYNC|SYNC]` and `FLUSHALL [ASYNC|SYNC]` (both are immediate here: dropping
/// the maps is fast, and the disk side is a pointer swap).
pub fn flush(kv: &Kv, s: &mut Session, args: &mut Args, all: bool) -> Result {
    let mode = args.rest();
    let valid = match mode.as_slice() {
        [] => true,
        [word] => word.eq_ignore_ascii_case(b"ASYNC") || word.eq_ignore_ascii_case(b"SYNC"),
        _ => false,
    };
    if !valid {
        return Err(CommandError::Syntax);
    }
    let m = if all {
        Mutation::FlushAll
    } else {
        Mutation::FlushDb
    };
    kv.write(s, m).map(reply)
}

/// `SWAPDB a b`: every client of `a` now sees `b`'s keys, instantly.
pub fn swapdb(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let index = |arg: Bytes, which: &str| {
        let n = proto::decode::parse_int(&arg)
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| CommandError::err(format!("invalid {which} DB index")))?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n < DATABASES)
            .ok_or_else(|| CommandError::err("DB index is out of range"))
    };
    let a = index(args.next_bytes()?, "first")?;
    let b = index(args.next_bytes()?, "second")?;
    kv.write(s, Mutation::SwapDb { a, b }).map(reply)
}

/// `COPY source destination [DB db] [REPLACE]`.
pub fn copy(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let (from, to) = (args.next_bytes()?, args.next_bytes()?);
    let (mut to_db, mut replace) = (s.db, false);
    while let Some(option) = args.next_keyword() {
        match option.as_str() {
            "REPLACE" => replace = true,
            "DB" if !args.is_empty() => to_db = db_index(args.next_bytes())?,
            _ => return Err(CommandError::Syntax),
        }
    }
    let m = Mutation::Copy {
        from,
        to,
        to_db,
        replace,
    };
    kv.write(s, m).map(reply)
}

/// `MOVE key db`: 1 if the key moved to `db`, 0 if it is missing here or exists there.
pub fn move_key(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let to_db = db_index(args.next_bytes())?;
    kv.write(s, Mutation::Move { key, to_db }).map(reply)
}

/// `DUMP key`: the value in kv's own checksummed format (see [`codec`]).
pub fn dump(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let entry = kv.read(|ks, now| ks.entry(s.db, &key, now));
    Ok(entry.map_or(Frame::Null, |e| {
        Frame::Bulk(Bytes::from(codec::dump(&e.value)))
    }))
}

/// `RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f]`; `ttl` 0 means none.
pub fn restore(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let ttl = args.next_bytes()?;
    let payload = args.next_bytes()?;
    let (mut replace, mut absolute) = (false, false);
    while let Some(option) = args.next_keyword() {
        match option.as_str() {
            "REPLACE" => replace = true,
            "ABSTTL" => absolute = true,
            // Accepted for compatibility; kv keeps no LRU/LFU data.
            "IDLETIME" if !args.is_empty() => {
                if args.next_int()? < 0 {
                    return Err(CommandError::err("Invalid IDLETIME value, must be >= 0"));
                }
            }
            "FREQ" if !args.is_empty() => {
                if !(0..=255).contains(&args.next_int()?) {
                    return Err(CommandError::err(
                        "Invalid FREQ value, must be >= 0 and <= 255",
                    ));
                }
            }
            _ => return Err(CommandError::Syntax),
        }
    }
    // Redis checks, in this order: options, an existing key, the TTL, the payload.
    if !replace && kv.read(|ks, now| ks.count_existing(s.db, std::slice::from_ref(&key), now)) > 0 {
        return Err(CommandError::coded(
            "BUSYKEY",
            "Target key name already exists.",
        ));
    }
    let ttl = proto::decode::parse_int(&ttl).ok_or(CommandError::NotInteger)?;
    if ttl < 0 {
        return Err(CommandError::err("Invalid TTL value, must be >= 0"));
    }
    let value = codec::undump(&payload)
        .map_err(|_| CommandError::err("DUMP payload version or checksum are wrong"))?;
    let expires_at = match ttl {
        0 => None,
        t if absolute => Some(t as u64),
        t => Some((t as u64).saturating_add(kv.now())),
    };
    let m = Mutation::Restore {
        key,
        value,
        expires_at,
        replace,
    };
    kv.write(s, m).map(reply)
}

//! Helpers shared by the hash, list, set and sorted-set command modules.

use bytes::Bytes;
use proto::{Args, CommandError, Frame};

use super::Result;
use crate::keyspace::{Keyspace, Mutation};
use crate::server::{Kv, Session};
use crate::types::ops::Op;
use crate::value::Value;

/// A bulk reply holding a copy of an element (packed collections hand out slices).
pub fn bulk(element: &[u8]) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(element))
}

/// Sends a collection write down the one write path.
pub fn write(kv: &Kv, s: &mut Session, op: Op) -> Result {
    kv.write(s, Mutation::Collection(op)).map(super::reply)
}

/// Runs `f` on the live value of `key` (`None` if missing), type errors included.
pub fn read<R>(
    kv: &Kv,
    s: &Session,
    key: &Bytes,
    f: impl FnOnce(Option<&Value>) -> Result<R>,
) -> Result<R> {
    kv.read(|ks: &mut Keyspace, now| f(ks.value(s.db, key, now)))
}

/// An integer argument already taken from the cursor, parsed as strictly as Redis.
pub fn int_arg(b: &[u8]) -> Result<i64> {
    proto::decode::parse_int(b).ok_or(CommandError::NotInteger)
}

/// A count argument that must not be negative (`LPOP key count`, `SPOP`, `ZPOPMIN`).
pub fn positive_count(args: &mut Args) -> Result<Option<usize>> {
    if args.is_empty() {
        return Ok(None);
    }
    let n = args.next_int()?;
    usize::try_from(n)
        .map(Some)
        .map_err(|_| CommandError::err("value is out of range, must be positive"))
}

/// `HSCAN`/`SSCAN`/`ZSCAN`'s `cursor [MATCH pattern] [COUNT count]`.
pub struct ScanArgs {
    pub cursor: u64,
    pub pattern: Option<Bytes>,
    pub count: usize,
}

pub fn scan_args(args: &mut Args) -> Result<ScanArgs> {
    let cursor = args.next_bytes()?;
    let cursor = std::str::from_utf8(&cursor)
        .ok()
        .and_then(|c| c.parse::<u64>().ok())
        .ok_or_else(|| CommandError::err("invalid cursor"))?;
    let mut out = ScanArgs {
        cursor,
        pattern: None,
        count: 10,
    };
    while let Some(option) = args.next_keyword() {
        match option.as_str() {
            "MATCH" => out.pattern = Some(args.next_bytes().map_err(|_| CommandError::Syntax)?),
            "COUNT" => {
                let n = args.next_int().map_err(|e| match e {
                    CommandError::NotInteger => e,
                    _ => CommandError::Syntax,
                })?;
                if n < 1 {
                    return Err(CommandError::Syntax);
                }
                out.count = n as usize;
            }
            _ => return Err(CommandError::Syntax),
        }
    }
    Ok(out)
}

/// A `*SCAN` reply: the next cursor and the items.
pub fn scan_reply(cursor: u64, items: Vec<Bytes>) -> Frame {
    Frame::Array(vec![
        Frame::Bulk(Bytes::from(cursor.to_string())),
        Frame::bulk_array(items),
    ])
}

/// The `count` argument of `SRANDMEMBER`/`HRANDFIELD`/`ZRANDMEMBER`: Redis's range check.
pub fn random_count(args: &mut Args) -> Result<i64> {
    let n = args.next_int()?;
    if !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&n) {
        return Err(CommandError::err(format!(
            "value is out of range, value must between {} and {}",
            -(i64::MAX / 2),
            i64::MAX / 2
        )));
    }
    Ok(n)
}

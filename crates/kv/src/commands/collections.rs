//! Helpers shared by the hash, list, set and sorted-set command modules.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use proto::{Args, CommandError, Frame};
use rand::Rng;
use rand::seq::index;

use super::Result;
use crate::keyspace::{Keyspace, Mutation, Slot};
use crate::server::{Kv, Session};
use crate::types::ops::Op;
use crate::types::pick;
use crate::value::Value;

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

/// `SRANDMEMBER`/`HRANDFIELD`/`ZRANDMEMBER key count`: a positive count gives distinct
/// elements (all of them if it is not smaller than the collection), a negative one
/// `|count|` independent picks that may repeat. Small requests pick random positions in
/// the hash order (O(log n) each); large ones sample the whole collection.
pub fn random_entries<'a, V>(map: &'a BTreeMap<Slot, V>, count: i64) -> Vec<(&'a Bytes, &'a V)> {
    let mut rng = rand::thread_rng();
    let entry = |(slot, v): (&'a Slot, &'a V)| (slot.key(), v);
    if map.is_empty() {
        return Vec::new();
    }
    if count < 0 {
        return (0..count.unsigned_abs())
            .filter_map(|_| pick(map, rng.r#gen()).map(entry))
            .collect();
    }
    let n = (count as usize).min(map.len());
    if n == map.len() {
        return map.iter().map(entry).collect();
    }
    if n * 3 < map.len() {
        let mut seen = HashSet::with_capacity(n);
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            if let Some((slot, v)) = pick(map, rng.r#gen())
                && seen.insert(slot.hash())
            {
                out.push((slot.key(), v));
            }
        }
        return out;
    }
    let all: Vec<_> = map.iter().map(entry).collect();
    index::sample(&mut rng, all.len(), n)
        .into_iter()
        .map(|i| all[i])
        .collect()
}

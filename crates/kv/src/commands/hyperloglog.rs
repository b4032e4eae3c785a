//! HyperLogLog commands: PFADD, PFCOUNT, PFMERGE (see [`crate::types::hyperloglog`]
//! for the estimator and the format).

use proto::{Args, Frame};

use super::{Result, reply};
use crate::keyspace::Mutation;
use crate::server::{Kv, Session};
use crate::types::bitwrite::{BitWrite, merged_registers};
use crate::types::hyperloglog as hll;

/// `PFADD key [element ...]`: 1 if the estimate may have changed (or the key was made).
pub fn pfadd(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let elements = args.rest();
    kv.write(s, Mutation::Bits(BitWrite::PfAdd { key, elements }))
        .map(reply)
}

/// `PFCOUNT key [key ...]`: the estimate for one sketch, or for the union of several
/// (computed on a merged copy; no key changes).
///
/// Like Redis, a single-key count is cached in the sketch's header: a valid cache is
/// answered by a read; a stale one is counted and stored through the write path (so
/// the disk and the replicas get the same bytes as Redis's). A replica counts without
/// caching: it never writes on its own.
///
/// The one-key count, every `PFCOUNT` of a dashboard's counter, is read from the sketch
/// where it lies: a sketch of a thousand elements is a few kilobytes in a box of its
/// own, which a copy (`string_of`) put in a fresh allocation on every call only to
/// read eight bytes of its header; and the key is taken alone, not in a vector.
pub fn pfcount(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    if !args.is_empty() {
        let mut keys = vec![key];
        keys.extend(args.rest());
        let regs = kv.read(|ks, now| merged_registers(ks, s.db, &keys, now))?;
        return Ok(Frame::Integer(hll::count(&regs) as i64));
    }
    let answered = kv.read(|ks, now| -> Result<Option<u64>> {
        let follower = ks.is_follower();
        let Some(value) = ks.value(s.db, &key, now) else {
            return Ok(Some(0));
        };
        let bytes = value.as_string()?;
        if let Some(cached) = hll::cached(bytes) {
            return Ok(Some(cached));
        }
        if !follower {
            return Ok(None);
        }
        let regs = hll::registers(bytes).map_err(|e| e.error())?;
        Ok(Some(hll::count(&regs)))
    })?;
    match answered {
        Some(count) => Ok(Frame::Integer(count as i64)),
        None => kv
            .write(s, Mutation::Bits(BitWrite::PfCount { key }))
            .map(reply),
    }
}

/// `PFMERGE destkey [sourcekey ...]`: stores the union of the sketches in `destkey`.
pub fn pfmerge(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let dest = args.next_bytes()?;
    let sources = args.rest();
    kv.write(s, Mutation::Bits(BitWrite::PfMerge { dest, sources }))
        .map(reply)
}

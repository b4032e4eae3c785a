//! HyperLogLog commands: PFADD, PFCOUNT, PFMERGE (see [`crate::types::hyperloglog`]
//! for the estimator and the format).

use proto::{Args, Frame};

use super::{Result, reply};
use crate::keyspace::Mutation;
use crate::server::{Kv, Session};
use crate::types::bitwrite::{BitWrite, merged_registers, string_of};
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
pub fn pfcount(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let keys = args.rest();
    let answered = kv.read(|ks, now| -> Result<Option<u64>> {
        if let [key] = keys.as_slice() {
            let Some(bytes) = string_of(ks, s.db, key, now)? else {
                return Ok(Some(0));
            };
            if let Some(cached) = hll::cached(&bytes) {
                return Ok(Some(cached));
            }
            if !ks.is_follower() {
                return Ok(None);
            }
            let regs = hll::registers(&bytes).map_err(|e| e.error())?;
            return Ok(Some(hll::count(&regs)));
        }
        merged_registers(ks, s.db, &keys, now).map(|regs| Some(hll::count(&regs)))
    })?;
    match (answered, keys.into_iter().next()) {
        (Some(count), _) => Ok(Frame::Integer(count as i64)),
        (None, Some(key)) => kv
            .write(s, Mutation::Bits(BitWrite::PfCount { key }))
            .map(reply),
        (None, None) => Ok(Frame::Integer(0)),
    }
}

/// `PFMERGE destkey [sourcekey ...]`: stores the union of the sketches in `destkey`.
pub fn pfmerge(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let dest = args.next_bytes()?;
    let sources = args.rest();
    kv.write(s, Mutation::Bits(BitWrite::PfMerge { dest, sources }))
        .map(reply)
}

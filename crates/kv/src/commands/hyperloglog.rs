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
/// Redis writes the single-key estimate back into the sketch's header as a cache; we
/// only read a cache that is already valid (a sketch copied from Redis) and otherwise
/// compute the estimate, so `PFCOUNT` stays a read that replicas can serve.
pub fn pfcount(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let keys = args.rest();
    let count = kv.read(|ks, now| {
        if let [key] = keys.as_slice() {
            let Some(bytes) = string_of(ks, s.db, key, now)? else {
                return Ok(0);
            };
            if let Some(cached) = hll::cached(&bytes) {
                return Ok(cached);
            }
            let regs = hll::registers(&bytes).map_err(|e| e.error())?;
            return Ok(hll::count(&regs));
        }
        merged_registers(ks, s.db, &keys, now).map(|regs| hll::count(&regs))
    })?;
    Ok(Frame::Integer(count as i64))
}

/// `PFMERGE destkey [sourcekey ...]`: stores the union of the sketches in `destkey`.
pub fn pfmerge(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let dest = args.next_bytes()?;
    let sources = args.rest();
    kv.write(s, Mutation::Bits(BitWrite::PfMerge { dest, sources }))
        .map(reply)
}

//! The writes that change a string bit by bit: `SETBIT`, `BITFIELD`, `BITOP`, `PFADD`
//! and `PFMERGE`, applied through the keyspace's one write path ([`Keyspace::apply`] →
//! [`apply`] → [`Keyspace::update`] or [`Keyspace::store`]), so the journal, the disk
//! and the replicas see the key's new value like any other write.
//!
//! A bitmap or a HyperLogLog is an ordinary string ([`super::bitmap`],
//! [`super::hyperloglog`]); only the arithmetic is new. A write that changes nothing
//! (`SETBIT` to the bit already there, a `PFADD` that grows no register) journals
//! nothing, as Redis propagates nothing for it.

use bytes::{Bytes, BytesMut};
use proto::CommandError;

use super::bitfield::{self, FieldOp};
use super::bitmap::{self, BitOp};
use super::edit::Delta;
use super::hyperloglog as hll;
use super::own;
use crate::keyspace::{Keyspace, Outcome};
use crate::value::{Entry, Value};

/// One bit-level write.
#[derive(Debug, Clone, PartialEq)]
pub enum BitWrite {
    SetBit {
        key: Bytes,
        offset: u64,
        on: bool,
    },
    /// A `BITFIELD` with at least one `SET` or `INCRBY` (reads alone are not writes).
    BitField {
        key: Bytes,
        ops: Vec<FieldOp>,
    },
    BitOp {
        op: BitOp,
        dest: Bytes,
        sources: Vec<Bytes>,
    },
    PfAdd {
        key: Bytes,
        elements: Vec<Bytes>,
    },
    PfMerge {
        dest: Bytes,
        sources: Vec<Bytes>,
    },
    /// A single-key `PFCOUNT` whose sketch has a stale cache: counts, and stores the
    /// count in the sketch's header as Redis does, so the next `PFCOUNT` is a read.
    PfCount {
        key: Bytes,
    },
}

impl BitWrite {
    /// Can this write grow memory? (Caching a count never does.)
    pub fn may_grow(&self) -> bool {
        !matches!(self, BitWrite::PfCount { .. })
    }
}

fn new_string() -> Value {
    Value::String(Default::default())
}

fn new_sketch() -> Value {
    Value::String(hll::empty().into())
}

/// Changes the string's bytes where they are, keeping its length: no allocation and no
/// copy (see [`crate::value::SmallBytes::edit`]). Only a write that grows the string needs
/// [`take_bytes`].
fn edit_bytes<R>(value: &mut Value, f: impl FnOnce(&mut [u8]) -> R) -> Result<R, CommandError> {
    match value {
        Value::String(b) => Ok(b.edit(f)),
        _ => Err(CommandError::WrongType),
    }
}

/// The string's bytes to change and grow: no copy when nothing else shares them (a short
/// string is copied back into its place afterwards, when the caller stores the result).
fn take_bytes(value: &mut Value) -> Result<BytesMut, CommandError> {
    value.as_string()?;
    let Value::String(b) = std::mem::replace(value, new_string()) else {
        return Err(CommandError::WrongType);
    };
    Ok(b.into_bytes_mut())
}

/// The value of a string key for reading, `None` if missing (lazy expiry applied).
pub fn string_of(
    ks: &mut Keyspace,
    db: usize,
    key: &Bytes,
    now: u64,
) -> Result<Option<Bytes>, CommandError> {
    match ks.value(db, key, now) {
        None => Ok(None),
        Some(v) => v.as_string().map(|s| Some(s.to_bytes())),
    }
}

/// The register-wise maximum of the sketches under `keys` (missing keys count as empty
/// sketches): the union `PFMERGE` stores and a multi-key `PFCOUNT` counts.
pub fn merged_registers(
    ks: &mut Keyspace,
    db: usize,
    keys: &[Bytes],
    now: u64,
) -> Result<Vec<u8>, CommandError> {
    let mut max = vec![0u8; hll::REGISTERS];
    for key in keys {
        let Some(bytes) = string_of(ks, db, key, now)? else {
            continue;
        };
        let regs = hll::registers(&bytes).map_err(|e| e.error())?;
        for (m, r) in max.iter_mut().zip(regs) {
            *m = (*m).max(r);
        }
    }
    Ok(max)
}

/// Applies one bit-level write. See the module docs.
pub fn apply(
    ks: &mut Keyspace,
    db: usize,
    op: BitWrite,
    now: u64,
) -> Result<Outcome, CommandError> {
    match op {
        BitWrite::SetBit { key, offset, on } => {
            let old = ks.update(db, &key, now, Some(new_string), |v, _| {
                let current = v.as_string()?;
                let byte = (offset >> 3) as usize;
                let old = bitmap::get_bit(current, offset);
                if byte < current.len() && (old == 1) == on {
                    return Ok((old, Delta::Unchanged));
                }
                if byte < current.len() {
                    edit_bytes(v, |bytes| bitmap::set_bit(bytes, offset, on))?;
                } else {
                    let mut bytes = take_bytes(v)?;
                    bytes.resize(byte + 1, 0);
                    bitmap::set_bit(&mut bytes, offset, on);
                    *v = Value::String(bytes.freeze().into());
                }
                Ok((old, Delta::Whole))
            })?;
            Ok(Outcome::Integer(i64::from(old.unwrap_or(0))))
        }
        BitWrite::BitField { key, ops } => {
            let needed = bitfield::needed_len(&ops).unwrap_or(0);
            let replies = ks.update(db, &key, now, Some(new_string), |v, _| {
                let grown = v.as_string()?.len() < needed;
                let replies = if grown {
                    let mut bytes = take_bytes(v)?;
                    bytes.resize(needed, 0);
                    let replies = bitfield::run(&mut bytes, &ops);
                    *v = Value::String(bytes.freeze().into());
                    replies
                } else {
                    edit_bytes(v, |bytes| bitfield::run(bytes, &ops))?
                };
                // Redis counts a change for every write `OVERFLOW FAIL` did not refuse.
                let wrote = ops
                    .iter()
                    .zip(&replies)
                    .any(|(op, r)| !matches!(op, FieldOp::Get { .. }) && r.is_some());
                let changed = grown || wrote;
                let delta = if changed {
                    Delta::Whole
                } else {
                    Delta::Unchanged
                };
                Ok((replies, delta))
            })?;
            let replies = replies.unwrap_or_default();
            Ok(Outcome::Array(
                replies
                    .into_iter()
                    .map(|r| r.map_or(Outcome::Nil, Outcome::Integer))
                    .collect(),
            ))
        }
        BitWrite::BitOp { op, dest, sources } => {
            let mut values = Vec::with_capacity(sources.len());
            for key in &sources {
                values.push(string_of(ks, db, key, now)?.unwrap_or_default());
            }
            let slices: Vec<&[u8]> = values.iter().map(|b| &b[..]).collect();
            let result = bitmap::combine(op, &slices);
            let len = result.len() as i64;
            if result.is_empty() {
                if ks.exists(db, &dest, now) {
                    ks.remove(db, &dest);
                }
            } else {
                // BITOP replaces the destination, TTL included, as `SET` does.
                let entry = Entry::new(Value::String(result.into()), None);
                ks.store(db, own(&dest), entry);
            }
            Ok(Outcome::Integer(len))
        }
        BitWrite::PfAdd { key, elements } => {
            // With elements, a missing key is made as an empty sketch, which the first
            // element always grows: whether the key was there needs no lookup of its own.
            let created = elements.is_empty() && !ks.exists(db, &key, now);
            let make = if elements.is_empty() {
                new_string
            } else {
                new_sketch
            };
            let grew = ks.update(db, &key, now, Some(make), |v, _| {
                let current = v.as_string()?;
                if !created && hll::is_dense(current) {
                    // Changed in place: no copy of the 12 KiB of registers, and none at
                    // all when no register grows.
                    if !elements.iter().any(|e| hll::would_grow(current, e)) {
                        return Ok((false, Delta::Unchanged));
                    }
                    edit_bytes(v, |dense| {
                        for element in &elements {
                            hll::add(dense, element);
                        }
                        hll::invalidate(dense);
                    })?;
                    return Ok((true, Delta::Whole));
                }
                let mut dense = if current.is_empty() && created {
                    hll::empty()
                } else {
                    hll::to_dense(current).map_err(|e| e.error())?
                };
                let mut grew = false;
                for element in &elements {
                    grew |= hll::add(&mut dense, element);
                }
                if !grew && !created {
                    return Ok((false, Delta::Unchanged));
                }
                if grew {
                    hll::invalidate(&mut dense);
                }
                *v = Value::String(dense.into());
                Ok((grew, Delta::Whole))
            })?;
            Ok(Outcome::Integer(i64::from(created || grew == Some(true))))
        }
        BitWrite::PfCount { key } => {
            let count = ks.update(db, &key, now, None, |v, _| {
                let current = v.as_string()?;
                if let Some(cached) = hll::cached(current) {
                    return Ok((cached, Delta::Unchanged));
                }
                let count = hll::count(&hll::registers(current).map_err(|e| e.error())?);
                edit_bytes(v, |sketch| hll::set_cached(sketch, count))?;
                Ok((count, Delta::Whole))
            })?;
            Ok(Outcome::Integer(count.unwrap_or(0) as i64))
        }
        BitWrite::PfMerge { dest, sources } => {
            // The destination is one of the inputs: PFMERGE never loses what it held.
            let mut keys = Vec::with_capacity(sources.len() + 1);
            keys.push(dest.clone());
            keys.extend(sources);
            let max = merged_registers(ks, db, &keys, now)?;
            ks.update(db, &dest, now, Some(new_string), |v, _| {
                *v = Value::String(hll::from_registers(&max).into());
                Ok(((), Delta::Whole))
            })?;
            Ok(Outcome::Ok)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setbit(ks: &mut Keyspace, key: &Bytes, offset: u64, on: bool) -> Outcome {
        let op = BitWrite::SetBit {
            key: key.clone(),
            offset,
            on,
        };
        apply(ks, 0, op, 0).unwrap()
    }

    /// A `SETBIT` inside the string changes it where it is (inline, boxed and shared
    /// bitmaps alike); the bytes a reader took before stay as they were, and the journal
    /// records the key's new value.
    #[test]
    fn setbit_in_place_spares_readers_and_journals_the_new_value() {
        for len in [3u64, 100, 2000] {
            let mut ks = Keyspace::new(true);
            let key = Bytes::from_static(b"bits");
            let last = len * 8 - 1;
            assert_eq!(setbit(&mut ks, &key, last, true), Outcome::Integer(0));
            let before = string_of(&mut ks, 0, &key, 0).unwrap().unwrap();
            ks.drain_changes();
            assert_eq!(setbit(&mut ks, &key, 0, true), Outcome::Integer(0));
            assert_eq!(setbit(&mut ks, &key, last, false), Outcome::Integer(1));
            let after = string_of(&mut ks, 0, &key, 0).unwrap().unwrap();
            assert_eq!((before[0], before[before.len() - 1]), (0, 1));
            assert_eq!((after[0], after[after.len() - 1]), (0x80, 0));
            assert_eq!(after.len() as u64, len);
            let (changes, _) = ks.drain_changes();
            let Some(crate::keyspace::Change::Put { entry, .. }) = changes.last() else {
                panic!("expected the key's new record, got {changes:?}");
            };
            assert_eq!(entry.value.as_string().unwrap().to_bytes(), after);
            // The bit already there: nothing changes, nothing is journaled.
            assert_eq!(setbit(&mut ks, &key, 0, true), Outcome::Integer(1));
            assert!(ks.drain_changes().0.is_empty());
        }
    }
}

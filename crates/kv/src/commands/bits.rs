//! Bitmap commands: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD, BITFIELD_RO.
//!
//! A bitmap is a string (see [`crate::types::bitmap`]); reads run against the keyspace,
//! writes go down the one write path as a [`BitWrite`].

use bytes::Bytes;
use proto::{Args, CommandError, Frame};

use super::{Result, reply};
use crate::keyspace::Mutation;
use crate::server::{Kv, Session};
use crate::types::bitfield::{self, FieldOp};
use crate::types::bitmap::{self, BitOp, Unit};
use crate::types::bitwrite::{BitWrite, string_of};

fn write(kv: &Kv, s: &mut Session, op: BitWrite) -> Result {
    kv.write(s, Mutation::Bits(op)).map(reply)
}

/// The string under `key` (`None`: missing), `WRONGTYPE` for another type.
fn read_string(kv: &Kv, s: &Session, key: &Bytes) -> Result<Option<Bytes>> {
    kv.read(|ks, now| string_of(ks, s.db, key, now))
}

/// `SETBIT key offset 0|1`: the bit's old value.
pub fn setbit(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let offset = bitmap::parse_offset(args.next_word()?, None)?;
    let on = match proto::decode::parse_int(args.next_word()?) {
        Some(0) => false,
        Some(1) => true,
        _ => return Err(CommandError::err("bit is not an integer or out of range")),
    };
    write(kv, s, BitWrite::SetBit { key, offset, on })
}

/// `GETBIT key offset`: 0 past the end or for a missing key.
pub fn getbit(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let offset = bitmap::parse_offset(args.next_word()?, None)?;
    let value = read_string(kv, s, &key)?.unwrap_or_default();
    Ok(Frame::Integer(i64::from(bitmap::get_bit(&value, offset))))
}

/// `BITCOUNT key [start end [BYTE|BIT]]`. Like Redis 7.0, a missing key answers 0
/// before the range is read.
pub fn bitcount(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let Some(value) = read_string(kv, s, &key)? else {
        return Ok(Frame::Integer(0));
    };
    let range = match args.remaining() {
        0 => None,
        2 | 3 => {
            let (start, end) = (args.next_int()?, args.next_int()?);
            let unit = if args.is_empty() {
                Unit::Byte
            } else {
                Unit::parse(&args.next_bytes()?)?
            };
            Some((start, end, unit))
        }
        _ => return Err(CommandError::Syntax),
    };
    Ok(Frame::Integer(bitmap::count(&value, range)))
}

/// `BITPOS key bit [start [end [BYTE|BIT]]]`. A missing key is all zeros: the first 0
/// is at 0 and there is no 1.
pub fn bitpos(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let bit = match args.next_int()? {
        0 => 0,
        1 => 1,
        _ => return Err(CommandError::err("The bit argument must be 1 or 0.")),
    };
    let Some(value) = read_string(kv, s, &key)? else {
        return Ok(Frame::Integer(if bit == 1 { -1 } else { 0 }));
    };
    let words = args.rest();
    if words.len() > 3 {
        return Err(CommandError::Syntax);
    }
    let int = |w: &Bytes| proto::decode::parse_int(w).ok_or(CommandError::NotInteger);
    // Redis reads start, then the unit, then end.
    let start = words.first().map(int).transpose()?.unwrap_or(0);
    let unit = words.get(2).map_or(Ok(Unit::Byte), |w| Unit::parse(w))?;
    let end = words.get(1).map(int).transpose()?;
    Ok(Frame::Integer(bitmap::position(
        &value, bit, start, end, unit,
    )))
}

/// `BITOP AND|OR|XOR|NOT destkey key...`: the length of the stored result.
pub fn bitop(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let op = BitOp::parse(&args.next_bytes()?)?;
    let dest = args.next_bytes()?;
    let sources = args.rest();
    if op == BitOp::Not && sources.len() != 1 {
        return Err(CommandError::err(
            "BITOP NOT must be called with a single source key.",
        ));
    }
    write(kv, s, BitWrite::BitOp { op, dest, sources })
}

/// `BITFIELD key [GET type offset] [SET type offset value] [INCRBY type offset incr]
/// [OVERFLOW WRAP|SAT|FAIL] ...` and `BITFIELD_RO key [GET type offset] ...`
/// (`read_only`). Only GETs: a read, which creates nothing.
pub fn bitfield(kv: &Kv, s: &mut Session, args: &mut Args, read_only: bool) -> Result {
    let key = args.next_bytes()?;
    let ops = bitfield::parse(&args.rest())?;
    if bitfield::needed_len(&ops).is_none() {
        let value = read_string(kv, s, &key)?.unwrap_or_default();
        let values = ops.iter().filter_map(|op| match *op {
            FieldOp::Get { ty, offset } => Some(Frame::Integer(bitfield::read(&value, ty, offset))),
            _ => None,
        });
        return Ok(Frame::Array(values.collect()));
    }
    if read_only {
        return Err(CommandError::err(
            "BITFIELD_RO only supports the GET subcommand",
        ));
    }
    write(kv, s, BitWrite::BitField { key, ops })
}

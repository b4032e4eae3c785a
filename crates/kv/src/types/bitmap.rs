//! Bitmaps: a string read as an array of bits.
//!
//! Redis has no bitmap type. `SETBIT`, `BITCOUNT` and friends address the bits of an
//! ordinary string, most significant bit first: bit 0 is the high bit of byte 0, bit 8
//! the high bit of byte 1. A string of N bytes is a bitmap of 8N flags, which is why a
//! "daily active users" bitmap of ten million users costs 1.2 MB: one bit per user id.
//! Bits past the end of the string read as 0; setting one pads the string with zero
//! bytes, so the largest offset is bounded by the largest string (512 MiB, 2^32 bits).
//!
//! Everything here is a pure function on bytes; [`super::bitwrite`] applies the writes
//! through the keyspace's write path.

use proto::CommandError;

use crate::keyspace::MAX_STRING;

/// The error Redis gives for a bit offset that does not parse or is out of range.
pub fn offset_error() -> CommandError {
    CommandError::err("bit offset is not an integer or out of range")
}

/// A bit offset argument: non-negative and inside the largest string. `#N` (BITFIELD
/// only, `width` given) means the N-th field of `width` bits.
pub fn parse_offset(arg: &[u8], width: Option<u32>) -> Result<u64, CommandError> {
    let (digits, scale) = match (arg.first(), width) {
        (Some(b'#'), Some(width)) => (&arg[1..], u64::from(width)),
        _ => (arg, 1),
    };
    proto::decode::parse_int(digits)
        .and_then(|n| u64::try_from(n).ok())
        .and_then(|n| n.checked_mul(scale))
        .filter(|&n| (n >> 3) < MAX_STRING as u64)
        .ok_or_else(offset_error)
}

/// The bit at `offset` (0 past the end).
pub fn get_bit(bytes: &[u8], offset: u64) -> u8 {
    let byte = (offset >> 3) as usize;
    bytes.get(byte).map_or(0, |b| (b >> (7 - (offset & 7))) & 1)
}

/// Sets the bit at `offset` in a buffer already long enough; returns the old bit.
pub fn set_bit(bytes: &mut [u8], offset: u64, on: bool) -> u8 {
    let byte = (offset >> 3) as usize;
    let mask = 1u8 << (7 - (offset & 7));
    let old = u8::from(bytes[byte] & mask != 0);
    if on {
        bytes[byte] |= mask;
    } else {
        bytes[byte] &= !mask;
    }
    old
}

/// How `BITCOUNT`/`BITPOS` read `start` and `end`: as byte or as bit positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Byte,
    Bit,
}

impl Unit {
    /// `BYTE` or `BIT`; anything else is a syntax error.
    pub fn parse(word: &[u8]) -> Result<Unit, CommandError> {
        if word.eq_ignore_ascii_case(b"byte") {
            Ok(Unit::Byte)
        } else if word.eq_ignore_ascii_case(b"bit") {
            Ok(Unit::Bit)
        } else {
            Err(CommandError::Syntax)
        }
    }
}

/// Turns a `start end` pair (inclusive, negative counting from the end, in `unit`s)
/// into an inclusive range of *bits* of a string of `len` bytes; `None` if empty.
/// Redis's arithmetic: clamp both ends into the string, then `start > end` is empty.
fn bit_range(len: usize, start: i64, end: i64, unit: Unit) -> Option<(u64, u64)> {
    let total = match unit {
        Unit::Byte => len as i64,
        Unit::Bit => len as i64 * 8,
    };
    let clamp = |i: i64| if i < 0 { (total + i).max(0) } else { i };
    let (start, end) = (clamp(start), clamp(end).min(total - 1));
    if total == 0 || start > end {
        return None;
    }
    let (start, end) = (start as u64, end as u64);
    Some(match unit {
        Unit::Byte => (start * 8, end * 8 + 7),
        Unit::Bit => (start, end),
    })
}

/// `BITCOUNT`: the set bits of the whole string, or of `start..=end` in `unit`s.
pub fn count(bytes: &[u8], range: Option<(i64, i64, Unit)>) -> i64 {
    let (first, last) = match range {
        None if bytes.is_empty() => return 0,
        None => (0, bytes.len() as u64 * 8 - 1),
        Some((start, end, unit)) => {
            if start < 0 && end < 0 && start > end {
                return 0;
            }
            match bit_range(bytes.len(), start, end, unit) {
                Some(r) => r,
                None => return 0,
            }
        }
    };
    let (first_byte, last_byte) = ((first >> 3) as usize, (last >> 3) as usize);
    let mut total = popcount(&bytes[first_byte..=last_byte]);
    // Take away the bits of the edge bytes that lie outside the range.
    total -= u64::from((u32::from(bytes[first_byte]) >> (8 - (first & 7))).count_ones());
    total -= u64::from((bytes[last_byte] & (0xffu8 >> (last & 7) >> 1)).count_ones());
    total as i64
}

/// The set bits in `bytes`, eight bytes at a time: on a CPU without a population-count
/// instruction (the x86-64 baseline) each `count_ones` is a dozen shifts and masks, so
/// doing it per word instead of per byte is eight times fewer (Redis's `redisPopcount`
/// does the same with 28-byte steps).
fn popcount(bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(8);
    let mut total: u64 = words
        .by_ref()
        .map(|w| {
            let word = u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
            u64::from(word.count_ones())
        })
        .sum();
    for b in words.remainder() {
        total += u64::from(b.count_ones());
    }
    total
}

/// `BITPOS`: the position of the first bit equal to `bit` in the string, or in
/// `start..=end` (`end` given or not) in `unit`s; -1 if there is none.
///
/// A string is zero-padded to the right, so looking for a 0 in a string of ones finds
/// the first bit past its end — unless the caller gave an explicit `end`, which says
/// the range stops there.
pub fn position(bytes: &[u8], bit: u8, start: i64, end: Option<i64>, unit: Unit) -> i64 {
    let default_end = match unit {
        Unit::Byte => bytes.len() as i64 - 1,
        Unit::Bit => bytes.len() as i64 * 8 - 1,
    };
    let Some((first, last)) = bit_range(bytes.len(), start, end.unwrap_or(default_end), unit)
    else {
        return -1;
    };
    // Bit by bit up to a byte boundary, then whole bytes that cannot hold the bit are
    // skipped with one scan, then bit by bit within the byte that can.
    let skip = if bit == 1 { 0x00 } else { 0xff };
    let mut i = first;
    while i <= last {
        if i & 7 == 0 && i + 7 <= last {
            let (from, to) = ((i >> 3) as usize, ((last + 1) >> 3) as usize);
            match bytes[from..to].iter().position(|&b| b != skip) {
                Some(n) => i += 8 * n as u64,
                None => i = (to as u64) << 3,
            }
            if i > last {
                break;
            }
        }
        if get_bit(bytes, i) == bit {
            return i as i64;
        }
        i += 1;
    }
    if bit == 0 && end.is_none() {
        return last as i64 + 1;
    }
    -1
}

/// `BITOP`'s operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

impl BitOp {
    pub fn parse(word: &[u8]) -> Result<BitOp, CommandError> {
        Ok(match word.to_ascii_lowercase().as_slice() {
            b"and" => BitOp::And,
            b"or" => BitOp::Or,
            b"xor" => BitOp::Xor,
            b"not" => BitOp::Not,
            _ => return Err(CommandError::Syntax),
        })
    }
}

/// `BITOP`: combines the sources byte by byte; a shorter source (or a missing key, an
/// empty slice) counts as zero bytes, so the result is as long as the longest source.
///
/// Each source is read once: O(longest + total bytes), however many sources there are
/// (a byte-at-a-time loop over every source would be O(longest x sources)). For AND,
/// every byte past the shortest source is 0, so only that prefix is computed.
pub fn combine(op: BitOp, sources: &[&[u8]]) -> Vec<u8> {
    let longest = sources.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![0u8; longest];
    let Some((first, rest)) = sources.split_first() else {
        return out;
    };
    match op {
        BitOp::Not => {
            for (o, b) in out.iter_mut().zip(*first) {
                *o = !b;
            }
        }
        BitOp::And => {
            let shortest = sources.iter().map(|s| s.len()).min().unwrap_or(0);
            out[..shortest].copy_from_slice(&first[..shortest]);
            for source in rest {
                for (o, b) in out[..shortest].iter_mut().zip(*source) {
                    *o &= b;
                }
            }
        }
        BitOp::Or | BitOp::Xor => {
            for source in sources {
                for (o, b) in out.iter_mut().zip(*source) {
                    if op == BitOp::Or {
                        *o |= b;
                    } else {
                        *o ^= b;
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_numbered_from_the_high_bit() {
        let mut b = vec![0u8; 2];
        assert_eq!(set_bit(&mut b, 0, true), 0);
        assert_eq!(set_bit(&mut b, 9, true), 0);
        assert_eq!(b, [0x80, 0x40]);
        assert_eq!(get_bit(&b, 9), 1);
        assert_eq!(get_bit(&b, 100), 0);
        assert_eq!(set_bit(&mut b, 0, false), 1);
    }

    #[test]
    fn counts_follow_redis() {
        let s = b"foobar";
        assert_eq!(count(s, None), 26);
        assert_eq!(count(s, Some((0, 0, Unit::Byte))), 4);
        assert_eq!(count(s, Some((1, 1, Unit::Byte))), 6);
        assert_eq!(count(s, Some((1, 1, Unit::Bit))), 1);
        assert_eq!(count(s, Some((5, 30, Unit::Bit))), 17);
        assert_eq!(count(s, Some((-1, -2, Unit::Byte))), 0);
        assert_eq!(count(b"", None), 0);
    }

    #[test]
    fn positions_follow_redis() {
        let s = b"\xff\xf0\x00";
        assert_eq!(position(s, 0, 0, None, Unit::Byte), 12);
        assert_eq!(position(b"\x00\xff\xf0", 1, 2, Some(-1), Unit::Byte), 16);
        assert_eq!(position(b"\x00\xff\xf0", 1, 7, Some(15), Unit::Bit), 8);
        assert_eq!(position(b"\xff\xff", 0, 0, None, Unit::Byte), 16);
        assert_eq!(position(b"\xff\xff", 0, 0, Some(-1), Unit::Byte), -1);
        assert_eq!(position(b"", 1, 0, None, Unit::Byte), -1);
        assert_eq!(position(b"\x00\x00", 1, 0, None, Unit::Byte), -1);
    }

    #[test]
    fn bitop_pads_with_zeros() {
        assert_eq!(combine(BitOp::And, &[b"\xff\x0f", b"\x0f"]), [0x0f, 0x00]);
        assert_eq!(combine(BitOp::Or, &[b"\xf0", b"\x0f\x01"]), [0xff, 0x01]);
        assert_eq!(combine(BitOp::Xor, &[b"\xff", b"\x0f"]), [0xf0]);
        assert_eq!(combine(BitOp::Not, &[b"\x0f"]), [0xf0]);
        assert_eq!(
            combine(BitOp::And, &[b"\xff\xff", b"\xff", b"\x0f\xff\xff"]),
            [0x0f, 0, 0]
        );
        assert_eq!(
            combine(BitOp::Xor, &[b"\x01", b"\x01\x02", b"\x01"]),
            [0x01, 0x02]
        );
    }

    #[test]
    fn offsets_are_bounded() {
        assert_eq!(parse_offset(b"4294967295", None), Ok(4294967295));
        assert!(parse_offset(b"4294967296", None).is_err());
        assert!(parse_offset(b"-1", None).is_err());
        assert_eq!(parse_offset(b"#2", Some(8)), Ok(16));
        assert!(parse_offset(b"#2", None).is_err());
    }
}

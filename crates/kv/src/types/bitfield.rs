//! `BITFIELD`: a string as an array of integers of any width from 1 to 64 bits.
//!
//! `BITFIELD key SET u8 #3 200 INCRBY i5 100 1` treats the string as packed integers at
//! arbitrary bit offsets (`#3`: the fourth `u8`, bit 24), most significant bit first like
//! the bitmap commands ([`super::bitmap`]). It is how compact counters are kept: a
//! thousand 4-bit counters in 500 bytes. What happens when an `INCRBY` or `SET` does not
//! fit the width is chosen per operation with `OVERFLOW`:
//!
//! - `WRAP` (the default): modular arithmetic, as C integers of that width behave;
//! - `SAT`: stick at the smallest or largest value;
//! - `FAIL`: do nothing and answer nil for that operation.
//!
//! Signed fields may be 1 to 64 bits wide, unsigned ones 1 to 63 (so every value fits an
//! `i64` reply). The arithmetic here uses `i128`, wide enough that "does it fit" is a
//! plain comparison instead of C's careful overflow tests.

use bytes::Bytes;
use proto::CommandError;

use super::bitmap::{get_bit, parse_offset, set_bit};

/// `u8`, `i16`...: signedness and width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldType {
    pub signed: bool,
    pub bits: u32,
}

impl FieldType {
    pub fn parse(word: &[u8]) -> Result<FieldType, CommandError> {
        let invalid = || {
            CommandError::err(
                "Invalid bitfield type. Use something like i16 u8. Note that u64 is not \
                 supported but i64 is.",
            )
        };
        let signed = match word.first() {
            Some(b'i') => true,
            Some(b'u') => false,
            _ => return Err(invalid()),
        };
        let bits = proto::decode::parse_int(&word[1..]).ok_or_else(invalid)?;
        let max = if signed { 64 } else { 63 };
        if !(1..=max).contains(&bits) {
            return Err(invalid());
        }
        Ok(FieldType {
            signed,
            bits: bits as u32,
        })
    }

    fn min(self) -> i128 {
        if self.signed {
            -(1i128 << (self.bits - 1))
        } else {
            0
        }
    }

    fn max(self) -> i128 {
        if self.signed {
            (1i128 << (self.bits - 1)) - 1
        } else {
            (1i128 << self.bits) - 1
        }
    }

    /// `value` as this type would hold it under `overflow`; `None` for `FAIL`.
    fn fit(self, value: i128, overflow: Overflow) -> Option<i64> {
        if (self.min()..=self.max()).contains(&value) {
            return Some(value as i64);
        }
        match overflow {
            Overflow::Fail => None,
            Overflow::Sat => Some(value.clamp(self.min(), self.max()) as i64),
            Overflow::Wrap => {
                let modulus = 1i128 << self.bits;
                let low = value.rem_euclid(modulus);
                Some(if self.signed && low > self.max() {
                    (low - modulus) as i64
                } else {
                    low as i64
                })
            }
        }
    }
}

/// `OVERFLOW WRAP|SAT|FAIL`: applies to the `SET`s and `INCRBY`s after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    #[default]
    Wrap,
    Sat,
    Fail,
}

/// One operation of a `BITFIELD` command.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldOp {
    Get {
        ty: FieldType,
        offset: u64,
    },
    Set {
        ty: FieldType,
        offset: u64,
        value: i64,
        overflow: Overflow,
    },
    IncrBy {
        ty: FieldType,
        offset: u64,
        incr: i64,
        overflow: Overflow,
    },
}

impl FieldOp {
    /// The last bit a write touches (`None` for a `GET`).
    fn last_written_bit(&self) -> Option<u64> {
        match *self {
            FieldOp::Get { .. } => None,
            FieldOp::Set { ty, offset, .. } | FieldOp::IncrBy { ty, offset, .. } => {
                Some(offset + u64::from(ty.bits) - 1)
            }
        }
    }
}

/// Parses the operations after the key, all before any runs (so a bad one changes
/// nothing), with Redis's checks in Redis's order.
pub fn parse(words: &[Bytes]) -> Result<Vec<FieldOp>, CommandError> {
    let mut ops = Vec::new();
    let mut overflow = Overflow::default();
    let mut i = 0;
    while i < words.len() {
        let left = words.len() - i - 1;
        let sub = words[i].to_ascii_lowercase();
        let takes_value = match sub.as_slice() {
            b"get" if left >= 2 => false,
            b"set" | b"incrby" if left >= 3 => true,
            b"overflow" if left >= 1 => {
                overflow = match words[i + 1].to_ascii_lowercase().as_slice() {
                    b"wrap" => Overflow::Wrap,
                    b"sat" => Overflow::Sat,
                    b"fail" => Overflow::Fail,
                    _ => return Err(CommandError::err("Invalid OVERFLOW type specified")),
                };
                i += 2;
                continue;
            }
            _ => return Err(CommandError::Syntax),
        };
        let ty = FieldType::parse(&words[i + 1])?;
        let offset = parse_offset(&words[i + 2], Some(ty.bits))?;
        let op = if takes_value {
            let n = proto::decode::parse_int(&words[i + 3]).ok_or(CommandError::NotInteger)?;
            if sub == b"set" {
                FieldOp::Set {
                    ty,
                    offset,
                    value: n,
                    overflow,
                }
            } else {
                FieldOp::IncrBy {
                    ty,
                    offset,
                    incr: n,
                    overflow,
                }
            }
        } else {
            FieldOp::Get { ty, offset }
        };
        ops.push(op);
        i += if takes_value { 4 } else { 3 };
    }
    Ok(ops)
}

/// The length a string must have for every write of `ops` to fit (`None`: reads only).
pub fn needed_len(ops: &[FieldOp]) -> Option<usize> {
    ops.iter()
        .filter_map(FieldOp::last_written_bit)
        .max()
        .map(|bit| (bit / 8 + 1) as usize)
}

/// The field of type `ty` at bit `offset` (bits past the end read as 0).
pub fn read(bytes: &[u8], ty: FieldType, offset: u64) -> i64 {
    let mut raw: u64 = 0;
    for i in 0..u64::from(ty.bits) {
        raw = (raw << 1) | u64::from(get_bit(bytes, offset + i));
    }
    if ty.signed && ty.bits < 64 && raw >> (ty.bits - 1) & 1 == 1 {
        // Sign-extend: fill the bits above the field with ones.
        raw |= u64::MAX << ty.bits;
    }
    raw as i64
}

/// Writes the low `ty.bits` bits of `value` at bit `offset` (the buffer is long enough).
fn write(bytes: &mut [u8], ty: FieldType, offset: u64, value: i64) {
    let raw = value as u64;
    for i in 0..u64::from(ty.bits) {
        let bit = raw >> (u64::from(ty.bits) - 1 - i) & 1;
        set_bit(bytes, offset + i, bit == 1);
    }
}

/// Runs `ops` in order on `bytes` (already [`needed_len`] long): one reply per
/// operation — the value for `GET`, the old value for `SET`, the new one for `INCRBY`,
/// `None` where `OVERFLOW FAIL` refused a write.
pub fn run(bytes: &mut [u8], ops: &[FieldOp]) -> Vec<Option<i64>> {
    ops.iter()
        .map(|op| match *op {
            FieldOp::Get { ty, offset } => Some(read(bytes, ty, offset)),
            FieldOp::Set {
                ty,
                offset,
                value,
                overflow,
            } => {
                // An unsigned field reads the argument's bits as unsigned, as Redis does.
                let wide = if ty.signed {
                    i128::from(value)
                } else {
                    i128::from(value as u64)
                };
                let new = ty.fit(wide, overflow)?;
                let old = read(bytes, ty, offset);
                write(bytes, ty, offset, new);
                Some(old)
            }
            FieldOp::IncrBy {
                ty,
                offset,
                incr,
                overflow,
            } => {
                let old = read(bytes, ty, offset);
                let new = ty.fit(i128::from(old) + i128::from(incr), overflow)?;
                write(bytes, ty, offset, new);
                Some(new)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(text: &str) -> Vec<FieldOp> {
        let words: Vec<Bytes> = text
            .split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        parse(&words).unwrap()
    }

    fn run_on(bytes: &mut Vec<u8>, text: &str) -> Vec<Option<i64>> {
        let ops = ops(text);
        if let Some(len) = needed_len(&ops) {
            bytes.resize(bytes.len().max(len), 0);
        }
        run(bytes, &ops)
    }

    #[test]
    fn overflow_policies() {
        let mut b = Vec::new();
        assert_eq!(
            run_on(&mut b, "SET u8 0 255 INCRBY u8 0 10"),
            [Some(0), Some(9)]
        );
        assert_eq!(
            run_on(&mut b, "OVERFLOW SAT INCRBY u8 0 1000 INCRBY i8 0 -1000"),
            [Some(255), Some(-128)]
        );
        assert_eq!(
            run_on(&mut b, "OVERFLOW FAIL INCRBY u8 0 1 GET u8 0"),
            [Some(129), Some(129)]
        );
        assert_eq!(run_on(&mut b, "OVERFLOW FAIL INCRBY i8 0 -2"), [None]);
        // 0x81 holds ...001 in bits 5..7: the old i5 at #1 is 0b00100.
        assert_eq!(
            run_on(&mut b, "SET i5 #1 100 GET i5 #1"),
            [Some(4), Some(4)]
        );
        assert_eq!(
            run_on(&mut b, "SET u8 16 -1 GET u8 16"),
            [Some(0), Some(255)]
        );
        let mut c = Vec::new();
        assert_eq!(
            run_on(&mut c, "SET i64 0 9223372036854775807 INCRBY i64 0 1"),
            [Some(0), Some(i64::MIN)]
        );
    }

    fn ty(t: &str) -> FieldType {
        FieldType::parse(t.as_bytes()).unwrap()
    }

    #[test]
    fn types_and_errors() {
        assert!(FieldType::parse(b"u64").is_err());
        assert!(FieldType::parse(b"i65").is_err());
        assert!(FieldType::parse(b"i0").is_err());
        assert!(FieldType::parse(b"U8").is_err());
        assert_eq!(ty("i64").bits, 64);
        let words = |t: &str| -> Vec<Bytes> {
            t.split(' ')
                .map(|w| Bytes::copy_from_slice(w.as_bytes()))
                .collect()
        };
        assert_eq!(parse(&words("GET u8")), Err(CommandError::Syntax));
        assert!(parse(&words("OVERFLOW nope GET u8 0")).is_err());
        assert_eq!(parse(&words("SET u8 0 x")), Err(CommandError::NotInteger));
    }
}

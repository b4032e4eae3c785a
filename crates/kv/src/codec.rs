//! The one place values become bytes: on-disk records and `DUMP` payloads.
//!
//! bincode is used through [`options`] only, with every choice spelled out (fixed-width
//! little-endian integers, no trailing bytes, a size limit), so the format cannot drift
//! with a library default. Each encoding starts or ends with a version number so a future
//! format can be told apart from this one.
//!
//! A `DUMP` payload travels between servers (the router's resharding moves keys with
//! `DUMP`/`RESTORE`), so it carries a CRC-32C of everything before it; a payload damaged
//! on the way is refused instead of restored as garbage:
//!
//! ```text
//! DUMP payload:  bincode(Value) | format version: u16 LE | crc32c(previous bytes): u32 LE
//! disk record:   format version: u8 | bincode(Entry { value, expires_at })
//! ```

use bincode::Options;

use crate::keyspace::Change;
use crate::value::{Entry, Value};

/// Version of the on-disk record format.
const RECORD_VERSION: u8 = 1;
/// Version of the `DUMP` payload format.
const DUMP_VERSION: u16 = 1;
/// No record is larger than the largest value a client may send, plus framing.
const MAX_ENCODED: u64 = 512 * 1024 * 1024 + 1024;

/// bincode, configured explicitly: this is the format.
fn options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .reject_trailing_bytes()
        .with_limit(MAX_ENCODED)
}

/// Why bytes could not be decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum CodecError {
    /// Unknown format version.
    Version,
    /// The checksum does not match: the payload was damaged.
    Checksum,
    /// Not a valid encoding.
    Malformed,
}

/// Encodes a key's durable record.
pub fn encode_entry(entry: &Entry) -> Vec<u8> {
    let mut out = vec![RECORD_VERSION];
    // Serializing into a Vec cannot fail for these types (no maps with non-string keys,
    // no size beyond the limit a client could send).
    if options().serialize_into(&mut out, entry).is_err() {
        out.truncate(1);
    }
    out
}

pub fn decode_entry(bytes: &[u8]) -> Result<Entry, CodecError> {
    match bytes.split_first() {
        Some((&RECORD_VERSION, body)) => options()
            .deserialize(body)
            .map_err(|_| CodecError::Malformed),
        Some(_) => Err(CodecError::Version),
        None => Err(CodecError::Malformed),
    }
}

/// Version of a change record (replication stream and snapshots).
const CHANGE_VERSION: u8 = 1;

/// Encodes one journaled change for replication: `version: u8 | bincode(Change)`.
pub fn encode_change(change: &Change) -> Vec<u8> {
    let mut out = vec![CHANGE_VERSION];
    if options().serialize_into(&mut out, change).is_err() {
        out.truncate(1);
    }
    out
}

pub fn decode_change(bytes: &[u8]) -> Result<Change, CodecError> {
    match bytes.split_first() {
        Some((&CHANGE_VERSION, body)) => options()
            .deserialize(body)
            .map_err(|_| CodecError::Malformed),
        Some(_) => Err(CodecError::Version),
        None => Err(CodecError::Malformed),
    }
}

/// Serializes a value for `DUMP`.
pub fn dump(value: &Value) -> Vec<u8> {
    let mut out = options().serialize(value).unwrap_or_default();
    out.extend_from_slice(&DUMP_VERSION.to_le_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Checks and decodes a `RESTORE` payload.
pub fn undump(payload: &[u8]) -> Result<Value, CodecError> {
    let Some(split) = payload.len().checked_sub(6) else {
        return Err(CodecError::Malformed);
    };
    let (body, trailer) = payload.split_at(split);
    let (version, crc) = trailer.split_at(2);
    let stored_crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32c::crc32c(&payload[..split + 2]) != stored_crc {
        return Err(CodecError::Checksum);
    }
    if u16::from_le_bytes([version[0], version[1]]) != DUMP_VERSION {
        return Err(CodecError::Version);
    }
    options()
        .deserialize(body)
        .map_err(|_| CodecError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn records_round_trip_and_the_format_is_fixed() {
        let entry = Entry::new(Value::String(Bytes::from_static(b"v\0\xff")), Some(7));
        let bytes = encode_entry(&entry);
        // version, variant tag (u32), length (u64), 3 bytes, Some tag, u64 deadline.
        assert_eq!(bytes.len(), 1 + 4 + 8 + 3 + 1 + 8);
        assert_eq!(&bytes[..5], &[1, 0, 0, 0, 0]);
        assert_eq!(decode_entry(&bytes), Ok(entry));
        assert_eq!(decode_entry(&[9, 0]), Err(CodecError::Version));
        assert_eq!(decode_entry(&[]), Err(CodecError::Malformed));
    }

    #[test]
    fn edits_and_deadlines_travel_as_change_records() {
        use crate::types::edit::Edit;
        let b = |s: &'static str| Bytes::from_static(s.as_bytes());
        let changes = [
            Change::Edit {
                db: 3,
                key: b("l"),
                edit: Edit::ListPush {
                    left: true,
                    values: vec![b("a"), Bytes::from_static(b"\0\xff")],
                },
            },
            Change::Edit {
                db: 0,
                key: b("z"),
                edit: Edit::ZAdd(vec![(b("m"), -0.5), (b("n"), f64::INFINITY)]),
            },
            Change::Edit {
                db: 0,
                key: b("l"),
                edit: Edit::ListTrim { front: 1, back: 2 },
            },
            Change::Expire {
                db: 1,
                key: b("h"),
                at: Some(42),
            },
            Change::Expire {
                db: 1,
                key: b("h"),
                at: None,
            },
        ];
        for change in changes {
            let bytes = encode_change(&change);
            assert_eq!(bytes[0], CHANGE_VERSION);
            assert_eq!(decode_change(&bytes), Ok(change));
        }
    }

    #[test]
    fn dump_payloads_are_checksummed() {
        let value = Value::String(Bytes::from_static(b"hello"));
        let mut payload = dump(&value);
        // The format is fixed: bincode(Value) | version 1 (u16 LE) | CRC-32C (u32 LE).
        assert_eq!(payload.len(), 4 + 8 + 5 + 2 + 4);
        assert_eq!(&payload[17..19], &[1, 0]);
        assert_eq!(undump(&payload), Ok(value));
        payload[3] ^= 1;
        assert_eq!(undump(&payload), Err(CodecError::Checksum));
        assert_eq!(undump(b"abc"), Err(CodecError::Malformed));
    }
}

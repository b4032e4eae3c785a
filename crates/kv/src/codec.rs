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
//! DUMP payload:   bincode(Value) | format version: u16 LE | crc32c(previous bytes): u32 LE
//! disk record:    format version: u8 | bincode(Record { expires_at, body })
//! element key:    key length: u32 BE | key | field, member or list position (u64 BE)
//! change record:  format version: u8 | bincode(Change)
//! journal file:    magic "KVJRNL" | version: u16 LE | journal record...
//! journal record:  length of bincode(Change): u32 LE | crc32c(bincode(Change)): u32 LE | bincode(Change)
//! ```
//!
//! A journal record carries its own length and checksum because the journal is appended
//! to and may be cut anywhere by a crash: reading stops at the first record that is short
//! or whose checksum does not match (see `crate::storage::journal`).
//!
//! A key's disk record holds a string whole, but only the header of a collection: its
//! elements are records of their own, under element keys (see `crate::storage` for why).

use bincode::Options;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::keyspace::Change;
use crate::value::Value;

/// Version of the on-disk record format. 1 held whole collections in the key's record;
/// 2 holds a header and stores the elements apart. Version 1 records are not read.
const RECORD_VERSION: u8 = 2;
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

/// The same format for writing on the hot path, without the size limit: the limit guards
/// decoding against absurd lengths, and with it bincode walks every value twice (once to
/// measure it against the limit, once to write it).
fn write_options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .reject_trailing_bytes()
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

/// A key's record in its database's tree: the deadline, and the string itself or the
/// header of a collection whose elements live under element keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub expires_at: Option<u64>,
    pub body: Body,
}

/// What a [`Record`] holds besides the deadline. New variants go at the end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Body {
    String(crate::value::SmallBytes),
    Hash,
    /// Format 2's list: its elements sit at positions `head..tail`, one record per
    /// element (see [`list_position`]). New lists are [`Body::PagedList`]s.
    List {
        head: u64,
        tail: u64,
    },
    Set,
    ZSet,
    /// A list whose elements at positions `head..tail` are stored in pages of
    /// [`LIST_PAGE_SLOTS`] positions (see [`list_page`]). Lists are created this way since
    /// format 2's `List` (one record per element), which is still read and edited.
    PagedList {
        head: u64,
        tail: u64,
    },
}

impl Body {
    pub fn is_collection(&self) -> bool {
        !matches!(self, Body::String(_))
    }
}

/// Encodes a key's durable record.
pub fn encode_record(record: &Record) -> Vec<u8> {
    let mut out = vec![RECORD_VERSION];
    // Serializing into a Vec cannot fail for these types (no maps with non-string keys,
    // no size beyond the limit a client could send).
    if options().serialize_into(&mut out, record).is_err() {
        out.truncate(1);
    }
    out
}

pub fn decode_record(bytes: &[u8]) -> Result<Record, CodecError> {
    match bytes.split_first() {
        Some((&RECORD_VERSION, body)) => options()
            .deserialize(body)
            .map_err(|_| CodecError::Malformed),
        Some(_) => Err(CodecError::Version),
        None => Err(CodecError::Malformed),
    }
}

/// The prefix every element key of `key` starts with: `len(key): u32 BE | key`.
pub fn element_prefix(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + key.len() + 8);
    // Keys are at most 512 MiB (proto-max-bulk-len), so the length fits a u32.
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// An element's key: the prefix of `key`, then the field, member or list position.
pub fn element_key(prefix: &[u8], element: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + element.len());
    out.extend_from_slice(prefix);
    out.extend_from_slice(element);
    out
}

/// Where a new list's head and tail start: the middle of the u64 range, so pushes on the
/// left (positions going down) and on the right (going up) both have 2^63 to go.
pub const LIST_ORIGIN: u64 = 1 << 63;

/// A list position as an element key suffix: big-endian, so byte order is list order.
/// (Read as a signed offset from [`LIST_ORIGIN`], this is the offset's two's complement
/// with the sign bit flipped: the usual trick for sorting signed numbers as bytes.)
pub fn list_position(position: u64) -> [u8; 8] {
    position.to_be_bytes()
}

/// Positions per page of a [`Body::PagedList`]: a page is one sled record, so pushing
/// 64 elements writes one record instead of 64 (and the fold reads and rewrites a page
/// per batch of changes, not per element).
pub const LIST_PAGE_SLOTS: usize = 64;

/// The page holding list position `position`, as an element key suffix: big-endian, so
/// pages sort in list order, like positions.
pub fn list_page(position: u64) -> [u8; 8] {
    (position / LIST_PAGE_SLOTS as u64).to_be_bytes()
}

/// A list page's value: `first slot: u8 | (length: u32 LE | bytes)...` — the elements at
/// consecutive slots from `first` (a list's positions are consecutive, so a page's
/// elements are too; only the first and last page of a list are partly filled).
pub fn encode_page<'a>(first: usize, elements: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = vec![first as u8];
    for element in elements {
        out.extend_from_slice(&(element.len() as u32).to_le_bytes());
        out.extend_from_slice(element);
    }
    out
}

/// The first slot and the elements of a page ([`encode_page`]); `None` if malformed.
pub fn decode_page(mut bytes: &[u8]) -> Option<(usize, Vec<Bytes>)> {
    let (&first, rest) = bytes.split_first()?;
    bytes = rest;
    let mut elements = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_at_checked(4)?;
        let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
        let (element, rest) = rest.split_at_checked(len)?;
        elements.push(Bytes::copy_from_slice(element));
        bytes = rest;
    }
    (first as usize + elements.len() <= LIST_PAGE_SLOTS).then_some((first as usize, elements))
}

/// A sorted-set member's score as its element's value.
pub fn encode_score(score: f64) -> [u8; 8] {
    score.to_bits().to_be_bytes()
}

pub fn decode_score(bytes: &[u8]) -> Option<f64> {
    Some(f64::from_bits(u64::from_be_bytes(bytes.try_into().ok()?)))
}

/// Version of a change record (replication stream and snapshots).
const CHANGE_VERSION: u8 = 1;

/// Encodes one journaled change for replication: `version: u8 | bincode(Change)`.
pub fn encode_change(change: &Change) -> Vec<u8> {
    let mut out = Vec::new();
    append_change(&mut out, change);
    out
}

/// The length of [`encode_change`]'s record for `change`, measured without encoding it.
pub fn change_len(change: &Change) -> usize {
    1 + write_options().serialized_size(change).unwrap_or(0) as usize
}

/// [`encode_change`] appended to `out`, so the replication stream encodes each change
/// into a buffer it reuses (no allocation per write), and without bincode's size limit
/// (which would walk the change twice: see [`write_options`]).
pub fn append_change(out: &mut Vec<u8>, change: &Change) {
    let start = out.len();
    out.push(CHANGE_VERSION);
    if write_options().serialize_into(&mut *out, change).is_err() {
        // Cannot happen for a Vec; keep the version byte alone, as before.
        out.truncate(start + 1);
    }
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

/// The first bytes of every journal file: a name and the record format's version.
pub const JOURNAL_HEADER: [u8; 8] = *b"KVJRNL\x01\x00";

/// Bytes before a journal record's payload: its length and its CRC-32C.
pub const JOURNAL_RECORD_HEADER: usize = 8;

/// Appends one change to `out` as a journal record: `len | crc32c | bincode(Change)`.
/// Encoded in place, so the hot path allocates nothing once `out` has grown.
///
/// A [`Change::Transaction`] becomes a [`Change::TransactionStart`] record and then one
/// record per change: the checkpoint can still fold up to any record, and recovery
/// applies the group only if every record of it is there (see `storage::journal`).
pub fn append_journal_record(out: &mut Vec<u8>, change: &Change) {
    if let Change::Transaction(changes) = change {
        let start = Change::TransactionStart {
            changes: changes.len() as u64,
        };
        append_one_record(out, &start);
        changes.iter().for_each(|c| append_one_record(out, c));
        return;
    }
    append_one_record(out, change);
}

fn append_one_record(out: &mut Vec<u8>, change: &Change) {
    let start = out.len();
    out.extend_from_slice(&[0; JOURNAL_RECORD_HEADER]);
    if write_options().serialize_into(&mut *out, change).is_err() {
        // Cannot happen for a Vec (see encode_record); drop the partial record.
        out.truncate(start);
        return;
    }
    let payload = &out[start + JOURNAL_RECORD_HEADER..];
    // Values are at most 512 MiB (proto-max-bulk-len), so a record's length fits a u32.
    let len = (payload.len() as u32).to_le_bytes();
    let crc = crc32c::crc32c(payload).to_le_bytes();
    out[start..start + 4].copy_from_slice(&len);
    out[start + 4..start + 8].copy_from_slice(&crc);
}

/// A journal record's header: the payload's length and checksum.
pub fn journal_record_header(header: [u8; JOURNAL_RECORD_HEADER]) -> (usize, u32) {
    let [l0, l1, l2, l3, c0, c1, c2, c3] = header;
    (
        u32::from_le_bytes([l0, l1, l2, l3]) as usize,
        u32::from_le_bytes([c0, c1, c2, c3]),
    )
}

/// Largest journal record payload a reader accepts (a longer length is damage).
pub const MAX_JOURNAL_RECORD: usize = MAX_ENCODED as usize;

/// Checks a journal record's payload against its checksum and decodes it.
pub fn decode_journal_payload(payload: &[u8], crc: u32) -> Result<Change, CodecError> {
    if crc32c::crc32c(payload) != crc {
        return Err(CodecError::Checksum);
    }
    options()
        .deserialize(payload)
        .map_err(|_| CodecError::Malformed)
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

    #[test]
    fn records_round_trip_and_the_format_is_fixed() {
        let record = Record {
            expires_at: Some(7),
            body: Body::String(b"v\0\xff"[..].into()),
        };
        let bytes = encode_record(&record);
        // version, Some tag, u64 deadline, variant tag (u32), length (u64), 3 bytes.
        assert_eq!(bytes.len(), 1 + 1 + 8 + 4 + 8 + 3);
        assert_eq!(&bytes[..2], &[2, 1]);
        assert_eq!(decode_record(&bytes), Ok(record));
        let list = Record {
            expires_at: None,
            body: Body::List {
                head: LIST_ORIGIN - 1,
                tail: LIST_ORIGIN + 1,
            },
        };
        assert_eq!(decode_record(&encode_record(&list)), Ok(list));
        // Version 1 (whole collections in the record) is not read.
        assert_eq!(decode_record(&[1, 0]), Err(CodecError::Version));
        assert_eq!(decode_record(&[]), Err(CodecError::Malformed));
    }

    #[test]
    fn element_keys_sort_by_key_then_list_order() {
        let key = |k: &[u8], pos: u64| element_key(&element_prefix(k), &list_position(pos));
        // Positions left of the origin sort before it, and the key's length keeps "a"'s
        // elements apart from "ab"'s even when an element starts with "b".
        assert!(key(b"a", LIST_ORIGIN - 1) < key(b"a", LIST_ORIGIN));
        assert!(key(b"a", LIST_ORIGIN) < key(b"a", LIST_ORIGIN + 1));
        assert!(!element_key(&element_prefix(b"a"), b"b").starts_with(&element_prefix(b"ab")));
        assert_eq!(element_prefix(b"ab"), [0, 0, 0, 2, b'a', b'b']);
        assert_eq!(decode_score(&encode_score(-2.5)), Some(-2.5));
        // Pages sort in list order too, and a page holds LIST_PAGE_SLOTS positions.
        assert!(list_page(LIST_ORIGIN - 1) < list_page(LIST_ORIGIN));
        assert_eq!(list_page(LIST_ORIGIN), list_page(LIST_ORIGIN + 63));
        assert!(list_page(LIST_ORIGIN + 63) < list_page(LIST_ORIGIN + 64));
    }

    #[test]
    fn list_pages_round_trip_and_reject_what_does_not_fit() {
        let elements: [&[u8]; 3] = [b"", b"a", b"\0\xffbc"];
        let page = encode_page(61, elements.iter().copied());
        assert_eq!(
            page,
            [
                &[61, 0, 0, 0, 0, 1, 0, 0, 0, b'a', 4, 0, 0, 0][..],
                b"\0\xffbc"
            ]
            .concat()
        );
        let (first, decoded) = decode_page(&page).unwrap();
        assert_eq!(first, 61);
        assert_eq!(decoded, elements.map(Bytes::copy_from_slice));
        // Cut short, or one element too many for the page.
        assert_eq!(decode_page(&page[..page.len() - 1]), None);
        assert_eq!(
            decode_page(&encode_page(62, elements.iter().copied())),
            None
        );
        assert_eq!(decode_page(&[]), None);
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
    fn journal_records_carry_length_and_checksum() {
        let change = Change::Remove {
            db: 2,
            key: Bytes::from_static(b"k"),
        };
        let mut out = b"prefix".to_vec();
        append_journal_record(&mut out, &change);
        let record = &out[6..];
        // tag (u32), db (u64), key length (u64), key.
        assert_eq!(record.len(), JOURNAL_RECORD_HEADER + 4 + 8 + 8 + 1);
        let (len, crc) = journal_record_header(record[..8].try_into().unwrap());
        assert_eq!(len, record.len() - JOURNAL_RECORD_HEADER);
        assert_eq!(decode_journal_payload(&record[8..], crc), Ok(change));
        let mut damaged = record[8..].to_vec();
        damaged[0] ^= 1;
        assert_eq!(
            decode_journal_payload(&damaged, crc),
            Err(CodecError::Checksum)
        );
    }

    #[test]
    fn dump_payloads_are_checksummed() {
        let value = Value::String(b"hello"[..].into());
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

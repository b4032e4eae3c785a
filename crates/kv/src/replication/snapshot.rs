//! The snapshot a full resync sends: the dataset as the list of changes that rebuilds it.
//!
//! It reuses the stream's record format ([`codec::encode_change`]), so there is one byte
//! format for "a change" whether it arrives in a snapshot or in the stream:
//!
//! ```text
//! "IKVSNAP" | version: u8 | count: u64 LE | (length: u32 LE | change record)* | crc32c: u32 LE
//! ```
//!
//! The checksum covers everything before it: a damaged snapshot is refused, and the
//! replica retries, instead of loading garbage.

use crate::codec::{self, CodecError};
use crate::keyspace::Change;

const MAGIC: &[u8] = b"IKVSNAP";
const VERSION: u8 = 1;

pub fn encode(changes: &[Change]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + changes.len() * 64);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&(changes.len() as u64).to_le_bytes());
    for change in changes {
        let record = codec::encode_change(change);
        out.extend_from_slice(&(record.len() as u32).to_le_bytes());
        out.extend_from_slice(&record);
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], CodecError> {
    if bytes.len() < n {
        return Err(CodecError::Malformed);
    }
    let (head, tail) = bytes.split_at(n);
    *bytes = tail;
    Ok(head)
}

pub fn decode(payload: &[u8]) -> Result<Vec<Change>, CodecError> {
    let split = payload.len().checked_sub(4).ok_or(CodecError::Malformed)?;
    let (body, crc) = payload.split_at(split);
    if crc32c::crc32c(body).to_le_bytes() != crc {
        return Err(CodecError::Checksum);
    }
    let mut rest = body;
    if take(&mut rest, MAGIC.len())? != MAGIC {
        return Err(CodecError::Malformed);
    }
    if take(&mut rest, 1)? != [VERSION] {
        return Err(CodecError::Version);
    }
    let mut count = [0u8; 8];
    count.copy_from_slice(take(&mut rest, 8)?);
    let count = u64::from_le_bytes(count);
    let mut changes = Vec::with_capacity(count.min(1 << 20) as usize);
    for _ in 0..count {
        let mut len = [0u8; 4];
        len.copy_from_slice(take(&mut rest, 4)?);
        let record = take(&mut rest, u32::from_le_bytes(len) as usize)?;
        changes.push(codec::decode_change(record)?);
    }
    if !rest.is_empty() {
        return Err(CodecError::Malformed);
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{Entry, Value};
    use bytes::Bytes;

    #[test]
    fn snapshots_round_trip_and_are_checksummed() {
        let changes = vec![
            Change::FlushAll,
            Change::Put {
                db: 3,
                key: Bytes::from_static(b"k\0"),
                entry: Entry::new(Value::String(b"v"[..].into()), Some(42)),
            },
            Change::SwapDb { a: 1, b: 2 },
        ];
        let mut bytes = encode(&changes);
        assert_eq!(decode(&bytes), Ok(changes));
        bytes[12] ^= 1;
        assert_eq!(decode(&bytes), Err(CodecError::Checksum));
        assert_eq!(decode(b"ab"), Err(CodecError::Malformed));
    }
}

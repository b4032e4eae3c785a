//! The on-disk format of records, in one place.
//!
//! bincode with its options spelled out (fixed-width little-endian integers, no trailing
//! bytes, a size limit) rather than bincode's defaults, so the format cannot change under
//! us; and a version byte in front of every record, so a future format can be told apart.
//!
//! bincode writes a struct as its fields one after the other, with no names: adding a
//! field changes every record. So a change of the types is a new version: format 2 added
//! a message's TTR, first receive time and attributes, and a queue's receive wait; format
//! 3 a message's group and deduplication id and a queue's FIFO attributes. Format 1 and 2
//! records are still read ([`format_v1`], [`format_v2`]: the old types, converted on the
//! way in), so a directory written by an older broker opens; everything is written in
//! format 3.

use bincode::Options;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::journal::StorageError;
use crate::message::{Message, MessageId};
use crate::queue::QueueConfig;
use crate::redo::Change;

mod format_v1;
mod format_v2;

use format_v1::{MessageV1, QueueConfigV1};
use format_v2::{MessageV2, QueueConfigV2};

/// The first byte of every record written now.
const FORMAT_VERSION: u8 = 3;

/// A type stored on disk, and how formats 1 and 2 wrote it.
pub trait Record: Serialize + DeserializeOwned {
    type V1: DeserializeOwned + Into<Self>;
    type V2: DeserializeOwned + Into<Self>;
}

/// A message record of an older format: (queue name, that format's message).
#[derive(serde::Deserialize)]
pub struct OldStored<M>(bytes::Bytes, M);

impl<M: Into<Message>> From<OldStored<M>> for (bytes::Bytes, Message) {
    fn from(OldStored(queue, message): OldStored<M>) -> (bytes::Bytes, Message) {
        (queue, message.into())
    }
}

/// A redo-log change of an older format, over that format's message and queue types.
#[derive(serde::Deserialize)]
pub enum OldChange<M, C> {
    PutMessage(bytes::Bytes, M),
    DeleteMessage(MessageId),
    PutQueue(bytes::Bytes, C),
    DeleteQueue(bytes::Bytes),
}

impl<M: Into<Message>, C: Into<QueueConfig>> From<OldChange<M, C>> for Change {
    fn from(c: OldChange<M, C>) -> Change {
        match c {
            OldChange::PutMessage(queue, m) => Change::PutMessage(queue, m.into()),
            OldChange::DeleteMessage(id) => Change::DeleteMessage(id),
            OldChange::PutQueue(name, c) => Change::PutQueue(name, c.into()),
            OldChange::DeleteQueue(name) => Change::DeleteQueue(name),
        }
    }
}

// Each stored type, and how each older format wrote it.
impl Record for (bytes::Bytes, Message) {
    type V1 = OldStored<MessageV1>;
    type V2 = OldStored<MessageV2>;
}

impl Record for QueueConfig {
    type V1 = QueueConfigV1;
    type V2 = QueueConfigV2;
}

impl Record for Change {
    type V1 = OldChange<MessageV1, QueueConfigV1>;
    type V2 = OldChange<MessageV2, QueueConfigV2>;
}

/// Records larger than this are refused (a message is at most 512 MiB on the wire).
const MAX_RECORD: u64 = 1 << 30;

fn options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .reject_trailing_bytes()
        .with_limit(MAX_RECORD)
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StorageError> {
    let size = options()
        .serialized_size(value)
        .map_err(|e| StorageError(format!("encode: {e}")))?;
    let mut out = Vec::with_capacity(1 + size as usize);
    out.push(FORMAT_VERSION);
    options()
        .serialize_into(&mut out, value)
        .map_err(|e| StorageError(format!("encode: {e}")))?;
    Ok(out)
}

/// Appends the record of `value` to `out` (the redo log encodes into its buffer, with no
/// record of its own to allocate and copy).
pub fn encode_into<T: Serialize>(out: &mut Vec<u8>, value: &T) -> Result<(), StorageError> {
    out.push(FORMAT_VERSION);
    options()
        .serialize_into(&mut *out, value)
        .map_err(|e| StorageError(format!("encode: {e}")))
}

pub fn decode<T: Record>(record: &[u8]) -> Result<T, StorageError> {
    let failed = |e| StorageError(format!("decode: {e}"));
    match record.split_first() {
        Some((&FORMAT_VERSION, body)) => options().deserialize(body).map_err(failed),
        Some((2, body)) => options()
            .deserialize::<T::V2>(body)
            .map(Into::into)
            .map_err(failed),
        Some((1, body)) => options()
            .deserialize::<T::V1>(body)
            .map(Into::into)
            .map_err(failed),
        Some((version, _)) => Err(StorageError(format!(
            "record format {version} is not supported"
        ))),
        None => Err(StorageError("empty record".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Lease, Message, State};
    use crate::receipt::Receipt;
    use bytes::Bytes;

    #[test]
    fn messages_round_trip_and_the_format_is_fixed() {
        let message = Message {
            id: 7,
            priority: 3,
            payload: Bytes::from_static(b"\x00\xffbinary"),
            sent_at: 1_700_000_000_000,
            deliveries: 2,
            origin: Some(Bytes::from_static(b"jobs")),
            state: State::InFlight(Lease {
                receipt: Receipt {
                    message: 7,
                    delivery: 2,
                    nonce: 9,
                },
                deadline: 5,
            }),
            ttr: Some(120_000),
            first_received: Some(1_700_000_000_001),
            attributes: vec![crate::message::Attribute {
                name: "kind".into(),
                data_type: "String".into(),
                value: Bytes::from_static(b"video"),
            }],
            group: Some(Bytes::from_static(b"customer-1")),
            deduplication_id: Some(Bytes::from_static(b"order-1")),
        };
        let record = encode(&(Bytes::from_static(b"q"), &message)).unwrap();
        let (queue, back): (Bytes, Message) = decode(&record).unwrap();
        assert_eq!((queue.as_ref(), back), (&b"q"[..], message));
        // Version byte, then the queue name as u64 length + bytes, then the id.
        assert_eq!(&record[..10], &[3, 1, 0, 0, 0, 0, 0, 0, 0, b'q']);
        assert_eq!(&record[10..18], &7u64.to_le_bytes());
        assert!(decode::<(Bytes, Message)>(&record[..record.len() - 1]).is_err());
        let mut future = record.clone();
        future[0] = 4;
        assert!(decode::<(Bytes, Message)>(&future).is_err());
    }
}

//! Format 2's records: the types as they were before format 3, read and converted.
//!
//! A message of format 2 has no message group and no deduplication id; a queue is not
//! FIFO (FIFO queues came with format 3).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::message::{Attribute, Message, MessageId, Priority, State};
use crate::queue::QueueConfig;

#[derive(Serialize, Deserialize)]
pub struct MessageV2 {
    id: MessageId,
    priority: Priority,
    payload: Bytes,
    sent_at: Millis,
    deliveries: u32,
    origin: Option<Bytes>,
    state: State,
    ttr: Option<Millis>,
    first_received: Option<Millis>,
    attributes: Vec<Attribute>,
}

impl From<MessageV2> for Message {
    fn from(m: MessageV2) -> Message {
        Message {
            id: m.id,
            priority: m.priority,
            payload: m.payload,
            sent_at: m.sent_at,
            deliveries: m.deliveries,
            origin: m.origin,
            state: m.state,
            ttr: m.ttr,
            first_received: m.first_received,
            attributes: m.attributes,
            group: None,
            deduplication_id: None,
        }
    }
}

#[derive(Deserialize)]
pub struct QueueConfigV2 {
    visibility: Millis,
    max_deliveries: Option<u32>,
    dead_letter: Option<Bytes>,
    retention: Millis,
    max_size: u64,
    delay: Millis,
    receive_wait: Millis,
}

impl From<QueueConfigV2> for QueueConfig {
    fn from(c: QueueConfigV2) -> QueueConfig {
        QueueConfig {
            visibility: c.visibility,
            max_deliveries: c.max_deliveries,
            dead_letter: c.dead_letter,
            retention: c.retention,
            max_size: c.max_size,
            delay: c.delay,
            receive_wait: c.receive_wait,
            fifo: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{decode, options};
    use super::*;
    use bincode::Options;

    #[test]
    fn format_2_records_are_read_with_no_group_and_not_fifo() {
        let old = MessageV2 {
            id: 9,
            priority: 4,
            payload: Bytes::from_static(b"job"),
            sent_at: 77,
            deliveries: 1,
            origin: None,
            state: State::Ready,
            ttr: Some(5000),
            first_received: None,
            attributes: Vec::new(),
        };
        let mut record = vec![2];
        record.extend(
            options()
                .serialize(&(Bytes::from_static(b"q"), &old))
                .unwrap(),
        );
        let (queue, message): (Bytes, Message) = decode(&record).unwrap();
        assert_eq!(&queue[..], b"q");
        assert_eq!((message.id, message.ttr), (9, Some(5000)));
        assert_eq!((message.group, message.deduplication_id), (None, None));
    }
}

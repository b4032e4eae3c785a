//! Format 1's records: the types as they were before format 2, read and converted.
//!
//! A message of format 1 has no TTR (its deliveries get the queue's visibility timeout),
//! no first receive time and no attributes; a queue has no receive wait (0). (Nor what
//! format 3 added: see [`super::format_v2`].)

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::message::{Message, MessageId, Priority, State};
use crate::queue::QueueConfig;

#[derive(Serialize, Deserialize)]
pub struct MessageV1 {
    id: MessageId,
    priority: Priority,
    payload: Bytes,
    sent_at: Millis,
    deliveries: u32,
    origin: Option<Bytes>,
    state: State,
}

impl From<MessageV1> for Message {
    fn from(m: MessageV1) -> Message {
        Message {
            id: m.id,
            priority: m.priority,
            payload: m.payload,
            sent_at: m.sent_at,
            deliveries: m.deliveries,
            origin: m.origin,
            state: m.state,
            ttr: None,
            first_received: None,
            attributes: Vec::new(),
            group: None,
            deduplication_id: None,
        }
    }
}

#[derive(Serialize, Deserialize)]
pub struct QueueConfigV1 {
    visibility: Millis,
    max_deliveries: Option<u32>,
    dead_letter: Option<Bytes>,
    retention: Millis,
    max_size: u64,
    delay: Millis,
}

impl From<QueueConfigV1> for QueueConfig {
    fn from(c: QueueConfigV1) -> QueueConfig {
        QueueConfig {
            visibility: c.visibility,
            max_deliveries: c.max_deliveries,
            dead_letter: c.dead_letter,
            retention: c.retention,
            max_size: c.max_size,
            delay: c.delay,
            receive_wait: 0,
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
    fn format_1_records_are_read_with_the_new_fields_empty() {
        let old = MessageV1 {
            id: 9,
            priority: 4,
            payload: Bytes::from_static(b"job"),
            sent_at: 77,
            deliveries: 1,
            origin: None,
            state: State::Ready,
        };
        let mut record = vec![1];
        record.extend(
            options()
                .serialize(&(Bytes::from_static(b"q"), &old))
                .unwrap(),
        );
        let (queue, message): (Bytes, Message) = decode(&record).unwrap();
        assert_eq!(&queue[..], b"q");
        assert_eq!((message.id, message.priority, message.sent_at), (9, 4, 77));
        assert_eq!((message.ttr, message.attributes.len()), (None, 0));

        let config = QueueConfigV1 {
            visibility: 5000,
            max_deliveries: Some(3),
            dead_letter: None,
            retention: 60_000,
            max_size: 1024,
            delay: 0,
        };
        let mut record = vec![1];
        record.extend(options().serialize(&config).unwrap());
        let back: QueueConfig = decode(&record).unwrap();
        assert_eq!((back.visibility, back.max_deliveries), (5000, Some(3)));
        assert_eq!(back.receive_wait, 0);
    }
}

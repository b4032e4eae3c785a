//! What a send to a FIFO queue must say, and what a standard queue refuses (SQS's rules
//! and error wording): the engine's side, groups and the deduplication window, is
//! [`crate::fifo`].
//!
//! | parameter | FIFO queue | standard queue |
//! |---|---|---|
//! | `MessageGroupId` | required (`MissingParameter`) | accepted (fair queues), no ordering |
//! | `MessageDeduplicationId` | required unless `ContentBasedDeduplication` | `InvalidParameterValue` |
//! | `DelaySeconds` (per message) | `InvalidParameterValue` (only the queue's delay) | 0 to 900 |

use bytes::Bytes;

use super::digest::sha256_hex;
use super::errors::SqsError;
use super::wire::Input;
use crate::fifo::FifoQueue;

/// The longest group or deduplication id.
const MAX_ID: usize = 128;

/// A send's group and deduplication id, checked against its queue's type.
pub struct SendIds {
    pub group: Option<Bytes>,
    pub deduplication_id: Option<Bytes>,
}

/// SQS's wording for a parameter a queue of this type does not take.
fn not_for_this_queue(name: &str, value: &str) -> SqsError {
    SqsError::invalid(format!(
        "Value {value} for parameter {name} is invalid. Reason: The request include parameter \
         that is not valid for this queue type."
    ))
}

/// 1 to 128 characters, letters, digits and punctuation (`!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~`).
fn checked_id(name: &str, value: Option<&str>) -> Result<Option<Bytes>, SqsError> {
    let Some(value) = value else {
        return Ok(None);
    };
    if value.is_empty() || value.len() > MAX_ID || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(SqsError::invalid(format!(
            "Value {value} for parameter {name} is invalid. Reason: It can contain only \
             alphanumeric characters and punctuation, 1 to 128 of them."
        )));
    }
    Ok(Some(Bytes::copy_from_slice(value.as_bytes())))
}

/// Checks one send (or batch entry) of `body` to a queue that is FIFO if `fifo` is set.
pub fn send_ids(fifo: Option<FifoQueue>, input: &Input, body: &str) -> Result<SendIds, SqsError> {
    let group = checked_id("MessageGroupId", input.str("MessageGroupId")?)?;
    let given = checked_id(
        "MessageDeduplicationId",
        input.str("MessageDeduplicationId")?,
    )?;
    let Some(fifo) = fifo else {
        if let Some(id) = input.str("MessageDeduplicationId")? {
            return Err(not_for_this_queue("MessageDeduplicationId", id));
        }
        return Ok(SendIds {
            group,
            deduplication_id: None,
        });
    };
    if group.is_none() {
        return Err(SqsError::missing("MessageGroupId"));
    }
    if let Some(delay) = input.get("DelaySeconds") {
        return Err(not_for_this_queue("DelaySeconds", &delay.to_string()));
    }
    let deduplication_id = match given {
        Some(id) => id,
        None if fifo.content_based_deduplication => Bytes::from(sha256_hex(body.as_bytes())),
        None => {
            return Err(SqsError::invalid(
                "The queue should either have ContentBasedDeduplication enabled or \
                 MessageDeduplicationId provided explicitly",
            ));
        }
    };
    Ok(SendIds {
        group,
        deduplication_id: Some(deduplication_id),
    })
}

/// Is a queue named `name` FIFO by its name (SQS: exactly the names ending in `.fifo`)?
pub fn is_fifo_name(name: &str) -> bool {
    name.ends_with(".fifo")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(v: serde_json::Value) -> Input {
        match v {
            serde_json::Value::Object(map) => Input::from_map(map),
            _ => unreachable!(),
        }
    }

    fn code(fifo: Option<FifoQueue>, v: serde_json::Value) -> &'static str {
        send_ids(fifo, &input(v), "body")
            .err()
            .map_or("ok", |e| e.code)
    }

    #[test]
    fn fifo_sends_need_a_group_and_a_deduplication_id() {
        let fifo = Some(FifoQueue::default());
        let content = Some(FifoQueue {
            content_based_deduplication: true,
        });
        assert_eq!(code(fifo, json!({})), "MissingParameter");
        assert_eq!(
            code(fifo, json!({"MessageGroupId": "g"})),
            "InvalidParameterValue"
        );
        let both = json!({"MessageGroupId": "g", "MessageDeduplicationId": "d"});
        assert_eq!(code(fifo, both), "ok");
        assert_eq!(code(content, json!({"MessageGroupId": "g"})), "ok");
        let delayed =
            json!({"MessageGroupId": "g", "MessageDeduplicationId": "d", "DelaySeconds": 5});
        assert_eq!(code(fifo, delayed), "InvalidParameterValue");
        let long = json!({"MessageGroupId": "g".repeat(129), "MessageDeduplicationId": "d"});
        assert_eq!(code(fifo, long), "InvalidParameterValue");
        assert_eq!(
            code(None, json!({"MessageDeduplicationId": "d"})),
            "InvalidParameterValue"
        );
        assert_eq!(code(None, json!({"MessageGroupId": "g"})), "ok");
        let ids = send_ids(content, &input(json!({"MessageGroupId": "g"})), "hello").unwrap();
        // sha256("hello")
        assert_eq!(
            ids.deduplication_id.as_deref(),
            Some(&b"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"[..])
        );
    }
}

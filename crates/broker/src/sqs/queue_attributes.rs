//! Queue attributes: SQS's names and units for the engine's [`QueueConfig`].
//!
//! | SQS attribute | the engine | RESP (`QCREATE`) |
//! |---|---|---|
//! | `VisibilityTimeout` (s) | `visibility` (ms) | `VISIBILITY` |
//! | `DelaySeconds` | `delay` | `DELAY` |
//! | `MessageRetentionPeriod` (s) | `retention` | `RETENTION` |
//! | `MaximumMessageSize` (bytes) | `max_size` | `MAXSIZE` |
//! | `ReceiveMessageWaitTimeSeconds` | `receive_wait` | (a `QRECV`'s own `BLOCK`) |
//! | `RedrivePolicy` `{"deadLetterTargetArn", "maxReceiveCount"}` | `dead_letter`, `max_deliveries` | `DEADLETTER`, `MAXDELIVERIES` |
//!
//! | `FifoQueue` (at creation, with a `.fifo` name) | `fifo` | (a queue created over SQS) |
//! | `ContentBasedDeduplication` (FIFO only) | `fifo.content_based_deduplication` | |
//!
//! and the read-only counts: `ApproximateNumberOfMessages` (ready),
//! `ApproximateNumberOfMessagesNotVisible` (in flight), `ApproximateNumberOfMessagesDelayed`.

use serde_json::{Map, Value};

use super::errors::SqsError;
use super::wire::{queue_arn, queue_of_arn};
use crate::dead_letter::dead_letter_queue;
use crate::engine::QueueStats;
use crate::queue::QueueConfig;

/// Every attribute `GetQueueAttributes` knows, in the order it lists them.
pub const NAMES: &[&str] = &[
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "QueueArn",
    "ReceiveMessageWaitTimeSeconds",
    "RedrivePolicy",
    "VisibilityTimeout",
    // FIFO queues only.
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
];

/// The largest message SQS accepts (1 MiB since 2025; 256 KiB before).
const MAX_MESSAGE_SIZE: u64 = 1024 * 1024;

/// Sets the attributes `given` on `config`. Returns the dead-letter queue a
/// `RedrivePolicy` names, for the caller to check that it exists.
pub fn apply(
    config: &mut QueueConfig,
    given: &[(&str, &str)],
) -> Result<Option<bytes::Bytes>, SqsError> {
    let mut target = None;
    for &(name, value) in given {
        let seconds = |range: std::ops::RangeInclusive<u64>| -> Result<u64, SqsError> {
            match value.parse::<u64>() {
                Ok(v) if range.contains(&v) => Ok(v),
                _ => Err(SqsError::attribute_value(
                    name,
                    &format!("must be between {} and {}", range.start(), range.end()),
                )),
            }
        };
        match name {
            "VisibilityTimeout" => config.visibility = seconds(0..=43_200)? * 1000,
            "DelaySeconds" => config.delay = seconds(0..=900)? * 1000,
            "MessageRetentionPeriod" => config.retention = seconds(60..=1_209_600)? * 1000,
            "MaximumMessageSize" => config.max_size = seconds(1024..=MAX_MESSAGE_SIZE)?,
            "ReceiveMessageWaitTimeSeconds" => config.receive_wait = seconds(0..=20)? * 1000,
            "RedrivePolicy" if value.is_empty() => {
                config.dead_letter = None;
                config.max_deliveries = None;
            }
            "RedrivePolicy" => {
                let (dlq, max) = redrive_policy(value)?;
                config.dead_letter = Some(dlq.clone());
                config.max_deliveries = Some(max);
                target = Some(dlq);
            }
            // Accepted and not kept: they change nothing here.
            "Policy"
            | "KmsMasterKeyId"
            | "KmsDataKeyReusePeriodSeconds"
            | "SqsManagedSseEnabled"
            | "RedriveAllowPolicy" => {}
            // Decided when the queue is created (by its name and this attribute), and
            // never changed: the same value is accepted, another is not.
            "FifoQueue"
                if value
                    == (if config.fifo.is_some() {
                        "true"
                    } else {
                        "false"
                    }) => {}
            "FifoQueue" => {
                return Err(SqsError::attribute_value(
                    name,
                    "a queue's type is set when it is created (a FIFO queue's name ends in .fifo)",
                ));
            }
            "ContentBasedDeduplication" | "DeduplicationScope" | "FifoThroughputLimit"
                if config.fifo.is_none() =>
            {
                return Err(SqsError::attribute_name(name));
            }
            "ContentBasedDeduplication" => {
                let on = match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(SqsError::attribute_value(name, "must be true or false")),
                };
                if let Some(fifo) = &mut config.fifo {
                    fifo.content_based_deduplication = on;
                }
            }
            // The deduplication window is per queue, and there is no throughput limit
            // to choose: the defaults are what this broker does.
            "DeduplicationScope" if value == "queue" => {}
            "FifoThroughputLimit" if value == "perQueue" || value == "perMessageGroupId" => {}
            "DeduplicationScope" => {
                return Err(SqsError::unsupported(
                    "DeduplicationScope: only \"queue\" (the deduplication window is per queue)",
                ));
            }
            "FifoThroughputLimit" => {
                return Err(SqsError::attribute_value(
                    name,
                    "must be perQueue or perMessageGroupId",
                ));
            }
            _ => return Err(SqsError::attribute_name(name)),
        }
    }
    Ok(target)
}

/// `{"deadLetterTargetArn": "arn:...:dlq", "maxReceiveCount": 5}` (the count may be a
/// string, as the console writes it).
fn redrive_policy(value: &str) -> Result<(bytes::Bytes, u32), SqsError> {
    let bad = |reason: &str| SqsError::attribute_value("RedrivePolicy", reason);
    let Ok(Value::Object(policy)) = serde_json::from_str::<Value>(value) else {
        return Err(bad("it is not a JSON object"));
    };
    let arn = policy
        .get("deadLetterTargetArn")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("deadLetterTargetArn is missing"))?;
    let max = match policy.get("maxReceiveCount") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    let max = max
        .filter(|m| (1..=1000).contains(m))
        .ok_or_else(|| bad("maxReceiveCount must be between 1 and 1000"))?;
    Ok((queue_of_arn(arn)?, max as u32))
}

/// The attributes `wanted` (`All`, or names) of queue `name`.
pub fn get(
    name: &[u8],
    stats: &QueueStats,
    region: &str,
    wanted: &[&str],
) -> Result<Map<String, Value>, SqsError> {
    if let Some(unknown) = wanted.iter().find(|w| **w != "All" && !NAMES.contains(w)) {
        return Err(SqsError::attribute_name(unknown));
    }
    let all = wanted.contains(&"All");
    let config = &stats.config;
    let mut out = Map::new();
    for &attribute in NAMES {
        if !all && !wanted.contains(&attribute) {
            continue;
        }
        let value = match attribute {
            "ApproximateNumberOfMessages" => stats.ready.to_string(),
            "ApproximateNumberOfMessagesNotVisible" => stats.in_flight.to_string(),
            "ApproximateNumberOfMessagesDelayed" => stats.delayed.to_string(),
            "DelaySeconds" => (config.delay / 1000).to_string(),
            "MaximumMessageSize" => config.max_size.to_string(),
            "MessageRetentionPeriod" => (config.retention / 1000).to_string(),
            "QueueArn" => queue_arn(region, name),
            "ReceiveMessageWaitTimeSeconds" => (config.receive_wait / 1000).to_string(),
            "VisibilityTimeout" => (config.visibility / 1000).to_string(),
            "RedrivePolicy" => match config.max_deliveries {
                Some(max) => serde_json::json!({
                    "deadLetterTargetArn": queue_arn(region, &dead_letter_queue(name, config)),
                    "maxReceiveCount": max,
                })
                .to_string(),
                None => continue,
            },
            _ if config.fifo.is_none() => continue,
            "FifoQueue" => "true".into(),
            "ContentBasedDeduplication" => config
                .fifo
                .is_some_and(|f| f.content_based_deduplication)
                .to_string(),
            "DeduplicationScope" => "queue".into(),
            "FifoThroughputLimit" => "perQueue".into(),
            _ => continue,
        };
        out.insert(attribute.into(), value.into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_set_the_config_in_its_units() {
        let mut config = QueueConfig::default();
        let target = apply(
            &mut config,
            &[
                ("VisibilityTimeout", "5"),
                ("DelaySeconds", "2"),
                ("ReceiveMessageWaitTimeSeconds", "20"),
                (
                    "RedrivePolicy",
                    r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dead","maxReceiveCount":"3"}"#,
                ),
            ],
        )
        .unwrap();
        assert_eq!(target.as_deref(), Some(&b"dead"[..]));
        assert_eq!((config.visibility, config.delay), (5000, 2000));
        assert_eq!(
            (config.receive_wait, config.max_deliveries),
            (20_000, Some(3))
        );
        let code = |name, value| {
            apply(&mut QueueConfig::default(), &[(name, value)])
                .unwrap_err()
                .code
        };
        assert_eq!(code("VisibilityTimeout", "43201"), "InvalidAttributeValue");
        assert_eq!(code("Colour", "blue"), "InvalidAttributeName");
        assert_eq!(code("RedrivePolicy", "{}"), "InvalidAttributeValue");
        // FIFO attributes: on a standard queue, unknown; the type cannot change.
        assert_eq!(code("FifoQueue", "true"), "InvalidAttributeValue");
        assert_eq!(
            code("ContentBasedDeduplication", "true"),
            "InvalidAttributeName"
        );
        let mut fifo = QueueConfig {
            fifo: Some(crate::fifo::FifoQueue::default()),
            ..QueueConfig::default()
        };
        apply(
            &mut fifo,
            &[("FifoQueue", "true"), ("ContentBasedDeduplication", "true")],
        )
        .unwrap();
        assert!(fifo.fifo.unwrap().content_based_deduplication);
    }
}

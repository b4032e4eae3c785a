//! Dead letters: where a message goes when it keeps failing.
//!
//! A message whose handler always crashes (a malformed video, a bug) would otherwise
//! circle forever: delivered, timed out, delivered again, blocking a worker each time —
//! a *poison message*. With a maximum number of deliveries, the broker gives up on it
//! after the last failed delivery and moves it to a separate *dead-letter queue*, where
//! an operator can inspect it (`QPEEK`), fix the cause, and *redrive* it back to the
//! queue it came from (`QREDRIVE`). SQS calls the limit `maxReceiveCount`; beanstalkd
//! "buries" such jobs and "kicks" them back.

use bytes::Bytes;

use crate::message::Message;
use crate::queue::QueueConfig;

/// The dead-letter queue of `queue` when `MAXDELIVERIES` is set without `DEADLETTER`.
pub fn default_dead_letter_queue(queue: &[u8]) -> Bytes {
    let mut name = Vec::with_capacity(queue.len() + 4);
    name.extend_from_slice(queue);
    name.extend_from_slice(b":dlq");
    Bytes::from(name)
}

/// Has `message`, whose delivery just ended without an acknowledgement, used up its
/// deliveries? If so, the name of the queue it must move to.
pub fn destination(queue: &[u8], config: &QueueConfig, message: &Message) -> Option<Bytes> {
    let max = config.max_deliveries?;
    if message.deliveries < max {
        return None;
    }
    Some(dead_letter_queue(queue, config))
}

/// Where `queue`'s dead letters go: its `DEADLETTER`, or `<queue>:dlq`.
pub fn dead_letter_queue(queue: &[u8], config: &QueueConfig) -> Bytes {
    config
        .dead_letter
        .clone()
        .unwrap_or_else(|| default_dead_letter_queue(queue))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_after_the_last_allowed_delivery() {
        let mut config = QueueConfig::default();
        let mut m = Message {
            deliveries: 2,
            ..crate::message::ready(1)
        };
        assert_eq!(destination(b"jobs", &config, &m), None, "no limit set");
        config.max_deliveries = Some(3);
        assert_eq!(destination(b"jobs", &config, &m), None);
        m.deliveries = 3;
        assert_eq!(
            destination(b"jobs", &config, &m).as_deref(),
            Some(&b"jobs:dlq"[..])
        );
        config.dead_letter = Some(Bytes::from_static(b"poison"));
        assert_eq!(
            destination(b"jobs", &config, &m).as_deref(),
            Some(&b"poison"[..])
        );
    }
}

//! FIFO queues: strict order per message group, and exactly-once sends.
//!
//! A standard queue (the broker's default, and SQS's) hands out messages in priority and
//! age order to whoever asks, several at a time: two consumers may work on a customer's
//! "order placed" and "order cancelled" at once, and finish them in either order. An SQS
//! FIFO queue (its name ends in `.fifo`) adds two promises:
//!
//! - **Order within a message group.** Every message carries a *group id* (say, the
//!   customer). While a message of a group is in flight, no other message of that group
//!   is handed out: the group is *blocked* until its message is deleted, or comes back
//!   when its visibility timeout ends (and is then received again, first). So one group's
//!   messages are processed one after another, in the order they were sent, while
//!   different groups are processed in parallel. The group is the unit of ordering *and*
//!   of parallelism: one group is a single-file line, many groups are many lines.
//! - **No duplicate sends for five minutes.** A producer that times out does not know
//!   whether its send arrived, so it sends again. Each send carries a *deduplication id*
//!   (its own, or the SHA-256 of the body with `ContentBasedDeduplication`); a second
//!   send with an id seen in the last five minutes is accepted and answered as the first
//!   (the same message id) but adds nothing. Retries are then safe: exactly-once *sending*,
//!   while receiving stays at-least-once (a consumer that dies mid-job still gets the job
//!   redelivered).
//!
//! Here the group is a field of the message, the blocking is in [`Queue::receive`] (it
//! skips the groups [`InFlightGroups`] counts), and the window is a [`Dedup`] per queue.
//! The window lives in memory: after a restart it holds the ids of the messages still in
//! the queue (they are stored with them), not those of messages already deleted.
//!
//! [`Queue::receive`]: crate::queue::Queue::receive

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::message::{Message, MessageId};

/// SQS's deduplication interval.
pub const DEDUP_WINDOW: Millis = 5 * 60 * 1000;

/// What a FIFO queue's attributes add (present: the queue is FIFO).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FifoQueue {
    /// A send without a deduplication id uses the SHA-256 of its body as one.
    pub content_based_deduplication: bool,
}

/// How many in-flight messages each message group has: a group with any is blocked.
#[derive(Debug, Default, Clone)]
pub struct InFlightGroups {
    counts: HashMap<Bytes, usize>,
}

impl InFlightGroups {
    /// `message` was leased.
    pub fn leased(&mut self, message: &Message) {
        if let Some(group) = &message.group {
            *self.counts.entry(group.clone()).or_default() += 1;
        }
    }

    /// `message`'s lease ended (acknowledged, given back, timed out).
    pub fn ended(&mut self, message: &Message) {
        if let Some(group) = &message.group
            && let Some(count) = self.counts.get_mut(group)
        {
            *count -= 1;
            if *count == 0 {
                self.counts.remove(group);
            }
        }
    }

    pub fn is_blocked(&self, group: &Bytes) -> bool {
        self.counts.contains_key(group)
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    pub fn clear(&mut self) {
        self.counts.clear();
    }
}

/// The deduplication ids sent in the last [`DEDUP_WINDOW`], and the message each got.
/// Memory is bounded by the sends of five minutes: expired ids are dropped as new ones
/// come (oldest first, from `order`).
#[derive(Debug, Default, Clone)]
pub struct Dedup {
    seen: HashMap<Bytes, (MessageId, Millis)>,
    /// (when it was first sent, id), oldest first.
    order: VecDeque<(Millis, Bytes)>,
}

impl Dedup {
    /// The message a send with `id` within the window already made, if any.
    pub fn find(&mut self, id: &Bytes, now: Millis) -> Option<MessageId> {
        self.expire(now);
        self.seen.get(id).map(|&(message, _)| message)
    }

    /// Remembers that `id` made `message` at `sent_at` (a send, or a stored message read
    /// back after a restart).
    pub fn remember(&mut self, id: Bytes, message: MessageId, sent_at: Millis) {
        if self.seen.contains_key(&id) {
            return;
        }
        self.seen.insert(id.clone(), (message, sent_at));
        // Restored messages come in id order, which is send order: `order` stays sorted.
        self.order.push_back((sent_at, id));
    }

    fn expire(&mut self, now: Millis) {
        while let Some((sent_at, _)) = self.order.front() {
            if sent_at.saturating_add(DEDUP_WINDOW) > now {
                break;
            }
            if let Some((_, id)) = self.order.pop_front() {
                self.seen.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::ready;

    #[test]
    fn an_id_is_a_duplicate_for_five_minutes_only() {
        let mut d = Dedup::default();
        let id = Bytes::from_static(b"order-1");
        assert_eq!(d.find(&id, 0), None);
        d.remember(id.clone(), 7, 1000);
        assert_eq!(d.find(&id, 1000 + DEDUP_WINDOW - 1), Some(7));
        assert_eq!(d.find(&id, 1000 + DEDUP_WINDOW), None);
        assert!(
            d.seen.is_empty() && d.order.is_empty(),
            "expired ids are dropped"
        );
    }

    #[test]
    fn a_group_is_blocked_while_any_of_its_messages_is_in_flight() {
        let mut g = InFlightGroups::default();
        let mut a = ready(1);
        a.group = Some(Bytes::from_static(b"a"));
        let mut b = ready(2);
        b.group = Some(Bytes::from_static(b"a"));
        g.leased(&a);
        g.leased(&b);
        g.ended(&a);
        assert!(g.is_blocked(&Bytes::from_static(b"a")));
        g.ended(&b);
        assert!(!g.is_blocked(&Bytes::from_static(b"a")) && g.is_empty());
        g.leased(&ready(3)); // no group: nothing to count
        assert!(g.is_empty());
    }
}

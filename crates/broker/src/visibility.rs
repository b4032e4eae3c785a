//! The visibility timeout: how a broker survives consumers that crash.
//!
//! A queue cannot know whether a consumer that took a message is working on it, slow, or
//! dead. So a receive does not remove the message; it *leases* it: the message becomes
//! invisible to other consumers for the visibility timeout (30 s by default, as in SQS;
//! beanstalkd calls it TTR, time-to-run). If the consumer acknowledges within the lease,
//! the message is deleted. If the lease runs out first, the broker assumes the worst and
//! makes the message visible again, for another consumer — *at-least-once* delivery: a
//! message may be processed twice (make your handlers idempotent), but never lost.
//!
//! A long job extends its lease as it goes (`QEXTEND`, a heartbeat; beanstalkd's `touch`,
//! SQS's `ChangeMessageVisibility`), so the timeout can stay short enough to detect a dead
//! worker quickly.

use crate::clock::Millis;
use crate::message::{Lease, Message, MessageId, State};
use crate::receipt::Receipt;
use crate::schedule::Schedule;

/// The longest lease one receive or extension may ask for (SQS's limit).
pub const MAX_VISIBILITY: Millis = 12 * 60 * 60 * 1000;

/// Why a receipt does not work (any more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// The message is gone (acknowledged, purged, expired) or not in flight.
    NotInFlight,
    /// The message is in flight under another delivery's receipt: this one has expired.
    Superseded,
}

/// The in-flight messages of one queue, ordered by when their leases end.
#[derive(Debug, Default, Clone)]
pub struct VisibilityTimeout {
    deadlines: Schedule,
}

impl VisibilityTimeout {
    /// Hands `message` to a consumer for `timeout` ms: counts the delivery, issues its
    /// receipt and hides the message until `now + timeout`.
    pub fn lease(
        &mut self,
        message: &mut Message,
        timeout: Millis,
        now: Millis,
        nonce: u64,
    ) -> Receipt {
        message.deliveries = message.deliveries.saturating_add(1);
        message.first_received.get_or_insert(now);
        let receipt = Receipt {
            message: message.id,
            delivery: message.deliveries,
            nonce,
        };
        let deadline = now.saturating_add(timeout);
        message.state = State::InFlight(Lease { receipt, deadline });
        self.deadlines.insert(deadline, message.id);
        receipt
    }

    /// Puts a message loaded from disk back under its lease.
    pub fn restore(&mut self, message: &Message) {
        if let State::InFlight(lease) = message.state {
            self.deadlines.insert(lease.deadline, message.id);
        }
    }

    /// Is `receipt` the receipt of the current, unexpired delivery of `message`?
    pub fn verify(message: &Message, receipt: &Receipt, now: Millis) -> Result<Lease, Stale> {
        match message.state {
            State::InFlight(lease) if lease.receipt == *receipt && lease.deadline > now => {
                Ok(lease)
            }
            State::InFlight(_) => Err(Stale::Superseded),
            _ => Err(Stale::NotInFlight),
        }
    }

    /// Moves the lease's end to `now + timeout` (the caller verified the receipt).
    pub fn extend(&mut self, message: &mut Message, timeout: Millis, now: Millis) {
        if let State::InFlight(lease) = &mut message.state {
            self.deadlines.remove(lease.deadline, message.id);
            lease.deadline = now.saturating_add(timeout);
            self.deadlines.insert(lease.deadline, message.id);
        }
    }

    /// Forgets the lease of a message leaving the in-flight state (the caller sets the
    /// message's new state).
    pub fn end(&mut self, message: &Message) {
        if let State::InFlight(lease) = message.state {
            self.deadlines.remove(lease.deadline, message.id);
        }
    }

    /// The next message whose lease has run out by `now`, removed from the set.
    pub fn pop_expired(&mut self, now: Millis) -> Option<MessageId> {
        self.deadlines.pop_due(now)
    }

    /// When the next lease runs out.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.deadlines.next_due()
    }

    /// How many messages are in flight.
    pub fn len(&self) -> usize {
        self.deadlines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.deadlines.is_empty()
    }

    pub fn clear(&mut self) {
        self.deadlines.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::ready as message;

    #[test]
    fn a_lease_ends_at_its_deadline_and_its_receipt_with_it() {
        let mut v = VisibilityTimeout::default();
        let mut m = message(1);
        let first = v.lease(&mut m, 1000, 5000, 11);
        assert_eq!((first.delivery, m.deliveries), (1, 1));
        assert!(VisibilityTimeout::verify(&m, &first, 5999).is_ok());
        assert_eq!(v.pop_expired(5999), None);
        assert_eq!(
            VisibilityTimeout::verify(&m, &first, 6000),
            Err(Stale::Superseded)
        );
        assert_eq!(v.pop_expired(6000), Some(1));
        // Delivered again: a new receipt; the old one no longer verifies.
        let second = v.lease(&mut m, 1000, 6000, 12);
        assert_eq!(second.delivery, 2);
        assert!(VisibilityTimeout::verify(&m, &second, 6500).is_ok());
        assert_eq!(
            VisibilityTimeout::verify(&m, &first, 6500),
            Err(Stale::Superseded)
        );
    }

    #[test]
    fn extending_moves_the_deadline() {
        let mut v = VisibilityTimeout::default();
        let mut m = message(1);
        let r = v.lease(&mut m, 1000, 0, 1);
        v.extend(&mut m, 5000, 900);
        assert_eq!(v.pop_expired(1000), None);
        assert!(VisibilityTimeout::verify(&m, &r, 5899).is_ok());
        assert_eq!(v.next_deadline(), Some(5900));
        v.end(&m);
        assert!(v.is_empty());
    }
}

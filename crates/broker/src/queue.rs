//! One queue: its messages, indexed three ways for the three questions a broker asks.
//!
//! - *Which message does the next consumer get?* — `ready`, sorted by (priority, id):
//!   the most urgent priority first and, within a priority, the oldest first (FIFO). A
//!   message that comes back after a failed delivery keeps its id, so it returns to its
//!   place at the front rather than going behind newer work (beanstalkd does the same).
//! - *Which delayed message may be received next?* — `delayed`, a [`Schedule`].
//! - *Whose lease runs out next?* — `in_flight`, a [`VisibilityTimeout`].
//!
//! `messages` holds the messages themselves, by id; ids grow with send time, so its first
//! entry is the oldest message, which is where the retention period bites first.
//!
//! A queue never touches the disk or another queue: operations report what changed in a
//! [`Changes`], and the engine persists it and moves dead letters.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::dead_letter;
use crate::fifo::{Dedup, FifoQueue, InFlightGroups};
use crate::message::{Attribute, Message, MessageId, Priority, State};
use crate::receipt::{NonceSource, Receipt};
use crate::schedule::Schedule;
use crate::visibility::{Stale, VisibilityTimeout};

/// A queue's attributes (`QCREATE` options). Durations in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueConfig {
    /// How long a received message stays invisible (default 30 s, as SQS).
    pub visibility: Millis,
    /// Deliveries after which an unacknowledged message is dead-lettered (default: never).
    pub max_deliveries: Option<u32>,
    /// Where dead letters go (default `<queue>:dlq`).
    pub dead_letter: Option<Bytes>,
    /// Messages older than this are deleted, acknowledged or not (default 4 days, as SQS).
    pub retention: Millis,
    /// Largest payload accepted, in bytes (default 256 KiB, as SQS).
    pub max_size: u64,
    /// Delay applied to every message sent without its own DELAY (default 0).
    pub delay: Millis,
    /// How long a receive that does not say waits for a message (SQS's
    /// `ReceiveMessageWaitTimeSeconds`, default 0: it returns at once).
    pub receive_wait: Millis,
    /// A FIFO queue (SQS's `FifoQueue`, a name ending in `.fifo`): message groups are
    /// received in order, one in-flight message per group (see [`crate::fifo`]).
    pub fifo: Option<FifoQueue>,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            visibility: 30_000,
            max_deliveries: None,
            dead_letter: None,
            retention: 4 * 24 * 60 * 60 * 1000,
            max_size: 256 * 1024,
            delay: 0,
            receive_wait: 0,
            fifo: None,
        }
    }
}

/// Lifetime totals, for `QSTATS` (since the server started).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub sent: u64,
    /// Deliveries, first ones and redeliveries.
    pub received: u64,
    /// Deliveries of a message that had been delivered before.
    pub redelivered: u64,
    pub acked: u64,
    pub nacked: u64,
    /// Leases that ran out (the consumer did not ack in time).
    pub timed_out: u64,
    /// In-flight messages returned because their consumer disconnected.
    pub released: u64,
    pub dead_lettered: u64,
    /// Deleted by the retention period.
    pub expired: u64,
    pub purged: u64,
}

/// One message handed to a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: MessageId,
    pub receipt: Receipt,
    pub payload: Bytes,
    pub deliveries: u32,
    pub priority: Priority,
    /// When the message was sent, and first received.
    pub sent_at: Millis,
    pub first_received: Millis,
    pub attributes: Vec<Attribute>,
    /// SQS FIFO: the message's group and deduplication id.
    pub group: Option<Bytes>,
    pub deduplication_id: Option<Bytes>,
}

impl Delivery {
    /// The delivery `receipt` of `message`, just leased.
    pub fn of(message: &Message, receipt: Receipt) -> Delivery {
        Delivery {
            id: message.id,
            receipt,
            payload: message.payload.clone(),
            deliveries: message.deliveries,
            priority: message.priority,
            sent_at: message.sent_at,
            first_received: message.first_received.unwrap_or(message.sent_at),
            attributes: message.attributes.clone(),
            group: message.group.clone(),
            deduplication_id: message.deduplication_id.clone(),
        }
    }
}

/// What an operation changed, for the engine to persist and route.
#[derive(Debug, Default)]
pub struct Changes {
    /// Messages of this queue whose [`Status`](crate::message::Status) changed (and
    /// nothing else: a message that changes queue is in `dead`).
    pub saved: Vec<MessageId>,
    /// Messages removed from this queue for good.
    pub deleted: Vec<MessageId>,
    /// Messages removed from this queue to go to a dead-letter queue: (that queue, message).
    pub dead: Vec<(Bytes, Message)>,
    /// Did a message become ready (so waiting consumers should look)?
    pub readied: bool,
}

#[derive(Debug, Clone)]
pub struct Queue {
    pub name: Bytes,
    pub config: QueueConfig,
    pub counters: Counters,
    messages: BTreeMap<MessageId, Message>,
    ready: BTreeSet<(Priority, MessageId)>,
    delayed: Schedule,
    in_flight: VisibilityTimeout,
    /// The message groups with a message in flight (FIFO queues receive around them).
    groups: InFlightGroups,
    /// FIFO queues: the deduplication ids of the last five minutes.
    dedup: Dedup,
}

impl Queue {
    pub fn new(name: Bytes, config: QueueConfig) -> Self {
        Queue {
            name,
            config,
            counters: Counters::default(),
            messages: BTreeMap::new(),
            ready: BTreeSet::new(),
            delayed: Schedule::default(),
            in_flight: VisibilityTimeout::default(),
            groups: InFlightGroups::default(),
            dedup: Dedup::default(),
        }
    }

    /// Adds a message in whatever state it is in.
    pub fn insert(&mut self, message: Message) {
        match message.state {
            State::Ready => {
                self.ready.insert((message.priority, message.id));
            }
            State::Delayed { until } => self.delayed.insert(until, message.id),
            State::InFlight(_) => {
                self.in_flight.restore(&message);
                self.groups.leased(&message);
            }
        }
        if let Some(id) = &message.deduplication_id {
            self.dedup.remember(id.clone(), message.id, message.sent_at);
        }
        self.messages.insert(message.id, message);
    }

    /// Removes a message from the queue and every index.
    pub fn take(&mut self, id: MessageId) -> Option<Message> {
        let message = self.messages.remove(&id)?;
        match message.state {
            State::Ready => {
                self.ready.remove(&(message.priority, id));
            }
            State::Delayed { until } => self.delayed.remove(until, id),
            State::InFlight(_) => {
                self.in_flight.end(&message);
                self.groups.ended(&message);
            }
        }
        Some(message)
    }

    pub fn get(&self, id: MessageId) -> Option<&Message> {
        self.messages.get(&id)
    }

    /// Every message, oldest first (for the few operations that look at all of them:
    /// beanstalkd's `kick` of delayed jobs, `peek-delayed`, `peek-buried`).
    pub fn messages(&self) -> impl Iterator<Item = &Message> {
        self.messages.values()
    }

    /// Applies the passage of time up to `now`: delays that have passed, leases that have
    /// run out, messages past the retention period.
    pub fn tick(&mut self, now: Millis, changes: &mut Changes) {
        while let Some(id) = self.delayed.pop_due(now) {
            if let Some(m) = self.messages.get_mut(&id) {
                m.state = State::Ready;
                self.ready.insert((m.priority, id));
                changes.saved.push(id);
                changes.readied = true;
            }
        }
        while let Some(id) = self.in_flight.pop_expired(now) {
            self.counters.timed_out += 1;
            self.end_delivery(id, 0, now, changes);
        }
        while let Some((&id, oldest)) = self.messages.first_key_value() {
            if oldest.sent_at.saturating_add(self.config.retention) > now {
                break;
            }
            self.take(id);
            self.counters.expired += 1;
            changes.deleted.push(id);
        }
    }

    /// A delivery of `id` ended without an acknowledgement: back to ready (after `delay`),
    /// or to the dead-letter queue if it has had all its deliveries.
    fn end_delivery(&mut self, id: MessageId, delay: Millis, now: Millis, changes: &mut Changes) {
        let Some(message) = self.messages.get(&id) else {
            return;
        };
        if let Some(dlq) = dead_letter::destination(&self.name, &self.config, message) {
            if let Some(mut message) = self.take(id) {
                message.state = State::Ready;
                message.origin.get_or_insert_with(|| self.name.clone());
                self.counters.dead_lettered += 1;
                changes.dead.push((dlq, message));
            }
            return;
        }
        let Some(message) = self.messages.get_mut(&id) else {
            return;
        };
        self.in_flight.end(message);
        self.groups.ended(message);
        if delay > 0 {
            let until = now.saturating_add(delay);
            message.state = State::Delayed { until };
            self.delayed.insert(until, id);
        } else {
            message.state = State::Ready;
            self.ready.insert((message.priority, id));
            changes.readied = true;
        }
        changes.saved.push(id);
    }

    /// Leases up to `max` ready messages in priority-then-FIFO order, each for
    /// `timeout(message)` ms.
    ///
    /// In a FIFO queue a message group with a message in flight is blocked: its messages
    /// are skipped, so the next consumer gets another group's (or nothing). One receive
    /// may take several messages of one open group, in order (as SQS does); the group is
    /// then blocked until all of them are done.
    pub fn receive(
        &mut self,
        max: usize,
        timeout: impl Fn(&Message) -> Millis,
        now: Millis,
        nonces: &mut NonceSource,
        out: &mut Vec<Delivery>,
    ) {
        let blocked: HashSet<Bytes> = match self.config.fifo {
            Some(_) if !self.groups.is_empty() => self
                .ready
                .iter()
                .filter_map(|(_, id)| self.messages.get(id)?.group.clone())
                .filter(|g| self.groups.is_blocked(g))
                .collect(),
            _ => HashSet::new(),
        };
        while out.len() < max {
            // Standard queues (and FIFO ones with no group blocked): the first ready
            // message. Otherwise a scan past the blocked groups' messages.
            let next = if blocked.is_empty() {
                self.ready.pop_first()
            } else {
                let open = self
                    .ready
                    .iter()
                    .find(|(_, id)| {
                        self.messages
                            .get(id)
                            .and_then(|m| m.group.as_ref())
                            .is_none_or(|g| !blocked.contains(g))
                    })
                    .copied();
                open.filter(|key| self.ready.remove(key))
            };
            let Some((_, id)) = next else {
                break;
            };
            let Some(message) = self.messages.get_mut(&id) else {
                continue;
            };
            let timeout = timeout(message);
            let receipt = self
                .in_flight
                .lease(message, timeout, now, nonces.next_nonce());
            self.groups.leased(message);
            self.counters.received += 1;
            if message.deliveries > 1 {
                self.counters.redelivered += 1;
            }
            out.push(Delivery::of(message, receipt));
        }
    }

    fn verify(&self, receipt: &Receipt, now: Millis) -> Result<(), Stale> {
        let message = self
            .messages
            .get(&receipt.message)
            .ok_or(Stale::NotInFlight)?;
        VisibilityTimeout::verify(message, receipt, now).map(|_| ())
    }

    /// Deletes the message of a current delivery.
    pub fn ack(&mut self, receipt: &Receipt, now: Millis) -> Result<Message, Stale> {
        self.verify(receipt, now)?;
        let message = self.take(receipt.message).ok_or(Stale::NotInFlight)?;
        self.counters.acked += 1;
        Ok(message)
    }

    /// Gives a current delivery back: visible again now, or after `delay`.
    pub fn nack(
        &mut self,
        receipt: &Receipt,
        delay: Millis,
        now: Millis,
        changes: &mut Changes,
    ) -> Result<(), Stale> {
        self.verify(receipt, now)?;
        self.counters.nacked += 1;
        self.end_delivery(receipt.message, delay, now, changes);
        Ok(())
    }

    /// The consumer holding `receipt` went away: its message is visible again at once.
    /// A receipt that is no longer current is ignored.
    pub fn release(&mut self, receipt: &Receipt, now: Millis, changes: &mut Changes) {
        if self.verify(receipt, now).is_ok() {
            self.counters.released += 1;
            self.end_delivery(receipt.message, 0, now, changes);
        }
    }

    /// Sets a current delivery's lease to end `timeout` ms from now.
    pub fn extend(
        &mut self,
        receipt: &Receipt,
        timeout: Millis,
        now: Millis,
        changes: &mut Changes,
    ) -> Result<(), Stale> {
        self.verify(receipt, now)?;
        let message = self
            .messages
            .get_mut(&receipt.message)
            .ok_or(Stale::NotInFlight)?;
        self.in_flight.extend(message, timeout, now);
        changes.saved.push(receipt.message);
        Ok(())
    }

    /// Every in-flight message, back to ready (a restart that does not keep leases).
    pub fn release_all(&mut self, now: Millis, changes: &mut Changes) {
        while let Some(id) = self.in_flight.pop_expired(Millis::MAX) {
            self.counters.released += 1;
            self.end_delivery(id, 0, now, changes);
        }
    }

    /// A FIFO queue's earlier send with deduplication id `id`, within the window.
    pub fn duplicate_of(&mut self, id: &Bytes, now: Millis) -> Option<MessageId> {
        self.dedup.find(id, now)
    }

    /// The next `count` ready messages, in the order they would be received.
    pub fn peek(&self, count: usize) -> impl Iterator<Item = &Message> {
        self.ready
            .iter()
            .take(count)
            .filter_map(|(_, id)| self.messages.get(id))
    }

    /// Deletes every message; returns their ids.
    pub fn purge(&mut self) -> Vec<MessageId> {
        let ids: Vec<MessageId> = self.messages.keys().copied().collect();
        self.messages.clear();
        self.ready.clear();
        self.delayed.clear();
        self.in_flight.clear();
        self.groups.clear();
        self.counters.purged += ids.len() as u64;
        ids
    }

    /// Removes up to `max` ready messages that came from another queue, oldest first,
    /// for redrive.
    pub fn take_dead_letters(&mut self, max: usize) -> Vec<Message> {
        let ids: Vec<MessageId> = self
            .messages
            .values()
            .filter(|m| m.state == State::Ready && m.origin.is_some())
            .take(max)
            .map(|m| m.id)
            .collect();
        ids.into_iter().filter_map(|id| self.take(id)).collect()
    }

    /// When time alone will next change this queue (a delay passing or a lease ending).
    pub fn next_due(&self) -> Option<Millis> {
        match (self.delayed.next_due(), self.in_flight.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next ready message's place in receive order (in a FIFO queue it may belong to
    /// a blocked group, and be skipped).
    pub fn head(&self) -> Option<(Priority, MessageId)> {
        self.ready.first().copied()
    }

    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    pub fn in_flight_len(&self) -> usize {
        self.in_flight.len()
    }

    pub fn delayed_len(&self) -> usize {
        self.delayed.len()
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

//! The broker's engine: every queue, and the operations of the protocol, as plain
//! synchronous functions of `(state, request, now)`. No sockets, no clock, no threads: the
//! server wraps one [`Engine`] in a mutex and hands it `now`.
//!
//! Each operation first *ticks* the queue it touches (applies delays, expired leases and
//! retention up to `now`), then does its work, writing every change through the
//! [`Journal`] before returning — so when the server confirms a request, the change is at
//! least in the store's write buffer, and with `--fsync always` the server flushes that
//! buffer before it replies.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::clock::Millis;
use crate::journal::{Journal, StorageError};
use crate::message::{Attribute, DEFAULT_PRIORITY, Message, MessageId, Priority, State};
use crate::queue::{Changes, Counters, Delivery, Queue, QueueConfig};
use crate::receipt::{NonceSource, Receipt};
use crate::visibility::Stale;

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The queue does not exist (only sending and receiving create queues).
    NoQueue(Bytes),
    /// The receipt names a delivery that is over: acknowledged, expired, or superseded.
    Stale(Stale),
    /// The payload is larger than the queue's `MAXSIZE`.
    TooLarge {
        size: usize,
        max: u64,
    },
    /// A queue attribute that cannot be set that way.
    Invalid(String),
    Storage(StorageError),
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        Error::Storage(e)
    }
}

impl From<Stale> for Error {
    fn from(e: Stale) -> Self {
        Error::Stale(e)
    }
}

/// Options of one send.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// Overrides the queue's default delay.
    pub delay: Option<Millis>,
    pub priority: Priority,
    /// The message's own lease per delivery (beanstalkd's TTR); `None`: the queue's.
    pub ttr: Option<Millis>,
    /// Metadata kept beside the body (SQS's message attributes).
    pub attributes: Vec<Attribute>,
    /// SQS's `MessageGroupId` (see [`crate::fifo`]).
    pub group: Option<Bytes>,
    /// SQS's `MessageDeduplicationId`: in a FIFO queue, a second send with it within
    /// five minutes adds nothing and returns the first one's id.
    pub deduplication_id: Option<Bytes>,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            delay: None,
            priority: DEFAULT_PRIORITY,
            ttr: None,
            attributes: Vec::new(),
            group: None,
            deduplication_id: None,
        }
    }
}

/// A queue's numbers, as `QSTATS` reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    pub ready: usize,
    pub in_flight: usize,
    pub delayed: usize,
    pub counters: Counters,
    pub config: QueueConfig,
}

pub struct Engine<J> {
    queues: BTreeMap<Bytes, Queue>,
    journal: J,
    nonces: NonceSource,
    /// Queues that gained ready messages since the server last looked: it wakes their
    /// waiting consumers.
    woken: Vec<Bytes>,
}

impl<J: Journal> Engine<J> {
    pub fn new(journal: J, nonce_seed: u64) -> Self {
        Engine {
            queues: BTreeMap::new(),
            journal,
            nonces: NonceSource::new(nonce_seed),
            woken: Vec::new(),
        }
    }

    /// Rebuilds the state read back from disk after a restart. In-flight messages keep
    /// their leases (SQS's behaviour: a worker that was processing one may still ack it),
    /// unless `release_in_flight`, in which case they are visible again at once.
    pub fn restore(
        &mut self,
        queues: Vec<(Bytes, QueueConfig)>,
        messages: Vec<(Bytes, Message)>,
        release_in_flight: bool,
        now: Millis,
    ) -> Result<(), Error> {
        for (name, config) in queues {
            self.queues.insert(name.clone(), Queue::new(name, config));
        }
        for (queue, message) in messages {
            self.queue_or_create(&queue)?.insert(message);
        }
        let names: Vec<Bytes> = self.queues.keys().cloned().collect();
        for name in names {
            let mut changes = Changes::default();
            if let Some(queue) = self.queues.get_mut(&name) {
                if release_in_flight {
                    queue.release_all(now, &mut changes);
                }
                queue.tick(now, &mut changes);
            }
            self.apply(&name, changes)?;
        }
        Ok(())
    }

    /// Creates a queue, or changes the attributes of an existing one.
    pub fn configure(
        &mut self,
        name: &Bytes,
        change: impl FnOnce(&mut QueueConfig),
    ) -> Result<(), Error> {
        let mut config = self
            .queues
            .get(name)
            .map(|q| q.config.clone())
            .unwrap_or_default();
        change(&mut config);
        if config.dead_letter.as_ref() == Some(name) {
            return Err(Error::Invalid(
                "a queue cannot be its own dead-letter queue".into(),
            ));
        }
        self.journal.put_queue(name, &config)?;
        match self.queues.get_mut(name) {
            Some(queue) => queue.config = config,
            None => {
                self.queues
                    .insert(name.clone(), Queue::new(name.clone(), config));
            }
        }
        Ok(())
    }

    /// Sends one message; returns its id.
    pub fn send(
        &mut self,
        queue: &Bytes,
        payload: Bytes,
        options: SendOptions,
        now: Millis,
    ) -> Result<MessageId, Error> {
        self.send_batch(queue, vec![payload], options, now)
            .map(|ids| ids.first().copied().unwrap_or_default())
    }

    /// Sends several messages with the same options; all or none (a payload over the
    /// size limit fails the whole batch).
    pub fn send_batch(
        &mut self,
        name: &Bytes,
        payloads: Vec<Bytes>,
        options: SendOptions,
        now: Millis,
    ) -> Result<Vec<MessageId>, Error> {
        self.tick(name, now)?;
        let queue = self.queue_or_create(name)?;
        let max = queue.config.max_size;
        if let Some(big) = payloads.iter().find(|p| p.len() as u64 > max) {
            return Err(Error::TooLarge {
                size: big.len(),
                max,
            });
        }
        let delay = options.delay.unwrap_or(queue.config.delay);
        let state = if delay > 0 {
            State::Delayed {
                until: now.saturating_add(delay),
            }
        } else {
            State::Ready
        };
        let fifo = queue.config.fifo.is_some();
        let mut ids = Vec::with_capacity(payloads.len());
        for payload in payloads {
            if fifo
                && let Some(dedup) = &options.deduplication_id
                && let Some(first) = self.existing(name)?.duplicate_of(dedup, now)
            {
                ids.push(first);
                continue;
            }
            let message = Message {
                id: self.journal.next_id()?,
                priority: options.priority,
                payload,
                sent_at: now,
                deliveries: 0,
                origin: None,
                state,
                ttr: options.ttr,
                first_received: None,
                attributes: options.attributes.clone(),
                group: options.group.clone(),
                deduplication_id: options.deduplication_id.clone(),
            };
            self.journal.put_message(name, &message)?;
            ids.push(message.id);
            let queue = self.queue_or_create(name)?;
            queue.insert(message);
            queue.counters.sent += 1;
        }
        if state == State::Ready {
            self.woken.push(name.clone());
        }
        Ok(ids)
    }

    /// Receives up to `max` messages, leasing each for `visibility` ms (default: the
    /// queue's visibility timeout). Receiving from a queue that does not exist creates it.
    pub fn receive(
        &mut self,
        name: &Bytes,
        max: usize,
        visibility: Option<Millis>,
        now: Millis,
    ) -> Result<Vec<Delivery>, Error> {
        self.lease(name, max, now, |default, _| visibility.unwrap_or(default))
    }

    /// beanstalkd's `reserve` of one message of `name`: leased for its own TTR (the one
    /// `put` gave it), or the queue's visibility timeout if it has none.
    pub fn reserve(&mut self, name: &Bytes, now: Millis) -> Result<Vec<Delivery>, Error> {
        self.lease(name, 1, now, |default, m| m.ttr.unwrap_or(default))
    }

    /// Receives up to `max` messages, each leased for `timeout(queue's visibility, it)`.
    fn lease(
        &mut self,
        name: &Bytes,
        max: usize,
        now: Millis,
        timeout: impl Fn(Millis, &Message) -> Millis,
    ) -> Result<Vec<Delivery>, Error> {
        self.tick(name, now)?;
        let nonces = &mut self.nonces;
        let queue = match self.queues.get_mut(name) {
            Some(queue) => queue,
            None => return self.queue_or_create(name).map(|_| Vec::new()),
        };
        let default = queue.config.visibility;
        let mut out = Vec::new();
        queue.receive(max, |m| timeout(default, m), now, nonces, &mut out);
        for delivery in &out {
            if let Some(message) = queue.get(delivery.id) {
                self.journal.update_message(name, message)?;
            }
        }
        Ok(out)
    }

    /// Acknowledges a delivery: the message is deleted.
    pub fn ack(&mut self, name: &Bytes, receipt: &Receipt, now: Millis) -> Result<(), Error> {
        self.tick(name, now)?;
        let message = self.existing(name)?.ack(receipt, now)?;
        self.journal.delete_message(message.id)?;
        Ok(())
    }

    /// Gives a delivery back, visible again after `delay` ms (0: at once). Counts as a
    /// failed delivery for dead-lettering.
    pub fn nack(
        &mut self,
        name: &Bytes,
        receipt: &Receipt,
        delay: Millis,
        now: Millis,
    ) -> Result<(), Error> {
        self.tick(name, now)?;
        let mut changes = Changes::default();
        self.existing(name)?
            .nack(receipt, delay, now, &mut changes)?;
        self.apply(name, changes)
    }

    /// Sets a delivery's lease to end `timeout` ms from now (a heartbeat). A timeout of 0
    /// gives the message back, as SQS's `ChangeMessageVisibility 0` does.
    pub fn extend(
        &mut self,
        name: &Bytes,
        receipt: &Receipt,
        timeout: Millis,
        now: Millis,
    ) -> Result<(), Error> {
        if timeout == 0 {
            return self.nack(name, receipt, 0, now);
        }
        self.tick(name, now)?;
        let mut changes = Changes::default();
        self.existing(name)?
            .extend(receipt, timeout, now, &mut changes)?;
        self.apply(name, changes)
    }

    /// The consumer holding these deliveries is gone: each still-current one becomes
    /// visible again at once.
    pub fn release(&mut self, held: &[(Bytes, Receipt)], now: Millis) -> Result<(), Error> {
        for (name, receipt) in held {
            self.tick(name, now)?;
            let mut changes = Changes::default();
            if let Some(queue) = self.queues.get_mut(name) {
                queue.release(receipt, now, &mut changes);
            }
            self.apply(name, changes)?;
        }
        Ok(())
    }

    /// Is this receipt the current delivery of its message?
    pub fn is_current(&self, name: &Bytes, receipt: &Receipt, now: Millis) -> bool {
        self.queues
            .get(name)
            .and_then(|q| q.get(receipt.message))
            .is_some_and(|m| crate::visibility::VisibilityTimeout::verify(m, receipt, now).is_ok())
    }

    /// The next `count` ready messages, without receiving them.
    pub fn peek(&mut self, name: &Bytes, count: usize, now: Millis) -> Result<Vec<Message>, Error> {
        self.tick(name, now)?;
        Ok(self.existing(name)?.peek(count).cloned().collect())
    }

    /// Deletes every message of the queue (in-flight ones too); returns how many.
    pub fn purge(&mut self, name: &Bytes, now: Millis) -> Result<usize, Error> {
        self.tick(name, now)?;
        let ids = self.existing(name)?.purge();
        for &id in &ids {
            self.journal.delete_message(id)?;
        }
        Ok(ids.len())
    }

    /// Deletes the queue and its messages; `false` if there was no such queue.
    pub fn delete(&mut self, name: &Bytes) -> Result<bool, Error> {
        let Some(mut queue) = self.queues.remove(name) else {
            return Ok(false);
        };
        for id in queue.purge() {
            self.journal.delete_message(id)?;
        }
        self.journal.delete_queue(name)?;
        Ok(true)
    }

    /// Moves up to `max` dead letters from `dlq` back to the queues they came from, with
    /// their delivery counts reset. Returns how many moved.
    pub fn redrive(&mut self, dlq: &Bytes, max: usize, now: Millis) -> Result<usize, Error> {
        self.redrive_to(dlq, None, max, now)
    }

    /// [`Engine::redrive`], to queue `to` instead of each message's origin if given
    /// (SQS's `StartMessageMoveTask` with a `DestinationArn`).
    pub fn redrive_to(
        &mut self,
        dlq: &Bytes,
        to: Option<&Bytes>,
        max: usize,
        now: Millis,
    ) -> Result<usize, Error> {
        self.tick(dlq, now)?;
        let letters = self.existing(dlq)?.take_dead_letters(max);
        let moved = letters.len();
        for mut message in letters {
            let Some(origin) = message.origin.take() else {
                continue;
            };
            let target = to.cloned().unwrap_or(origin);
            message.deliveries = 0;
            message.state = State::Ready;
            self.journal.put_message(&target, &message)?;
            self.queue_or_create(&target)?.insert(message);
            self.woken.push(target);
        }
        Ok(moved)
    }

    pub fn stats(&mut self, name: &Bytes, now: Millis) -> Result<QueueStats, Error> {
        self.tick(name, now)?;
        let queue = self.existing(name)?;
        Ok(QueueStats {
            ready: queue.ready_len(),
            in_flight: queue.in_flight_len(),
            delayed: queue.delayed_len(),
            counters: queue.counters,
            config: queue.config.clone(),
        })
    }

    /// Does queue `name` exist?
    pub fn exists(&self, name: &Bytes) -> bool {
        self.queues.contains_key(name)
    }

    /// Queue `name`'s attributes, if it exists.
    pub fn config(&self, name: &Bytes) -> Option<&QueueConfig> {
        self.queues.get(name).map(|q| &q.config)
    }

    /// Every queue's name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &Bytes> {
        self.queues.keys()
    }

    /// How many messages `name` has ready to receive.
    pub fn ready_len(&self, name: &Bytes) -> usize {
        self.queues.get(name).map_or(0, Queue::ready_len)
    }

    /// When time alone will next change `name` (a delay passing, a lease ending).
    pub fn next_due(&self, name: &Bytes) -> Option<Millis> {
        self.queues.get(name).and_then(Queue::next_due)
    }

    /// Ticks every queue: the background sweep that applies retention and dead-letters
    /// expired leases in queues nobody is touching.
    pub fn tick_all(&mut self, now: Millis) -> Result<(), Error> {
        let names: Vec<Bytes> = self.queues.keys().cloned().collect();
        for name in names {
            self.tick(&name, now)?;
        }
        Ok(())
    }

    /// Queues that gained ready messages since the last call.
    pub fn take_woken(&mut self) -> Vec<Bytes> {
        std::mem::take(&mut self.woken)
    }

    /// Totals over every queue: (queues, messages).
    pub fn totals(&self) -> (usize, usize) {
        (
            self.queues.len(),
            self.queues.values().map(Queue::len).sum(),
        )
    }

    fn tick(&mut self, name: &Bytes, now: Millis) -> Result<(), Error> {
        let mut changes = Changes::default();
        match self.queues.get_mut(name) {
            Some(queue) => queue.tick(now, &mut changes),
            None => return Ok(()),
        }
        self.apply(name, changes)
    }

    /// Persists what a queue operation changed and moves its dead letters.
    fn apply(&mut self, name: &Bytes, changes: Changes) -> Result<(), Error> {
        if changes.readied {
            self.woken.push(name.clone());
        }
        if let Some(queue) = self.queues.get(name) {
            for id in changes.saved {
                if let Some(message) = queue.get(id) {
                    self.journal.update_message(name, message)?;
                }
            }
        }
        for id in changes.deleted {
            self.journal.delete_message(id)?;
        }
        for (dlq, message) in changes.dead {
            self.journal.put_message(&dlq, &message)?;
            self.queue_or_create(&dlq)?.insert(message);
            self.woken.push(dlq);
        }
        Ok(())
    }

    fn existing(&mut self, name: &Bytes) -> Result<&mut Queue, Error> {
        self.queues
            .get_mut(name)
            .ok_or_else(|| Error::NoQueue(name.clone()))
    }

    fn queue_or_create(&mut self, name: &Bytes) -> Result<&mut Queue, Error> {
        if !self.queues.contains_key(name) {
            let config = QueueConfig::default();
            self.journal.put_queue(name, &config)?;
            self.queues
                .insert(name.clone(), Queue::new(name.clone(), config));
        }
        self.existing(name)
    }
}

mod jobs;
#[cfg(test)]
mod tests;

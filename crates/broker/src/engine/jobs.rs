//! Operations on one message named by its id alone, wherever it is.
//!
//! The RESP commands name a delivery by queue and receipt; beanstalkd's protocol names a
//! job by its number only (`delete 42`, `kick-job 42`, `peek 42`), and has verbs the RESP
//! side spells differently: *bury* (straight to the dead-letter queue, without using up
//! deliveries) and *kick* (redrive, or end a delay early). These are those operations,
//! kept here so the engine's core reads as the RESP protocol's.
//!
//! Finding a message by id is a scan over the queues, one map lookup each: a broker has
//! few queues, and an id -> queue index would be one more structure every operation must
//! keep in step, for a handful of commands.

use bytes::Bytes;

use super::{Engine, Error};
use crate::clock::Millis;
use crate::dead_letter::dead_letter_queue;
use crate::journal::Journal;
use crate::message::{Lease, Message, MessageId, Priority, State};
use crate::queue::{Changes, Delivery, Queue, QueueConfig};
use crate::receipt::Receipt;
use crate::visibility::{Stale, VisibilityTimeout};

impl<J: Journal> Engine<J> {
    /// The queue holding message `id`, and the message as it is at `now`.
    pub fn find(&mut self, id: MessageId, now: Millis) -> Result<Option<(Bytes, Message)>, Error> {
        let Some(name) = self.queue_of(id) else {
            return Ok(None);
        };
        // Ticking may move it (a lease that ran out into a dead-letter queue): look again.
        self.tick(&name, now)?;
        Ok(self.queue_of(id).and_then(|name| {
            let message = self.queues.get(&name)?.get(id)?.clone();
            Some((name, message))
        }))
    }

    fn queue_of(&self, id: MessageId) -> Option<Bytes> {
        self.queues
            .iter()
            .find(|(_, queue)| queue.get(id).is_some())
            .map(|(name, _)| name.clone())
    }

    /// Deletes a message nobody holds (ready, delayed or dead-lettered); `false` if there
    /// is no such message or it is in flight (only its holder may delete it, by receipt).
    pub fn remove(&mut self, id: MessageId, now: Millis) -> Result<bool, Error> {
        let Some((name, message)) = self.find(id, now)? else {
            return Ok(false);
        };
        if matches!(message.state, State::InFlight(_)) {
            return Ok(false);
        }
        if let Some(queue) = self.queues.get_mut(&name) {
            queue.take(id);
            queue.counters.acked += 1;
        }
        self.journal.delete_message(id)?;
        Ok(true)
    }

    /// Gives an in-flight message a new priority (beanstalkd's `release` and `bury` take one).
    pub fn reprioritize(
        &mut self,
        name: &Bytes,
        receipt: &Receipt,
        priority: Priority,
        now: Millis,
    ) -> Result<(), Error> {
        self.tick(name, now)?;
        let queue = self.existing(name)?;
        let message = queue.get(receipt.message).ok_or(Stale::NotInFlight)?;
        VisibilityTimeout::verify(message, receipt, now)?;
        if message.priority != priority
            && let Some(mut message) = queue.take(receipt.message)
        {
            message.priority = priority;
            queue.insert(message);
        }
        Ok(())
    }

    /// Buries a delivery: its message goes to the queue's dead-letter queue now, whatever
    /// deliveries it has left — the worker has decided it is poison.
    pub fn bury(
        &mut self,
        name: &Bytes,
        receipt: &Receipt,
        priority: Priority,
        now: Millis,
    ) -> Result<(), Error> {
        self.tick(name, now)?;
        let queue = self.existing(name)?;
        let message = queue.get(receipt.message).ok_or(Stale::NotInFlight)?;
        VisibilityTimeout::verify(message, receipt, now)?;
        let dlq = dead_letter_queue(name, &queue.config);
        let mut message = queue.take(receipt.message).ok_or(Stale::NotInFlight)?;
        queue.counters.dead_lettered += 1;
        message.priority = priority;
        message.state = State::Ready;
        message.origin.get_or_insert_with(|| name.clone());
        let changes = Changes {
            dead: vec![(dlq, message)],
            ..Changes::default()
        };
        self.apply(name, changes)
    }

    /// The dead letters that came from `name`, oldest first.
    pub fn buried(&mut self, name: &Bytes, now: Millis) -> Result<Vec<Message>, Error> {
        let Some(queue) = self.queues.get(name) else {
            return Ok(Vec::new());
        };
        let dlq = dead_letter_queue(name, &queue.config);
        self.tick(&dlq, now)?;
        Ok(self.queues.get(&dlq).map_or_else(Vec::new, |dlq| {
            dlq.messages()
                .filter(|m| m.state == State::Ready && m.origin.as_ref() == Some(name))
                .cloned()
                .collect()
        }))
    }

    /// `name`'s delayed messages, the soonest due first.
    pub fn delayed(&mut self, name: &Bytes, now: Millis) -> Result<Vec<Message>, Error> {
        self.tick(name, now)?;
        let Some(queue) = self.queues.get(name) else {
            return Ok(Vec::new());
        };
        let mut delayed: Vec<Message> = queue
            .messages()
            .filter(|m| matches!(m.state, State::Delayed { .. }))
            .cloned()
            .collect();
        delayed.sort_by_key(|m| match m.state {
            State::Delayed { until } => (until, m.id),
            _ => (0, m.id),
        });
        Ok(delayed)
    }

    /// beanstalkd's `kick`: up to `bound` of `name`'s dead letters back to it, or if it
    /// has none, up to `bound` of its delayed messages made ready now. Returns how many.
    pub fn kick(&mut self, name: &Bytes, bound: usize, now: Millis) -> Result<usize, Error> {
        let buried = self.buried(name, now)?;
        let ids: Vec<MessageId> = if buried.is_empty() {
            self.delayed(name, now)?.iter().map(|m| m.id).collect()
        } else {
            buried.iter().map(|m| m.id).collect()
        };
        let mut kicked = 0;
        for id in ids.into_iter().take(bound) {
            kicked += usize::from(self.kick_job(id, now)?);
        }
        Ok(kicked)
    }

    /// beanstalkd's `kick-job`: a dead letter back to the queue it came from (its
    /// deliveries reset, as `QREDRIVE`), or a delayed message made ready now. `false` if
    /// the message is neither.
    pub fn kick_job(&mut self, id: MessageId, now: Millis) -> Result<bool, Error> {
        let Some((name, found)) = self.find(id, now)? else {
            return Ok(false);
        };
        let target = match (&found.state, &found.origin) {
            (State::Ready, Some(origin)) => origin.clone(),
            (State::Delayed { .. }, _) => name.clone(),
            _ => return Ok(false),
        };
        let Some(mut message) = self.existing(&name)?.take(id) else {
            return Ok(false);
        };
        if target != name {
            message.origin = None;
            message.deliveries = 0;
        }
        message.state = State::Ready;
        self.journal.put_message(&target, &message)?;
        self.queue_or_create(&target)?.insert(message);
        self.woken.push(target);
        Ok(true)
    }
}

impl<J: Journal> Engine<J> {
    /// The (priority, id) of `name`'s next ready message, time applied: how a `reserve`
    /// watching several tubes picks the most urgent job without copying any.
    pub fn ready_head(
        &mut self,
        name: &Bytes,
        now: Millis,
    ) -> Result<Option<(Priority, MessageId)>, Error> {
        self.tick(name, now)?;
        Ok(self.queues.get(name).and_then(Queue::head))
    }

    /// Does message `id` exist?
    pub fn contains(&self, id: MessageId) -> bool {
        self.queue_of(id).is_some()
    }

    /// The lease a delivery of message `id` gets when none is asked for: its TTR, else
    /// the visibility timeout of the queue holding it.
    pub fn ttr_of(&mut self, id: MessageId, now: Millis) -> Result<Millis, Error> {
        let found = self.find(id, now)?;
        Ok(match found {
            Some((_, Message { ttr: Some(ttr), .. })) => ttr,
            Some((name, _)) => self
                .queues
                .get(&name)
                .map_or(QueueConfig::default().visibility, |q| q.config.visibility),
            None => QueueConfig::default().visibility,
        })
    }

    /// The lease of message `id` in `name`, if it is in flight.
    pub fn lease_of(&self, name: &Bytes, id: MessageId) -> Option<Lease> {
        match self.queues.get(name)?.get(id)?.state {
            State::InFlight(lease) => Some(lease),
            _ => None,
        }
    }

    /// beanstalkd's `reserve-job`: receives message `id` out of turn, whatever its place
    /// (a dead letter or a delayed message is kicked first). `None` if there is no such
    /// message or it is in flight.
    pub fn receive_job(
        &mut self,
        id: MessageId,
        timeout: Millis,
        now: Millis,
    ) -> Result<Option<(Bytes, Delivery)>, Error> {
        let Some((_, found)) = self.find(id, now)? else {
            return Ok(None);
        };
        if matches!(found.state, State::InFlight(_)) {
            return Ok(None);
        }
        self.kick_job(id, now)?;
        let Some((name, _)) = self.find(id, now)? else {
            return Ok(None);
        };
        let nonce = self.nonces.next_nonce();
        let Some(mut message) = self.existing(&name)?.take(id) else {
            return Ok(None);
        };
        // The lease as `VisibilityTimeout::lease` makes it; `insert` indexes it.
        let receipt = VisibilityTimeout::default().lease(&mut message, timeout, now, nonce);
        let delivery = Delivery::of(&message, receipt);
        self.journal.update_message(&name, &message)?;
        let queue = self.existing(&name)?;
        queue.counters.received += 1;
        queue.insert(message);
        Ok(Some((name, delivery)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::SendOptions;
    use crate::journal::MemoryJournal;

    fn q(name: &str) -> Bytes {
        Bytes::copy_from_slice(name.as_bytes())
    }

    #[test]
    fn bury_then_kick_returns_the_job_and_delayed_jobs_kick_when_none_is_buried() {
        let mut e = Engine::new(MemoryJournal::default(), 1);
        let jobs = q("jobs");
        let id = e.send(&jobs, q("x"), SendOptions::default(), 0).unwrap();
        let delayed = SendOptions {
            delay: Some(60_000),
            ..SendOptions::default()
        };
        let later = e.send(&jobs, q("later"), delayed, 0).unwrap();
        let got = e.receive(&jobs, 1, None, 0).unwrap();
        e.bury(&jobs, &got[0].receipt, 7, 1).unwrap();
        let (dlq, buried) = e.find(id, 1).unwrap().unwrap();
        assert_eq!((&dlq[..], buried.priority), (&b"jobs:dlq"[..], 7));
        assert_eq!(e.buried(&jobs, 1).unwrap().len(), 1);
        // A stale receipt cannot bury again.
        assert!(e.bury(&jobs, &got[0].receipt, 7, 1).is_err());
        assert_eq!(e.kick(&jobs, 10, 2).unwrap(), 1, "the buried job first");
        assert_eq!(e.find(id, 2).unwrap().unwrap().1.state, State::Ready);
        assert_eq!(e.kick(&jobs, 10, 2).unwrap(), 1, "then the delayed one");
        assert_eq!(e.find(later, 2).unwrap().unwrap().1.state, State::Ready);
        assert_eq!(e.kick(&jobs, 10, 2).unwrap(), 0);
        assert!(!e.kick_job(id, 2).unwrap(), "ready: nothing to kick");
        assert!(e.remove(id, 3).unwrap());
        assert!(!e.remove(id, 3).unwrap());
        assert_eq!(e.find(id, 3).unwrap(), None);
    }

    #[test]
    fn an_in_flight_job_is_removed_only_by_its_receipt() {
        let mut e = Engine::new(MemoryJournal::default(), 1);
        let jobs = q("jobs");
        let id = e.send(&jobs, q("x"), SendOptions::default(), 0).unwrap();
        let got = e.receive(&jobs, 1, None, 0).unwrap();
        assert!(!e.remove(id, 1).unwrap());
        e.reprioritize(&jobs, &got[0].receipt, 3, 1).unwrap();
        e.nack(&jobs, &got[0].receipt, 0, 1).unwrap();
        assert_eq!(e.peek(&jobs, 1, 1).unwrap()[0].priority, 3);
    }
}

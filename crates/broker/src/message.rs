//! A message and the three states it moves between.
//!
//! ```text
//!            send (DELAY)                 receive                 ack
//!   ──────▶ Delayed ──delay passes──▶ Ready ─────────▶ InFlight ─────────▶ deleted
//!   send ───────────────────────────▶   ▲                  │
//!                                       └── nack / visibility timeout / consumer gone
//!                                           (or, after MAXDELIVERIES, the dead-letter queue)
//! ```
//!
//! A broker deletes a message only when a consumer acknowledges it. Until then the message
//! exists in exactly one of these states, and every rule of the broker is about moving it
//! from one to the next.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::receipt::Receipt;

/// Unique per broker, increasing with send time (they never repeat, even across restarts).
pub type MessageId = u64;

/// Lower is more urgent, as in beanstalkd: priority 0 is served before priority 1024.
pub type Priority = u32;

/// The priority of a message sent without `PRIORITY`.
pub const DEFAULT_PRIORITY: Priority = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: MessageId,
    pub priority: Priority,
    pub payload: Bytes,
    /// When it was first sent: the retention period counts from here.
    pub sent_at: Millis,
    /// How many times it has been handed to a consumer.
    pub deliveries: u32,
    /// For a message in a dead-letter queue: the queue it came from (where redrive returns it).
    pub origin: Option<Bytes>,
    pub state: State,
    /// The lease each delivery gets when the receiver does not choose one: beanstalkd's
    /// TTR, given to `put`. `None`: the queue's visibility timeout. Kept with the message
    /// (on disk too), so a job's TTR survives a restart.
    pub ttr: Option<Millis>,
    /// When it was first handed to a consumer (SQS's `ApproximateFirstReceiveTimestamp`).
    pub first_received: Option<Millis>,
    /// Typed metadata beside the body (SQS's message attributes), returned with it.
    pub attributes: Vec<Attribute>,
    /// SQS's `MessageGroupId`: in a FIFO queue, one in-flight message of a group blocks
    /// the rest of it (see [`crate::fifo`]).
    pub group: Option<Bytes>,
    /// SQS's `MessageDeduplicationId` (given, or the body's SHA-256), kept so that the
    /// deduplication window is rebuilt after a restart.
    pub deduplication_id: Option<Bytes>,
}

/// What changes about a message after it is sent: where it stands in its deliveries.
///
/// A receive, a nack, a heartbeat, a lease running out, a delay ending: each changes
/// only these fields, never the body, the attributes or the queue. So the redo log
/// records such a change as this alone (about 60 bytes, see [`crate::redo`]) instead of
/// the whole message again — with 1 KiB jobs, a reservation used to write the job's
/// kilobyte a second time, encoded, checksummed and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// beanstalkd's `release` may give a job a new priority as it gives it back.
    pub priority: Priority,
    pub deliveries: u32,
    pub first_received: Option<Millis>,
    pub state: State,
}

impl Message {
    pub fn status(&self) -> Status {
        Status {
            priority: self.priority,
            deliveries: self.deliveries,
            first_received: self.first_received,
            state: self.state,
        }
    }

    pub fn set_status(&mut self, status: Status) {
        self.priority = status.priority;
        self.deliveries = status.deliveries;
        self.first_received = status.first_received;
        self.state = status.state;
    }
}

/// One named, typed value sent beside a message's body. SQS's `MessageAttributes`: the
/// type is `String`, `Number` or `Binary`, optionally with a custom suffix
/// (`Number.float`); `value` is the string's UTF-8 or the binary's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    pub name: String,
    pub data_type: String,
    pub value: Bytes,
}

impl Attribute {
    /// Binary attributes carry bytes; the others text.
    pub fn is_binary(&self) -> bool {
        self.data_type.starts_with("Binary")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    /// Waiting to be received.
    Ready,
    /// Not receivable before `until` (a send with DELAY, or a nack with a delay).
    Delayed { until: Millis },
    /// Handed to a consumer, invisible to the others until the lease ends.
    InFlight(Lease),
}

/// One delivery's hold on a message: who holds it (the receipt) and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub receipt: Receipt,
    pub deadline: Millis,
}

/// A ready message with a small payload, for tests.
#[cfg(test)]
pub(crate) fn ready(id: MessageId) -> Message {
    Message {
        id,
        priority: 0,
        payload: Bytes::from_static(b"job"),
        sent_at: 0,
        deliveries: 0,
        origin: None,
        state: State::Ready,
        ttr: None,
        first_received: None,
        attributes: Vec::new(),
        group: None,
        deduplication_id: None,
    }
}

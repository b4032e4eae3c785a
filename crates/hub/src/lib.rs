//! # hub — the pub/sub engine every server that pushes messages shares
//!
//! A library, like `proto` and `service`: the pubsub server is built on it, and so is kv's
//! own pub/sub (Redis serves `SUBSCRIBE` from the database too, which is how keyspace
//! notifications and `CLIENT TRACKING`'s invalidations reach clients). Servers never link
//! each other's servers; they share libraries.
//!
//! - [`fanout`]: who listens to what (channels, patterns, shard channels) and fan-out: a
//!   message is encoded once per protocol and every subscriber's queue shares the bytes
//!   (a queue that fell far behind keeps compact copies of its own instead).
//! - [`outbox`]: one subscriber's bounded queue (Redis's `client-output-buffer-limit
//!   pubsub`), and the policy that decides who pays when a subscriber is slow.
//! - [`tracking`] and [`tracker`]: `CLIENT TRACKING`, client-side caching's server half —
//!   who may have cached which key, and the invalidations pushed when a key changes.
//! - [`commands`]: the RESP commands (SUBSCRIBE ... PUBSUB, the tracking subcommands of
//!   CLIENT) and the rules of subscribed mode, for any server whose session holds
//!   [`Subscriptions`] (and a [`tracker::ClientCache`]).
#![forbid(unsafe_code)]

pub mod commands;
pub mod fanout;
pub mod outbox;
pub mod tracker;
pub mod tracking;

pub use fanout::{Hub, Kind, Subscriber, Wakes, encode_push};
pub use outbox::{OutputLimit, SlowPolicy};
pub use tracker::{ClientCache, Tracker};

/// A connection's pub/sub state: a subscriber once it has subscribed to anything (or
/// needs a queue for other pushes, such as kv's invalidation messages), and the
/// subscribers its `PUBLISH`es must wake at the end of the current batch.
#[derive(Debug, Default)]
pub struct Subscriptions {
    pub subscriber: Option<Subscriber>,
    pub wakes: Wakes,
}

impl Subscriptions {
    /// Is the client in subscribed mode (at least one subscription of any kind)?
    pub fn subscribed(&self) -> bool {
        self.subscriber.as_ref().is_some_and(|s| s.total() > 0)
    }

    /// The next batch of messages queued for this client, for `Server::next_push`: never
    /// ready while it has no queue; a disconnect when its queue overflowed (the slow
    /// subscriber policy chose to drop the client).
    pub async fn next_push(&self) -> service::Push {
        let Some(subscriber) = self.subscriber.as_ref() else {
            return std::future::pending().await;
        };
        match subscriber.outbox().next().await {
            Ok(batch) => service::Push::Bytes(batch),
            Err(reason) => service::Push::Disconnect(reason.to_string()),
        }
    }

    /// What is already queued, without waiting, for `Server::pending_push`.
    pub fn pending_push(&self) -> Option<bytes::Bytes> {
        self.subscriber.as_ref()?.outbox().try_take().ok().flatten()
    }
}

impl AsMut<Subscriptions> for Subscriptions {
    fn as_mut(&mut self) -> &mut Subscriptions {
        self
    }
}

impl AsRef<Subscriptions> for Subscriptions {
    fn as_ref(&self) -> &Subscriptions {
        self
    }
}

//! Delivering `CLIENT TRACKING` invalidations: the [`Tracking`] table behind a lock, the
//! queue of every client that can receive pushes, and the encoding of the messages.
//!
//! Shared by every server with client-side caching (kv, cache): a server tells the tracker
//! which keys changed ([`Tracker::changed`]) or that everything did ([`Tracker::flushed`]);
//! the tracker decides who must hear of it and queues `invalidate [keys]` to each, through
//! the same bounded queue as pub/sub messages ([`Hub::send`]), so a client that stops
//! reading cannot make the server hold an unbounded backlog.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use bytes::Bytes;
use proto::{Frame, Protocol};

use crate::fanout::{Hub, Kind, Wakes};
use crate::outbox::Outbox;
use crate::tracking::{Invalidation, Tracking};

/// The RESP2 channel that carries invalidations to a `REDIRECT` target.
pub const INVALIDATE_CHANNEL: &[u8] = b"__redis__:invalidate";

/// The tracking table and where its invalidations go.
#[derive(Debug)]
pub struct Tracker {
    hub: Arc<Hub>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    tracking: Tracking,
    /// The queue of every client that has one (a subscriber, or a tracking client), by
    /// `CLIENT ID`: where a `REDIRECT` sends invalidations.
    queues: HashMap<u64, Weak<Outbox>>,
}

impl Tracker {
    pub fn new(hub: Arc<Hub>) -> Self {
        Tracker {
            hub,
            state: Mutex::new(State::default()),
        }
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    fn state(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Is any client tracking? (While none is, a server need not collect changed keys.)
    pub fn is_active(&self) -> bool {
        self.state().tracking.is_active()
    }

    /// Runs `f` on the tracking table, then sends the invalidations it returns.
    pub fn with<R>(&self, f: impl FnOnce(&mut Tracking) -> (R, Vec<Invalidation>)) -> R {
        let mut state = self.state();
        let (result, invalidations) = f(&mut state.tracking);
        self.deliver(&mut state, invalidations, &mut Wakes::default());
        result
    }

    /// A client got a queue (it subscribed, or turned tracking on): it can now be a
    /// `REDIRECT` target.
    pub fn register(&self, client: u64, queue: &Arc<Outbox>) {
        self.state().queues.insert(client, Arc::downgrade(queue));
    }

    pub fn has_queue(&self, client: u64) -> bool {
        self.state()
            .queues
            .get(&client)
            .is_some_and(|q| q.strong_count() > 0)
    }

    /// A client disconnected (or `RESET`): it stops tracking and is no target any more.
    pub fn unregister(&self, client: u64) {
        let mut state = self.state();
        state.queues.remove(&client);
        state.tracking.disable(client);
    }

    /// `keys` changed (`writer`: the client whose command changed them, for `NOLOOP`).
    pub fn changed(&self, keys: &[Bytes], writer: Option<u64>, wakes: &mut Wakes) {
        self.invalidate(keys, writer, false, wakes);
    }

    /// [`Self::changed`] for a server that writes its client's own invalidations itself:
    /// those the writer would get on its own connection (RESP3, no `REDIRECT`) are
    /// returned, not queued, and the server writes them after the reply of the command
    /// that caused them — Redis's order (its `tracking_pending_keys`). Queued now, they
    /// would reach the client before that reply: a client caching what the reply holds
    /// (a read of the key in the same `EXEC`, before the write) would store a stale value
    /// after the invalidation meant to drop it.
    pub fn changed_holding_own(
        &self,
        keys: &[Bytes],
        writer: u64,
        wakes: &mut Wakes,
    ) -> Vec<Bytes> {
        self.invalidate(keys, Some(writer), true, wakes)
    }

    /// [`Self::changed`], and with `hold_own` [`Self::changed_holding_own`]: the
    /// writer's own invalidation (if it would go to its own RESP3 connection) is
    /// returned instead of queued.
    fn invalidate(
        &self,
        keys: &[Bytes],
        writer: Option<u64>,
        hold_own: bool,
        wakes: &mut Wakes,
    ) -> Vec<Bytes> {
        let mut state = self.state();
        if !state.tracking.is_active() {
            return Vec::new();
        }
        let mut invalidations = state.tracking.invalidate(keys, writer);
        let mut held = Vec::new();
        if let Some(writer) = writer.filter(|_| hold_own)
            && state.tracking.redirect(writer).is_none()
            && state
                .queues
                .get(&writer)
                .and_then(Weak::upgrade)
                .is_some_and(|q| q.protocol() == Protocol::Resp3)
            && let Some(i) = invalidations.iter().position(|i| i.client == writer)
        {
            held = invalidations.swap_remove(i).keys.unwrap_or_default();
        }
        self.deliver(&mut state, invalidations, wakes);
        held
    }

    /// Queues the invalidation of `keys` to `client` now: what
    /// [`Self::changed_holding_own`] held back, when its server cannot write it after
    /// the reply after all.
    pub fn release(&self, client: u64, keys: Vec<Bytes>) {
        let invalidation = Invalidation {
            client,
            keys: Some(keys),
        };
        let mut state = self.state();
        self.deliver(&mut state, vec![invalidation], &mut Wakes::default());
    }

    /// Every key may have changed (a flush): every tracking client drops everything.
    pub fn flushed(&self, wakes: &mut Wakes) {
        let mut state = self.state();
        if !state.tracking.is_active() {
            return;
        }
        let invalidations = state.tracking.invalidate_all();
        self.deliver(&mut state, invalidations, wakes);
    }

    /// Encodes and queues invalidations: `invalidate [keys]` as a push to a RESP3
    /// client; to a `REDIRECT` target in RESP2, a message on `__redis__:invalidate`
    /// (only if it is subscribed to it); a RESP2 client without a redirect has no way
    /// to receive them. A redirect target that is gone is reported to the client
    /// (`tracking-redir-broken`, RESP3) as Redis does.
    fn deliver(&self, state: &mut State, invalidations: Vec<Invalidation>, wakes: &mut Wakes) {
        for Invalidation { client, keys } in invalidations {
            let keys = keys.map_or(Frame::Null, Frame::bulk_array);
            let target = state.tracking.redirect(client);
            let queue = |id| state.queues.get(&id).and_then(Weak::upgrade);
            let Some(to) = queue(target.unwrap_or(client)) else {
                if let Some(id) = target {
                    state.tracking.redirect_broken(client);
                    if let Some(own) = queue(client).filter(|q| q.protocol() == Protocol::Resp3) {
                        let broken = Frame::Push(vec![
                            Frame::bulk("tracking-redir-broken"),
                            Frame::Integer(id as i64),
                        ]);
                        self.hub.send(&own, &broken, &Instant::now, wakes);
                    }
                }
                continue;
            };
            let message = match to.protocol() {
                Protocol::Resp3 => Frame::Push(vec![Frame::bulk("invalidate"), keys]),
                // Redis sends these to a target subscribed to any channel, so a client
                // subscribed elsewhere would get messages on a channel it never asked for;
                // the target must be on `__redis__:invalidate`, as Redis documents.
                Protocol::Resp2
                    if target.is_some()
                        && self.hub.listens(Kind::Channel, INVALIDATE_CHANNEL, &to) =>
                {
                    Frame::Push(vec![
                        Frame::bulk("message"),
                        Frame::Bulk(Bytes::from_static(INVALIDATE_CHANNEL)),
                        keys,
                    ])
                }
                Protocol::Resp2 => continue,
            };
            self.hub.send(&to, &message, &Instant::now, wakes);
        }
    }
}

/// A client known to a [`Tracker`] by its `CLIENT ID`; dropping it (the connection
/// closed, or `RESET`) turns its tracking off and forgets it as a redirect target.
#[derive(Debug)]
pub struct Registration {
    id: u64,
    tracker: Arc<Tracker>,
}

impl Registration {
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.tracker.unregister(self.id);
    }
}

/// A connection's client-side-caching state, next to its [`crate::Subscriptions`].
#[derive(Debug, Default)]
pub struct ClientCache {
    /// Set once the client has a queue (see [`Tracker::register`]).
    pub registration: Option<Registration>,
    /// `CLIENT TRACKING` is on: the keys its reads name are remembered.
    pub tracking: bool,
}

impl ClientCache {
    /// The client's id if it is registered: the writer a `NOLOOP` client is spared.
    pub fn id(&self) -> Option<u64> {
        self.registration.as_ref().map(Registration::id)
    }

    /// Registers `client` with `tracker` once, with `queue` as its push queue.
    pub fn register(&mut self, tracker: &Arc<Tracker>, client: u64, queue: &Arc<Outbox>) {
        if self.registration.is_none() {
            tracker.register(client, queue);
            self.registration = Some(Registration {
                id: client,
                tracker: tracker.clone(),
            });
        }
    }
}

//! What kv tells clients when data changes: keyspace notifications ([`crate::notify`])
//! and `CLIENT TRACKING` invalidations ([`crate::tracking`]), both carried by the pub/sub
//! hub that kv shares with the pubsub server (`crates/hub`).
//!
//! Both react to the same thing, a change, and both are fed from one place: after each
//! command, under the keyspace lock, the server hands [`Events::after`] what the command
//! touched (the keyspace notes it while an observer is on, see
//! `crate::keyspace::Touches`). Nothing else in kv needs to know they exist. The messages
//! go into the receivers' queues (bounded like any subscriber's, as Redis's
//! `client-output-buffer-limit pubsub`), so a client that stops reading cannot make the
//! server hold an unbounded backlog, and a writer never waits for a reader.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use bytes::Bytes;
use hub::outbox::Outbox;
use hub::{Hub, Wakes};
use proto::{Frame, Protocol};

use crate::keyspace::Touch;
use crate::notify::{self, Planned};
use crate::tracking::{Invalidation, Tracking};

/// The RESP2 channel that carries invalidations to a `REDIRECT` target.
pub const INVALIDATE_CHANNEL: &[u8] = b"__redis__:invalidate";

/// The hub, the notification flags and the tracking table.
#[derive(Debug, Default)]
pub struct Events {
    pub hub: Arc<Hub>,
    flags: AtomicU32,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    tracking: Tracking,
    /// The queue of every client that has one (a subscriber, or a tracking client), by
    /// `CLIENT ID`: where a `REDIRECT` sends invalidations.
    queues: HashMap<u64, Weak<Outbox>>,
}

impl Events {
    fn state(&self) -> MutexGuard<'_, State> {
        crate::lock(&self.state)
    }

    pub fn flags(&self) -> notify::Flags {
        self.flags.load(Ordering::Relaxed)
    }

    pub fn set_flags(&self, flags: notify::Flags) {
        self.flags.store(flags, Ordering::Relaxed);
    }

    /// Must writes note what they touch? While notifications are on or anyone tracks.
    pub fn observing(&self) -> bool {
        notify::active(self.flags()) || self.state().tracking.is_active()
    }

    /// Runs `f` on the tracking table, then sends the invalidations it returns.
    pub fn tracking<R>(&self, f: impl FnOnce(&mut Tracking) -> (R, Vec<Invalidation>)) -> R {
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

    /// Clients with a queue (subscribers and tracking clients), for `INFO`.
    pub fn queues(&self) -> usize {
        self.state().queues.len()
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

    /// After a command: publishes the keyspace notifications of what it did (`plan`, see
    /// [`notify::plan`]; expired keys announce themselves) and sends the invalidations of
    /// the keys it touched. `writer`: the client whose command it was, for `NOLOOP`.
    ///
    /// On a replica (`replica`), changes come from the primary's stream, not commands: a
    /// replica never expires keys itself, and announces a key the primary removed (expired
    /// or deleted) as `del`, as a Redis replica does on its primary's `DEL`.
    pub fn after(
        &self,
        touched: Vec<Touch>,
        plan: &[Planned],
        writer: Option<u64>,
        replica: bool,
        now: impl Fn() -> Instant,
    ) {
        if touched.is_empty() {
            return;
        }
        let mut wakes = Wakes::default();
        let flags = self.flags();
        if notify::active(flags) {
            let mut send = |class, db, event: &str, key: &Bytes| {
                if flags & class != 0 {
                    for (channel, message) in notify::channels(flags, db, event, key) {
                        self.hub.publish(&channel, &message, &now, &mut wakes);
                    }
                }
            };
            for t in &touched {
                if let Touch::Key {
                    db,
                    key,
                    expired: true,
                    ..
                } = t
                {
                    send(notify::EXPIRED, *db, "expired", key);
                }
            }
            for p in plan.iter().filter(|p| p.fires(&touched)) {
                send(p.class, p.db, p.event, &p.key);
            }
            if replica {
                for t in &touched {
                    if let Touch::Key {
                        db,
                        key,
                        removed: true,
                        ..
                    } = t
                    {
                        send(notify::GENERIC, *db, "del", key);
                    }
                }
            }
        }
        let mut state = self.state();
        if !state.tracking.is_active() {
            return;
        }
        let invalidations = if touched.contains(&Touch::Databases) {
            state.tracking.invalidate_all()
        } else {
            let keys: Vec<Bytes> = touched
                .into_iter()
                .filter_map(|t| match t {
                    Touch::Key { key, .. } => Some(key),
                    Touch::Databases => None,
                })
                .collect();
            state.tracking.invalidate(&keys, writer)
        };
        self.deliver(&mut state, invalidations, &mut wakes);
    }

    /// Encodes and queues invalidations: `invalidate [keys]` as a push to a RESP3
    /// client; to a `REDIRECT` target in RESP2, a message on `__redis__:invalidate`
    /// (only if it is subscribed, as Redis); a RESP2 client without a redirect has no way
    /// to receive them.
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
                Protocol::Resp2 if target.is_some() && self.subscribed(&to) => Frame::Push(vec![
                    Frame::bulk("message"),
                    Frame::Bulk(Bytes::from_static(INVALIDATE_CHANNEL)),
                    keys,
                ]),
                Protocol::Resp2 => continue,
            };
            self.hub.send(&to, &message, &Instant::now, wakes);
        }
    }

    /// Is the client owning `queue` subscribed to `__redis__:invalidate`, as Redis's
    /// documentation has a RESP2 redirect target do? (Redis itself checks only that the
    /// target is in subscribed mode, so a client subscribed to another channel would get
    /// messages on one it never asked for; kv does not send those.)
    fn subscribed(&self, queue: &Arc<Outbox>) -> bool {
        self.hub
            .listens(hub::Kind::Channel, INVALIDATE_CHANNEL, queue)
    }
}

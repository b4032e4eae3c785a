//! What kv tells clients when data changes: keyspace notifications ([`crate::notify`])
//! and `CLIENT TRACKING` invalidations (`hub::tracking`), both carried by the pub/sub hub
//! kv shares with the pubsub server (`crates/hub`).
//!
//! Both react to the same thing, a change, and both are fed from one place: after each
//! command, under the keyspace lock, the server hands [`Events::after`] what the command
//! touched (the keyspace notes it while an observer is on, see
//! `crate::keyspace::Touches`). Nothing else in kv needs to know they exist. The messages
//! go into the receivers' queues (bounded like any subscriber's, as Redis's
//! `client-output-buffer-limit pubsub`), so a client that stops reading cannot make the
//! server hold an unbounded backlog, and a writer never waits for a reader.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use bytes::Bytes;
use hub::{Hub, Tracker, Wakes};

use crate::keyspace::Touch;
use crate::notify::{self, Plan};

/// The hub, the notification flags and the tracker.
#[derive(Debug)]
pub struct Events {
    pub hub: Arc<Hub>,
    pub tracker: Arc<Tracker>,
    flags: AtomicU32,
}

impl Default for Events {
    fn default() -> Self {
        let hub = Arc::new(Hub::default());
        Events {
            tracker: Arc::new(Tracker::new(hub.clone())),
            hub,
            flags: AtomicU32::new(0),
        }
    }
}

impl Events {
    pub fn flags(&self) -> notify::Flags {
        self.flags.load(Ordering::Relaxed)
    }

    pub fn set_flags(&self, flags: notify::Flags) {
        self.flags.store(flags, Ordering::Relaxed);
    }

    /// Must writes note what they touch? While notifications are on or anyone tracks.
    pub fn observing(&self) -> bool {
        notify::active(self.flags()) || self.tracker.is_active()
    }

    /// After a command: publishes the keyspace notifications of what it did (`plan`, see
    /// [`notify::plan`]; expired keys announce themselves) and sends the invalidations of
    /// the keys it touched. `writer`: the client whose command it was, for `NOLOOP`; its
    /// own invalidations are returned, for the server to write after the command's reply
    /// (see [`hub::Tracker::changed_holding_own`]).
    ///
    /// On a replica (`replica`), changes come from the primary's stream, not commands: a
    /// replica never expires keys itself, and announces a key the primary removed (expired
    /// or deleted) as `del`, as a Redis replica does on its primary's `DEL`.
    pub fn after(
        &self,
        touched: Vec<Touch>,
        plan: &Plan,
        writer: Option<u64>,
        replica: bool,
        now: impl Fn() -> Instant,
    ) -> Vec<Bytes> {
        if touched.is_empty() {
            return Vec::new();
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
            // What lookups found, as they found it: a key past its deadline, a read's miss.
            for t in &touched {
                match t {
                    Touch::Key {
                        db,
                        key,
                        expired: true,
                        ..
                    } => send(notify::EXPIRED, *db, "expired", key),
                    Touch::Miss { db, key } if !plan.write => {
                        send(notify::KEY_MISS, *db, "keymiss", key)
                    }
                    _ => {}
                }
            }
            for (class, event, db, key) in plan.fired(&touched) {
                send(class, db, event, &key);
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
        if touched.contains(&Touch::Databases) {
            self.tracker.flushed(&mut wakes);
            return Vec::new();
        }
        let keys: Vec<Bytes> = touched
            .into_iter()
            .filter_map(|t| match t {
                Touch::Key { key, .. } => Some(key),
                Touch::Databases | Touch::Miss { .. } => None,
            })
            .collect();
        match writer {
            _ if keys.is_empty() => Vec::new(),
            Some(writer) => self.tracker.changed_holding_own(&keys, writer, &mut wakes),
            None => {
                self.tracker.changed(&keys, None, &mut wakes);
                Vec::new()
            }
        }
    }
}

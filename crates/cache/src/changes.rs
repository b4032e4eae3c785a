//! The keys the store changed since the server last looked: what `CLIENT TRACKING` must
//! invalidate (see `hub::tracking`, shared with kv).
//!
//! Recorded only while some client tracks keys, so a cache nobody caches in front of pays
//! one branch per write. Every way a key can change goes through the store's few write
//! paths (a write, a delete — explicit, by eviction, by expiry or by an origin's
//! invalidation — a new TTL, a flush), and each notes its key here; the server takes the
//! notes after each command and hands them to the tracker.
//!
//! A read-through fill is not a change: the origin's value was already the value of the
//! key, the cache only remembered it. Announcing it would invalidate the very client
//! whose read caused the fill, before it had the reply.

use bytes::Bytes;

#[derive(Debug, Default)]
pub struct Changes {
    on: bool,
    keys: Vec<Bytes>,
    flushed: bool,
}

impl Changes {
    pub fn set_on(&mut self, on: bool) {
        self.on = on;
        if !on {
            self.keys.clear();
            self.flushed = false;
        }
    }

    /// Stops recording for a moment (a read-through fill, see the module docs); returns
    /// whether it was on, for [`Self::resume`].
    pub(crate) fn pause(&mut self) -> bool {
        std::mem::replace(&mut self.on, false)
    }

    pub(crate) fn resume(&mut self, was_on: bool) {
        self.on = was_on;
    }

    pub(crate) fn note(&mut self, key: &[u8]) {
        if self.on {
            self.keys.push(Bytes::copy_from_slice(key));
        }
    }

    pub(crate) fn flush(&mut self) {
        if self.on {
            self.keys.clear();
            self.flushed = true;
        }
    }

    /// The keys changed since the last call, and whether everything was flushed.
    pub fn take(&mut self) -> (Vec<Bytes>, bool) {
        (
            std::mem::take(&mut self.keys),
            std::mem::take(&mut self.flushed),
        )
    }
}

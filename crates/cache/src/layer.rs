//! The cache layer: the store, the origin behind it, and the paths between them —
//! read-through with singleflight, write-through, WARM, invalidation. This is the shared
//! state every connection's commands call into; `server.rs` wires it to the network.
//!
//! The store sits behind one mutex, held for the duration of one command's engine work
//! and never across an `await` (origin requests happen outside it). A single lock is
//! what makes the eviction order *exact* (one global recency list, as Redis's single
//! thread does) and keeps `used_memory ≤ maxmemory` at every instant; a sharded store
//! would scale writes across cores at the price of per-shard approximations.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use hub::{Hub, Tracker, Wakes};
use proto::{CommandError, Frame};

use crate::origin::{Origin, OriginError};
use crate::singleflight::SingleFlight;
use crate::store::{Cache, Lookup};
use crate::{Args as CacheArgs, Population};

/// Wall-clock time in unix milliseconds (EXPIREAT and PXAT are absolute unix times).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Counters beyond the store's own, for `INFO stats`.
#[derive(Debug, Default)]
pub struct OriginStats {
    pub fetches: AtomicU64,
    pub errors: AtomicU64,
    pub invalidations: AtomicU64,
    pub resyncs: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

type FetchResult = Result<Option<Bytes>, OriginError>;

/// The cache layer every connection shares (see the module's doc).
pub struct CacheLayer {
    store: Mutex<Cache>,
    pub(crate) origin: Option<Origin>,
    pub(crate) population: Population,
    pub(crate) default_ttl_ms: AtomicU64,
    pub(crate) negative_ttl_ms: AtomicU64,
    pub(crate) flights: SingleFlight<FetchResult>,
    /// Bumped by every delete (DEL, invalidation, FLUSHALL). A read-through fetch that
    /// started before a delete does not cache what it got: it may predate the delete.
    epoch: AtomicU64,
    pub stats: OriginStats,
    /// `CLIENT TRACKING`: who may have cached which key (`hub::tracking`, as kv's).
    pub(crate) tracker: Arc<Tracker>,
    /// Whether the store records changed keys (`store.changes` is on), readable without
    /// the store's lock: while no client tracks, [`Self::announce`] after a command is
    /// one load instead of two locks (the store's, then the tracker's).
    recording: AtomicBool,
}

impl CacheLayer {
    pub fn new(args: &CacheArgs) -> Self {
        CacheLayer {
            store: Mutex::new(Cache::new(args.maxmemory, args.maxmemory_policy)),
            origin: args.origin.clone().map(|addr| {
                Origin::new(addr, Duration::from_millis(args.origin_timeout_ms.max(1)))
            }),
            population: args.population,
            default_ttl_ms: AtomicU64::new(args.default_ttl.saturating_mul(1000)),
            negative_ttl_ms: AtomicU64::new(args.negative_ttl.saturating_mul(1000)),
            flights: SingleFlight::default(),
            epoch: AtomicU64::new(0),
            stats: OriginStats::default(),
            tracker: Arc::new(Tracker::new(Arc::new(Hub::default()))),
            recording: AtomicBool::new(false),
        }
    }

    /// The engine, locked. Never hold the guard across an `await`.
    pub fn store(&self) -> MutexGuard<'_, Cache> {
        match self.store.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub fn origin(&self) -> Option<&Origin> {
        self.origin.as_ref()
    }

    /// The expiry given to an entry written without one (`--default-ttl`).
    pub fn default_expiry(&self, now: u64) -> Option<u64> {
        let ttl = self.default_ttl_ms.load(Ordering::Relaxed);
        (ttl > 0).then(|| now.saturating_add(ttl))
    }

    /// Records a delete for the fetch/delete race (see `epoch`).
    pub fn note_delete(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// A read with read-through: a hit answers from memory; a miss, when there is an
    /// origin, loads the key from it through singleflight, caches it and answers.
    /// Origin unreachable: an error, never a silent nil.
    pub async fn read(&self, key: &Bytes) -> Result<Option<Bytes>, CommandError> {
        let lookup = self.store().get(key, now_ms());
        match lookup {
            Lookup::Hit(v) => return Ok(Some(v)),
            Lookup::NegativeHit => return Ok(None),
            Lookup::Miss => {}
        }
        let Some(origin) = &self.origin else {
            return Ok(None);
        };
        let (result, _role) = self.flights.run(key, || self.load(origin, key)).await;
        result.map_err(CommandError::err)
    }

    /// The leader's half of a read-through: ask the origin, cache the answer.
    async fn load(&self, origin: &Origin, key: &Bytes) -> FetchResult {
        let epoch = self.epoch.load(Ordering::Acquire);
        bump(&self.stats.fetches);
        let fetched = origin.get(key).await;
        let now = now_ms();
        let value = match fetched {
            Ok(value) => value,
            Err(e) => {
                bump(&self.stats.errors);
                return Err(e);
            }
        };
        let mut store = self.store();
        if let Some(newer) = store.peek(key, now) {
            // A client wrote the key while we were fetching: theirs is newer.
            return Ok(newer.value());
        }
        if self.epoch.load(Ordering::Acquire) != epoch {
            return Ok(value); // deleted meanwhile: answer, but do not cache a maybe-stale value
        }
        let expires_at = match &value {
            Some(_) => self.default_expiry(now),
            None => {
                let negative = self.negative_ttl_ms.load(Ordering::Relaxed);
                if negative == 0 {
                    return Ok(None);
                }
                Some(now.saturating_add(negative))
            }
        };
        // Out of memory under noeviction: still answer, just do not cache.
        let _ = store.fill(key, value.as_deref(), expires_at, now);
        Ok(value)
    }

    /// Whether writes go to the origin first (`--population write-through` with an origin).
    pub fn writes_through(&self) -> bool {
        self.origin.is_some() && self.population == Population::WriteThrough
    }

    /// Write-through: sends the client's command (`forward`, present only when
    /// [`CacheLayer::writes_through`]) to the origin first and returns the origin's reply;
    /// the caller then applies it to the cache. An origin error (unreachable, or an error
    /// reply) leaves the cache untouched. `Ok(None)`: not in write-through mode, apply
    /// locally only.
    pub async fn write_through(
        &self,
        forward: Option<Vec<Bytes>>,
    ) -> Result<Option<Frame>, CommandError> {
        let (Some(origin), Some(words)) = (self.origin.as_ref(), forward) else {
            return Ok(None);
        };
        match origin.call(words, false).await {
            Ok(Frame::Error(e)) => Err(CommandError::Reply(String::from_utf8_lossy(&e).into())),
            Ok(reply) => Ok(Some(reply)),
            Err(e) => {
                bump(&self.stats.errors);
                Err(CommandError::err(e))
            }
        }
    }

    /// WARM: loads `keys` from the origin now, in one pipelined MGET, replacing what the
    /// cache holds. Returns how many the origin had.
    pub async fn warm(&self, keys: Vec<Bytes>) -> Result<i64, CommandError> {
        let Some(origin) = &self.origin else {
            return Err(CommandError::err(
                "WARM needs an origin (start with --origin)",
            ));
        };
        let mut words = vec![Bytes::from_static(b"MGET")];
        words.extend(keys.iter().cloned());
        bump(&self.stats.fetches);
        let reply = origin.call(words, true).await.map_err(|e| {
            bump(&self.stats.errors);
            CommandError::err(e)
        })?;
        let Frame::Array(values) = reply else {
            return Err(CommandError::err(format!(
                "origin sent an unexpected reply to MGET: {reply:?}"
            )));
        };
        let now = now_ms();
        let mut store = self.store();
        let mut loaded = 0;
        for (key, value) in keys.into_iter().zip(values) {
            if let Frame::Bulk(value) = value {
                store
                    .put(&key, Some(&value), self.default_expiry(now), now)
                    .map_err(CommandError::from)?;
                loaded += 1;
            }
        }
        Ok(loaded)
    }

    /// Event-based invalidation of one key.
    pub fn invalidate(&self, key: &Bytes) {
        self.note_delete();
        self.store().remove(key, now_ms());
        bump(&self.stats.invalidations);
        self.announce(None);
    }

    /// After missing invalidation messages: drop everything.
    pub fn flush_for_resync(&self) {
        self.note_delete();
        self.store().clear();
        bump(&self.stats.resyncs);
        self.announce(None);
    }

    /// Sends the `CLIENT TRACKING` invalidations of what the store changed since the last
    /// call (`writer`: the client whose command it was, for `NOLOOP`). Called after every
    /// command, expiry sweep and origin invalidation.
    pub fn announce(&self, writer: Option<u64>) {
        if !self.recording.load(Ordering::Acquire) {
            return;
        }
        let (keys, flushed) = {
            let mut store = self.store();
            if !self.tracker.is_active() {
                store.changes.set_on(false);
                self.recording.store(false, Ordering::Release);
                return;
            }
            store.changes.take()
        };
        let mut wakes = Wakes::default();
        if flushed {
            self.tracker.flushed(&mut wakes);
        }
        if !keys.is_empty() {
            self.tracker.changed(&keys, writer, &mut wakes);
        }
    }

    /// Turns recording changed keys on if some client tracks (after `CLIENT TRACKING`).
    pub fn watch_changes(&self) {
        let on = self.tracker.is_active();
        let mut store = self.store();
        store.changes.set_on(on);
        self.recording.store(on, Ordering::Release);
    }
}

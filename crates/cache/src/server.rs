//! Wiring: the shared state behind every connection, the read-through and write-through
//! paths to the origin, INFO and CONFIG, and the active-expiry task.
//!
//! The store sits behind one mutex, held for the duration of one command's engine work
//! and never across an `await` (origin requests happen outside it). A single lock is
//! what makes the eviction order *exact* (one global recency list, as Redis's single
//! thread does) and keeps `used_memory ≤ maxmemory` at every instant; a sharded store
//! would scale writes across cores at the price of per-shard approximations.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use proto::{Args, CommandError, Frame};
use service::{CancellationToken, Client, CommandSpec, InfoSection, Reply, Server};

use crate::commands;
use crate::memory::ENTRY_OVERHEAD;
use crate::origin::{Origin, OriginError};
use crate::policy::PolicyKind;
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

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

type FetchResult = Result<Option<Bytes>, OriginError>;

pub struct CacheServer {
    store: Mutex<Cache>,
    origin: Option<Origin>,
    population: Population,
    default_ttl_ms: AtomicU64,
    negative_ttl_ms: AtomicU64,
    flights: SingleFlight<FetchResult>,
    /// Bumped by every delete (DEL, invalidation, FLUSHALL). A read-through fetch that
    /// started before a delete does not cache what it got: it may predate the delete.
    epoch: AtomicU64,
    pub stats: OriginStats,
}

impl CacheServer {
    pub fn new(args: &CacheArgs) -> Self {
        CacheServer {
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
        let _ = store.put(key, value.as_deref(), expires_at, now);
        Ok(value)
    }

    /// Whether writes go to the origin first (`--population write-through` with an origin).
    pub fn writes_through(&self) -> bool {
        self.origin.is_some() && self.population == Population::WriteThrough
    }

    /// Write-through: sends the client's command (`forward`, present only when
    /// [`CacheServer::writes_through`]) to the origin first and returns the origin's reply;
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
    }

    /// After missing invalidation messages: drop everything.
    pub fn flush_for_resync(&self) {
        self.note_delete();
        self.store().clear();
        bump(&self.stats.resyncs);
    }
}

/// Deletes expired entries nobody reads, ten times a second, in bounded batches so a
/// mass expiry never holds the lock for long.
pub async fn expiry_task(server: Arc<CacheServer>, shutdown: CancellationToken) {
    const BATCH: usize = 1000;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        while server.store().sweep_expired(now_ms(), BATCH) == BATCH {
            tokio::task::yield_now().await;
        }
    }
}

const POLICY_CHOICES: &str = "argument(s) must be one of the following: lru, lfu, random, ttl, noeviction (or Redis's allkeys-lru, allkeys-lfu, allkeys-random, volatile-ttl)";

impl Server for CacheServer {
    type Session = ();

    fn name(&self) -> &'static str {
        "cache"
    }

    fn commands(&self) -> &'static [CommandSpec] {
        commands::COMMANDS
    }

    async fn execute(&self, _client: &mut Client<()>, args: Args) -> Reply {
        commands::execute(self, args).await
    }

    fn info(&self) -> Vec<InfoSection> {
        let store = self.store();
        let s = store.stats;
        let lookups = s.hits + s.misses;
        let ratio = if lookups == 0 {
            0.0
        } else {
            s.hits as f64 / lookups as f64
        };
        let mut sections = vec![
            InfoSection::new("stats")
                .field("keyspace_hits", s.hits)
                .field("keyspace_misses", s.misses)
                .field("hit_ratio", format!("{ratio:.4}"))
                .field("evicted_keys", s.evicted)
                .field("expired_keys", s.expired)
                .field("origin_fetches", read(&self.stats.fetches))
                .field("origin_errors", read(&self.stats.errors))
                .field("coalesced_waits", self.flights.coalesced())
                .field("origin_fetches_in_flight", self.flights.in_flight())
                .field("invalidations", read(&self.stats.invalidations))
                .field("invalidation_resyncs", read(&self.stats.resyncs)),
            InfoSection::new("memory")
                .field("used_memory", store.used_memory())
                .field(
                    "used_memory_human",
                    service::info::human_bytes(store.used_memory()),
                )
                .field("maxmemory", store.maxmemory())
                .field(
                    "maxmemory_human",
                    service::info::human_bytes(store.maxmemory()),
                )
                .field("maxmemory_policy", store.policy())
                .field("entry_overhead_bytes", ENTRY_OVERHEAD),
            InfoSection::new("cache")
                .field(
                    "population",
                    match self.population {
                        Population::Lazy => "lazy",
                        Population::WriteThrough => "write-through",
                    },
                )
                .field("origin", self.origin.as_ref().map_or("", |o| o.addr()))
                .field(
                    "default_ttl",
                    self.default_ttl_ms.load(Ordering::Relaxed) / 1000,
                )
                .field(
                    "negative_ttl",
                    self.negative_ttl_ms.load(Ordering::Relaxed) / 1000,
                ),
        ];
        let mut keyspace = InfoSection::new("keyspace");
        if !store.is_empty() {
            keyspace = keyspace.field(
                "db0",
                format!(
                    "keys={},expires={},avg_ttl=0",
                    store.len(),
                    store.expires_count()
                ),
            );
        }
        sections.push(keyspace);
        sections
    }

    fn config_get(&self) -> Vec<(String, String)> {
        let store = self.store();
        vec![
            ("maxmemory".into(), store.maxmemory().to_string()),
            ("maxmemory-policy".into(), store.policy().to_string()),
            (
                "default-ttl".into(),
                (self.default_ttl_ms.load(Ordering::Relaxed) / 1000).to_string(),
            ),
            (
                "negative-ttl".into(),
                (self.negative_ttl_ms.load(Ordering::Relaxed) / 1000).to_string(),
            ),
            (
                "population".into(),
                match self.population {
                    Population::Lazy => "lazy".into(),
                    Population::WriteThrough => "write-through".into(),
                },
            ),
            (
                "origin".into(),
                self.origin
                    .as_ref()
                    .map_or(String::new(), |o| o.addr().to_string()),
            ),
        ]
    }

    fn config_set(&self, name: &str, value: &str) -> Option<Result<(), String>> {
        let seconds = || {
            value
                .parse::<u64>()
                .map(|s| s.saturating_mul(1000))
                .map_err(|_| "argument couldn't be parsed into an integer".to_string())
        };
        Some(match name {
            "maxmemory" => service::settings::parse_memory(value)
                .map(|bytes| self.store().set_maxmemory(bytes))
                .map_err(|_| "argument must be a memory value".to_string()),
            "maxmemory-policy" => PolicyKind::parse(value)
                .map(|kind| self.store().set_policy(kind))
                .ok_or_else(|| POLICY_CHOICES.to_string()),
            "default-ttl" => seconds().map(|ms| self.default_ttl_ms.store(ms, Ordering::Relaxed)),
            "negative-ttl" => seconds().map(|ms| self.negative_ttl_ms.store(ms, Ordering::Relaxed)),
            "population" | "origin" => Err("can't set immutable config".to_string()),
            _ => return None,
        })
    }
}

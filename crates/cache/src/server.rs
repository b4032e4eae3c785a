//! Wiring: the [`CacheLayer`] as a RESP server (its commands, INFO and CONFIG), and the
//! active-expiry task.

use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use hub::commands::tracking::Reads;
use proto::Args;
use service::{CancellationToken, Client, CommandSpec, InfoSection, Push, Reply, Server};

use crate::Population;
use crate::commands;
use crate::layer::{CacheLayer, now_ms, read};
use crate::memory::ENTRY_OVERHEAD;
use crate::policy::PolicyKind;

/// Deletes expired entries nobody reads, ten times a second, in bounded batches so a
/// mass expiry never holds the lock for long.
pub async fn expiry_task(server: Arc<CacheLayer>, shutdown: CancellationToken) {
    const BATCH: usize = 1000;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        while server.store().sweep_expired(now_ms(), BATCH) == BATCH {
            server.announce(None);
            tokio::task::yield_now().await;
        }
        server.announce(None);
    }
}

const POLICY_CHOICES: &str = "argument(s) must be one of the following: lru, lfu, random, ttl, noeviction (or Redis's allkeys-lru, allkeys-lfu, allkeys-random, volatile-ttl)";

/// A connection's pub/sub queue and `CLIENT TRACKING` state: the cache pushes
/// invalidations to the clients that cache in front of it, as kv does.
#[derive(Debug, Default)]
pub struct Session {
    pubsub: hub::Subscriptions,
    client_cache: hub::ClientCache,
}

impl AsMut<hub::Subscriptions> for Session {
    fn as_mut(&mut self) -> &mut hub::Subscriptions {
        &mut self.pubsub
    }
}

impl AsRef<hub::Subscriptions> for Session {
    fn as_ref(&self) -> &hub::Subscriptions {
        &self.pubsub
    }
}

impl AsMut<hub::ClientCache> for Session {
    fn as_mut(&mut self) -> &mut hub::ClientCache {
        &mut self.client_cache
    }
}

impl AsRef<hub::ClientCache> for Session {
    fn as_ref(&self) -> &hub::ClientCache {
        &self.client_cache
    }
}

impl CacheLayer {
    /// A tracking client's reads are remembered *before* they run (see `execute`).
    fn remember_reads(&self, client: &Client<Session>, args: &Args) {
        if let Some(reads) = Reads::before(client, client.spec(), args) {
            reads.remember(&self.tracker);
        }
    }
}

impl Server for CacheLayer {
    type Session = Session;

    /// The cache has what redis-py 8's client-side cache needs (`CLIENT TRACKING`, RESP3
    /// invalidation pushes), so it reports the Redis version that client asks for.
    const REDIS_VERSION: &'static str = "7.4.0";
    const HELLO_SERVER: &'static str = "redis";

    /// One event loop on its own thread, as kv's: replies go out after every ready
    /// client has been served (see [`Server::WRITE_AFTER_READS`]).
    const WRITE_AFTER_READS: bool = true;

    fn name(&self) -> &'static str {
        "cache"
    }

    fn commands(&self) -> &'static [CommandSpec] {
        static ALL: LazyLock<Vec<CommandSpec>> =
            LazyLock::new(|| [commands::COMMANDS, hub::commands::COMMANDS].concat());
        &ALL
    }

    /// Pub/sub (so a RESP2 `REDIRECT` target can subscribe to `__redis__:invalidate`) and
    /// the tracking subcommands of `CLIENT` come from the `hub` library; a tracking
    /// client's reads are remembered *before* they run, because a read-through read waits
    /// for the origin and a write may land meanwhile: remembered first, the reader is told
    /// of that write (and a client drops a reply an invalidation overtook).
    async fn execute(&self, client: &mut Client<Session>, args: Args) -> Reply {
        if let Some(refused) = hub::commands::subscribe::subscribed_mode(client, &args) {
            return refused;
        }
        let tracker = &self.tracker;
        let reply = match args.name() {
            "client" => {
                let reply = hub::commands::tracking::client(tracker, client, args);
                self.watch_changes();
                return reply;
            }
            "subscribe" | "psubscribe" | "ssubscribe" => {
                let reply = hub::commands::execute(tracker.hub(), client, args);
                hub::commands::tracking::attach(tracker, client);
                return reply;
            }
            "unsubscribe" | "punsubscribe" | "sunsubscribe" | "publish" | "spublish" | "pubsub" => {
                return hub::commands::execute(tracker.hub(), client, args);
            }
            _ => {
                self.remember_reads(client, &args);
                commands::execute(self, args).await
            }
        };
        self.announce(client.session.client_cache.id());
        reply
    }

    /// The commands that never wait ([`commands::runs_now`]: all but read-through,
    /// write-through and WARM), run straight from the connection's loop.
    fn execute_now(&self, client: &mut Client<Session>, args: Args) -> Result<Reply, Args> {
        if !commands::runs_now(self, args.name()) {
            return Err(args);
        }
        if let Some(refused) = hub::commands::subscribe::subscribed_mode(client, &args) {
            return Ok(refused);
        }
        self.remember_reads(client, &args);
        let reply = commands::execute_now(self, args);
        self.announce(client.session.client_cache.id());
        Ok(reply)
    }

    async fn next_push(&self, session: &mut Session) -> Push {
        session.pubsub.next_push().await
    }

    fn pending_push(&self, session: &mut Session) -> Option<Bytes> {
        session.pubsub.pending_push()
    }

    fn batch_executed(&self, session: &mut Session) {
        session.pubsub.wakes.wake_all();
    }

    fn protocol_changed(&self, session: &mut Session, protocol: proto::Protocol) {
        if let Some(subscriber) = &session.pubsub.subscriber {
            subscriber.outbox().set_protocol(protocol);
        }
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
            (
                "tracking-table-max-keys".into(),
                self.tracker
                    .with(|t| (t.max_keys(), Vec::new()))
                    .to_string(),
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
            "tracking-table-max-keys" => value
                .parse::<usize>()
                .map(|max| self.tracker.with(|t| ((), t.set_max_keys(max))))
                .map_err(|_| "argument couldn't be parsed into an integer".to_string()),
            "population" | "origin" => Err("can't set immutable config".to_string()),
            _ => return None,
        })
    }
}

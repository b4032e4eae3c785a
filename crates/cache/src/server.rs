//! Wiring: the [`CacheLayer`] as a RESP server (its commands, INFO and CONFIG), and the
//! active-expiry task.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use proto::Args;
use service::{CancellationToken, Client, CommandSpec, InfoSection, Reply, Server};

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
            tokio::task::yield_now().await;
        }
    }
}

const POLICY_CHOICES: &str = "argument(s) must be one of the following: lru, lfu, random, ttl, noeviction (or Redis's allkeys-lru, allkeys-lfu, allkeys-random, volatile-ttl)";

impl Server for CacheLayer {
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

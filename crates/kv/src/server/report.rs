//! What `INFO` and `CONFIG GET`/`CONFIG SET` show and change of kv: its sections and
//! parameters beside the service's own (see [`service::Server::info`]). Read-mostly
//! reporting, kept apart from the command path in [`super`].

use std::sync::atomic::Ordering;

use service::InfoSection;

use super::Kv;
use crate::keyspace::DATABASES;
use crate::replication;

impl Kv {
    /// `INFO`'s kv sections.
    pub(super) fn info_sections(&self) -> Vec<InfoSection> {
        let now = self.now();
        let (used, stats, seq, keyspace) = {
            let ks = self.lock();
            (
                ks.used_memory() as u64,
                ks.stats(),
                ks.journal().seq(),
                ks.keyspace_info(now),
            )
        };
        let maxmemory = self.maxmemory.load(Ordering::Relaxed);
        let (channels, patterns) = self.events.hub.table_sizes();
        let (tracking_clients, tracking_keys, tracking_prefixes) = self
            .events
            .tracker
            .with(|t| ((t.clients(), t.keys(), t.prefixes()), Vec::new()));
        let progress = self.storage.as_ref().map(|s| s.progress());
        let mut keyspace_section = InfoSection::new("keyspace");
        for (db, keys, expires) in keyspace {
            keyspace_section = keyspace_section.field(
                format!("db{db}"),
                format!("keys={keys},expires={expires},avg_ttl=0"),
            );
        }
        vec![
            InfoSection::new("clients")
                .field("blocked_clients", self.blocked.count())
                .field("tracking_clients", tracking_clients),
            InfoSection::new("memory")
                .field("used_memory", used)
                .field("used_memory_human", service::info::human_bytes(used))
                .field("maxmemory", maxmemory)
                .field("maxmemory_human", service::info::human_bytes(maxmemory))
                .field("maxmemory_policy", "noeviction"),
            InfoSection::new("persistence")
                .field("loading", 0)
                .field(
                    "rdb_changes_since_last_save",
                    progress.map_or(0, |p| seq.saturating_sub(p.durable)),
                )
                .field("rdb_last_save_time", self.last_save())
                .field("aof_enabled", u8::from(self.storage.is_some()))
                .field(
                    "infralab_fsync",
                    self.storage.as_ref().map_or("off", |s| s.fsync.name()),
                )
                .field(
                    "infralab_dir",
                    self.dir
                        .as_ref()
                        .map(|d| d.display().to_string())
                        .unwrap_or_default(),
                ),
            InfoSection::new("stats")
                .field("pubsub_channels", channels)
                .field("pubsub_patterns", patterns)
                .field("pubsubshard_channels", self.events.hub.shard_channels())
                .field("tracking_total_keys", tracking_keys)
                .field("tracking_total_items", tracking_keys)
                .field("tracking_total_prefixes", tracking_prefixes)
                .field("keyspace_hits", stats.keyspace_hits)
                .field("keyspace_misses", stats.keyspace_misses)
                .field("expired_keys", stats.expired_keys)
                .field("evicted_keys", 0),
            replication::info(&self.replication),
            keyspace_section,
        ]
    }

    /// `CONFIG GET`'s kv parameters, with their values.
    pub(super) fn config_pairs(&self) -> Vec<(String, String)> {
        let fsync = self.storage.as_ref().map_or("no", |s| s.fsync.name());
        vec![
            (
                "maxmemory".into(),
                self.maxmemory.load(Ordering::Relaxed).to_string(),
            ),
            ("maxmemory-policy".into(), "noeviction".into()),
            ("databases".into(), DATABASES.to_string()),
            (
                "appendonly".into(),
                if self.storage.is_some() { "yes" } else { "no" }.into(),
            ),
            ("appendfsync".into(), fsync.into()),
            // kv journals every write (`appendonly`) when it has a `--dir`, and folds the
            // journal into its checkpoint by size and on SAVE, not on Redis's save points.
            ("save".into(), crate::lock(&self.save_points).clone()),
            (
                "busy-reply-threshold".into(),
                self.scripts.busy_threshold().as_millis().to_string(),
            ),
            (
                "lua-time-limit".into(),
                self.scripts.busy_threshold().as_millis().to_string(),
            ),
            (
                "notify-keyspace-events".into(),
                crate::notify::format(self.events.flags()),
            ),
            (
                "tracking-table-max-keys".into(),
                self.events
                    .tracker
                    .with(|t| (t.max_keys(), Vec::new()))
                    .to_string(),
            ),
            (
                "client-output-buffer-limit".into(),
                self.events.hub.limits().0.to_string(),
            ),
            (
                "dir".into(),
                self.dir
                    .as_ref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default(),
            ),
        ]
        .into_iter()
        .chain(self.encodings.config_get())
        .chain(self.slowlog.config_get())
        .collect()
    }

    /// `CONFIG SET` of a kv parameter: `None` if it is not one of kv's.
    pub(super) fn set_config(&self, name: &str, value: &str) -> Option<Result<(), String>> {
        if let Some(done) = self
            .encodings
            .config_set(name, value)
            .or_else(|| self.slowlog.config_set(name, value))
        {
            return Some(done);
        }
        match name {
            // Accepted with their kv meaning: persistence is `--dir`, chosen at start.
            "save" => {
                *crate::lock(&self.save_points) = value.to_string();
                Some(Ok(()))
            }
            "appendonly" => Some(match service::settings::yes_no(value) {
                Ok(on) if on == self.storage.is_some() => Ok(()),
                Ok(_) => Err(
                    "kv persists exactly when started with --dir; restart to change it".to_string(),
                ),
                Err(e) => Err(e),
            }),
            "maxmemory" => Some(service::settings::parse_memory(value).map(|n| {
                self.maxmemory.store(n, Ordering::Relaxed);
            })),
            "busy-reply-threshold" | "lua-time-limit" => Some(
                value
                    .parse::<u64>()
                    .map_err(|_| "argument couldn't be parsed into an integer".to_string())
                    .map(|ms| self.scripts.set_busy_threshold(ms)),
            ),
            "notify-keyspace-events" => Some(crate::notify::parse(value).map(|flags| {
                self.events.set_flags(flags);
                self.observe_changes();
            })),
            "tracking-table-max-keys" => Some(
                value
                    .parse::<usize>()
                    .map_err(|_| "argument couldn't be parsed into an integer".to_string())
                    .map(|max| self.events.tracker.with(|t| ((), t.set_max_keys(max)))),
            ),
            "client-output-buffer-limit" => Some(value.parse::<hub::OutputLimit>().map(|limit| {
                let (_, policy) = self.events.hub.limits();
                self.events.hub.set_limits(limit, policy);
            })),
            _ => None,
        }
    }
}

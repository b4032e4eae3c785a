//! The router's configuration: a TOML file (`--config router.toml`), or quick-start flags.
//!
//! ```toml
//! strategy = "ketama"            # modulo | ketama | jump | rendezvous | range | directory
//! vnodes = 160                   # ketama points per unit of weight
//! read_from = "primary"          # primary | prefer-replica | replica
//! timeout_ms = 1000              # a backend connection whose oldest reply is this late is closed
//! server_failure_limit = 2       # consecutive failures before a node is ejected
//! server_retry_timeout_ms = 30000  # how long an ejected node stays out
//! probe_interval_ms = 1000       # active health checks (PING) of every node
//! pool_size = 2                  # connections per backend node, shared by all clients
//! remap_on_failure = false       # ketama/rendezvous: an ejected shard's keys go to the next
//! # migrating_from = "old.toml"  # while `infralab reshard` runs (see crate::reshard)
//!
//! [[shards]]
//! name = "s0"                    # ketama and rendezvous hash the name, not the address
//! primary = "127.0.0.1:7001"
//! replicas = ["127.0.0.1:7101"]
//! weight = 1
//! # until = "m"                  # range: exclusive upper bound (all shards but the last)
//!
//! # [directory]                  # directory strategy only
//! # node = "127.0.0.1:7000"      # the kv instance holding the table
//! # table = "router:directory"   # a hash: tag -> shard name
//! # default = "s0"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::strategy::ketama::Ketama;
use crate::strategy::{ShardInfo, Strategy, StrategyKind};

/// Where reads go (writes always go to the primary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ReadFrom {
    /// The primary; a replica only while the primary is ejected.
    #[default]
    Primary,
    /// A healthy replica; the primary when none is.
    PreferReplica,
    /// Replicas only: reads fail while no replica is healthy.
    Replica,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardConfig {
    pub name: String,
    pub primary: String,
    #[serde(default)]
    pub replicas: Vec<String>,
    #[serde(default = "one")]
    pub weight: u32,
    #[serde(default)]
    pub until: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    pub node: String,
    #[serde(default = "default_table")]
    pub table: String,
    pub default: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub strategy: StrategyKind,
    #[serde(default = "default_vnodes")]
    pub vnodes: u32,
    #[serde(default)]
    pub read_from: ReadFrom,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    #[serde(default = "default_failure_limit")]
    pub server_failure_limit: u32,
    #[serde(default = "default_retry_timeout")]
    pub server_retry_timeout_ms: u64,
    #[serde(default = "default_probe_interval")]
    pub probe_interval_ms: u64,
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// twemproxy's `auto_eject_hosts`: while a shard's primary is ejected, its keys go to
    /// the shard that would own them without it. Availability over consistency — see
    /// `Layout::shard_of`.
    #[serde(default)]
    pub remap_on_failure: bool,
    /// The previous layout while a reshard runs: keys are pulled from it on access.
    #[serde(default)]
    pub migrating_from: Option<PathBuf>,
    #[serde(default)]
    pub directory: Option<DirectoryConfig>,
    pub shards: Vec<ShardConfig>,
}

fn one() -> u32 {
    1
}
fn default_table() -> String {
    "router:directory".into()
}
fn default_vnodes() -> u32 {
    Ketama::DEFAULT_VNODES
}
fn default_timeout() -> u64 {
    1000
}
fn default_failure_limit() -> u32 {
    2
}
fn default_retry_timeout() -> u64 {
    30_000
}
fn default_probe_interval() -> u64 {
    1000
}
fn default_pool_size() -> usize {
    2
}

impl Config {
    /// Reads and validates a TOML file. A relative `migrating_from` is resolved against
    /// the file's directory.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut config = Config::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if let (Some(from), Some(dir)) = (&config.migrating_from, path.parent()) {
            config.migrating_from = Some(dir.join(from));
        }
        Ok(config)
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    /// A config from quick-start flags: shards `s0`, `s1`... at the given addresses.
    pub fn from_addresses(addresses: &[String], strategy: StrategyKind) -> Result<Config, String> {
        let mut text = format!("strategy = {:?}\n", format!("{strategy:?}").to_lowercase());
        for (i, address) in addresses.iter().enumerate() {
            text.push_str(&format!(
                "[[shards]]\nname = \"s{i}\"\nprimary = {address:?}\n"
            ));
        }
        Config::parse(&text)
    }

    fn validate(&self) -> Result<(), String> {
        let mut names = std::collections::HashSet::new();
        for shard in &self.shards {
            if !names.insert(shard.name.as_str()) {
                return Err(format!("shard name '{}' is used twice", shard.name));
            }
        }
        if self.pool_size == 0 {
            return Err("pool_size must be at least 1".into());
        }
        if self.remap_on_failure {
            if !matches!(
                self.strategy,
                StrategyKind::Ketama | StrategyKind::Rendezvous
            ) {
                return Err(
                    "remap_on_failure needs strategy ketama or rendezvous: the others \
                            have no next shard to hand a key to"
                        .into(),
                );
            }
            if self.migrating_from.is_some() {
                return Err(
                    "remap_on_failure cannot be used while migrating: a key's shard \
                            must not depend on health while keys move"
                        .into(),
                );
            }
        }
        self.strategy().map(|_| ())
    }

    /// Builds the configured strategy.
    pub fn strategy(&self) -> Result<Strategy, String> {
        let shards: Vec<ShardInfo> = self
            .shards
            .iter()
            .map(|s| ShardInfo {
                name: &s.name,
                weight: s.weight,
                until: s.until.as_deref(),
            })
            .collect();
        let directory = self
            .directory
            .as_ref()
            .map(|d| (d.table.as_str(), d.default.as_str()));
        Strategy::new(self.strategy, &shards, self.vnodes, directory)
    }

    pub fn shard_names(&self) -> Vec<&str> {
        self.shards.iter().map(|s| s.name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_file_with_defaults() {
        let c = Config::parse(
            r#"
            strategy = "rendezvous"
            read_from = "prefer-replica"
            [[shards]]
            name = "a"
            primary = "127.0.0.1:1"
            replicas = ["127.0.0.1:2"]
            weight = 2
            [[shards]]
            name = "b"
            primary = "127.0.0.1:3"
            "#,
        )
        .unwrap();
        assert_eq!(c.strategy, StrategyKind::Rendezvous);
        assert_eq!(c.read_from, ReadFrom::PreferReplica);
        assert_eq!(c.vnodes, 160);
        assert_eq!(c.shards[0].replicas, ["127.0.0.1:2"]);
        assert_eq!(c.shards[1].weight, 1);
    }

    #[test]
    fn rejects_mistakes_with_a_reason() {
        assert!(
            Config::parse("shards = []")
                .unwrap_err()
                .contains("at least one shard")
        );
        let dup = "[[shards]]\nname='a'\nprimary='x:1'\n[[shards]]\nname='a'\nprimary='x:2'\n";
        assert!(Config::parse(dup).unwrap_err().contains("twice"));
        assert!(Config::parse("bogus = 1\nshards = []").is_err());
        let remap = "remap_on_failure = true\n[[shards]]\nname='a'\nprimary='x:1'\n";
        assert!(Config::parse(remap).is_ok());
        let remap_modulo = format!("strategy = 'modulo'\n{remap}");
        assert!(
            Config::parse(&remap_modulo)
                .unwrap_err()
                .contains("ketama or rendezvous")
        );
        let c = Config::from_addresses(
            &["127.0.0.1:1".into(), "127.0.0.1:2".into()],
            StrategyKind::Jump,
        )
        .unwrap();
        assert_eq!(c.shard_names(), ["s0", "s1"]);
    }
}

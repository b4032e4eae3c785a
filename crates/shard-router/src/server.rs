//! The router: the current layout (shards, strategy, nodes), how a key finds its node,
//! the health probes, and the `service::Server` wiring.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use proto::{Args, Frame};
use service::{CancellationToken, Client, CommandSpec, InfoSection, Reply, Server};

use crate::backend::Node;
use crate::config::{Config, ReadFrom};
use crate::hashtag::hash_tag;
use crate::health::Health;
use crate::strategy::{Place, Strategy};

/// One shard of a layout: its name, where its primary and replicas are, its counters.
pub struct Shard {
    pub name: String,
    pub primary: Arc<Node>,
    pub replicas: Vec<Arc<Node>>,
    pub requests: AtomicU64,
    pub errors: AtomicU64,
}

/// Everything routing needs, built from one config and swapped whole by `ROUTER RELOAD`:
/// a request sees either the old layout or the new one, never a mix.
pub struct Layout {
    pub config: Config,
    pub strategy: Strategy,
    pub shards: Vec<Shard>,
    pub directory: Option<Arc<Node>>,
    /// While a reshard runs: the layout keys are migrating *from*.
    pub previous: Option<Box<Layout>>,
}

impl Layout {
    /// Builds a layout, reusing the nodes (and their connection pools and health) of
    /// addresses already known to `nodes`.
    pub fn build(config: Config, nodes: &NodeRegistry) -> Result<Layout, String> {
        let previous = match &config.migrating_from {
            Some(path) => {
                let mut old = Config::load(path)?;
                old.migrating_from = None;
                Some(Box::new(Layout::build(old, nodes)?))
            }
            None => None,
        };
        let strategy = config.strategy()?;
        let node = |addr: &str| nodes.get(addr, &config);
        let shards = config
            .shards
            .iter()
            .map(|s| Shard {
                name: s.name.clone(),
                primary: node(&s.primary),
                replicas: s.replicas.iter().map(|r| node(r)).collect(),
                requests: AtomicU64::new(0),
                errors: AtomicU64::new(0),
            })
            .collect();
        let directory = config.directory.as_ref().map(|d| node(&d.node));
        Ok(Layout {
            config,
            strategy,
            shards,
            directory,
            previous,
        })
    }

    /// Every node of the layout (and of the one it migrates from), each once.
    pub fn nodes(&self) -> Vec<Arc<Node>> {
        let mut all: Vec<Arc<Node>> = Vec::new();
        let mut push = |n: &Arc<Node>| {
            if !all.iter().any(|m| Arc::ptr_eq(m, n)) {
                all.push(n.clone());
            }
        };
        for shard in &self.shards {
            push(&shard.primary);
            shard.replicas.iter().for_each(&mut push);
        }
        if let Some(d) = &self.directory {
            push(d);
        }
        if let Some(previous) = &self.previous {
            previous.nodes().iter().for_each(push);
        }
        all
    }

    /// Distinct primaries, for commands that go to every shard.
    pub fn primaries(&self) -> Vec<Arc<Node>> {
        let mut all: Vec<Arc<Node>> = Vec::new();
        for shard in &self.shards {
            if !all.iter().any(|m| m.addr == shard.primary.addr) {
                all.push(shard.primary.clone());
            }
        }
        all
    }

    /// The shard owning `key`: computed, or asked of the directory.
    pub async fn shard_of(&self, key: &[u8], lane: u64) -> Result<usize, Frame> {
        match self.strategy.place(key) {
            Place::Shard(i) => Ok(self.remapped(key, i)),
            Place::Ask(directory) => {
                let node = self.directory.as_ref().ok_or_else(|| {
                    Frame::error("ERR the directory strategy has no directory node")
                })?;
                // Boxed, as every cold path of the forwarding futures (see `Node::enqueue`).
                let answer =
                    Box::pin(node.call(lane, Frame::bulk_array(directory.lookup(hash_tag(key)))))
                        .await
                        .map_err(|e| Frame::error(format!("ERR directory lookup failed: {e}")))?;
                let entry = match &answer {
                    Frame::Bulk(name) => Some(name.as_ref()),
                    Frame::Null => None,
                    Frame::Error(_) => return Err(answer),
                    other => {
                        return Err(Frame::error(format!(
                            "ERR directory lookup: unexpected reply {other:?}"
                        )));
                    }
                };
                directory
                    .resolve(entry)
                    .map_err(|e| Frame::error(format!("ERR {e}")))
            }
        }
    }

    /// With `remap_on_failure`, a shard whose primary is ejected hands its keys to the
    /// shard that would own them without it (the next on the ketama ring), as twemproxy's
    /// `auto_eject_hosts` does. That trades consistency for availability: a write made
    /// meanwhile lands on the other shard, and when the primary returns its keys go back
    /// to it — where that write is not (and where an older value may be). Fine for a
    /// cache (a miss), wrong for a store; hence off by default.
    fn remapped(&self, key: &[u8], owner: usize) -> usize {
        if !self.config.remap_on_failure || self.shards[owner].primary.available() {
            return owner;
        }
        self.strategy
            .place_among(key, |s| self.shards[s].primary.available())
            .unwrap_or(owner)
    }
}

/// Nodes by address and settings, shared across layouts so `ROUTER RELOAD` keeps warm
/// connections and health history for the backends that did not change.
#[derive(Default)]
pub struct NodeRegistry {
    nodes: Mutex<HashMap<String, Arc<Node>>>,
}

impl NodeRegistry {
    pub fn get(&self, addr: &str, config: &Config) -> Arc<Node> {
        let id = format!(
            "{addr}|{}|{}|{}|{}",
            config.pool_size,
            config.timeout_ms,
            config.server_failure_limit,
            config.server_retry_timeout_ms
        );
        let mut nodes = match self.nodes.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        nodes
            .entry(id)
            .or_insert_with(|| {
                Arc::new(Node::new(
                    addr,
                    config.pool_size,
                    Duration::from_millis(config.timeout_ms),
                    Health::new(
                        config.server_failure_limit,
                        Duration::from_millis(config.server_retry_timeout_ms),
                    ),
                ))
            })
            .clone()
    }
}

/// The shard router, as a `service::Server`.
pub struct Router {
    layout: RwLock<Arc<Layout>>,
    config_path: Option<PathBuf>,
    nodes: NodeRegistry,
    replica_cursor: AtomicUsize,
    /// Aggregated `INFO keyspace` of the shards, refreshed by each `INFO`.
    pub(crate) keyspace: Mutex<(u64, u64)>,
}

impl Router {
    pub fn new(config: Config, config_path: Option<PathBuf>) -> Result<Self, String> {
        let nodes = NodeRegistry::default();
        let layout = Layout::build(config, &nodes)?;
        Ok(Router {
            layout: RwLock::new(Arc::new(layout)),
            config_path,
            nodes,
            replica_cursor: AtomicUsize::new(0),
            keyspace: Mutex::new((0, 0)),
        })
    }

    /// The layout in force now.
    pub fn layout(&self) -> Arc<Layout> {
        match self.layout.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// `ROUTER RELOAD`: re-reads the config file and swaps the layout in.
    pub fn reload(&self) -> Result<(), String> {
        let path = self
            .config_path
            .as_ref()
            .ok_or("the router was started from flags, not --config: nothing to reload")?;
        let layout = Arc::new(Layout::build(Config::load(path)?, &self.nodes)?);
        match self.layout.write() {
            Ok(mut g) => *g = layout,
            Err(p) => *p.into_inner() = layout,
        }
        Ok(())
    }

    /// The node a request for `shard` goes to. Writes go to the primary or fail fast;
    /// reads follow `read_from` and fall over to whatever is healthy.
    pub fn node_for(
        &self,
        layout: &Layout,
        shard: &Shard,
        write: bool,
    ) -> Result<Arc<Node>, Frame> {
        let primary = shard.primary.available().then(|| shard.primary.clone());
        if write {
            return primary.ok_or_else(|| {
                Frame::error(format!(
                    "ERR shard '{}' has no healthy primary ({} is {}): write refused",
                    shard.name,
                    shard.primary.addr,
                    shard.primary.status().as_str()
                ))
            });
        }
        let replica = || self.healthy_replica(shard);
        let node = match layout.config.read_from {
            ReadFrom::Primary => primary.or_else(replica),
            ReadFrom::PreferReplica => replica().or(primary),
            ReadFrom::Replica => replica(),
        };
        node.ok_or_else(|| {
            Frame::error(format!(
                "ERR shard '{}' has no healthy node to read from",
                shard.name
            ))
        })
    }

    /// A healthy replica, round-robin.
    pub fn healthy_replica(&self, shard: &Shard) -> Option<Arc<Node>> {
        let n = shard.replicas.len();
        let start = self.replica_cursor.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &shard.replicas[(start + i) % n])
            .find(|r| r.available())
            .cloned()
    }

    /// Active health checks: PING every node every `probe_interval_ms`, until shutdown.
    pub async fn probe_forever(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let layout = self.layout();
            let interval = Duration::from_millis(layout.config.probe_interval_ms.max(10));
            // All nodes at once: one unreachable node must not delay the others' checks.
            let mut probes = tokio::task::JoinSet::new();
            for node in layout.nodes() {
                probes.spawn(async move {
                    let _ = node.call(u64::MAX, Frame::bulk_array(["PING"])).await;
                });
            }
            drop(layout);
            while probes.join_next().await.is_some() {}
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }
}

impl Server for Router {
    type Session = ();

    fn name(&self) -> &'static str {
        "shard-router"
    }

    fn commands(&self) -> &'static [CommandSpec] {
        crate::commands::table::COMMANDS
    }

    async fn execute(&self, client: &mut Client<()>, args: Args) -> Reply {
        crate::commands::execute(self, client.id(), client.protocol, args).await
    }

    fn info(&self) -> Vec<InfoSection> {
        let layout = self.layout();
        let (keys, expires) = match self.keyspace.lock() {
            Ok(g) => *g,
            Err(p) => *p.into_inner(),
        };
        let mut shards = InfoSection::new("shards")
            .field(
                "strategy",
                format!("{:?}", layout.config.strategy).to_lowercase(),
            )
            .field("shards", layout.shards.len())
            .field("migrating", layout.previous.is_some() as u8);
        for s in &layout.shards {
            shards = shards.field(
                format!("shard_{}", s.name),
                format!(
                    "primary={},status={},replicas={},requests={},errors={}",
                    s.primary.addr,
                    s.primary.status().as_str(),
                    s.replicas.len(),
                    s.requests.load(Ordering::Relaxed),
                    s.errors.load(Ordering::Relaxed)
                ),
            );
        }
        vec![
            shards,
            InfoSection::new("keyspace")
                .field("db0", format!("keys={keys},expires={expires},avg_ttl=0")),
        ]
    }
}

/// A request as the backend receives it: the command name as the client spelt it, then
/// the arguments.
pub fn request(name: &[u8], words: &[Bytes]) -> Frame {
    let mut items = Vec::with_capacity(words.len() + 1);
    items.push(Frame::Bulk(Bytes::copy_from_slice(name)));
    items.extend(words.iter().cloned().map(Frame::Bulk));
    Frame::Array(items)
}

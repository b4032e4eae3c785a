//! Where a demo's servers are: started in-process for `--against local`, or the addresses of
//! a running topology (docker-compose) for `--against compose`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;
use service::{BoxError, CancellationToken, Running};

use super::Trace;

/// Which servers a demo talks to.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Against {
    /// Start what the demo needs in this process, on free ports, and stop it afterwards.
    Local,
    /// The compose topology (or any running servers): addresses from INFRALAB_* variables.
    Compose,
}

/// Addresses of a running topology, from the environment the compose `demo` service sets.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub router: String,
    pub cache: String,
    pub broker: String,
    pub stream: String,
    pub pubsub: String,
    /// The kv primaries behind the router (`INFRALAB_KV_SHARDS`, comma-separated).
    pub kv_shards: Vec<String>,
}

impl Endpoints {
    /// `INFRALAB_ROUTER`, `INFRALAB_CACHE`, ...; each defaults to 127.0.0.1 and its default port.
    pub fn from_env() -> Self {
        let var = |name: &str, default: String| std::env::var(name).unwrap_or(default);
        let local = |port: u16| format!("127.0.0.1:{port}");
        let shards = var(
            "INFRALAB_KV_SHARDS",
            "127.0.0.1:7379,127.0.0.1:7479,127.0.0.1:7579".to_owned(),
        );
        Endpoints {
            router: var("INFRALAB_ROUTER", local(shard_router::DEFAULT_PORT)),
            cache: var("INFRALAB_CACHE", local(cache::DEFAULT_PORT)),
            broker: var("INFRALAB_BROKER", local(broker::DEFAULT_PORT)),
            stream: var("INFRALAB_STREAM", local(stream::DEFAULT_PORT)),
            pubsub: var("INFRALAB_PUBSUB", local(pubsub::DEFAULT_PORT)),
            kv_shards: shards
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }
}

/// Servers started in this process for one demo, in a temporary directory that goes away
/// with them ([`Lab::stop`]).
pub struct Lab {
    dir: PathBuf,
    shutdown: CancellationToken,
    running: Vec<Running>,
    bridges: Vec<pubsub::bridge::Bridge>,
    next_dir: u32,
    /// With `demo --dashboard`: the page every server this lab starts is added to.
    dashboard: Option<dashboard::Dashboard>,
}

impl Lab {
    /// An empty lab; `name` goes into the temporary directory's name.
    pub fn new(name: &str) -> Result<Self, BoxError> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "infralab-demo-{name}-{}-{nanos}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(Lab {
            dir,
            shutdown: CancellationToken::new(),
            running: Vec::new(),
            bridges: Vec::new(),
            next_dir: 0,
            dashboard: None,
        })
    }

    /// A fresh subdirectory of the lab's temporary directory.
    pub fn subdir(&mut self, name: &str) -> String {
        self.next_dir += 1;
        self.dir
            .join(format!("{name}-{}", self.next_dir))
            .to_string_lossy()
            .into_owned()
    }

    /// Keeps a started server until [`Lab::stop`]; with `--dashboard`, shows it there too
    /// (the dashboard starts with the lab's first server).
    async fn keep(&mut self, kind: dashboard::Kind, running: Running) -> String {
        let addr = running.addr().to_string();
        self.running.push(running);
        if self.dashboard.is_none() {
            self.dashboard = super::watch::start(self.shutdown.clone()).await;
        }
        if let Some(d) = &self.dashboard {
            d.watch(kind, &addr);
        }
        addr
    }

    /// A kv server with `extra` flags; returns its address.
    pub async fn kv(&mut self, extra: &[&str]) -> Result<String, BoxError> {
        let dir = self.subdir("kv");
        let mut argv = vec!["kv", "--port", "0", "--dir", &dir, "--fsync", "no"];
        argv.extend_from_slice(extra);
        let running = kv::start(kv::Args::parse_from(argv), self.shutdown.clone()).await?;
        Ok(self.keep(dashboard::Kind::Kv, running).await)
    }

    /// A shard router over `config` (TOML text), written into the lab directory.
    pub async fn router(&mut self, config: &str) -> Result<String, BoxError> {
        let path = self.write_file("router.toml", config)?;
        let args = shard_router::Args::parse_from(["router", "--port", "0", "--config", &path]);
        let running = shard_router::start(args, self.shutdown.clone()).await?;
        Ok(self.keep(dashboard::Kind::Router, running).await)
    }

    /// A cache whose origin is `origin`, lazy population, entries live 60 s.
    pub async fn cache(&mut self, origin: &str) -> Result<String, BoxError> {
        let args = cache::Args::parse_from([
            "cache",
            "--port",
            "0",
            "--origin",
            origin,
            "--default-ttl",
            "60",
        ]);
        let running = cache::start(args, self.shutdown.clone()).await?;
        Ok(self.keep(dashboard::Kind::Cache, running).await)
    }

    /// A broker; `extra` flags such as `--on-disconnect keep`.
    pub async fn broker(&mut self, extra: &[&str]) -> Result<String, BoxError> {
        let dir = self.subdir("broker");
        let mut argv = vec![
            "broker",
            "--port",
            "0",
            "--beanstalk-port",
            "0",
            "--sqs-port",
            "0",
            "--dir",
            &dir,
            "--fsync",
            "no",
        ];
        argv.extend_from_slice(extra);
        let running = broker::start(broker::Args::parse_from(argv), self.shutdown.clone()).await?;
        Ok(self.keep(dashboard::Kind::Broker, running).await)
    }

    /// A stream server.
    pub async fn stream(&mut self) -> Result<String, BoxError> {
        let dir = self.subdir("stream");
        let args =
            stream::Args::parse_from(["stream", "--port", "0", "--kafka-port", "0", "--dir", &dir]);
        let running = stream::start(args, self.shutdown.clone()).await?;
        Ok(self.keep(dashboard::Kind::Stream, running).await)
    }

    /// A pub/sub server.
    pub async fn pubsub(&mut self) -> Result<String, BoxError> {
        let args = pubsub::Args::parse_from(["pubsub", "--port", "0"]);
        let running = pubsub::start(args, self.shutdown.clone()).await?;
        Ok(self.keep(dashboard::Kind::Pubsub, running).await)
    }

    /// A bridge from the pub/sub `pattern` into the broker's `queue`.
    pub fn bridge(&mut self, pubsub: &str, pattern: &str, broker: &str, queue: &str) {
        let args = pubsub::bridge::BridgeArgs::parse_from([
            "bridge",
            "--pubsub",
            pubsub,
            "--pattern",
            pattern,
            "--broker",
            broker,
            "--queue",
            queue,
        ]);
        self.bridges
            .push(pubsub::bridge::Bridge::spawn(args, self.shutdown.clone()));
    }

    /// Writes `text` into the lab directory; returns the path.
    pub fn write_file(&mut self, name: &str, text: &str) -> Result<String, BoxError> {
        let path = self.subdir(name);
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// Stops every server (gracefully) and removes the temporary directory.
    pub async fn stop(self) {
        if let Some(d) = &self.dashboard {
            super::watch::linger(d).await;
        }
        self.shutdown.cancel();
        for bridge in self.bridges {
            bridge.wait().await;
        }
        for running in self.running {
            running.wait().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A router config in TOML: `strategy` over one shard per primary in `primaries`, named
/// s0, s1, ... (so a ring keyed by name stays put when a shard is added).
pub fn router_config(strategy: &str, primaries: &[String]) -> String {
    let mut text =
        format!("strategy = \"{strategy}\"\nprobe_interval_ms = 200\ntimeout_ms = 2000\n");
    for (i, primary) in primaries.iter().enumerate() {
        text.push_str(&format!(
            "\n[[shards]]\nname = \"s{i}\"\nprimary = \"{primary}\"\n"
        ));
    }
    text
}

/// A suffix that differs between runs, so reruns against a long-lived topology never
/// collide with an earlier run's keys, messages or cached entries.
pub fn run_id() -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{:x}", millis % 0xff_ffff_ffff)
}

/// Runs a scenario against a running topology, or against servers `setup` starts in a
/// fresh [`Lab`] (stopped and removed afterwards, whatever the scenario's result).
pub async fn run_against<T>(
    against: Against,
    name: &str,
    trace: &mut Trace,
    setup: impl AsyncFnOnce(&mut Lab, &mut Trace) -> Result<Endpoints, BoxError>,
    scenario: impl AsyncFnOnce(&Endpoints, &mut Trace) -> Result<T, BoxError>,
) -> Result<T, BoxError> {
    match against {
        Against::Compose => {
            let ends = Endpoints::from_env();
            let shutdown = CancellationToken::new();
            let dashboard = super::watch::start(shutdown.clone()).await;
            if let Some(d) = &dashboard {
                super::watch::watch_endpoints(d, &ends);
            }
            let result = scenario(&ends, trace).await;
            if let Some(d) = dashboard {
                super::watch::linger(&d).await;
                d.running.stop().await;
            }
            result
        }
        Against::Local => {
            let mut lab = Lab::new(name)?;
            let result = match setup(&mut lab, trace).await {
                Ok(ends) => scenario(&ends, trace).await,
                Err(e) => Err(e),
            };
            lab.stop().await;
            result
        }
    }
}

impl Lab {
    /// `n` kv nodes behind a router (ketama, shards s0..): the endpoints with `router` and
    /// `kv_shards` set.
    pub async fn sharded_kv(&mut self, n: usize) -> Result<Endpoints, BoxError> {
        let mut shards = Vec::new();
        for _ in 0..n {
            shards.push(self.kv(&[]).await?);
        }
        let router = self.router(&router_config("ketama", &shards)).await?;
        Ok(Endpoints {
            router,
            kv_shards: shards,
            ..Endpoints::from_env()
        })
    }
}

//! `infralab demo <scenario>`: the course's scenarios replayed against real servers, each
//! with a narrated [`Trace`] and an outcome struct that `tests/demo_*.rs` check.
//!
//! | scenario | what it shows | module |
//! |---|---|---|
//! | `blog` | write through the router, cache-aside read, one event read by two consumer groups | [`blog`] |
//! | `captions` | a work queue: a worker dies mid-job, the job is redelivered to another | [`captions`] |
//! | `config-push` | pub/sub fan-out to ten servers; a slow one reads from a queue behind a bridge | [`config_push`] |
//! | `celebrity` | proactive cache warming (WARM) vs lazy caching | [`celebrity`] |
//! | `client-cache` | client-side caching: local hits, kv's invalidation push after an update | [`client_cache`] |
//! | `replicas` | the same writes with async and sync replication: latency and lag | [`replicas`] |
//! | `reshard` | adding a fourth shard: keys moved under modulo vs ketama | [`reshard`] |
//! | `rate` | 1500 writes/s on one node vs spread over three shards | [`rate`] |
//! | `levels` | one request down every caching level: browser, two CDN edges, lb, web, cache, kv, and the database's materialized view | [`levels`], [`materialized`] |
//! | `isolation` | two sql sessions: each isolation level's anomalies happening or prevented | [`isolation`] |
//!
//! With `--against local` a demo starts what it needs in this process ([`Lab`]); with
//! `--against compose` it talks to the addresses in `INFRALAB_ROUTER`, `INFRALAB_CACHE`,
//! `INFRALAB_BROKER`, `INFRALAB_STREAM`, `INFRALAB_PUBSUB`, `INFRALAB_KV_SHARDS` ([`Endpoints`]),
//! and `INFRALAB_SQL` for `isolation`.

pub mod blog;
pub mod captions;
pub mod celebrity;
pub mod client_cache;
pub mod config_push;
pub mod isolation;
mod lab;
pub mod levels;
pub mod materialized;
pub mod rate;
pub mod replicas;
mod reply;
pub mod reshard;
mod slow_link;
mod trace;
mod watch;

pub use lab::{Against, Endpoints, Lab};
pub use trace::{Trace, show};

use service::BoxError;

/// `infralab demo <scenario> [--against local|compose]`
#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Which of the course's scenarios to replay.
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// `local`: start the servers in this process; `compose`: use a running topology.
    #[arg(long, value_enum, default_value = "local")]
    pub against: Against,
    /// Also serve the dashboard over the demo's servers (prints its URL; port 7300, or a
    /// free one when that is taken). The servers stay up after the demo until Ctrl-C.
    #[arg(long)]
    pub dashboard: bool,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Publish a post: router → kv, cache-aside read, an event for two consumer groups.
    Blog,
    /// A captioning job survives a worker killed mid-job (visibility timeout).
    Captions,
    /// A config update pushed to ten servers; a slow one reads it from a queue.
    ConfigPush,
    /// A celebrity's post is pushed into the cache (WARM); a regular one is cached lazily.
    Celebrity,
    /// Client-side caching: reads served from local memory, invalidated by kv's push.
    ClientCache,
    /// The same writes with async and sync replication: latency and lag side by side.
    Replicas,
    /// Add a fourth shard: keys moved with modulo vs ketama.
    Reshard,
    /// 1500 writes/s on one node, then spread over three shards.
    Rate,
    /// Caching at every level: browser, CDN edges in two regions, lb, web, cache, kv.
    Levels,
    /// Isolation levels on the sql server: the course's example, a dirty read, a phantom,
    /// write skew, and serializable making a writer wait.
    Isolation,
}

/// Runs one scenario, printing its trace and a one-line summary of its outcome.
pub async fn run(args: DemoArgs) -> Result<(), BoxError> {
    if args.dashboard {
        watch::request();
    }
    let mut trace = Trace::new();
    let summary = match args.scenario {
        Scenario::Blog => blog::run(args.against, &mut trace).await?.to_string(),
        Scenario::Captions => captions::run(args.against, &mut trace).await?.to_string(),
        Scenario::ConfigPush => config_push::run(args.against, &mut trace)
            .await?
            .to_string(),
        Scenario::Celebrity => celebrity::run(args.against, &mut trace).await?.to_string(),
        Scenario::ClientCache => client_cache::run(args.against, &mut trace)
            .await?
            .to_string(),
        Scenario::Replicas => replicas::run(args.against, &mut trace).await?.to_string(),
        Scenario::Reshard => reshard::run(args.against, &mut trace).await?.to_string(),
        Scenario::Rate => rate::run(args.against, &mut trace).await?.to_string(),
        Scenario::Levels => levels::run(args.against, &mut trace).await?.to_string(),
        Scenario::Isolation => isolation::run(args.against, &mut trace).await?.to_string(),
    };
    println!(
        "\n{summary}\n(done in {:.2} s)",
        trace.elapsed().as_secs_f64()
    );
    Ok(())
}

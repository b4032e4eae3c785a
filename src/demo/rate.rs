//! `rate`: the course's example of a database taking 1500 writes per second. On one node,
//! that node takes all 1500. Split over three shards by a hash of the key, each node takes
//! about a third: sharding divides the write load (reads could be spread over replicas, but
//! writes can only be spread by splitting the data).
//!
//! The demo offers the load at a steady pace (batches every 1/30 s for one second), first
//! straight to one kv node, then through the shard router, and counts where each write
//! landed (`ROUTER SHARDOF`).

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use service::{BoxError, RespClient};

use super::reply::{check, field, text, words};
use super::{Against, Endpoints, Lab, Trace, lab};

/// The offered load, writes per second, for one second.
pub const WRITES_PER_SECOND: usize = 1500;
/// Batches per second the load is paced in.
const TICKS: usize = 30;

/// The write rate one node took.
#[derive(Debug, Clone)]
pub struct NodeRate {
    pub node: String,
    pub writes: usize,
    pub per_second: f64,
}

/// What the rate demo observed.
#[derive(Debug, Clone)]
pub struct RateOutcome {
    /// All writes to one node.
    pub single: NodeRate,
    /// The same writes through the router, per shard primary.
    pub sharded: Vec<NodeRate>,
}

impl fmt::Display for RateOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per: Vec<String> = self
            .sharded
            .iter()
            .map(|n| format!("{:.0}/s", n.per_second))
            .collect();
        write!(
            f,
            "rate: one node took {:.0} writes/s; sharded over {} nodes each took {}",
            self.single.per_second,
            self.sharded.len(),
            per.join(", ")
        )
    }
}

/// Runs the scenario.
pub async fn run(against: Against, trace: &mut Trace) -> Result<RateOutcome, BoxError> {
    let setup = async |lab: &mut Lab, trace: &mut Trace| {
        trace.section("Starting 3 kv nodes and a router (ketama) over them");
        lab.sharded_kv(3).await
    };
    lab::run_against(against, "rate", trace, setup, scenario).await
}

/// Sends `keys` as SETs at [`WRITES_PER_SECOND`], paced in [`TICKS`] batches; returns the
/// time until the last reply.
async fn paced_writes(client: &mut RespClient, keys: &[String]) -> Result<Duration, BoxError> {
    let per_tick = keys.len().div_ceil(TICKS);
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / TICKS as u32);
    let start = Instant::now();
    for batch in keys.chunks(per_tick) {
        ticker.tick().await;
        for key in batch {
            client.queue(words(&["SET", key, "x", "EX", "600"]));
        }
        client.flush().await?;
        for _ in batch {
            check(client.read_reply().await?, "SET")?;
        }
    }
    // The load is offered over one whole second: the last batch goes out at 29/30 s.
    tokio::time::sleep_until((start + Duration::from_secs(1)).into()).await;
    Ok(start.elapsed())
}

async fn scenario(ends: &Endpoints, trace: &mut Trace) -> Result<RateOutcome, BoxError> {
    let run = lab::run_id();
    let node = ends
        .kv_shards
        .first()
        .ok_or("no kv node given (INFRALAB_KV_SHARDS)")?
        .clone();

    trace.section(&format!(
        "1. {WRITES_PER_SECOND} writes/s, all to one kv node"
    ));
    let keys: Vec<String> = (0..WRITES_PER_SECOND)
        .map(|i| format!("rate:{run}:a:{i}"))
        .collect();
    let mut direct = RespClient::connect(&node).await?;
    let took = paced_writes(&mut direct, &keys).await?;
    let single = NodeRate {
        node: node.clone(),
        writes: keys.len(),
        per_second: keys.len() as f64 / took.as_secs_f64(),
    };
    trace.step(
        took,
        "app",
        &node,
        &format!("SET rate:…:a:0..{}  (paced)", keys.len() - 1),
        &format!("{} OK", keys.len()),
    );
    trace.note(format!(
        "{node} took every write: {:.0} writes/s",
        single.per_second
    ));

    trace.section(&format!(
        "2. The same {WRITES_PER_SECOND} writes/s through the shard router"
    ));
    let keys: Vec<String> = (0..WRITES_PER_SECOND)
        .map(|i| format!("rate:{run}:b:{i}"))
        .collect();
    let mut router = RespClient::connect(&ends.router).await?;
    let took = paced_writes(&mut router, &keys).await?;
    trace.step(
        took,
        "app",
        "router",
        &format!("SET rate:…:b:0..{}  (paced)", keys.len() - 1),
        &format!("{} OK", keys.len()),
    );
    for key in &keys {
        router.queue(words(&["ROUTER", "SHARDOF", key]));
    }
    router.flush().await?;
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for _ in &keys {
        let placement = check(router.read_reply().await?, "ROUTER SHARDOF")?;
        let shard = field(&placement, "node").and_then(text).unwrap_or_default();
        *per_node.entry(shard).or_default() += 1;
    }
    let sharded: Vec<NodeRate> = per_node
        .into_iter()
        .map(|(node, writes)| NodeRate {
            per_second: writes as f64 / took.as_secs_f64(),
            node,
            writes,
        })
        .collect();
    for n in &sharded {
        trace.note(format!(
            "{:<22} {:>5} writes  {:>6.0} writes/s",
            n.node, n.writes, n.per_second
        ));
    }
    trace.note("each node now carries about a third of the load: add shards to add write capacity");
    Ok(RateOutcome { single, sharded })
}

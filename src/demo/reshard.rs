//! `reshard`: three shards become four. With `hash mod N` almost every key's shard changes
//! (a key stays only if `h mod 3 == h mod 4`: about 1 in 4), so about 75% of the data moves.
//! With a consistent-hash ring (ketama) the new shard takes over arcs of the ring from the
//! others and only the keys on those arcs move: about 1/4, the ideal.
//!
//! The keys really move: `infralab reshard` (`shard_router::reshard`) scans every old
//! primary and moves each key whose shard changed, then a router on the new layout reads
//! every key back.

use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

use service::{BoxError, RespClient};
use shard_router::reshard::{self, ReshardArgs};

use super::reply::{check, int};
use super::{Against, Lab, Trace, lab};

/// Keys written before the fourth shard is added.
pub const KEYS: usize = 2000;

/// One strategy's resharding.
#[derive(Debug, Clone)]
pub struct Move {
    pub strategy: String,
    pub scanned: u64,
    pub moved: u64,
    /// `moved / KEYS`: the share of the data that changed shard.
    pub fraction: f64,
    /// Keys per node (four nodes) after the move.
    pub after: Vec<i64>,
    /// Keys a router on the new layout could read back (of [`KEYS`]).
    pub readable: usize,
}

/// What the reshard demo observed: modulo, then ketama.
#[derive(Debug, Clone)]
pub struct ReshardOutcome {
    pub moves: Vec<Move>,
}

impl ReshardOutcome {
    /// The result for one strategy.
    pub fn strategy(&self, name: &str) -> Option<&Move> {
        self.moves.iter().find(|m| m.strategy == name)
    }
}

impl fmt::Display for ReshardOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .moves
            .iter()
            .map(|m| {
                format!(
                    "{} moved {}/{KEYS} keys ({:.1}%), {} readable after",
                    m.strategy,
                    m.moved,
                    m.fraction * 100.0,
                    m.readable
                )
            })
            .collect();
        write!(f, "reshard 3 → 4 shards: {} (ideal: 25%)", parts.join("; "))
    }
}

/// Runs the scenario. It always starts its own four empty kv nodes, also with
/// `--against compose`: resharding moves every key of the nodes it is given, and a running
/// topology's data is not the demo's to move.
pub async fn run(against: Against, trace: &mut Trace) -> Result<ReshardOutcome, BoxError> {
    let mut lab = Lab::new("reshard")?;
    let result = async {
        trace.section("Starting four empty kv nodes (three shards now, the fourth joins later)");
        if against == Against::Compose {
            trace.note("(this scenario moves all the data of the nodes it uses, so it never uses the compose topology's kv nodes)");
        }
        let mut nodes = Vec::new();
        for _ in 0..4 {
            nodes.push(lab.kv(&[]).await?);
        }
        let mut moves = Vec::new();
        for strategy in ["modulo", "ketama"] {
            moves.push(one_strategy(&mut lab, trace, strategy, &nodes).await?);
        }
        Ok(ReshardOutcome { moves })
    }
    .await;
    lab.stop().await;
    result
}

async fn dbsizes(nodes: &[String]) -> Result<Vec<i64>, BoxError> {
    let mut sizes = Vec::new();
    for node in nodes {
        let mut client = RespClient::connect(node).await?;
        sizes.push(int(
            &check(client.call(["DBSIZE"]).await?, "DBSIZE")?,
            "DBSIZE",
        )?);
    }
    Ok(sizes)
}

async fn one_strategy(
    lab: &mut Lab,
    trace: &mut Trace,
    strategy: &str,
    nodes: &[String],
) -> Result<Move, BoxError> {
    trace.section(&format!(
        "{strategy}: write {KEYS} keys over 3 shards, add a 4th, reshard"
    ));
    for node in nodes {
        let mut client = RespClient::connect(node).await?;
        check(client.call(["FLUSHALL"]).await?, "FLUSHALL")?;
    }
    let from_text = lab::router_config(strategy, &nodes[..3]);
    let to_text = lab::router_config(strategy, nodes);
    let router = lab.router(&from_text).await?;
    let mut app = RespClient::connect(&router).await?;
    let start = Instant::now();
    for i in 0..KEYS {
        app.queue([
            "SET".to_owned(),
            format!("user:{i}"),
            format!("profile-{i}"),
        ]);
    }
    app.flush().await?;
    for _ in 0..KEYS {
        check(app.read_reply().await?, "SET through the router")?;
    }
    trace.step(
        start.elapsed(),
        "app",
        "router",
        &format!("SET user:0 .. user:{}  (pipelined)", KEYS - 1),
        &format!("{KEYS} × OK"),
    );
    trace.note(format!(
        "keys per node: {:?}  (the 4th is not in the layout yet)",
        dbsizes(nodes).await?
    ));

    let from = PathBuf::from(lab.write_file("from.toml", &from_text)?);
    let to = PathBuf::from(lab.write_file("to.toml", &to_text)?);
    let start = Instant::now();
    let report = reshard::run(ReshardArgs {
        from,
        to,
        batch: 500,
        state: None,
        max_batches: None,
        quiet: true,
    })
    .await?;
    let fraction = report.moved as f64 / KEYS as f64;
    trace.step(
        start.elapsed(),
        "reshard",
        "kv ×4",
        "SCAN each old primary; DUMP/RESTORE/DEL each key whose shard changed",
        &format!(
            "moved {} of {KEYS} keys ({:.1}%)",
            report.moved,
            fraction * 100.0
        ),
    );
    if report.scanned > KEYS as u64 {
        trace.note(format!(
            "(SCAN saw {} keys: a key moved into a shard not scanned yet is seen again there, and stays)",
            report.scanned
        ));
    }
    let after = dbsizes(nodes).await?;
    trace.note(format!("keys per node: {after:?}"));

    let new_router = lab.router(&to_text).await?;
    let mut reader = RespClient::connect(&new_router).await?;
    let start = Instant::now();
    for i in 0..KEYS {
        reader.queue(["GET".to_owned(), format!("user:{i}")]);
    }
    reader.flush().await?;
    let mut readable = 0;
    for i in 0..KEYS {
        let value = reader.read_reply().await?;
        if value.as_bytes().map(|b| b.as_ref()) == Some(format!("profile-{i}").as_bytes()) {
            readable += 1;
        }
    }
    trace.step(
        start.elapsed(),
        "app",
        "router (4 shards)",
        &format!("GET user:0 .. user:{}  (pipelined)", KEYS - 1),
        &format!("{readable} of {KEYS} found where the new layout looks"),
    );
    Ok(Move {
        strategy: strategy.to_owned(),
        scanned: report.scanned,
        moved: report.moved,
        fraction,
        after,
        readable,
    })
}

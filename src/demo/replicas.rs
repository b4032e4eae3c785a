//! `replicas`: the same write load against a primary with one replica, first with
//! asynchronous replication (the primary answers at once and streams the change afterwards),
//! then synchronous (`--replication sync --sync-replicas 1`: the primary answers only once the
//! replica has acknowledged the change). Async is faster to write and lets the replica fall
//! behind; sync pays a round trip per write and the replica is never behind an acknowledged
//! write.
//!
//! On loopback the replica would be microseconds away and neither effect would show, so the
//! replica reaches its primary through a [`SlowLink`] with [`LINK_DELAY`] each way — a
//! replica in another datacenter. Right after the last write is acknowledged the demo reads
//! it back from the replica: under async the first reads are stale (the write is still on
//! the wire), under sync the first read already sees it.

use std::fmt;
use std::time::{Duration, Instant};

use proto::Frame;
use service::{BoxError, RespClient};

use super::reply::{check, info_field, int, text, words};
use super::slow_link::SlowLink;
use super::{Against, Lab, Trace};

/// Writes per mode.
pub const WRITES: usize = 200;

/// One-way delay between the primary and its replica (a 10 ms round trip, as between two
/// datacenters in one region).
pub const LINK_DELAY: Duration = Duration::from_millis(5);

/// One replication mode's figures.
#[derive(Debug, Clone)]
pub struct ModeRun {
    pub mode: String,
    /// Median and 99th-percentile write latency, milliseconds.
    pub median_ms: f64,
    pub p99_ms: f64,
    /// Replication lag right after the last write was acknowledged: bytes the replica had not
    /// acknowledged, and the age of the oldest of them (the primary's INFO replication).
    pub lag_bytes: i64,
    pub lag_ms: i64,
    /// Reads of the last write on the replica, right after its OK, that did not see it yet.
    pub stale_reads: usize,
    /// From the last write's OK until a read on the replica saw it.
    pub visible_after_ms: f64,
    /// Keys on the replica in the end (of [`WRITES`]).
    pub replica_keys: i64,
}

/// What the replicas demo observed: async, then sync.
#[derive(Debug, Clone)]
pub struct ReplicasOutcome {
    pub runs: Vec<ModeRun>,
}

impl ReplicasOutcome {
    pub fn mode(&self, name: &str) -> Option<&ModeRun> {
        self.runs.iter().find(|r| r.mode == name)
    }
}

impl fmt::Display for ReplicasOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .runs
            .iter()
            .map(|r| {
                format!(
                    "{}: write median {:.3} ms, p99 {:.3} ms, {} bytes / {} ms behind after the last OK, {} stale reads",
                    r.mode, r.median_ms, r.p99_ms, r.lag_bytes, r.lag_ms, r.stale_reads
                )
            })
            .collect();
        write!(f, "replicas {WRITES} writes — {}", parts.join("; "))
    }
}

/// Runs the scenario. It starts its own primary and replica for each mode, also with
/// `--against compose`: the compose topology's replicas are asynchronous only.
pub async fn run(against: Against, trace: &mut Trace) -> Result<ReplicasOutcome, BoxError> {
    let mut lab = Lab::new("replicas")?;
    // Kept until the servers stop, so no replica sees its link drop.
    let mut links = Vec::new();
    let result = async {
        if against == Against::Compose {
            trace.note("(this scenario starts its own primary and replica per mode: the compose replicas are async only)");
        }
        let mut runs = Vec::new();
        for mode in ["async", "sync"] {
            runs.push(one_mode(&mut lab, &mut links, trace, mode).await?);
        }
        trace.section("Side by side");
        for r in &runs {
            trace.note(format!(
                "{:<5}  write median {:>7.3} ms  p99 {:>7.3} ms  lag after the last OK {:>5} bytes {:>3} ms  stale replica reads {:>3} (for {:.2} ms)",
                r.mode, r.median_ms, r.p99_ms, r.lag_bytes, r.lag_ms, r.stale_reads, r.visible_after_ms
            ));
        }
        Ok(ReplicasOutcome { runs })
    }
    .await;
    lab.stop().await;
    drop(links);
    result
}

/// `slave0`'s `lag_bytes` and `lag_ms` from the primary's INFO replication.
fn follower_lag(info: &Frame) -> (i64, i64) {
    let text = text(info).unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("slave0:")) else {
        return (-1, -1);
    };
    let value = |name: &str| {
        line.split(',')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(-1)
    };
    (value("lag_bytes"), value("lag_ms"))
}

async fn one_mode(
    lab: &mut Lab,
    links: &mut Vec<SlowLink>,
    trace: &mut Trace,
    mode: &str,
) -> Result<ModeRun, BoxError> {
    trace.section(&format!(
        "{mode} replication: a primary and one replica {} ms away, {WRITES} writes",
        LINK_DELAY.as_millis()
    ));
    let primary = lab
        .kv(&["--replication", mode, "--sync-replicas", "1"])
        .await?;
    let link = SlowLink::start(&primary, LINK_DELAY).await?;
    let replica = lab.kv(&["--replicaof", &link.addr()]).await?;
    links.push(link);
    let mut app = RespClient::connect(&primary).await?;
    let mut reader = RespClient::connect(&replica).await?;
    // The replica connects and syncs on its own: wait until the primary counts it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = check(app.call(["INFO", "replication"]).await?, "INFO")?;
        if info_field(&info, "connected_slaves").unwrap_or(0.0) >= 1.0 && follower_lag(&info).0 == 0
        {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("the replica of {primary} did not connect within 10 s").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    trace.call(&mut reader, "app", "replica", &["ROLE"]).await?;

    let mut latencies = Vec::with_capacity(WRITES);
    let start = Instant::now();
    for i in 0..WRITES {
        let key = format!("order:{i}");
        let value = format!("total={}", i * 7);
        let t = Instant::now();
        check(app.call(words(&["SET", &key, &value])).await?, "SET")?;
        latencies.push(t.elapsed());
    }
    let took = start.elapsed();
    let last_ok = Instant::now();
    let info = check(app.call(["INFO", "replication"]).await?, "INFO")?;
    let (lag_bytes, lag_ms) = follower_lag(&info);
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median_ms = ms(latencies[WRITES / 2]);
    let p99_ms = ms(latencies[WRITES * 99 / 100]);
    trace.step(
        took,
        "app",
        "primary",
        &format!("SET order:0 .. order:{}  (one at a time)", WRITES - 1),
        &format!("{WRITES} × OK, median {median_ms:.3} ms, p99 {p99_ms:.3} ms"),
    );
    trace.note(format!(
        "right after the last OK the replica had not acknowledged {lag_bytes} bytes, the oldest written {lag_ms} ms before (INFO replication)"
    ));

    // Read the last write back from the replica until it is there.
    let last_key = format!("order:{}", WRITES - 1);
    let last_value = format!("total={}", (WRITES - 1) * 7);
    let mut stale_reads = 0;
    loop {
        let got = reader.call(words(&["GET", &last_key])).await?;
        if text(&got).as_deref() == Some(last_value.as_str()) {
            break;
        }
        stale_reads += 1;
        if last_ok.elapsed() > Duration::from_secs(10) {
            return Err("the replica did not catch up within 10 s".into());
        }
    }
    let visible_after = last_ok.elapsed();
    let outcome = match stale_reads {
        0 => format!("\"{last_value}\" on the first read  (the replica had it before the OK)"),
        n => format!(
            "\"{last_value}\" after {n} stale reads  (the write was still on its way to the replica)"
        ),
    };
    trace.step(
        visible_after,
        "app",
        "replica",
        &format!("GET {last_key}  (from the last OK until the replica has it)"),
        &outcome,
    );
    let replica_keys = int(
        &check(
            trace
                .call(&mut reader, "app", "replica", &["DBSIZE"])
                .await?,
            "DBSIZE",
        )?,
        "DBSIZE",
    )?;
    Ok(ModeRun {
        mode: mode.to_owned(),
        median_ms,
        p99_ms,
        lag_bytes,
        lag_ms,
        stale_reads,
        visible_after_ms: ms(visible_after),
        replica_keys,
    })
}

//! Replays one Zipf-distributed trace against any RESP server used as a cache-aside cache,
//! and prints the hit ratio: `GET key`; on a miss, `SET key value` (what an application
//! does in front of its database). The trace is fixed by its seed, so every server sees
//! the same requests in the same order.
//!
//! ```text
//! zipf_replay --port 7380 [--keys 100000] [--requests 1000000] [--theta 0.99] [--seed 42]
//!             [--value-size 1000] [--batch 64] [--scan-every N --scan-len L]
//! zipf_replay --bound BYTES ...   # prints the ideal hit ratio for a memory budget
//! zipf_replay --simulate lfu --budget BYTES ...   # in process, against the engine
//! zipf_replay --exact-lfu ENTRIES ...   # exact LFU with perfect memory, the online reference
//! zipf_replay --online-bound ENTRIES ...   # the best any policy seeing only the past can expect
//! ```
//!
//! Requests are pipelined `--batch` GETs at a time (then the SETs for that batch's
//! misses), so a key repeated inside one batch misses each time if it was absent: the same
//! for every server measured. The ideal bound is the share of requests that go to the C
//! most popular keys, where C is how many entries fit the budget by the cache's own
//! accounting (`cache::memory::entry_size`) — no policy can do better on average without
//! knowing the future.
#![forbid(unsafe_code)]

use bytes::Bytes;
use cache::policy::PolicyKind;
use cache::workload::{Trace, TraceSpec, exact_lfu, online_bound, simulate};
use clap::Parser;
use proto::Frame;
use service::RespClient;

#[derive(Parser)]
struct Cli {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 7380)]
    port: u16,
    #[arg(long, default_value_t = 100_000)]
    keys: usize,
    #[arg(long, default_value_t = 1_000_000)]
    requests: usize,
    #[arg(long, default_value_t = 0.99)]
    theta: f64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value_t = 1000)]
    value_size: usize,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Print the ideal hit ratio for this many bytes of budget instead of replaying.
    #[arg(long)]
    bound: Option<u64>,
    /// Print the working set's size (every key once) by the cache's accounting, and exit.
    #[arg(long)]
    working_set: bool,
    /// After every this many Zipf requests, a burst of `--scan-len` one-hit wonders
    /// (keys requested once, never again; 0: none). See `cache::workload`.
    #[arg(long, default_value_t = 0)]
    scan_every: usize,
    #[arg(long, default_value_t = 0)]
    scan_len: usize,
    /// Replay in process against the engine with this policy and `--budget` bytes, with
    /// the key hash seeded by `--seed` (deterministic), instead of over the network.
    #[arg(long)]
    simulate: Option<String>,
    #[arg(long, default_value_t = 0)]
    budget: u64,
    /// Print the hit ratio of exact LFU with perfect memory holding this many keys (the
    /// reference for an online policy; `cache::workload::exact_lfu`).
    #[arg(long)]
    exact_lfu: Option<usize>,
    /// Print the best hit ratio any policy that sees only the past can expect holding this
    /// many keys (`cache::workload::online_bound`).
    #[arg(long)]
    online_bound: Option<usize>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), service::BoxError> {
    let cli = Cli::parse();
    let trace = Trace::draw(TraceSpec {
        keys: cli.keys,
        requests: cli.requests,
        theta: cli.theta,
        seed: cli.seed,
        scan_every: cli.scan_every,
        scan_len: cli.scan_len,
    });
    let entry = cache::memory::entry_size(trace.avg_key_len(), cli.value_size);
    if cli.working_set {
        println!("{}", entry * cli.keys as u64);
        return Ok(());
    }
    if let Some(budget) = cli.bound {
        let fits = (budget / entry) as usize;
        println!("{:.4} {fits}", trace.bound(fits));
        return Ok(());
    }
    if let Some(fits) = cli.exact_lfu {
        println!("{:.4}", exact_lfu(&trace, fits));
        return Ok(());
    }
    if let Some(fits) = cli.online_bound {
        println!("{:.4}", online_bound(&trace, fits));
        return Ok(());
    }
    if let Some(policy) = &cli.simulate {
        let kind = PolicyKind::parse(policy).ok_or(format!("unknown policy {policy}"))?;
        let ratio = simulate(
            &trace,
            kind,
            cli.budget,
            cli.value_size,
            cli.batch,
            cli.seed,
        );
        println!("{ratio:.4}");
        return Ok(());
    }
    let mut conn = RespClient::connect((cli.host.as_str(), cli.port)).await?;
    let value = Bytes::from(vec![b'v'; cli.value_size]);
    let mut hits = 0usize;
    for chunk in trace.requests.chunks(cli.batch) {
        for &id in chunk {
            conn.queue([Bytes::from_static(b"GET"), trace.key(id)]);
        }
        conn.flush().await?;
        let mut misses = Vec::new();
        for &id in chunk {
            match conn.read_reply().await? {
                Frame::Bulk(_) => hits += 1,
                Frame::Null => misses.push(id),
                other => return Err(format!("GET: unexpected reply {other:?}").into()),
            }
        }
        for &id in &misses {
            conn.queue([Bytes::from_static(b"SET"), trace.key(id), value.clone()]);
        }
        conn.flush().await?;
        for _ in &misses {
            let reply = conn.read_reply().await?;
            if reply.is_error() {
                return Err(format!("SET: {reply:?}").into());
            }
        }
    }
    println!("{:.4}", hits as f64 / trace.requests.len() as f64);
    Ok(())
}

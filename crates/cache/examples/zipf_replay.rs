//! Replays one Zipf-distributed trace against any RESP server used as a cache-aside cache,
//! and prints the hit ratio: `GET key`; on a miss, `SET key value` (what an application
//! does in front of its database). The trace is fixed by its seed, so every server sees
//! the same requests in the same order.
//!
//! ```text
//! zipf_replay --port 7380 [--keys 100000] [--requests 1000000] [--theta 0.99] [--seed 42]
//!             [--value-size 1000] [--batch 64]
//! zipf_replay --bound BYTES ...   # prints the ideal hit ratio for a memory budget
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
}

/// Average key length of the trace's keys (they differ by a few digits).
fn avg_key_len(keys: usize) -> usize {
    let n = keys.clamp(1, 1000);
    (0..n).map(|r| key(r).len()).sum::<usize>() / n
}

struct SplitMix(u64);

impl SplitMix {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The trace: key ranks (0 = most popular), drawn by inverse CDF from Zipf(theta).
fn trace(cli: &Cli) -> Vec<usize> {
    let mut cdf = Vec::with_capacity(cli.keys);
    let mut sum = 0.0;
    for rank in 1..=cli.keys {
        sum += 1.0 / (rank as f64).powf(cli.theta);
        cdf.push(sum);
    }
    let mut rng = SplitMix(cli.seed);
    (0..cli.requests)
        .map(|_| {
            let u = rng.next_f64() * sum;
            cdf.partition_point(|&c| c < u).min(cli.keys - 1)
        })
        .collect()
}

fn key(rank: usize) -> Bytes {
    // Scatter ranks over the key space so popularity has nothing to do with key order.
    let id = (rank as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    Bytes::from(format!("key:{id:06x}:{rank}"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), service::BoxError> {
    let cli = Cli::parse();
    if cli.working_set {
        let entry = cache::memory::entry_size(avg_key_len(cli.keys), cli.value_size);
        println!("{}", entry * cli.keys as u64);
        return Ok(());
    }
    let requests = trace(&cli);
    if let Some(budget) = cli.bound {
        let mut counts = vec![0u64; cli.keys];
        for &r in &requests {
            counts[r] += 1;
        }
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let entry = cache::memory::entry_size(avg_key_len(cli.keys), cli.value_size);
        let fits = (budget / entry) as usize;
        let top: u64 = counts.iter().take(fits).sum();
        println!("{:.4} {fits}", top as f64 / requests.len() as f64);
        return Ok(());
    }
    let mut conn = RespClient::connect((cli.host.as_str(), cli.port)).await?;
    let value = Bytes::from(vec![b'v'; cli.value_size]);
    let mut hits = 0usize;
    for chunk in requests.chunks(cli.batch) {
        for &rank in chunk {
            conn.queue([Bytes::from_static(b"GET"), key(rank)]);
        }
        conn.flush().await?;
        let mut misses = Vec::new();
        for &rank in chunk {
            match conn.read_reply().await? {
                Frame::Bulk(_) => hits += 1,
                Frame::Null => misses.push(rank),
                other => return Err(format!("GET: unexpected reply {other:?}").into()),
            }
        }
        for &rank in &misses {
            conn.queue([Bytes::from_static(b"SET"), key(rank), value.clone()]);
        }
        conn.flush().await?;
        for _ in &misses {
            let reply = conn.read_reply().await?;
            if reply.is_error() {
                return Err(format!("SET: {reply:?}").into());
            }
        }
    }
    println!("{:.4}", hits as f64 / requests.len() as f64);
    Ok(())
}

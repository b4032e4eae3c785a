//! # Workloads: the request traces a policy is judged on
//!
//! A hit ratio means something only against a named trace. Two are used throughout
//! (`bench/cache.sh`, `examples/zipf_replay.rs`, the policy tests):
//!
//! - **Zipf(θ)**: key of popularity rank *r* is requested with probability ∝ 1/r^θ, each
//!   request drawn independently. θ = 0.99 is the classic web/cache workload: a few keys
//!   are very hot, and a long tail is seen once or twice. Frequency is what predicts the
//!   next request here, so LFU-like policies win and the best any policy can do on
//!   average is to hold the C most popular keys ([`Trace::bound`]).
//! - **Zipf with scans**: the same, with a burst of one-hit wonders — keys requested once
//!   and never again, as a batch job, a crawler or a `KEYS`-style sweep does — after every
//!   `scan_every` Zipf requests. Each burst is longer than the cache, so plain LRU, which
//!   admits everything, is flushed by every burst and must relearn the hot set; a policy
//!   that judges newcomers by frequency lets the burst pass by.
//!
//! The trace is fixed by its seed (SplitMix64), so every server and every policy sees the
//! same requests in the same order. [`simulate`] replays one against the engine in
//! process — cache-aside: a read, and on a miss a write of the value — as the network
//! replay does against a server, without the network.

use bytes::Bytes;

use crate::policy::PolicyKind;
use crate::store::{Cache, Lookup};

/// SplitMix64: a tiny, well-mixed, seedable generator (enough for drawing a trace).
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

/// How to draw a trace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceSpec {
    /// Distinct keys of the Zipf part (ranks `0..keys`).
    pub keys: usize,
    /// Zipf requests (scan requests come on top).
    pub requests: usize,
    pub theta: f64,
    pub seed: u64,
    /// After every this many Zipf requests, a burst of one-hit wonders (0: none).
    pub scan_every: usize,
    /// Keys in each burst.
    pub scan_len: usize,
}

/// A drawn trace: key ids in request order. Ids below `keys` are Zipf ranks (0 = most
/// popular); ids from `keys` up are one-hit wonders, each requested exactly once.
#[derive(Debug, Clone)]
pub struct Trace {
    pub spec: TraceSpec,
    pub requests: Vec<usize>,
}

impl Trace {
    /// Draws the trace: ranks by inverse CDF from Zipf(θ), bursts spliced in.
    pub fn draw(spec: TraceSpec) -> Trace {
        let keys = spec.keys.max(1);
        let mut cdf = Vec::with_capacity(keys);
        let mut sum = 0.0;
        for rank in 1..=keys {
            sum += 1.0 / (rank as f64).powf(spec.theta);
            cdf.push(sum);
        }
        let mut rng = SplitMix(spec.seed);
        let mut next_wonder = keys;
        let mut requests = Vec::with_capacity(spec.requests);
        for i in 0..spec.requests {
            if spec.scan_every > 0 && i > 0 && i % spec.scan_every == 0 {
                requests.extend(next_wonder..next_wonder + spec.scan_len);
                next_wonder += spec.scan_len;
            }
            let u = rng.next_f64() * sum;
            requests.push(cdf.partition_point(|&c| c < u).min(keys - 1));
        }
        Trace { spec, requests }
    }

    /// The key of id `id`. Ranks are scattered over the key space so that popularity has
    /// nothing to do with key order; one-hit wonders get a prefix of their own.
    pub fn key(&self, id: usize) -> Bytes {
        if id >= self.spec.keys {
            return Bytes::from(format!("scan:{id:09}"));
        }
        let scattered = (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
        Bytes::from(format!("key:{scattered:06x}:{id}"))
    }

    /// Average key length of the Zipf keys (they differ by a few digits).
    pub fn avg_key_len(&self) -> usize {
        let n = self.spec.keys.clamp(1, 1000);
        (0..n).map(|id| self.key(id).len()).sum::<usize>() / n
    }

    /// The ideal bound: the share of all requests that go to the `fits` most requested
    /// keys. No policy that does not know the future does better on average.
    pub fn bound(&self, fits: usize) -> f64 {
        let mut counts = vec![0u64; self.spec.keys.max(1)];
        for &id in &self.requests {
            if let Some(c) = counts.get_mut(id) {
                *c += 1;
            }
        }
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let top: u64 = counts.iter().take(fits).sum();
        top as f64 / self.requests.len().max(1) as f64
    }
}

/// Replays `trace` cache-aside against a fresh engine of `policy` bounded to `budget`
/// bytes and returns the hit ratio. Requests go in batches of `batch`, as the network
/// replay pipelines them: the batch's reads first, then a write of a `value_size`-byte
/// value for each miss (so a key repeated inside one batch misses each time if it was
/// absent). `hash_seed` fixes the key hash, so the result is deterministic.
pub fn simulate(
    trace: &Trace,
    policy: PolicyKind,
    budget: u64,
    value_size: usize,
    batch: usize,
    hash_seed: u64,
) -> f64 {
    let mut cache = Cache::with_hash_seed(budget, policy, hash_seed);
    let value = vec![b'v'; value_size];
    let mut hits = 0usize;
    let mut misses = Vec::with_capacity(batch);
    for chunk in trace.requests.chunks(batch.max(1)) {
        misses.clear();
        for &id in chunk {
            let key = trace.key(id);
            match cache.get(&key, 0) {
                Lookup::Hit(_) => hits += 1,
                _ => misses.push(key),
            }
        }
        for key in &misses {
            // A refusal (noeviction) simply leaves the key out, as a client would.
            let _ = cache.put(key, Some(&value), None, 0);
        }
    }
    hits as f64 / trace.requests.len().max(1) as f64
}

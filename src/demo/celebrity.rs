//! `celebrity`: when an account with millions of followers posts, everyone reads the post at
//! once. Waiting for the first reader's miss would send a burst to the database, so the post
//! is pushed into the cache as it is written (`WARM`: proactive population) and every
//! follower's read is a hit. A regular account's post is cached lazily: its first reader
//! pays the miss, the rest hit.

use std::fmt;
use std::time::Instant;

use proto::Frame;
use service::{BoxError, RespClient};

use super::reply::{check, info_field, int, words};
use super::{Against, Endpoints, Lab, Trace, lab};

/// Followers who read each post.
const FOLLOWERS: usize = 200;

/// Cache counters over one post's reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reads {
    pub hits: u64,
    pub misses: u64,
    pub origin_fetches: u64,
}

/// What the celebrity demo observed.
#[derive(Debug, Clone)]
pub struct CelebrityOutcome {
    /// Keys WARM loaded.
    pub warmed: i64,
    /// The followers' reads of the celebrity's (warmed) post.
    pub celebrity: Reads,
    /// The followers' reads of a regular account's (lazily cached) post.
    pub regular: Reads,
    /// Reads that returned the post (of 2 × FOLLOWERS).
    pub correct_reads: usize,
}

impl fmt::Display for CelebrityOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "celebrity: warmed post read {FOLLOWERS}× → {} hits, {} misses; lazy post read \
             {FOLLOWERS}× → {} hits, {} misses ({} origin fetch)",
            self.celebrity.hits,
            self.celebrity.misses,
            self.regular.hits,
            self.regular.misses,
            self.regular.origin_fetches
        )
    }
}

/// Runs the scenario.
pub async fn run(against: Against, trace: &mut Trace) -> Result<CelebrityOutcome, BoxError> {
    let setup = async |lab: &mut Lab, trace: &mut Trace| {
        trace.section("Starting 3 kv shards, a router, a cache whose origin is the router");
        let mut ends = lab.sharded_kv(3).await?;
        ends.cache = lab.cache(&ends.router).await?;
        Ok(ends)
    };
    lab::run_against(against, "celebrity", trace, setup, scenario).await
}

async fn stats(cache: &mut RespClient) -> Result<Frame, BoxError> {
    check(
        cache.call(["INFO", "stats"]).await?,
        "INFO stats of the cache",
    )
}

fn delta(before: &Frame, after: &Frame) -> Reads {
    let d = |name: &str| {
        (info_field(after, name).unwrap_or(0.0) - info_field(before, name).unwrap_or(0.0)).max(0.0)
            as u64
    };
    Reads {
        hits: d("keyspace_hits"),
        misses: d("keyspace_misses"),
        origin_fetches: d("origin_fetches"),
    }
}

/// `FOLLOWERS` reads of `key` through the cache: the first alone, the rest pipelined.
async fn followers_read(
    cache: &mut RespClient,
    trace: &mut Trace,
    key: &str,
    post: &str,
) -> Result<usize, BoxError> {
    let mut correct = 0;
    let start = Instant::now();
    if cache
        .call(words(&["GET", key]))
        .await?
        .as_bytes()
        .map(|b| b.as_ref())
        == Some(post.as_bytes())
    {
        correct += 1;
    }
    for _ in 1..FOLLOWERS {
        cache.queue(words(&["GET", key]));
    }
    cache.flush().await?;
    for _ in 1..FOLLOWERS {
        if cache.read_reply().await?.as_bytes().map(|b| b.as_ref()) == Some(post.as_bytes()) {
            correct += 1;
        }
    }
    trace.step(
        start.elapsed(),
        &format!("{FOLLOWERS} followers"),
        "cache",
        &format!("GET {key}  ×{FOLLOWERS}"),
        &format!("{correct} got the post"),
    );
    Ok(correct)
}

/// Writes `post` at `key` through the router, optionally WARMs it into the cache, then has
/// every follower read it through the cache; returns (keys warmed, cache counters, correct reads).
async fn post_and_read(
    ends: &Endpoints,
    trace: &mut Trace,
    key: &str,
    post: &str,
    warm: bool,
) -> Result<(i64, Reads, usize), BoxError> {
    let mut router = RespClient::connect(&ends.router).await?;
    let mut cache = RespClient::connect(&ends.cache).await?;
    check(
        trace
            .call(&mut router, "app", "router", &["SET", key, post])
            .await?,
        "SET",
    )?;
    let mut warmed = 0;
    if warm {
        let reply = trace
            .call(&mut cache, "app", "cache", &["WARM", key])
            .await?;
        warmed = int(&check(reply, "WARM")?, "WARM")?;
        trace.note(
            "WARM made the cache read the post from its origin (the router) now, not on a miss",
        );
    }
    let before = stats(&mut cache).await?;
    let correct = followers_read(&mut cache, trace, key, post).await?;
    let reads = delta(&before, &stats(&mut cache).await?);
    Ok((warmed, reads, correct))
}

async fn scenario(ends: &Endpoints, trace: &mut Trace) -> Result<CelebrityOutcome, BoxError> {
    let run = lab::run_id();

    trace.section("1. A celebrity posts: write it, then push it into the cache before anyone asks");
    let key = format!("post:celebrity:{run}");
    let (warmed, celebrity, correct) =
        post_and_read(ends, trace, &key, "new album out tonight", true).await?;
    trace.note(format!(
        "cache counted {} hits, {} misses, {} origin fetches: the database saw none of this burst",
        celebrity.hits, celebrity.misses, celebrity.origin_fetches
    ));

    trace.section("2. A regular account posts: cached lazily, on the first read");
    let key = format!("post:regular:{run}");
    let (_, regular, correct_regular) =
        post_and_read(ends, trace, &key, "lunch was good", false).await?;
    trace.note(format!(
        "cache counted {} hits, {} miss, {} origin fetch: the first reader paid for the rest",
        regular.hits, regular.misses, regular.origin_fetches
    ));

    Ok(CelebrityOutcome {
        warmed,
        celebrity,
        regular,
        correct_reads: correct + correct_regular,
    })
}

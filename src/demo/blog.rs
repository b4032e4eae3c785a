//! `blog`: publishing a post touches four architectures at once.
//!
//! 1. The write goes to the shard router, which hashes the key and forwards it to one kv shard.
//! 2. Readers go through the cache (cache-aside / read-through): the first read misses and is
//!    fetched from the origin (the router), the second is served from memory.
//! 3. A "post published" event is appended once to a stream topic...
//! 4. ...and read independently by two consumer groups (a search indexer and the author's
//!    post counter): write once, read many. Each group commits its own offset.

use std::fmt;
use std::time::Instant;

use proto::Frame;
use service::{BoxError, RespClient};

use super::reply::{check, field, info_field, int, text, words};
use super::{Against, Endpoints, Lab, Trace, lab, show};

/// The topic the events go to.
const TOPIC: &str = "posts";
/// The two consumer groups: (group, what it does with an event).
const GROUPS: [(&str, &str); 2] = [
    ("search-indexer", "indexes the post's words"),
    ("post-counter", "counts the author's posts"),
];

/// What the blog demo observed.
#[derive(Debug, Clone)]
pub struct BlogOutcome {
    pub post_key: String,
    /// The shard the router chose for the post.
    pub shard: String,
    /// The value the two cache reads returned.
    pub first_read: Option<String>,
    pub second_read: Option<String>,
    pub first_read_ms: f64,
    pub second_read_ms: f64,
    /// Hits, misses and origin fetches the cache counted during the two reads.
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub origin_fetches: u64,
    /// The cache's hit ratio over these two reads.
    pub hit_ratio: f64,
    /// Where the event landed: (partition, offset).
    pub event: (i64, i64),
    /// Each consumer group and whether it read the event.
    pub groups_saw_event: Vec<(String, bool)>,
    /// The author's post count after the counter group processed the event.
    pub author_posts: i64,
}

impl fmt::Display for BlogOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let groups: Vec<String> = self
            .groups_saw_event
            .iter()
            .map(|(g, saw)| format!("{g}: {}", if *saw { "read it" } else { "MISSED it" }))
            .collect();
        write!(
            f,
            "blog: {} on shard {}; cache reads {:.2} ms (miss, from origin) then {:.2} ms (hit), \
             hit ratio {:.2}; event at partition {} offset {}; {}",
            self.post_key,
            self.shard,
            self.first_read_ms,
            self.second_read_ms,
            self.hit_ratio,
            self.event.0,
            self.event.1,
            groups.join(", ")
        )
    }
}

/// Runs the scenario.
pub async fn run(against: Against, trace: &mut Trace) -> Result<BlogOutcome, BoxError> {
    let setup = async |lab: &mut Lab, trace: &mut Trace| {
        trace.section(
            "Starting 3 kv shards, a router (ketama), a cache over the router, a stream server",
        );
        let mut ends = lab.sharded_kv(3).await?;
        ends.cache = lab.cache(&ends.router).await?;
        ends.stream = lab.stream().await?;
        Ok(ends)
    };
    lab::run_against(against, "blog", trace, setup, scenario).await
}

async fn scenario(ends: &Endpoints, trace: &mut Trace) -> Result<BlogOutcome, BoxError> {
    let run = lab::run_id();
    let post_key = format!("post:{run}");
    let author = "ada";
    let title = format!("Why caches need TTLs ({run})");

    trace.section("1. Publish: the app writes the post through the shard router");
    let mut router = RespClient::connect(&ends.router).await?;
    check(
        trace
            .call(&mut router, "app", "router", &["SET", &post_key, &title])
            .await?,
        "SET through the router",
    )?;
    let placement = trace
        .call(
            &mut router,
            "app",
            "router",
            &["ROUTER", "SHARDOF", &post_key],
        )
        .await?;
    let shard = field(&placement, "shard")
        .and_then(text)
        .unwrap_or_default();
    trace.note(format!(
        "the router hashed {post_key} to shard {shard}: only that kv node holds it"
    ));

    trace.section("2. Read cache-aside: first read from the origin, second from memory");
    let mut cache = RespClient::connect(&ends.cache).await?;
    let before = check(
        cache.call(["INFO", "stats"]).await?,
        "INFO stats of the cache",
    )?;
    let start = Instant::now();
    let first = cache.call(words(&["GET", &post_key])).await?;
    let first_took = start.elapsed();
    trace.step(
        first_took,
        "reader",
        "cache",
        &format!("GET {post_key}"),
        &format!(
            "{}  (miss: cache → router → kv, stored with a TTL)",
            show(&first)
        ),
    );
    let start = Instant::now();
    let second = cache.call(words(&["GET", &post_key])).await?;
    let second_took = start.elapsed();
    trace.step(
        second_took,
        "reader",
        "cache",
        &format!("GET {post_key}"),
        &format!("{}  (hit: served from memory)", show(&second)),
    );
    let after = check(
        cache.call(["INFO", "stats"]).await?,
        "INFO stats of the cache",
    )?;
    let delta = |name: &str| {
        let a = info_field(&after, name).unwrap_or(0.0);
        let b = info_field(&before, name).unwrap_or(0.0);
        (a - b).max(0.0) as u64
    };
    let (hits, misses, fetches) = (
        delta("keyspace_hits"),
        delta("keyspace_misses"),
        delta("origin_fetches"),
    );
    let hit_ratio = if hits + misses == 0 {
        0.0
    } else {
        hits as f64 / (hits + misses) as f64
    };
    trace.note(format!(
        "cache INFO stats for these reads: {hits} hit, {misses} miss, {fetches} origin fetch → hit ratio {hit_ratio:.2}"
    ));
    trace.note(format!(
        "second read {:.1}x faster than the first",
        first_took.as_secs_f64() / second_took.as_secs_f64().max(1e-9)
    ));

    trace.section("3. Announce it once on the stream");
    let mut stream = RespClient::connect(&ends.stream).await?;
    let created = trace
        .call(
            &mut stream,
            "app",
            "stream",
            &["TOPIC.CREATE", TOPIC, "PARTITIONS", "2"],
        )
        .await?;
    if created.is_error() {
        trace.note("(the topic already exists: fine, it is long-lived)");
    }
    let event = format!("published {post_key} by {author}");
    let produced = check(
        trace
            .call(
                &mut stream,
                "app",
                "stream",
                &["PRODUCE", TOPIC, &event, "KEY", author],
            )
            .await?,
        "PRODUCE",
    )?;
    let (partition, offset) = match &produced {
        Frame::Array(items) if items.len() == 2 => {
            (int(&items[0], "partition")?, int(&items[1], "offset")?)
        }
        other => return Err(format!("PRODUCE: unexpected reply {}", show(other)).into()),
    };
    trace.note(format!(
        "the key '{author}' picked partition {partition}; the event is offset {offset} there"
    ));

    trace.section("4. Two consumer groups read the same event, each at its own pace");
    let mut groups_saw_event = Vec::new();
    let mut author_posts = 0;
    for (group, job) in GROUPS {
        let member = format!("{group}-1");
        let mut consumer = RespClient::connect(&ends.stream).await?;
        let joined = check(
            trace
                .call(
                    &mut consumer,
                    group,
                    "stream",
                    &["GROUP.JOIN", group, &member, "TOPICS", TOPIC],
                )
                .await?,
            "GROUP.JOIN",
        )?;
        let generation = field(&joined, "generation")
            .map(|g| int(g, "generation"))
            .transpose()?
            .unwrap_or(0)
            .to_string();
        let p = partition.to_string();
        let committed = consumer
            .call(words(&["GROUP.COMMITTED", group, TOPIC, &p]))
            .await?;
        let mut next = match committed {
            Frame::Array(items) => items.first().and_then(|f| int(f, "committed").ok()),
            _ => None,
        };
        if next.is_none() {
            next = Some(int(
                &check(
                    consumer
                        .call(words(&["LISTOFFSETS", TOPIC, &p, "EARLIEST"]))
                        .await?,
                    "LISTOFFSETS",
                )?,
                "earliest offset",
            )?);
        }
        let mut next = next.unwrap_or(0);
        trace.note(format!(
            "{group} resumes partition {partition} at its committed offset {next}"
        ));
        let mut saw = false;
        while next <= offset {
            let from = next.to_string();
            let fetched = check(
                trace
                    .call(
                        &mut consumer,
                        group,
                        "stream",
                        &["FETCH", TOPIC, &p, &from, "COUNT", "100", "BLOCK", "2000"],
                    )
                    .await?,
                "FETCH",
            )?;
            let Frame::Array(records) = fetched else {
                break; // nil: nothing arrived within the block time
            };
            for record in &records {
                let Frame::Array(parts) = record else {
                    continue;
                };
                let at = parts
                    .first()
                    .map(|f| int(f, "offset"))
                    .transpose()?
                    .unwrap_or(next);
                let value = parts.get(3).and_then(text).unwrap_or_default();
                next = at + 1;
                if value == event {
                    saw = true;
                    if group == "post-counter" {
                        let counter = format!("author:{author}:posts");
                        author_posts = int(
                            &trace
                                .call(&mut router, group, "router", &["INCR", &counter])
                                .await?,
                            "INCR",
                        )?;
                    } else {
                        let words = title.split_whitespace().count();
                        trace.note(format!("{group} {job}: {words} words of \"{title}\""));
                    }
                }
            }
        }
        let upto = next.to_string();
        check(
            trace
                .call(
                    &mut consumer,
                    group,
                    "stream",
                    &[
                        "GROUP.COMMIT",
                        group,
                        &member,
                        &generation,
                        TOPIC,
                        &p,
                        &upto,
                    ],
                )
                .await?,
            "GROUP.COMMIT",
        )?;
        consumer
            .call(words(&["GROUP.LEAVE", group, &member]))
            .await?;
        groups_saw_event.push((group.to_owned(), saw));
    }
    trace.note("one write to the log, two independent readers; the log still holds the event for any later group");

    Ok(BlogOutcome {
        post_key,
        shard,
        first_read: text(&first),
        second_read: text(&second),
        first_read_ms: first_took.as_secs_f64() * 1000.0,
        second_read_ms: second_took.as_secs_f64() * 1000.0,
        cache_hits: hits,
        cache_misses: misses,
        origin_fetches: fetches,
        hit_ratio,
        event: (partition, offset),
        groups_saw_event,
        author_posts,
    })
}

//! `levels`: caching at every level, one request walked down them.
//!
//! A reader's browser keeps responses as `Cache-Control` allows (a private cache, here the
//! demo's own client using the edge crate's RFC 9111 rules); two CDN edges — one 20 ms from
//! the origin (eu), one 200 ms (us) — keep shared copies; a load balancer spreads what gets
//! through over two web servers. The first request misses at every level; the repeat is
//! served by the nearest level allowed to serve it; a private response is never shared; an
//! edit purges the edges by surrogate key while a browser's copy stays stale until its
//! `max-age` runs out; a hundred readers arriving at once for a cold post cost the origin
//! one request.
//!
//! Below the web servers, posts live in kv (two shards behind the router) and are read
//! cache-aside through the cache server: `X-Data-Source` says which of them answered.
//! Last, the database level ([`super::materialized`]): the sql server's "most viewed posts"
//! as a live aggregate vs a materialized view, stale until it is refreshed.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use clap::Parser;
use edge::cache::freshness::Timing;
use edge::cache::reuse::{Reuse, decide};
use edge::cache::vary::SecondaryKey;
use edge::cache::{CacheControl, Stored};
use edge::http::{Running, Upstream};
use hyper::{HeaderMap, Method, StatusCode};
use service::{BoxError, CancellationToken};

use super::materialized::DatabaseLevel;
use super::{Against, Lab, Trace};

/// Readers who ask for the cold post at the same moment.
const CROWD: usize = 100;

/// Where the HTTP levels are.
#[derive(Debug, Clone)]
pub struct HttpEndpoints {
    pub edge_eu: String,
    pub edge_us: String,
    pub lb: String,
    pub sql: String,
}

impl HttpEndpoints {
    /// `INFRALAB_EDGE_EU`, `INFRALAB_EDGE_US`, `INFRALAB_LB`, `INFRALAB_SQL` (defaults: the
    /// compose ports).
    pub fn from_env() -> Self {
        let var = |name: &str, default: &str| std::env::var(name).unwrap_or(default.to_owned());
        HttpEndpoints {
            edge_eu: var("INFRALAB_EDGE_EU", "127.0.0.1:8080"),
            edge_us: var("INFRALAB_EDGE_US", "127.0.0.1:8081"),
            lb: var("INFRALAB_LB", "127.0.0.1:8090"),
            sql: var("INFRALAB_SQL", "127.0.0.1:7432"),
        }
    }
}

/// What the levels demo observed.
#[derive(Debug, Clone, Default)]
pub struct LevelsOutcome {
    /// `X-Cache` (or `browser`) of each step, in order, keyed by step name.
    pub served: Vec<(String, String)>,
    /// Time of the eu miss, the eu edge hit, the us miss, and the browser hit.
    pub eu_miss: Duration,
    pub eu_hit: Duration,
    pub us_miss: Duration,
    pub browser_hit: Duration,
    /// Web servers that answered (the balancer's spread).
    pub web_servers: BTreeSet<String>,
    /// Post versions: in the reader's browser right after the edit, and at the edge.
    pub browser_version_after_edit: u64,
    pub edge_version_after_edit: u64,
    /// Origin requests the crowd of concurrent readers caused.
    pub crowd_origin_requests: u64,
    /// The edit's report from the origin (one purge line per edge).
    pub purges: Vec<String>,
    /// The database level: live aggregate vs materialized view.
    pub database: DatabaseLevel,
}

impl LevelsOutcome {
    /// How the step `name` was served.
    pub fn served(&self, name: &str) -> Option<&str> {
        self.served
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Display for LevelsOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        write!(
            f,
            "levels: eu miss {:.1} ms → eu edge hit {:.2} ms → browser {:.3} ms; us miss {:.1} ms; \
             after the edit the edges served v{} while the browser kept v{} until its max-age; \
             {CROWD} concurrent cold requests → {} origin request(s); database: live GROUP BY \
             {:.1} ms vs {} {:.1} ms, stale until REFRESH",
            ms(self.eu_miss),
            ms(self.eu_hit),
            ms(self.browser_hit),
            ms(self.us_miss),
            self.edge_version_after_edit,
            self.browser_version_after_edit,
            self.crowd_origin_requests,
            ms(self.database.live),
            self.database.mode,
            ms(self.database.materialized),
        )
    }
}

/// Runs the scenario.
pub async fn run(against: Against, trace: &mut Trace) -> Result<LevelsOutcome, BoxError> {
    match against {
        Against::Compose => scenario(&HttpEndpoints::from_env(), trace).await,
        Against::Local => {
            let shutdown = CancellationToken::new();
            let mut lab = Lab::new("levels")?;
            let mut running = Vec::new();
            let mut below = Vec::new();
            let result =
                match start_local(trace, &shutdown, &mut lab, &mut running, &mut below).await {
                    Ok(ends) => scenario(&ends, trace).await,
                    Err(e) => Err(e),
                };
            shutdown.cancel();
            for server in running {
                server.wait().await;
            }
            for server in below {
                server.wait().await;
            }
            lab.stop().await;
            result
        }
    }
}

/// kv shards behind a router, a cache, two web servers over them, a balancer over the web
/// servers, two edges at different distances.
async fn start_local(
    trace: &mut Trace,
    shutdown: &CancellationToken,
    lab: &mut Lab,
    running: &mut Vec<Running>,
    below: &mut Vec<service::Running>,
) -> Result<HttpEndpoints, BoxError> {
    trace.section("Starting 2 kv shards, a router, a cache, two web servers, a load balancer, edges in eu (20 ms) and us (200 ms), the sql server");
    let router = lab.sharded_kv(2).await?.router;
    // A cache without an origin: the web server does cache-aside itself.
    let cache = cache::start(
        cache::Args::parse_from(["cache", "--port", "0"]),
        shutdown.clone(),
    )
    .await?;
    let cache_addr = cache.addr().to_string();
    below.push(cache);
    let sql = sql::start(sql::Args::ephemeral(), shutdown.clone()).await?;
    let sql_addr = sql.addr().to_string();
    below.push(sql);
    // The origins purge the edges, which start last: reserve the edges' ports first.
    let mut edge_ports = Vec::new();
    for _ in 0..2 {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        edge_ports.push(probe.local_addr()?.port());
    }
    let purge = edge_ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut webs = Vec::new();
    for name in ["web-0", "web-1"] {
        let args = edge::web::Args::parse_from([
            "web",
            "--port",
            "0",
            "--name",
            name,
            "--purge-edge",
            &purge,
            "--kv",
            &router,
            "--cache",
            &cache_addr,
        ]);
        let web = edge::web::start(args, shutdown.clone()).await?;
        webs.push(web.addr().to_string());
        running.push(web);
    }
    let lb = edge::lb::start(
        edge::lb::Args::parse_from(["lb", "--port", "0", "--backends", &webs.join(",")]),
        shutdown.clone(),
    )
    .await?;
    let lb_addr = lb.addr().to_string();
    running.push(lb);
    let mut edges = Vec::new();
    for (port, (region, latency)) in edge_ports.iter().zip([("eu", "20"), ("us", "200")]) {
        let args = edge::Args::parse_from([
            "edge",
            "--port",
            &port.to_string(),
            "--origin",
            &lb_addr,
            "--region",
            region,
            "--origin-latency",
            latency,
        ]);
        let edge = edge::start(args, shutdown.clone()).await?;
        edges.push(edge.addr().to_string());
        running.push(edge);
    }
    trace.note(format!(
        "router {router}, cache {cache_addr}, web-0 {}, web-1 {}, lb {lb_addr}, edge eu {}, edge us {}",
        webs[0], webs[1], edges[0], edges[1]
    ));
    Ok(HttpEndpoints {
        edge_eu: edges[0].clone(),
        edge_us: edges[1].clone(),
        lb: lb_addr,
        sql: sql_addr,
    })
}

/// A reader's browser: a private cache in front of one edge, obeying the same RFC 9111
/// freshness rules as the edge (a private cache may keep `private` responses too).
struct Browser {
    name: String,
    edge: Upstream,
    region: &'static str,
    cache: HashMap<String, Stored>,
}

/// One response as the reader saw it.
struct Seen {
    status: StatusCode,
    /// `browser`, or the edge's `X-Cache`.
    served_by: String,
    body: String,
    headers: HeaderMap,
    took: Duration,
}

impl Browser {
    fn new(name: &str, edge: &str, region: &'static str) -> Browser {
        Browser {
            name: name.to_owned(),
            edge: Upstream::new(edge, Duration::from_secs(10), 1 << 20),
            region,
            cache: HashMap::new(),
        }
    }

    async fn get(&mut self, trace: &mut Trace, path: &str) -> Result<Seen, BoxError> {
        let start = Instant::now();
        if let Some(stored) = self.cache.get(path)
            && decide(stored, &CacheControl::default(), SystemTime::now()) == Reuse::Fresh
        {
            let seen = Seen {
                status: stored.status,
                served_by: "browser".into(),
                body: String::from_utf8_lossy(&stored.body).into_owned(),
                headers: stored.headers.clone(),
                took: start.elapsed(),
            };
            trace.step(
                seen.took,
                &self.name,
                "browser cache",
                &format!("GET {path}"),
                &summary(&seen),
            );
            return Ok(seen);
        }
        let request_time = SystemTime::now();
        let response = self
            .edge
            .send(Method::GET, path, HeaderMap::new(), Bytes::new())
            .await
            .map_err(|e| format!("GET {path} via the {} edge: {e}", self.region))?;
        let took = start.elapsed();
        let (parts, body) = response.into_parts();
        let cc = CacheControl::from_headers(&parts.headers, "cache-control").unwrap_or_default();
        if parts.status == StatusCode::OK
            && !cc.no_store
            && (cc.max_age.is_some() || cc.s_maxage.is_some())
        {
            let timing = Timing {
                request_time,
                response_time: SystemTime::now(),
            };
            let stored = Stored::new(
                parts.status,
                parts.headers.clone(),
                body.clone(),
                timing,
                SecondaryKey::default(),
            );
            self.cache.insert(path.to_owned(), stored);
        }
        let seen = Seen {
            status: parts.status,
            served_by: header(&parts.headers, "x-cache").to_owned(),
            body: String::from_utf8_lossy(&body).into_owned(),
            headers: parts.headers,
            took,
        };
        let to = format!("edge {}", self.region);
        trace.step(
            took,
            &self.name,
            &to,
            &format!("GET {path}"),
            &summary(&seen),
        );
        Ok(seen)
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn summary(seen: &Seen) -> String {
    let origin = match seen.served_by.as_str() {
        "browser" => "from the browser's own cache, no network".to_owned(),
        "HIT" => format!("edge HIT (age {} s)", header(&seen.headers, "age")),
        other => format!(
            "edge {other}: edge → lb → {} → {}",
            header(&seen.headers, "x-served-by"),
            match header(&seen.headers, "x-data-source") {
                "cache" => "cache (hit)",
                "kv" => "cache (miss) → kv",
                "" => "-",
                source => source,
            }
        ),
    };
    match version_label(&seen.body) {
        v if v.is_empty() => format!("{}, {origin}", seen.status.as_u16()),
        v => format!("{} {v}, {origin}", seen.status.as_u16()),
    }
}

/// `v2` from a post page ("version 2 from web-0"), else empty.
fn version(body: &str) -> u64 {
    body.split("version ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn version_label(body: &str) -> String {
    match version(body) {
        0 => String::new(),
        v => format!("v{v}"),
    }
}

async fn stat(addr: &str, key: &str) -> Result<u64, BoxError> {
    let client = Upstream::new(addr, Duration::from_secs(5), 1 << 20);
    let response = client
        .send(Method::GET, "/_edge/stats", HeaderMap::new(), Bytes::new())
        .await
        .map_err(|e| format!("{addr}/_edge/stats: {e}"))?;
    let body = String::from_utf8_lossy(response.body()).into_owned();
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{addr}: no {key} in the stats").into())
}

async fn scenario(ends: &HttpEndpoints, trace: &mut Trace) -> Result<LevelsOutcome, BoxError> {
    let mut out = LevelsOutcome::default();
    // A post no earlier run touched, so a long-lived topology starts cold for it too.
    let id = 1000 + u64::from_str_radix(&super::lab::run_id(), 16).unwrap_or(0) % 1_000_000;
    let post = format!("/posts/{id}");
    let lb = Upstream::new(&ends.lb, Duration::from_secs(10), 1 << 20);
    let publish = lb
        .send(
            Method::PUT,
            &post,
            HeaderMap::new(),
            Bytes::from_static(b"Caching at every level."),
        )
        .await
        .map_err(|e| format!("PUT {post}: {e}"))?;
    trace.section(&format!(
        "A post is published: PUT {post} through the load balancer"
    ));
    trace.note(
        String::from_utf8_lossy(publish.body())
            .trim()
            .replace('\n', "; "),
    );

    trace
        .section("1. The first request misses at every level; the repeat is served by the nearest");
    let mut ada = Browser::new("ada (eu)", &ends.edge_eu, "eu");
    let first = ada.get(trace, &post).await?;
    out.eu_miss = first.took;
    out.served
        .push(("eu first".into(), first.served_by.clone()));
    let again = ada.get(trace, &post).await?;
    out.browser_hit = again.took;
    out.served
        .push(("eu browser repeat".into(), again.served_by.clone()));
    let mut bob = Browser::new("bob (eu)", &ends.edge_eu, "eu");
    let shared = bob.get(trace, &post).await?;
    out.eu_hit = shared.took;
    out.served
        .push(("eu second reader".into(), shared.served_by.clone()));
    trace.note("bob's browser had nothing, but the eu edge did: a shared cache serves every reader near it");

    trace.section("2. Another region: the us edge is 200 ms from the origin");
    let mut carol = Browser::new("carol (us)", &ends.edge_us, "us");
    let us = carol.get(trace, &post).await?;
    out.us_miss = us.took;
    out.served.push(("us first".into(), us.served_by.clone()));
    let mut dan = Browser::new("dan (us)", &ends.edge_us, "us");
    let us_hit = dan.get(trace, &post).await?;
    out.served
        .push(("us second reader".into(), us_hit.served_by.clone()));
    trace.note(format!(
        "the us miss took {:.0} ms, the us hit {:.2} ms: the edge is the CDN's whole point",
        us.took.as_secs_f64() * 1000.0,
        us_hit.took.as_secs_f64() * 1000.0
    ));

    trace.section("3. A private response (Cache-Control: private) is never shared by an edge");
    for reader in [&mut ada, &mut bob] {
        let me = reader.get(trace, "/api/me").await?;
        out.web_servers
            .insert(header(&me.headers, "x-served-by").to_owned());
        out.served
            .push((format!("{} /api/me", reader.name), me.served_by));
    }
    let cached = ada.get(trace, "/api/me").await?;
    out.served
        .push(("ada /api/me again".into(), cached.served_by));
    trace
        .note("each reader reached a web server (the lb spread them); ada's own browser kept hers");

    trace.section(
        "4. An edit: the origin purges the edges by surrogate key; browsers keep their copy",
    );
    let edit = lb
        .send(
            Method::PUT,
            &post,
            HeaderMap::new(),
            Bytes::from_static(b"Edited: caching at every level."),
        )
        .await
        .map_err(|e| format!("PUT {post}: {e}"))?;
    let report = String::from_utf8_lossy(edit.body()).into_owned();
    for line in report.lines() {
        trace.note(line);
    }
    out.purges = report
        .lines()
        .filter(|l| l.starts_with("purge"))
        .map(str::to_owned)
        .collect();
    let stale = ada.get(trace, &post).await?;
    out.browser_version_after_edit = version(&stale.body);
    let mut erin = Browser::new("erin (eu)", &ends.edge_eu, "eu");
    let fresh = erin.get(trace, &post).await?;
    out.edge_version_after_edit = version(&fresh.body);
    out.served
        .push(("eu after edit".into(), fresh.served_by.clone()));
    trace.note(format!(
        "the staleness window: ada sees v{} until her browser's max-age ({}) runs out; nobody can purge a browser",
        out.browser_version_after_edit,
        header(&stale.headers, "cache-control")
    ));

    trace.section(&format!(
        "5. {CROWD} readers ask the us edge for a cold post at once"
    ));
    let cold = format!("/posts/{}", id + 1);
    lb.send(
        Method::PUT,
        &cold,
        HeaderMap::new(),
        Bytes::from_static(b"A cold post."),
    )
    .await
    .map_err(|e| format!("PUT {cold}: {e}"))?;
    let before = stat(&ends.edge_us, "origin_requests").await?;
    let start = Instant::now();
    let crowd: Vec<_> = (0..CROWD)
        .map(|_| {
            let client = Upstream::new(&ends.edge_us, Duration::from_secs(10), 1 << 20);
            let path = cold.clone();
            tokio::spawn(async move {
                client
                    .send(Method::GET, &path, HeaderMap::new(), Bytes::new())
                    .await
                    .map(|r| r.status())
            })
        })
        .collect();
    let mut ok = 0;
    for reader in crowd {
        if matches!(reader.await, Ok(Ok(StatusCode::OK))) {
            ok += 1;
        }
    }
    out.crowd_origin_requests = stat(&ends.edge_us, "origin_requests").await? - before;
    trace.step(
        start.elapsed(),
        &format!("{CROWD} readers"),
        "edge us",
        &format!("GET {cold}  ×{CROWD}"),
        &format!(
            "{ok} × 200; {} origin request(s): the misses were collapsed",
            out.crowd_origin_requests
        ),
    );

    trace.section(
        "6. The database level: \"most viewed posts\" as a live GROUP BY vs a materialized view",
    );
    out.database = super::materialized::walk(&ends.sql, &super::lab::run_id(), trace).await?;
    trace.note(format!(
        "the live query aggregates {} rows on every request; the {} is read from one stored \
         row per post, and is as stale as its last REFRESH",
        out.database.rows, out.database.mode,
    ));
    Ok(out)
}

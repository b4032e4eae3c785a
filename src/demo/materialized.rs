//! The database level of `demo levels`: a **materialized view** — a query's result kept as a
//! table and refreshed on demand — against the same query run live.
//!
//! "Most viewed posts" is an aggregate over every page view: a live `GROUP BY` reads all of
//! them on every request. A materialized view reads them once, at `REFRESH`, and answers
//! from its small stored result until the next refresh: the database caching its own work.
//! The price is the same as at every other level — staleness: views recorded after the
//! refresh are not in it until the next one.
//!
//! The demo talks to the sql server over the PostgreSQL protocol (tokio-postgres), as an
//! application would. It asks for `CREATE MATERIALIZED VIEW` and `REFRESH MATERIALIZED VIEW`;
//! a server that does not support them yet (SQLSTATE 0A000 or a syntax error) gets what they
//! do, spelled out: a summary table filled by `INSERT ... SELECT`, and a refresh that
//! replaces its rows in one transaction — so readers see the old result or the new one,
//! never half of each.

use std::time::{Duration, Instant};

use service::BoxError;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use super::Trace;

/// Posts that readers viewed; post `p` has `p × VIEWS_PER_RANK` views, so the top is known.
const POSTS: u32 = 50;
const VIEWS_PER_RANK: u32 = 8;
/// Views recorded after the view was materialized, all for post 1: enough to top the list.
const LATE_VIEWS: u32 = 1000;
/// Rows per INSERT statement.
const BATCH: usize = 1000;

/// `(post id, views)`, most viewed first.
pub type Top = Vec<(u32, u64)>;

/// What the database level showed.
#[derive(Debug, Clone, Default)]
pub struct DatabaseLevel {
    /// `materialized view`, or `summary table` on a server without them.
    pub mode: &'static str,
    /// Rows the live query aggregates.
    pub rows: u64,
    /// The live query, and the read of the materialized result.
    pub live: Duration,
    pub materialized: Duration,
    /// The top 3: live and materialized before the late views; both after them (the
    /// materialized one stale); the materialized one after `REFRESH`.
    pub live_top: Top,
    pub materialized_top: Top,
    pub live_after_views: Top,
    pub stale_top: Top,
    pub refreshed_top: Top,
}

/// Runs the database level against the sql server at `addr` (`host:port`); `run` makes
/// the table names unique, so a long-lived server is not confused by earlier runs.
pub async fn walk(addr: &str, run: &str, trace: &mut Trace) -> Result<DatabaseLevel, BoxError> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("sql address {addr}: expected host:port"))?;
    let config = format!("host={host} port={port} user=demo dbname=demo connect_timeout=5");
    let (client, connection) = tokio_postgres::connect(&config, NoTls)
        .await
        .map_err(|e| format!("sql at {addr}: {e}"))?;
    tokio::spawn(connection);
    let views = format!("post_views_{run}");
    let top = format!("top_posts_{run}");
    let mut out = DatabaseLevel::default();

    client
        .batch_execute(&format!(
            "CREATE TABLE {views} (post_id INT NOT NULL, reader INT NOT NULL)"
        ))
        .await?;
    let rows: Vec<(u32, u32)> = (1..=POSTS)
        .flat_map(|post| (0..post * VIEWS_PER_RANK).map(move |reader| (post, reader)))
        .collect();
    insert_views(&client, &views, &rows).await?;
    out.rows = rows.len() as u64;

    let live_sql = format!(
        "SELECT post_id, count(*) AS views FROM {views} GROUP BY post_id \
         ORDER BY views DESC, post_id LIMIT 3"
    );
    let read_sql = format!("SELECT post_id, views FROM {top} ORDER BY views DESC, post_id LIMIT 3");
    (out.live_top, out.live) = timed(&client, &live_sql).await?;
    trace.step(
        out.live,
        "web",
        "sql",
        "live: SELECT post_id, count(*) ... GROUP BY post_id",
        &format!("{} ({} rows aggregated)", show(&out.live_top), out.rows),
    );

    out.mode = materialize(&client, &top, &views).await?;
    (out.materialized_top, out.materialized) = timed(&client, &read_sql).await?;
    trace.step(
        out.materialized,
        "web",
        "sql",
        &format!("{}: SELECT ... FROM {top}", out.mode),
        &format!("{} ({POSTS} stored rows read)", show(&out.materialized_top)),
    );

    let late: Vec<(u32, u32)> = (0..LATE_VIEWS).map(|r| (1, 100_000 + r)).collect();
    insert_views(&client, &views, &late).await?;
    trace.note(format!(
        "{LATE_VIEWS} new views of post 1 are recorded after the materialization"
    ));
    let took;
    (out.live_after_views, took) = timed(&client, &live_sql).await?;
    trace.step(took, "web", "sql", "live", &show(&out.live_after_views));
    let took;
    (out.stale_top, took) = timed(&client, &read_sql).await?;
    trace.step(
        took,
        "web",
        "sql",
        out.mode,
        &format!("{} (stale)", show(&out.stale_top)),
    );

    let started = Instant::now();
    refresh(&client, out.mode, &top, &views).await?;
    (out.refreshed_top, _) = timed(&client, &read_sql).await?;
    trace.step(
        started.elapsed(),
        "web",
        "sql",
        &format!("REFRESH, then SELECT ... FROM {top}"),
        &show(&out.refreshed_top),
    );
    let drop_top = match out.mode {
        MATERIALIZED_VIEW => format!("DROP MATERIALIZED VIEW {top}"),
        _ => format!("DROP TABLE {top}"),
    };
    for drop in [drop_top, format!("DROP TABLE {views}")] {
        let _ = client.batch_execute(&drop).await;
    }
    Ok(out)
}

const MATERIALIZED_VIEW: &str = "materialized view";
const SUMMARY_TABLE: &str = "summary table";

/// `CREATE MATERIALIZED VIEW`, or on a server without it the same result as a table.
async fn materialize(client: &Client, top: &str, views: &str) -> Result<&'static str, BoxError> {
    let query = format!("SELECT post_id, count(*) AS views FROM {views} GROUP BY post_id");
    match client
        .batch_execute(&format!("CREATE MATERIALIZED VIEW {top} AS {query}"))
        .await
    {
        Ok(()) => Ok(MATERIALIZED_VIEW),
        Err(e)
            if e.code() == Some(&SqlState::FEATURE_NOT_SUPPORTED)
                || e.code() == Some(&SqlState::SYNTAX_ERROR) =>
        {
            client
                .batch_execute(&format!(
                    "CREATE TABLE {top} (post_id INT PRIMARY KEY, views BIGINT NOT NULL); \
                     INSERT INTO {top} {query}"
                ))
                .await?;
            Ok(SUMMARY_TABLE)
        }
        Err(e) => Err(e.into()),
    }
}

/// `REFRESH MATERIALIZED VIEW`, or what it does: the stored result replaced in one
/// transaction.
async fn refresh(client: &Client, mode: &str, top: &str, views: &str) -> Result<(), BoxError> {
    let sql = if mode == MATERIALIZED_VIEW {
        format!("REFRESH MATERIALIZED VIEW {top}")
    } else {
        format!(
            "BEGIN; DELETE FROM {top}; \
             INSERT INTO {top} SELECT post_id, count(*) FROM {views} GROUP BY post_id; COMMIT"
        )
    };
    client.batch_execute(&sql).await?;
    Ok(())
}

async fn insert_views(client: &Client, table: &str, rows: &[(u32, u32)]) -> Result<(), BoxError> {
    for chunk in rows.chunks(BATCH) {
        let values: Vec<String> = chunk.iter().map(|(p, r)| format!("({p},{r})")).collect();
        client
            .batch_execute(&format!("INSERT INTO {table} VALUES {}", values.join(",")))
            .await?;
    }
    Ok(())
}

/// Runs `sql` (two columns: post id, views) and times it.
async fn timed(client: &Client, sql: &str) -> Result<(Top, Duration), BoxError> {
    let started = Instant::now();
    let messages = client.simple_query(sql).await?;
    let took = started.elapsed();
    let mut top = Vec::new();
    for message in messages {
        if let SimpleQueryMessage::Row(row) = message {
            let post = row.get(0).and_then(|v| v.parse().ok());
            let views = row.get(1).and_then(|v| v.parse().ok());
            if let (Some(post), Some(views)) = (post, views) {
                top.push((post, views));
            }
        }
    }
    Ok((top, took))
}

fn show(top: &Top) -> String {
    let posts: Vec<String> = top
        .iter()
        .map(|(post, views)| format!("post {post}: {views}"))
        .collect();
    format!("top {}", posts.join(", "))
}

#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! The acceptance test of issue 30's feed: a small topology, known operations, and the
//! numbers they must produce in `/api/state` and in the `/events` stream.

mod common;

use common::{Events, metric, node, until_state};
use redis::AsyncCommands;

async fn redis(addr: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://{addr}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_operations_show_in_the_state_and_the_event_stream() {
    let topology = common::start("feed").await;
    let addr = topology.dashboard.running.addr();
    let mut events = Events::open(addr).await;

    // Every server is polled and shown up.
    let s = until_state(addr, "every server up", |s| {
        ["cache", "router", "kv-0", "kv-1", "stream"]
            .iter()
            .all(|n| node(s, n)["up"] == true)
    })
    .await;
    assert_eq!(node(&s, "kv-1")["addr"], topology.kv_addrs[1].as_str());
    assert_eq!(node(&s, "kv-1")["kind"], "kv");

    // A miss, then a hit: the cache's hit ratio is 0.5.
    let mut cache = redis(&topology.cache).await;
    let missed: Option<String> = cache.get("post:1").await.unwrap();
    assert_eq!(missed, None);
    let _: () = cache.set("post:1", "hello").await.unwrap();
    let hit: Option<String> = cache.get("post:1").await.unwrap();
    assert_eq!(hit.as_deref(), Some("hello"));
    let half = |s: &serde_json::Value| metric(s, "cache", "hit_ratio") == Some(0.5);
    let s = until_state(addr, "cache hit ratio 0.5", half).await;
    assert_eq!(metric(&s, "cache", "hits_total"), Some(1.0));
    assert_eq!(metric(&s, "cache", "misses_total"), Some(1.0));
    let series = node(&s, "cache")["series"]["hit_ratio"].as_array().unwrap();
    assert_eq!(
        series.last().unwrap()[1],
        0.5,
        "the history ends at the latest value"
    );
    events.until("cache hit ratio 0.5 in an event", half).await;

    // A produce moves an end offset.
    let mut stream = redis(&topology.stream).await;
    let _: redis::Value = redis::cmd("TOPIC.CREATE")
        .arg("orders")
        .arg("PARTITIONS")
        .arg(1)
        .query_async(&mut stream)
        .await
        .unwrap();
    until_state(addr, "topic orders at end offset 0", |s| {
        metric(s, "stream", "end.orders.0") == Some(0.0)
    })
    .await;
    let _: redis::Value = redis::cmd("PRODUCE")
        .arg("orders")
        .arg("hello")
        .query_async(&mut stream)
        .await
        .unwrap();
    let moved = |s: &serde_json::Value| metric(s, "stream", "end.orders.0") == Some(1.0);
    until_state(addr, "end offset 1 after a produce", moved).await;
    events.until("end offset 1 in an event", moved).await;

    // Writes through the router land on the shards: keys per shard, and ops per second.
    let mut router = redis(&topology.router).await;
    for i in 0..20 {
        let _: () = router.set(format!("user:{i}"), i).await.unwrap();
    }
    let s = until_state(addr, "20 keys over the two shards", |s| {
        let keys = |shard| metric(s, "router", &format!("shard.{shard}.keys")).unwrap_or(0.0);
        keys("s0") + keys("s1") == 20.0
    })
    .await;
    assert!(metric(&s, "router", "shard.s0.requests_total").unwrap() > 0.0);
    assert!(
        metric(&s, "kv-0", "commands_per_sec").is_some(),
        "rates derived: {s}"
    );

    // A killed shard shows down: the node itself, and the router's view of its shard.
    let mut kv = topology.kv;
    let killed = kv.remove(1);
    killed.stop().await;
    let down = |s: &serde_json::Value| {
        node(s, "kv-1")["up"] == false
            && metric(s, "router", "shard.s1.up") == Some(0.0)
            && node(s, "kv-0")["up"] == true
    };
    let s = until_state(addr, "shard s1 down", down).await;
    assert!(node(&s, "kv-1")["error"].as_str().is_some(), "{s}");
    assert_eq!(metric(&s, "kv-1", "up"), Some(0.0));
    assert!(metric(&s, "router", "failovers").unwrap() >= 1.0);
    events.until("shard s1 down in an event", down).await;

    let common::Topology {
        dashboard,
        others,
        dir,
        ..
    } = topology;
    dashboard.running.stop().await;
    for r in kv.into_iter().chain(others) {
        r.stop().await;
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A tokio-postgres session to the sql server at `addr`.
async fn postgres(addr: std::net::SocketAddr) -> tokio_postgres::Client {
    let config = format!("host={} port={} user=test", addr.ip(), addr.port());
    let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_commits_and_a_serialization_failure_show_in_the_state() {
    let shutdown = service::CancellationToken::new;
    let sql = sql::start(sql::Args::ephemeral(), shutdown())
        .await
        .unwrap();
    let args = dashboard::Args {
        interval_ms: 100,
        sql: sql.addr().to_string(),
        ..dashboard::Args::ephemeral()
    };
    let d = dashboard::start(args, shutdown()).await.unwrap();
    let addr = d.running.addr();
    let s = until_state(addr, "sql polled", |s| {
        metric(s, "sql", "xact_total").is_some()
    })
    .await;
    // A fresh server, and the dashboard's own polls start no transaction.
    assert_eq!(metric(&s, "sql", "xact_total"), Some(0.0), "{s}");
    assert_eq!(metric(&s, "sql", "lock_waits"), Some(0.0));

    let (a, b) = (postgres(sql.addr()).await, postgres(sql.addr()).await);
    // One transaction (a multi-statement query is one): a commit.
    a.batch_execute("CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t VALUES (1, 0)")
        .await
        .unwrap();
    // Two repeatable-read transactions update the same row: the first to commit wins,
    // the other gets 40001 and rolls back.
    a.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .await
        .unwrap();
    a.simple_query("SELECT v FROM t WHERE id = 1")
        .await
        .unwrap();
    b.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .await
        .unwrap();
    b.batch_execute("UPDATE t SET v = 1 WHERE id = 1")
        .await
        .unwrap();
    b.batch_execute("COMMIT").await.unwrap();
    let e = a
        .batch_execute("UPDATE t SET v = 2 WHERE id = 1")
        .await
        .unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("40001"), "{e}");
    a.batch_execute("ROLLBACK").await.unwrap();

    let s = until_state(
        addr,
        "2 commits, 1 rollback, 1 serialization failure",
        |s| metric(s, "sql", "xact_total") == Some(3.0),
    )
    .await;
    assert_eq!(metric(&s, "sql", "xact_commit_total"), Some(2.0), "{s}");
    assert_eq!(metric(&s, "sql", "xact_rollback_total"), Some(1.0));
    assert_eq!(
        metric(&s, "sql", "abort.serialization_failure_total"),
        Some(1.0)
    );
    assert_eq!(
        metric(&s, "sql", "abort.deadlock_detected_total"),
        Some(0.0)
    );
    assert_eq!(
        metric(&s, "sql", "abort.constraint_violation_total"),
        Some(0.0)
    );
    assert!(
        metric(&s, "sql", "xact_per_sec").is_some(),
        "a rate derived: {s}"
    );
    d.running.stop().await;
    sql.stop().await;
}

#[tokio::test]
async fn the_page_is_served_and_unknown_paths_are_not() {
    let shutdown = service::CancellationToken::new();
    let args = dashboard::Args {
        kv: "127.0.0.1:1".into(),
        ..dashboard::Args::ephemeral()
    };
    let d = dashboard::start(args, shutdown).await.unwrap();
    let addr = d.running.addr();
    let (status, body) = common::get(addr, "/").await;
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("<title>infralab dashboard</title>"), "{body}");
    let (status, _) = common::get(addr, "/nope").await;
    assert!(status.contains("404"), "{status}");
    // Nothing listens on port 1: the kv node shows down, with the reason.
    let s = until_state(addr, "kv down", |s| {
        node(s, "kv")["at_ms"].as_u64() > Some(0)
    })
    .await;
    assert_eq!(node(&s, "kv")["up"], false);
    assert!(
        node(&s, "kv")["error"]
            .as_str()
            .unwrap()
            .contains("refused"),
        "{s}"
    );
    d.running.stop().await;
}

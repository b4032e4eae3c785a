#![allow(clippy::unwrap_used, dead_code)] // test code: a panic is a test failure

use std::path::PathBuf;
use std::time::Duration;

use service::{CancellationToken, Running};

pub use testkit::{RedisServer, temp_dir};

/// A `redis` crate client of `addr` (a backend, or the router).
pub fn client(addr: &str) -> redis::Client {
    redis::Client::open(format!("redis://{addr}/")).unwrap()
}

/// A connection to `addr` through the `redis` crate.
pub async fn connect(addr: &str) -> redis::aio::MultiplexedConnection {
    client(addr)
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}
/// `[[shards]]` entries named s0, s1... for the given backends.
pub fn shards_toml(backends: &[&RedisServer]) -> String {
    backends
        .iter()
        .enumerate()
        .map(|(i, r)| format!("[[shards]]\nname = \"s{i}\"\nprimary = \"{}\"\n", r.addr()))
        .collect()
}

/// Starts a router on port 0 with this config text; returns it and the config's path.
pub async fn router(config: &str) -> (Running, PathBuf) {
    let path = temp_dir("cfg").join("router.toml");
    std::fs::write(&path, config).unwrap();
    let args = <shard_router::Args as clap::Parser>::parse_from([
        "router",
        "--port",
        "0",
        "--config",
        path.to_str().unwrap(),
    ]);
    let running = shard_router::start(args, CancellationToken::new())
        .await
        .unwrap();
    (running, path)
}

/// A connection to the router.
pub async fn conn(running: &Running) -> redis::aio::MultiplexedConnection {
    connect(&running.addr().to_string()).await
}

/// `ROUTER SHARDOF key`: the key's hash, tag, shard and node.
pub async fn shard_info(
    c: &mut redis::aio::MultiplexedConnection,
    key: &str,
) -> std::collections::HashMap<String, String> {
    redis::cmd("ROUTER")
        .arg("SHARDOF")
        .arg(key)
        .query_async(c)
        .await
        .unwrap()
}

/// Waits (bounded) until the router routes `key` to `shard`.
pub async fn routes_to(router: &redis::Client, key: &str, shard: &str) {
    eventually(&format!("{key} routes to {shard}"), || async {
        let mut c = router.get_multiplexed_async_connection().await.unwrap();
        shard_info(&mut c, key).await["shard"] == shard
    })
    .await;
}

/// Waits (bounded) until `check` holds.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..500 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

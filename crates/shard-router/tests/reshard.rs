#![allow(clippy::unwrap_used)] // test code: a panic is a test failure

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{RedisServer, conn, connect, router, shards_toml, temp_dir};
use redis::AsyncCommands;
use shard_router::reshard::{ReshardArgs, run};

/// 3 → 4 shards while a writer keeps writing through the router: afterwards every key
/// reads back its last written value and TTL through the new layout, and each key lives
/// on exactly one backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_to_four_shards_under_concurrent_writes() {
    let backends = [
        RedisServer::start(&[]),
        RedisServer::start(&[]),
        RedisServer::start(&[]),
        RedisServer::start(&[]),
    ];
    let dir = temp_dir("reshard");
    let old = dir.join("old.toml");
    let new = dir.join("new.toml");
    std::fs::write(
        &old,
        shards_toml(&[&backends[0], &backends[1], &backends[2]]),
    )
    .unwrap();
    std::fs::write(&new, shards_toml(&backends.iter().collect::<Vec<_>>())).unwrap();

    // Load 2000 keys through the old layout; every tenth with a TTL.
    let (before, _) = router(&std::fs::read_to_string(&old).unwrap()).await;
    let mut c = conn(&before).await;
    for i in 0..2000 {
        if i % 10 == 0 {
            let () = c
                .set_ex(format!("key:{i}"), format!("v0-{i}"), 1000)
                .await
                .unwrap();
        } else {
            let () = c.set(format!("key:{i}"), format!("v0-{i}")).await.unwrap();
        }
    }
    before.stop().await;

    // The router now serves the new layout, migrating from the old one.
    let migrating = format!(
        "migrating_from = \"old.toml\"\n{}",
        std::fs::read_to_string(&new).unwrap()
    );
    std::fs::write(dir.join("migrating.toml"), &migrating).unwrap();
    let (during, _) = router(&migrating.replace("old.toml", old.to_str().unwrap())).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let client = redis::Client::open(format!("redis://{}/", during.addr())).unwrap();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut c = client.get_multiplexed_async_connection().await.unwrap();
            let mut last: HashMap<String, String> = HashMap::new();
            let mut round = 1;
            while !stop.load(Ordering::Relaxed) {
                for i in (round % 7..2000).step_by(7) {
                    let (key, value) = (format!("key:{i}"), format!("v{round}-{i}"));
                    // INCR-like read-modify-write must see migrated values too.
                    let () = c.append(&key, "").await.unwrap();
                    let () = c.set(&key, &value).await.unwrap();
                    last.insert(key, value);
                }
                round += 1;
            }
            last
        })
    };

    // Interrupted after two batches, then resumed.
    let args = |max_batches| ReshardArgs {
        from: old.clone(),
        to: new.clone(),
        batch: 100,
        state: None,
        max_batches,
        quiet: true,
    };
    let first = run(args(Some(2))).await.unwrap();
    assert!(!first.complete);
    let second = run(args(None)).await.unwrap();
    assert!(second.complete && second.resumed);
    stop.store(true, Ordering::Relaxed);
    let last = writer.await.unwrap();
    during.stop().await;

    // Through the new layout (no migration any more): last values and TTLs.
    let (after, _) = router(&std::fs::read_to_string(&new).unwrap()).await;
    let mut c = conn(&after).await;
    for i in 0..2000 {
        let key = format!("key:{i}");
        let v: String = c.get(&key).await.unwrap();
        let want = last.get(&key).cloned().unwrap_or(format!("v0-{i}"));
        assert_eq!(v, want, "{key}");
        if i % 10 == 0 && !last.contains_key(&key) {
            let ttl: i64 = c.ttl(&key).await.unwrap();
            assert!(ttl > 900, "{key} ttl {ttl}");
        }
    }
    // Exactly one copy of each key across the four backends.
    let mut conns = Vec::new();
    for b in &backends {
        conns.push(connect(&b.addr()).await);
    }
    let mut total = 0;
    for conn in &mut conns {
        total += redis::cmd("DBSIZE").query_async::<i64>(conn).await.unwrap();
    }
    assert_eq!(total, 2000);
    let n4: i64 = redis::cmd("DBSIZE")
        .query_async(&mut conns[3])
        .await
        .unwrap();
    // The new shard got roughly a quarter of the keys (ketama), not most of them.
    assert!((300..700).contains(&n4), "new shard holds {n4}");
    after.stop().await;
}

#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! The shard router in front of real kv servers (as in production: RESP over the network).
//! Differential: the same corpus through the router over three kv shards and straight to one
//! kv gives equal replies; resharding 2 → 3 kv shards moves keys with kv's own
//! SCAN/DUMP/PTTL/RESTORE.

use std::path::PathBuf;

use bytes::Bytes;
use clap::Parser;
use service::{CancellationToken, RespClient, Running};

async fn kv() -> Running {
    kv::start(
        kv::Args::parse_from(["kv", "--port", "0"]),
        CancellationToken::new(),
    )
    .await
    .unwrap()
}

fn config(dir: &std::path::Path, name: &str, shards: &[&Running]) -> PathBuf {
    let text: String = shards
        .iter()
        .enumerate()
        .map(|(i, s)| format!("[[shards]]\nname = \"s{i}\"\nprimary = \"{}\"\n", s.addr()))
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("infralab-router-kv-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn router(config: &std::path::Path) -> Running {
    let args = shard_router::Args::parse_from([
        "router",
        "--port",
        "0",
        "--config",
        config.to_str().unwrap(),
    ]);
    shard_router::start(args, CancellationToken::new())
        .await
        .unwrap()
}

fn words(line: &str) -> Vec<Bytes> {
    line.split_whitespace()
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect()
}

#[tokio::test]
async fn router_over_three_kv_answers_like_one_kv() {
    let (a, b, c, direct) = (kv().await, kv().await, kv().await, kv().await);
    let dir = temp_dir("diff");
    let through = router(&config(&dir, "router.toml", &[&a, &b, &c])).await;
    let mut via_router = RespClient::connect(through.addr()).await.unwrap();
    let mut via_kv = RespClient::connect(direct.addr()).await.unwrap();
    let mut corpus: Vec<String> = Vec::new();
    for i in 0..30 {
        corpus.push(format!("SET k{i} v{i}"));
        corpus.push(format!("APPEND k{i} !"));
        corpus.push(format!("GET k{i}"));
    }
    corpus.extend(
        [
            "MGET k0 k1 k2 k3 k4 k5 k6 k7 nope",
            "MSET a 1 b 2 c 3 d 4",
            "MGET d c b a",
            "EXISTS a b c nope",
            "DEL a b nope",
            "UNLINK c",
            "EXISTS a b c d",
            "INCR n",
            "INCRBY n 10",
            "DECR n",
            "INCR k1",
            "SETNX k1 x",
            "GETSET fresh y",
            "GETDEL fresh",
            "SET t v EX 100",
            "TTL t",
            "PERSIST t",
            "TTL t",
            "TYPE k2",
            "TYPE nope",
            "STRLEN k3",
            "SET {u}a 1",
            "RENAME {u}a {u}b",
            "GET {u}b",
            "GET",
            "DBSIZE",
        ]
        .map(String::from),
    );
    for line in &corpus {
        let r = via_router.call(words(line)).await.unwrap();
        let d = via_kv.call(words(line)).await.unwrap();
        assert_eq!(r, d, "{line}");
    }
    through.stop().await;
}

#[tokio::test]
async fn reshard_two_to_three_kv_shards() {
    let (a, b, c) = (kv().await, kv().await, kv().await);
    let dir = temp_dir("reshard");
    let old = config(&dir, "old.toml", &[&a, &b]);
    let new = config(&dir, "new.toml", &[&a, &b, &c]);
    let before = router(&old).await;
    let mut client = RespClient::connect(before.addr()).await.unwrap();
    for i in 0..600 {
        let set = words(&format!("SET key:{i} v{i}"));
        assert_eq!(client.call(set).await.unwrap(), proto::Frame::ok());
    }
    before.stop().await;
    let report = shard_router::reshard::run(shard_router::reshard::ReshardArgs {
        from: old,
        to: new.clone(),
        batch: 100,
        state: None,
        max_batches: None,
        quiet: true,
    })
    .await
    .unwrap();
    assert!(report.complete);
    assert!((100..300).contains(&report.moved), "moved {}", report.moved);
    let after = router(&new).await;
    let mut client = RespClient::connect(after.addr()).await.unwrap();
    for i in 0..600 {
        let got = client.call(words(&format!("GET key:{i}"))).await.unwrap();
        assert_eq!(got, proto::Frame::bulk(format!("v{i}")));
    }
    let mut total = 0;
    for shard in [&a, &b, &c] {
        let mut s = RespClient::connect(shard.addr()).await.unwrap();
        if let proto::Frame::Integer(n) = s.call(["DBSIZE"]).await.unwrap() {
            total += n;
        }
    }
    assert_eq!(total, 600, "each key on exactly one shard");
    after.stop().await;
}

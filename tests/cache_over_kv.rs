#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! The cache in front of infralab's own kv, over the network as in production: reads go
//! through on a miss, writes go through to kv first, and kv keeps what the cache evicts.

use bytes::Bytes;
use clap::Parser;
use proto::Frame;
use service::{CancellationToken, RespClient};

fn bulk(s: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

async fn call(c: &mut RespClient, command: &str) -> Frame {
    c.call(command.split_whitespace().map(str::to_owned))
        .await
        .unwrap()
}

#[tokio::test]
async fn cache_over_kv_reads_and_writes_through() {
    let dir = std::env::temp_dir().join(format!("infralab-cache-over-kv-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let kv = kv::start(
        kv::Args::parse_from(["kv", "--port", "0", "--dir", dir.to_str().unwrap()]),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let kv_addr = kv.addr().to_string();
    // Room for about 20 small entries: most of the 100 keys live only in kv.
    let cache = cache::start(
        cache::Args::parse_from([
            "cache",
            "--port",
            "0",
            "--origin",
            &kv_addr,
            "--population",
            "write-through",
            "--maxmemory",
            "5000",
            "--maxmemory-policy",
            "lru",
        ]),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let mut db = RespClient::connect(kv.addr()).await.unwrap();
    let mut c = RespClient::connect(cache.addr()).await.unwrap();

    call(&mut db, "SET only:in:kv 7").await;
    assert_eq!(
        call(&mut c, "GET only:in:kv").await,
        bulk("7"),
        "read-through"
    );
    for i in 0..100 {
        assert_eq!(
            call(&mut c, &format!("SET user:{i} v{i}")).await,
            Frame::ok()
        );
    }
    let Frame::Integer(cached) = call(&mut c, "DBSIZE").await else {
        panic!()
    };
    assert!(cached < 100, "the cache is bounded: {cached}");
    // Evicted from the cache, still in kv, and read back through on demand.
    assert_eq!(call(&mut db, "GET user:0").await, bulk("v0"));
    assert_eq!(call(&mut c, "GET user:0").await, bulk("v0"));
    assert_eq!(call(&mut c, "DEL user:1").await, Frame::Integer(1));
    assert_eq!(call(&mut db, "EXISTS user:1").await, Frame::Integer(0));
    assert_eq!(call(&mut c, "GET user:1").await, Frame::Null);

    cache.stop().await;
    kv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

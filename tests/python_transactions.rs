#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! Drives `tests/python/test_transactions.py` (redis-py 8, as applications use it):
//! `pipeline(transaction=True)` and the `transaction()` WATCH retry loop against kv and
//! against the shard router over three kv shards, in RESP3 (redis-py's default) and
//! RESP2. The servers run in this process on free ports; python3 runs the file.

use clap::Parser;
use service::{CancellationToken, Running};

async fn kv() -> Running {
    kv::start(
        kv::Args::parse_from(["kv", "--port", "0"]),
        CancellationToken::new(),
    )
    .await
    .unwrap()
}

async fn router_over(shards: &[&Running]) -> (Running, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("infralab-py-tx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("router.toml");
    let text: String = shards
        .iter()
        .enumerate()
        .map(|(i, s)| format!("[[shards]]\nname = \"s{i}\"\nprimary = \"{}\"\n", s.addr()))
        .collect();
    std::fs::write(&config, text).unwrap();
    let args = shard_router::Args::parse_from([
        "router",
        "--port",
        "0",
        "--config",
        config.to_str().unwrap(),
    ]);
    let router = shard_router::start(args, CancellationToken::new())
        .await
        .unwrap();
    (router, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_transactions_against_kv_and_the_router() {
    let check = std::process::Command::new("python3")
        .args([
            "-c",
            "import redis, sys; sys.exit(int(redis.__version__.split('.')[0]) < 8)",
        ])
        .status();
    assert!(
        matches!(check, Ok(s) if s.success()),
        "python3 with redis-py 8 is needed: run .ci/run (pip install 'redis>=8')"
    );
    let standalone = kv().await;
    let (a, b, c) = (kv().await, kv().await, kv().await);
    let (router, dir) = router_over(&[&a, &b, &c]).await;
    let targets = format!("kv={},router={}", standalone.addr(), router.addr());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/test_transactions.py"
    );
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .env("INFRALAB_TX_TARGETS", targets)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stderr}");
    assert!(
        output.status.success(),
        "redis-py transaction tests failed:\n{stderr}"
    );
    // Each target, each protocol, every test: none may be skipped silently but the one
    // that needs several shards on kv.
    assert!(stderr.contains("Ran 28 tests"), "{stderr}");
    for server in [router, standalone, a, b, c] {
        server.stop().await;
    }
    let _ = std::fs::remove_dir_all(dir);
}

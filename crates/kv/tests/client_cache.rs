#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! redis-py 8's client-side cache (`redis.Redis(protocol=3, cache_config=CacheConfig())`)
//! over kv: `tests/python/client_cache.py` holds the checks; this starts kv on port 0 and
//! runs it. `.ci/run` installs redis-py; without it the test fails and says so.

mod common;

use std::path::PathBuf;
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_client_side_cache_over_kv() {
    let server = common::start(&[]).await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/client_cache.py");
    let port = server.addr().port().to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(&script)
            .env("INFRALAB_KV_PORT", port)
            .output()
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("cannot run python3 ({e}): run .ci/run"));
    assert!(
        output.status.success(),
        "redis-py client-side cache:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

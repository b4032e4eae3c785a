#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! redis-py 8 over kv: its client-side cache (`redis.Redis(protocol=3,
//! cache_config=CacheConfig())`, checks in `tests/python/client_cache.py`) and its
//! blocking sorted-set pops, SORT, server commands and `shutdown()`
//! (`tests/python/pops.py`). Each test starts kv on port 0 and runs its script. `.ci/run`
//! installs redis-py; without it the tests fail and say so.

mod common;

use std::path::PathBuf;
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_client_side_cache_over_kv() {
    run_script("client_cache.py", "redis-py client-side cache").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_pops_sort_and_shutdown_over_kv() {
    run_script("pops.py", "redis-py pops, SORT and SHUTDOWN").await;
}

/// Runs `tests/python/<name>` against a fresh kv; it must exit 0.
async fn run_script(name: &str, what: &str) {
    let server = common::start(&[]).await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name);
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
        "{what}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

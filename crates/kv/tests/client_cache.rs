#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! redis-py 8 over kv: its client-side cache (`redis.Redis(protocol=3,
//! cache_config=CacheConfig())`, checks in `tests/python/client_cache.py`) and its
//! blocking sorted-set pops, SORT, server commands and `shutdown()`
//! (`tests/python/pops.py`). Each test starts kv on port 0 and runs its script. `.ci/run`
//! installs redis-py; without it the tests fail and say so.

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_client_side_cache_over_kv() {
    run_script("client_cache.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_pops_sort_and_shutdown_over_kv() {
    run_script("pops.py").await;
}

/// Runs `tests/python/<name>` against a fresh kv; it must exit 0.
async fn run_script(name: &str) {
    let server = common::start(&[]).await;
    let port = server.addr().port().to_string();
    common::run_python(name, &[port]).await;
}

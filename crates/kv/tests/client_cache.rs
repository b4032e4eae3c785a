#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! redis-py 8's client-side cache (`redis.Redis(protocol=3, cache_config=CacheConfig())`)
//! over kv: `tests/python/client_cache.py` holds the checks; this starts kv on port 0 and
//! runs it. `.ci/run` installs redis-py; without it the test fails and says so.

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_client_side_cache_over_kv() {
    let server = common::start(&[]).await;
    let port = server.addr().port().to_string();
    common::run_python("client_cache.py", &[port]).await;
}

#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! `infralab demo client-cache --against local`: repeated reads are local (kv sees no
//! command for them), an update is pushed as an invalidation, and the next read is fresh.

use infralab::demo::client_cache;
use infralab::demo::{Against, Trace};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_hits_then_an_invalidation_then_the_fresh_value() {
    let mut trace = Trace::new();
    let out = client_cache::run(Against::Local, &mut trace).await.unwrap();
    assert_eq!(out.network_reads, 2, "one read per version");
    assert_eq!(out.local_hits, 198);
    assert_eq!(out.server_commands_during_hits, 0);
    assert_eq!(out.invalidated.len(), 1);
    assert!(out.invalidated[0].starts_with("post:"));
    assert!(out.saw_update);
}

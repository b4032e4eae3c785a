#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! `infralab demo rate --against local`: one node takes every write; through the router the
//! same writes split over three nodes.

use infralab::demo::{Against, Trace, rate};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharding_splits_the_write_load_over_three_nodes() {
    let mut trace = Trace::new();
    let out = rate::run(Against::Local, &mut trace).await.unwrap();
    assert_eq!(out.single.writes, rate::WRITES_PER_SECOND);
    assert_eq!(out.sharded.len(), 3, "every shard took writes");
    assert_eq!(
        out.sharded.iter().map(|n| n.writes).sum::<usize>(),
        rate::WRITES_PER_SECOND
    );
    for node in &out.sharded {
        // A hash spreads 1500 keys evenly enough that no node keeps more than half.
        assert!(node.writes < rate::WRITES_PER_SECOND / 2, "{node:?}");
    }
}

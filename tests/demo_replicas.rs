#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! `infralab demo replicas --against local`: both replicas end with every write; under sync
//! replication the primary has no unacknowledged write once the last write is answered.

use infralab::demo::replicas::{self, WRITES};
use infralab::demo::{Against, Trace};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_replication_leaves_no_lag_after_an_acknowledged_write() {
    let mut trace = Trace::new();
    let out = replicas::run(Against::Local, &mut trace).await.unwrap();
    let sync = out.mode("sync").unwrap();
    let asynchronous = out.mode("async").unwrap();
    // Every acknowledged write was acknowledged by the replica first; the only bytes it may
    // not have acknowledged yet are a heartbeat PING (`*1\r\n$4\r\nPING\r\n`, 14 bytes) the
    // primary sent between the last OK and the INFO.
    assert!((0..=14).contains(&sync.lag_bytes), "{sync:?}");
    assert!(
        asynchronous.lag_bytes >= 0,
        "the primary reported its replica: {asynchronous:?}"
    );
    for run in [sync, asynchronous] {
        assert_eq!(
            run.replica_keys, WRITES as i64,
            "{}: every write reached the replica",
            run.mode
        );
    }
}

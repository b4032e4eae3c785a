#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! `infralab demo replicas --against local`, with the replica one slow link away: under async
//! replication the replica is behind when the last write is acknowledged (the primary
//! counts unacknowledged bytes, and a read on the replica right then is stale); under sync
//! replication it is not (nothing unacknowledged, the first read sees the write).

use infralab::demo::replicas::{self, WRITES};
use infralab::demo::{Against, Trace};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_replicas_lag_behind_an_acknowledged_write_and_sync_replicas_do_not() {
    let mut trace = Trace::new();
    let out = replicas::run(Against::Local, &mut trace).await.unwrap();
    let sync = out.mode("sync").unwrap();
    let asynchronous = out.mode("async").unwrap();
    // Every acknowledged write was acknowledged by the replica first; the only bytes it may
    // not have acknowledged yet are a heartbeat PING (`*1\r\n$4\r\nPING\r\n`, 14 bytes) the
    // primary sent between the last OK and the INFO.
    assert!((0..=14).contains(&sync.lag_bytes), "{sync:?}");
    assert_eq!(
        sync.stale_reads, 0,
        "sync: the replica had the write before its OK: {sync:?}"
    );
    // Async: the last writes were still on the link when their OK arrived.
    assert!(
        asynchronous.lag_bytes > 14,
        "async: the primary counts bytes its replica has not acknowledged: {asynchronous:?}"
    );
    assert!(
        asynchronous.stale_reads > 0,
        "async: a read on the replica right after the OK is stale: {asynchronous:?}"
    );
    for run in [sync, asynchronous] {
        assert_eq!(
            run.replica_keys, WRITES as i64,
            "{}: every write reached the replica",
            run.mode
        );
    }
}

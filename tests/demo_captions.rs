#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! `infralab demo captions --against local`: the killed worker's job comes back to another
//! worker after its visibility timeout, and every job is acknowledged once.

use infralab::demo::{Against, Trace, captions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_killed_workers_job_is_redelivered_to_another_worker() {
    let mut trace = Trace::new();
    let out = captions::run(Against::Local, &mut trace).await.unwrap();
    assert_eq!(out.killed_worker, "worker-1");
    assert_eq!(out.lost_job.1, "cat.mp4");
    assert_eq!(out.redelivered_id, out.lost_job.0, "the same job came back");
    assert!(
        out.redelivered_to == "worker-2" || out.redelivered_to == "worker-3",
        "redelivered to {}",
        out.redelivered_to
    );
    assert_eq!(out.deliveries, 2, "second delivery of the job");
    assert_eq!(out.acked, 3);
    assert!(
        trace
            .lines()
            .iter()
            .any(|l| l.contains("visibility timeout ran out"))
    );
}

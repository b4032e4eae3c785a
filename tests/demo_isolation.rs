#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! `infralab demo isolation --against local`: the course's example reads 100 under
//! repeatable read and 200 under read committed; read uncommitted reads a value later
//! rolled back; a phantom appears under read committed and not under repeatable read;
//! write skew empties the on-call list under repeatable read and is refused under
//! serializable, where a writer also waits for a reader.

use infralab::demo::{Against, Trace, isolation};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_level_lets_through_its_anomalies() {
    let mut trace = Trace::new();
    let out = isolation::run(Against::Local, &mut trace).await.unwrap();
    assert_eq!(out.repeatable_read_second_read, Some(100));
    assert_eq!(out.read_committed_second_read, Some(200));
    assert_eq!((out.dirty_read, out.after_rollback), (Some(999), Some(200)));
    assert_eq!(out.phantom_read_committed, (Some(1), Some(2)));
    assert_eq!(out.phantom_repeatable_read, (Some(2), Some(2)));
    assert_eq!(out.write_skew_on_call, Some(0));
    assert_eq!(out.serializable_refused.as_deref(), Some("40P01"));
    assert_eq!(out.serializable_on_call, Some(1));
    assert!(out.writer_waited);
    let text = trace.lines().join("\n");
    assert!(
        text.contains("T1 → sql  BEGIN ISOLATION LEVEL READ UNCOMMITTED"),
        "{text}"
    );
    assert!(
        out.to_string().starts_with("isolation: second read 100"),
        "{out}"
    );
}

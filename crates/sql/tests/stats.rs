//! `pg_stat_database` and `infralab_stat_aborts` count what happened: a commit, a
//! rollback, a unique violation and a repeatable-read serialization failure each move
//! exactly their counters, and a monitor's own polls move none.

mod common;

use common::{code, connect, exec, lines, server};
use tokio_postgres::Client;

/// (xact_commit, xact_rollback, deadlocks) now, read over the extended protocol (as a
/// driver's prepared query would) to cover its Describe too.
async fn ends(c: &Client) -> (i64, i64, i64) {
    let rows = c
        .query("SELECT * FROM pg_stat_database", &[])
        .await
        .expect("pg_stat_database");
    assert_eq!(rows.len(), 1, "one database");
    let r = &rows[0];
    assert_eq!(r.get::<_, String>("datname"), "infralab");
    (
        r.get("xact_commit"),
        r.get("xact_rollback"),
        r.get("deadlocks"),
    )
}

#[tokio::test]
async fn transaction_ends_and_aborts_by_cause_are_counted() {
    let srv = server().await;
    let observer = connect(srv.addr()).await;
    let a = connect(srv.addr()).await;
    let b = connect(srv.addr()).await;
    exec(
        &a,
        "CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL); INSERT INTO t VALUES (1, 10)",
    )
    .await;
    let (c0, r0, d0) = ends(&observer).await;
    // Polling is free: the views are answered without a transaction.
    assert_eq!(ends(&observer).await, (c0, r0, d0));

    for sql in ["BEGIN", "UPDATE t SET v = 11 WHERE id = 1", "COMMIT"] {
        exec(&a, sql).await;
    }
    assert_eq!(ends(&observer).await, (c0 + 1, r0, d0), "a commit");
    for sql in ["BEGIN", "UPDATE t SET v = 12 WHERE id = 1", "ROLLBACK"] {
        exec(&a, sql).await;
    }
    assert_eq!(ends(&observer).await, (c0 + 1, r0 + 1, d0), "a rollback");
    assert_eq!(code(&a, "INSERT INTO t VALUES (1, 0)").await, "23505");
    assert_eq!(ends(&observer).await, (c0 + 1, r0 + 2, d0), "an error");

    // A repeatable-read transaction updates a row changed since its snapshot: 40001.
    exec(&a, "BEGIN ISOLATION LEVEL REPEATABLE READ").await;
    assert_eq!(lines(&a, "SELECT v FROM t WHERE id = 1").await, ["11"]);
    exec(&b, "UPDATE t SET v = 20 WHERE id = 1").await;
    assert_eq!(
        code(&a, "UPDATE t SET v = v + 1 WHERE id = 1").await,
        "40001"
    );
    // The block is aborted: a statement refused with 25P02 is no new abort.
    assert_eq!(code(&a, "SELECT 1").await, "25P02");
    exec(&a, "ROLLBACK").await;
    assert_eq!(
        ends(&observer).await,
        (c0 + 2, r0 + 3, d0),
        "b's update committed, a's transaction rolled back"
    );
    assert_eq!(
        lines(&observer, "SELECT * FROM infralab_stat_aborts").await,
        [
            "serialization_failure|1",
            "deadlock_detected|0",
            "lock_timeout|0",
            "statement_timeout|0",
            "query_canceled|0",
            "constraint_violation|1",
            "other|0",
        ]
    );
}

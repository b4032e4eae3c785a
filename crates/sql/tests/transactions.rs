//! Savepoints and multi-statement queries, with tokio-postgres and psycopg 3.

mod common;

use common::{cell, query, rows, server_at, session};
use sql::isolation::Isolation;

#[tokio::test]
async fn savepoints_undo_part_of_a_transaction_and_rescue_a_failed_one() {
    let srv = server_at(Isolation::RepeatableRead).await;
    let c = session(&srv).await;
    rows(&c, "CREATE TABLE t (id INT PRIMARY KEY)").await;
    // Outside a block there is nothing to mark.
    assert_eq!(query(&c, "SAVEPOINT a").await, Err("25P01".into()));
    assert_eq!(
        query(&c, "ROLLBACK TO SAVEPOINT a").await,
        Err("25P01".into())
    );

    rows(&c, "BEGIN").await;
    rows(&c, "INSERT INTO t VALUES (1)").await;
    rows(&c, "SAVEPOINT a").await;
    rows(&c, "INSERT INTO t VALUES (2)").await;
    rows(&c, "SAVEPOINT b").await;
    rows(&c, "INSERT INTO t VALUES (3)").await;
    // Back to a: 2 and 3 are undone, and b (made after a) is gone.
    rows(&c, "ROLLBACK TO SAVEPOINT a").await;
    assert_eq!(rows(&c, "SELECT id FROM t ORDER BY id").await, cell("1"));
    assert_eq!(query(&c, "RELEASE SAVEPOINT b").await, Err("3B001".into()));
    assert_eq!(query(&c, "SELECT 1").await, Err("25P02".into()));
    // The savepoint stays after ROLLBACK TO, so the failed block can go back to it.
    rows(&c, "ROLLBACK TO a").await;
    rows(&c, "INSERT INTO t VALUES (4)").await;
    // An error: the block fails, ROLLBACK TO makes it usable again.
    rows(&c, "SAVEPOINT c").await;
    assert_eq!(
        query(&c, "INSERT INTO t VALUES (1)").await,
        Err("23505".into())
    );
    assert_eq!(query(&c, "SELECT 1").await, Err("25P02".into()));
    rows(&c, "ROLLBACK TO SAVEPOINT c").await;
    rows(&c, "INSERT INTO t VALUES (5)").await;
    rows(&c, "RELEASE SAVEPOINT a").await;
    assert_eq!(query(&c, "ROLLBACK TO c").await, Err("3B001".into()));
    rows(&c, "ROLLBACK").await;
    assert_eq!(rows(&c, "SELECT count(*) FROM t").await, cell("0"));

    rows(&c, "BEGIN; INSERT INTO t VALUES (1); SAVEPOINT s; INSERT INTO t VALUES (2); ROLLBACK TO s; INSERT INTO t VALUES (3); COMMIT").await;
    let other = session(&srv).await;
    assert_eq!(
        rows(&other, "SELECT id FROM t ORDER BY id").await,
        vec![vec![Some("1".into())], vec![Some("3".into())]]
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_multi_statement_query_is_one_implicit_transaction() {
    let srv = server_at(Isolation::ReadCommitted).await;
    let c = session(&srv).await;
    rows(&c, "CREATE TABLE t (id INT PRIMARY KEY)").await;
    // The second INSERT fails: the first is rolled back with it.
    assert_eq!(
        query(&c, "INSERT INTO t VALUES (1); INSERT INTO t VALUES (1)").await,
        Err("23505".into())
    );
    assert_eq!(rows(&c, "SELECT count(*) FROM t").await, cell("0"));
    rows(&c, "INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)").await;
    assert_eq!(rows(&c, "SELECT count(*) FROM t").await, cell("2"));
    // Explicit control inside: COMMIT ends the block, the rest is a new implicit one.
    assert_eq!(
        query(&c, "BEGIN; INSERT INTO t VALUES (3); COMMIT; INSERT INTO t VALUES (4); INSERT INTO t VALUES (4)").await,
        Err("23505".into())
    );
    assert_eq!(rows(&c, "SELECT id FROM t WHERE id > 2").await, cell("3"));
    // BEGIN turns the implicit transaction into a block that stays open.
    rows(
        &c,
        "INSERT INTO t VALUES (5); BEGIN; INSERT INTO t VALUES (6)",
    )
    .await;
    let other = session(&srv).await;
    assert_eq!(
        rows(&other, "SELECT count(*) FROM t WHERE id > 4").await,
        cell("0")
    );
    rows(&c, "ROLLBACK").await;
    assert_eq!(
        rows(&c, "SELECT count(*) FROM t WHERE id > 4").await,
        cell("0")
    );
    srv.stop().await;
}

#[tokio::test]
async fn psycopg_nested_transactions_use_savepoints() {
    let srv = server_at(Isolation::RepeatableRead).await;
    let port = srv.addr().port();
    let out = common::python(format!(
        r#"
import psycopg
with psycopg.connect("host=127.0.0.1 port={port} user=test dbname=test") as conn:
    conn.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    conn.commit()
    with conn.transaction():
        conn.execute("INSERT INTO t VALUES (1)")
        try:
            with conn.transaction():
                conn.execute("INSERT INTO t VALUES (2)")
                conn.execute("INSERT INTO t VALUES (1)")
        except psycopg.errors.UniqueViolation:
            print("inner rolled back", conn.info.transaction_status.name)
        conn.execute("INSERT INTO t VALUES (3)")
    print(conn.execute("SELECT id FROM t ORDER BY id").fetchall())
    print(conn.execute("SHOW transaction_isolation").fetchone()[0])
"#
    ))
    .await;
    assert_eq!(
        out,
        "inner rolled back INTRANS\n[(1,), (3,)]\nrepeatable read"
    );
    srv.stop().await;
}

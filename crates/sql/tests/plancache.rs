//! The plan a prepared statement keeps (see `plancache`) and the point lookup it keeps
//! (see `executor::point`): a statement prepared once and executed after the catalog
//! changed under it — a column dropped, the table dropped and created again with another
//! layout, dropped for good, created without a key, given a unique index — answers from
//! the catalog as it is at each execution; and a point lookup answers as the general
//! path would (no row, a key its column cannot hold, contradicting terms, MVCC).

mod common;

use common::{cell, code, connect, exec, lines, query, server};
use tokio_postgres::Client;

/// The `note` column of the rows the prepared statement finds for `id`.
async fn notes(
    c: &Client,
    stmt: &tokio_postgres::Statement,
    id: i32,
) -> Result<Vec<String>, String> {
    match c.query(stmt, &[&id]).await {
        Ok(rows) => Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect()),
        Err(e) => Err(e
            .code()
            .map(|c| c.code().to_string())
            .unwrap_or_else(|| e.to_string())),
    }
}

#[tokio::test]
async fn a_prepared_statement_plans_again_after_the_catalog_changed() {
    let srv = server().await;
    let c = connect(srv.addr()).await;
    let ddl = connect(srv.addr()).await;
    exec(
        &c,
        "CREATE TABLE t (id INT PRIMARY KEY, name TEXT, note TEXT);
         INSERT INTO t VALUES (1, 'one', 'first'), (2, 'two', 'second')",
    )
    .await;
    let stmt = c
        .prepare("SELECT note FROM t WHERE id = $1")
        .await
        .expect("prepare");
    assert_eq!(notes(&c, &stmt, 1).await, Ok(vec!["first".to_string()]));
    assert_eq!(notes(&c, &stmt, 3).await, Ok(vec![]));

    // Another session changes the table's columns: `note` is still found by name.
    exec(&ddl, "ALTER TABLE t DROP COLUMN name").await;
    assert_eq!(notes(&c, &stmt, 2).await, Ok(vec!["second".to_string()]));

    // Dropped and created again with the columns the other way round: the old plan's
    // column positions and index would read the wrong column.
    exec(
        &ddl,
        "DROP TABLE t; CREATE TABLE t (note TEXT, id INT PRIMARY KEY);
         INSERT INTO t VALUES ('again', 1)",
    )
    .await;
    assert_eq!(notes(&c, &stmt, 1).await, Ok(vec!["again".to_string()]));

    // Dropped for good: the statement fails as PostgreSQL's does, and the session goes on.
    exec(&ddl, "DROP TABLE t").await;
    assert_eq!(notes(&c, &stmt, 1).await, Err("42P01".to_string()));

    // Created without a key (no point lookup: a scan finds both rows), then given a
    // unique index (a point lookup again).
    exec(
        &ddl,
        "CREATE TABLE t (id INT, note TEXT); INSERT INTO t VALUES (1, 'x'), (2, 'y'), (1, 'z')",
    )
    .await;
    let mut found = notes(&c, &stmt, 1).await.expect("rows");
    found.sort();
    assert_eq!(found, ["x", "z"]);
    exec(
        &ddl,
        "DELETE FROM t WHERE note = 'z'; CREATE UNIQUE INDEX t_id ON t (id)",
    )
    .await;
    assert_eq!(notes(&c, &stmt, 1).await, Ok(vec!["x".to_string()]));
    assert_eq!(notes(&c, &stmt, 2).await, Ok(vec!["y".to_string()]));
}

#[tokio::test]
async fn a_ddl_rolled_back_leaves_the_plan_correct() {
    let srv = server().await;
    let c = connect(srv.addr()).await;
    exec(
        &c,
        "CREATE TABLE t (id INT PRIMARY KEY, note TEXT); INSERT INTO t VALUES (1, 'kept')",
    )
    .await;
    let stmt = c
        .prepare("SELECT note FROM t WHERE id = $1")
        .await
        .expect("prepare");
    exec(
        &c,
        "BEGIN; DROP TABLE t; CREATE TABLE t (note TEXT, id INT PRIMARY KEY)",
    )
    .await;
    assert_eq!(notes(&c, &stmt, 1).await, Ok(vec![]));
    exec(&c, "ROLLBACK").await;
    assert_eq!(notes(&c, &stmt, 1).await, Ok(vec!["kept".to_string()]));
}

#[tokio::test]
async fn a_point_lookup_answers_as_the_general_path_does() {
    let srv = server().await;
    let c = connect(srv.addr()).await;
    let other = connect(srv.addr()).await;
    exec(
        &c,
        "CREATE TABLE acc (aid INT PRIMARY KEY, bid INT, abalance INT, filler CHAR(84));
         INSERT INTO acc VALUES (1, 1, 100, 'a'), (2, 1, 200, 'b')",
    )
    .await;
    assert_eq!(
        query(&c, "SELECT abalance FROM acc WHERE aid = 2").await,
        Ok(cell("200"))
    );
    assert_eq!(
        lines(&c, "SELECT aid, abalance, bid FROM acc WHERE 1 = aid").await,
        ["1|100|1"]
    );
    // The same rows as a scan (`aid + 0` pins no index) gives.
    assert_eq!(
        lines(&c, "SELECT * FROM acc a WHERE a.aid = 2").await,
        lines(&c, "SELECT * FROM acc a WHERE a.aid + 0 = 2").await
    );
    assert_eq!(
        lines(&c, "SELECT * FROM acc a WHERE a.aid = 2").await.len(),
        1
    );
    // No such key, a key the column cannot hold, terms that contradict each other.
    assert_eq!(
        lines(&c, "SELECT abalance FROM acc WHERE aid = 3").await,
        Vec::<String>::new()
    );
    assert_eq!(
        lines(&c, "SELECT abalance FROM acc WHERE aid = 1.5").await,
        Vec::<String>::new()
    );
    assert_eq!(
        lines(&c, "SELECT abalance FROM acc WHERE aid = 1 AND aid = 2").await,
        Vec::<String>::new()
    );
    assert_eq!(
        code(&c, "SELECT nope FROM acc WHERE aid = 1").await,
        "42703"
    );
    // A running writer's change is not seen; once it commits, it is.
    exec(&other, "BEGIN; UPDATE acc SET abalance = 999 WHERE aid = 1").await;
    let stmt = c
        .prepare("SELECT abalance FROM acc WHERE aid = $1")
        .await
        .expect("prepare");
    let balance =
        |rows: Vec<tokio_postgres::Row>| -> Vec<i32> { rows.iter().map(|r| r.get(0)).collect() };
    assert_eq!(
        balance(c.query(&stmt, &[&1i32]).await.expect("query")),
        [100]
    );
    exec(&other, "COMMIT").await;
    assert_eq!(
        balance(c.query(&stmt, &[&1i32]).await.expect("query")),
        [999]
    );
}

//! INSERT ... ON CONFLICT, correlated subqueries, COPY FROM STDIN / TO STDOUT (text and
//! CSV), CancelRequest and protected mode, each against real clients: tokio-postgres,
//! psql (`\copy`, Ctrl-C's cancel) and psycopg 3's `copy()`. Each test starts an
//! in-memory server on port 0.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a test failure

use std::process::Command;

use service::CancellationToken;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

async fn server_with(args: sql::Args) -> sql::Running {
    sql::start(args, CancellationToken::new())
        .await
        .expect("sql server starts")
}

async fn server() -> sql::Running {
    server_with(sql::Args::ephemeral()).await
}

async fn connect(addr: std::net::SocketAddr) -> Client {
    let (client, conn) = tokio_postgres::connect(
        &format!(
            "host={} port={} user=test dbname=test",
            addr.ip(),
            addr.port()
        ),
        NoTls,
    )
    .await
    .expect("connect");
    tokio::spawn(conn);
    client
}

/// The rows of a simple query, as text.
async fn rows(c: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    c.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect()
}

/// The command tag's row count of a simple query (`INSERT 0 n`, `COPY n`, ...).
async fn count(c: &Client, sql: &str) -> u64 {
    c.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .find_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(n),
            _ => None,
        })
        .expect("a command tag")
}

/// The SQLSTATE and message of a statement that must fail.
async fn error(c: &Client, sql: &str) -> (String, String) {
    match c.simple_query(sql).await {
        Ok(_) => panic!("{sql}: expected an error"),
        Err(e) => match e.as_db_error() {
            Some(db) => (db.code().code().to_string(), db.message().to_string()),
            None => panic!("{sql}: {e}"),
        },
    }
}

fn table(rows: &[&[&str]]) -> Vec<Vec<Option<String>>> {
    rows.iter()
        .map(|r| {
            r.iter()
                .map(|v| (*v != "NULL").then(|| v.to_string()))
                .collect()
        })
        .collect()
}

fn need(tool: &str) {
    if Command::new(tool).arg("--version").output().is_err() {
        panic!(
            "{tool} is not installed: run .ci/run (it installs PostgreSQL's client tools and psycopg)"
        );
    }
}

#[tokio::test]
async fn on_conflict_do_nothing_and_do_update_with_excluded() {
    let srv = server().await;
    let c = connect(srv.addr()).await;
    rows(
        &c,
        "CREATE TABLE counters (name TEXT PRIMARY KEY, hits INT NOT NULL, \
         code INT UNIQUE, note TEXT DEFAULT 'new')",
    )
    .await;
    assert_eq!(
        count(
            &c,
            "INSERT INTO counters VALUES ('home', 1, 10), ('about', 1, 20)"
        )
        .await,
        2
    );

    // DO NOTHING on the primary key: the duplicate is skipped, the new row inserted.
    assert_eq!(
        count(
            &c,
            "INSERT INTO counters VALUES ('home', 99, 11), ('faq', 1, 30) \
             ON CONFLICT (name) DO NOTHING"
        )
        .await,
        1
    );
    // Without a target every unique constraint is an arbiter (here: code).
    assert_eq!(
        count(
            &c,
            "INSERT INTO counters VALUES ('other', 5, 10) ON CONFLICT DO NOTHING"
        )
        .await,
        0
    );
    // With a target, a duplicate in another unique constraint is still an error.
    let (code, message) = error(
        &c,
        "INSERT INTO counters VALUES ('other', 5, 10) ON CONFLICT (name) DO NOTHING",
    )
    .await;
    assert_eq!(code, "23505");
    assert!(message.contains("counters_code_key"), "{message}");

    // DO UPDATE: EXCLUDED is the proposed row, the table name the existing one, and an
    // unqualified column is the existing row's. RETURNING shows inserted and updated rows.
    assert_eq!(
        rows(
            &c,
            "INSERT INTO counters (name, hits) VALUES ('home', 5), ('new', 7) \
             ON CONFLICT (name) DO UPDATE SET hits = counters.hits + EXCLUDED.hits, \
             note = 'seen ' || hits RETURNING name, hits, note"
        )
        .await,
        table(&[&["home", "6", "seen 1"], &["new", "7", "new"]])
    );
    // An alias names the existing row; DO UPDATE ... WHERE can decline the update.
    assert_eq!(
        count(
            &c,
            "INSERT INTO counters AS c VALUES ('home', 100, 10) ON CONFLICT ON CONSTRAINT \
             counters_pkey DO UPDATE SET hits = c.hits + excluded.hits WHERE c.hits > 1000"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &c,
            "INSERT INTO counters AS c VALUES ('home', 100, 10) ON CONFLICT (name) \
             DO UPDATE SET hits = c.hits + excluded.hits WHERE c.hits < 1000"
        )
        .await,
        1
    );
    assert_eq!(
        rows(
            &c,
            "SELECT name, hits, code, note FROM counters ORDER BY name"
        )
        .await,
        table(&[
            &["about", "1", "20", "new"],
            &["faq", "1", "30", "new"],
            &["home", "106", "10", "seen 1"],
            &["new", "7", "NULL", "new"],
        ])
    );

    // The errors PostgreSQL gives.
    assert_eq!(
        error(
            &c,
            "INSERT INTO counters VALUES ('x', 1) ON CONFLICT (hits) DO NOTHING"
        )
        .await
        .0,
        "42P10"
    );
    assert_eq!(
        error(
            &c,
            "INSERT INTO counters VALUES ('x', 1) ON CONFLICT DO UPDATE SET hits = 1"
        )
        .await
        .0,
        "42601"
    );
    assert_eq!(
        error(
            &c,
            "INSERT INTO counters VALUES ('x', 1) ON CONFLICT ON CONSTRAINT nope DO NOTHING"
        )
        .await
        .0,
        "42704"
    );
    let (code, _) = error(
        &c,
        "INSERT INTO counters VALUES ('dup', 1), ('dup', 2) \
         ON CONFLICT (name) DO UPDATE SET hits = excluded.hits",
    )
    .await;
    assert_eq!(code, "21000");
    // The failed statement changed nothing.
    assert_eq!(
        rows(&c, "SELECT count(*) FROM counters WHERE name = 'dup'").await,
        table(&[&["0"]])
    );

    // Extended protocol, as an application's upsert runs it.
    let n = c
        .execute(
            "INSERT INTO counters (name, hits) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET hits = counters.hits + excluded.hits",
            &[&"faq", &41i32],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        rows(&c, "SELECT hits FROM counters WHERE name = 'faq'").await,
        table(&[&["42"]])
    );
    srv.stop().await;
}

#[tokio::test]
async fn concurrent_upserts_of_one_new_key_never_lose_a_count() {
    let srv = server().await;
    let setup = connect(srv.addr()).await;
    rows(&setup, "CREATE TABLE hits (page TEXT PRIMARY KEY, n INT)").await;
    // The first upserter holds its uncommitted insert; the second must wait for it, then
    // update the committed row instead of failing with 23505.
    let a = connect(srv.addr()).await;
    let b = connect(srv.addr()).await;
    let upsert = "INSERT INTO hits VALUES ('home', 1) ON CONFLICT (page) \
                  DO UPDATE SET n = hits.n + excluded.n";
    rows(&a, "BEGIN").await;
    assert_eq!(count(&a, upsert).await, 1);
    let mut waiting = tokio::spawn(async move { count(&b, upsert).await });
    // It does not finish (neither inserting nor failing) while a's insert is open.
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), &mut waiting)
            .await
            .is_err(),
        "the second upsert must wait for the first's uncommitted row"
    );
    rows(&a, "COMMIT").await;
    assert_eq!(waiting.await.unwrap(), 1);
    assert_eq!(rows(&setup, "SELECT n FROM hits").await, table(&[&["2"]]));
    srv.stop().await;
}

#[tokio::test]
async fn correlated_subqueries_read_the_outer_row() {
    let srv = server().await;
    let c = connect(srv.addr()).await;
    rows(
        &c,
        "CREATE TABLE customers (id INT PRIMARY KEY, name TEXT, spent INT); \
         CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT, total INT); \
         INSERT INTO customers (id, name) VALUES (1, 'ann'), (2, 'bob'), (3, 'cy'); \
         INSERT INTO orders VALUES (10, 1, 5), (11, 1, 50), (12, 2, 7)",
    )
    .await;
    // EXISTS / NOT EXISTS.
    assert_eq!(
        rows(
            &c,
            "SELECT name FROM customers c WHERE EXISTS \
             (SELECT 1 FROM orders o WHERE o.customer_id = c.id) ORDER BY name"
        )
        .await,
        table(&[&["ann"], &["bob"]])
    );
    assert_eq!(
        rows(
            &c,
            "SELECT name FROM customers c WHERE NOT EXISTS \
             (SELECT 1 FROM orders WHERE customer_id = c.id)"
        )
        .await,
        table(&[&["cy"]])
    );
    // Scalar subqueries in the select list, one value per outer row (NULL for none).
    assert_eq!(
        rows(
            &c,
            "SELECT name, (SELECT max(total) FROM orders o WHERE o.customer_id = c.id), \
             (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) FROM customers c \
             ORDER BY id"
        )
        .await,
        table(&[
            &["ann", "50", "2"],
            &["bob", "7", "1"],
            &["cy", "NULL", "0"]
        ])
    );
    // IN with a correlated subquery; an unqualified name that orders lacks is the outer
    // row's (while `id` would be orders' own).
    assert_eq!(
        rows(
            &c,
            "SELECT name FROM customers WHERE 50 IN \
             (SELECT total FROM orders WHERE customer_id = customers.id AND name = 'ann')"
        )
        .await,
        table(&[&["ann"]])
    );
    // Two levels: the innermost reads the outermost row.
    assert_eq!(
        rows(
            &c,
            "SELECT name FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE \
             o.customer_id = c.id AND o.total = (SELECT max(total) FROM orders o2 \
             WHERE o2.customer_id = c.id) AND o.total > 10)"
        )
        .await,
        table(&[&["ann"]])
    );
    // In UPDATE and DELETE.
    assert_eq!(
        count(
            &c,
            "UPDATE customers SET spent = (SELECT sum(total) FROM orders \
             WHERE customer_id = customers.id)"
        )
        .await,
        3
    );
    assert_eq!(
        rows(&c, "SELECT id, spent FROM customers ORDER BY id").await,
        table(&[&["1", "55"], &["2", "7"], &["3", "NULL"]])
    );
    assert_eq!(
        count(
            &c,
            "DELETE FROM customers c WHERE NOT EXISTS \
             (SELECT 1 FROM orders o WHERE o.customer_id = c.id)"
        )
        .await,
        1
    );
    // A scalar subquery with more than one row for some outer row is an error, and a
    // name found nowhere is still 42703.
    assert_eq!(
        error(
            &c,
            "SELECT (SELECT total FROM orders o WHERE o.customer_id = c.id) FROM customers c"
        )
        .await
        .0,
        "21000"
    );
    assert_eq!(
        error(
            &c,
            "SELECT name FROM customers c WHERE EXISTS (SELECT 1 FROM orders WHERE nope = c.id)"
        )
        .await
        .0,
        "42703"
    );
    srv.stop().await;
}

//! What a newcomer met on day one with psql and psycopg 3 on their defaults: a query that
//! took the whole process down, psycopg's rollback after a prepared statement, timestamps
//! psycopg could not read, and answers that were silently wrong. Each test starts an
//! in-memory server on port 0.

mod common;

use common::{cell, code, connect, exec, python, rows, server};

/// `a op b op c ...` with `n` operands `term(i)`.
fn chain(n: usize, op: &str, term: impl Fn(usize) -> String) -> String {
    (0..n).map(term).collect::<Vec<_>>().join(op)
}

/// `(((1 + 1 ...) + 1 + 1 ...) ...)`: `levels` parentheses, each around a sum of `terms`.
fn nested_sums(levels: usize, terms: usize) -> String {
    let sum = chain(terms, " + ", |_| "1".into());
    (0..levels).fold("1".to_string(), |inner, _| format!("({inner}) + {sum}"))
}

#[tokio::test]
async fn deep_expressions_fail_the_query_not_the_server() {
    let srv = server().await;
    let c = connect(srv.addr()).await;
    exec(&c, "CREATE TABLE accounts (id INT PRIMARY KEY)").await;
    exec(
        &c,
        "INSERT INTO accounts VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9)",
    )
    .await;

    // What ORMs generate: an OR of thousands of terms runs, in both protocols.
    let ors = format!(
        "SELECT count(*) FROM accounts WHERE {}",
        chain(3000, " OR ", |i| format!("id = {i}"))
    );
    assert_eq!(rows(&c, &ors).await, cell("10"));
    let n: i64 = c.query_one(&ors, &[]).await.expect("extended").get(0);
    assert_eq!(n, 10);
    let ands = format!(
        "SELECT count(*) FROM accounts WHERE {}",
        chain(3000, " AND ", |_| "id >= 5".into())
    );
    assert_eq!(rows(&c, &ands).await, cell("5"));

    // A short sum still adds up; a long one is refused with 54001, in both protocols.
    let sum = format!("SELECT {}", chain(190, " + ", |_| "1".into()));
    assert_eq!(rows(&c, &sum).await, cell("190"));
    let n: i32 = c.query_one(&sum, &[]).await.expect("extended").get(0);
    assert_eq!(n, 190);
    for hostile in [
        format!("SELECT {}", chain(100_000, " + ", |_| "1".into())),
        format!("SELECT {}", chain(3_000, " + ", |_| "1".into())),
        format!("SELECT 1{}", "::int".repeat(100_000)),
        format!("SELECT 1{}", " IS NULL".repeat(20_000)),
        format!("SELECT {}", nested_sums(10, 150)),
    ] {
        assert_eq!(code(&c, &hostile).await, "54001", "{}", &hostile[..40]);
        let e = c.prepare(&hostile).await.expect_err("refused at Parse");
        assert_eq!(e.code().map(|c| c.code()), Some("54001"));
    }
    // A syntax error after a long chain: the half-built tree goes without a trace.
    let broken = format!("SELECT {} +", chain(20_000, " + ", |_| "1".into()));
    assert_eq!(code(&c, &broken).await, "42601");

    // The same server, and the same session, still answer.
    assert_eq!(rows(&c, "SELECT count(*) FROM accounts").await, cell("10"));
    let other = connect(srv.addr()).await;
    assert_eq!(rows(&other, "SELECT 1 + 1").await, cell("2"));
    srv.stop().await;
}

#[allow(dead_code)]
async fn psycopg(port: u16, body: &str) -> String {
    let indented: String = body.lines().map(|l| format!("    {l}\n")).collect();
    python(format!(
        "import psycopg\nwith psycopg.connect(\"host=127.0.0.1 port={port} user=test dbname=test\") as conn:\n{indented}"
    ))
    .await
}

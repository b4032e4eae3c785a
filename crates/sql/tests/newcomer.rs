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

#[tokio::test]
async fn psycopg_rolls_back_after_preparing_and_sql_prepare_works() {
    let srv = server().await;
    let out = psycopg(
        srv.addr().port(),
        r#"
conn.execute("CREATE TABLE items (id INT PRIMARY KEY)")
conn.commit()
for i in range(6):  # the sixth run is a prepared statement (prepare_threshold = 5)
    conn.execute("INSERT INTO items VALUES (%s)", (i,))
conn.cursor().executemany("INSERT INTO items VALUES (%s)", [(10,), (11,)])
try:
    conn.execute("INSERT INTO items VALUES (%s)", (1,))
except psycopg.errors.UniqueViolation as e:
    print("unique", e.sqlstate)
conn.rollback()  # sends DEALLOCATE ALL
print(conn.execute("SELECT count(*) FROM items").fetchone()[0])
try:
    with conn.transaction():
        for i in range(6):
            conn.execute("INSERT INTO items VALUES (%s)", (100 + i,))
        conn.execute("INSERT INTO items VALUES (100)")
except psycopg.errors.UniqueViolation:
    print("rolled back")
print(conn.execute("SELECT count(*) FROM items WHERE id >= 100").fetchone()[0])
conn.rollback()
"#,
    )
    .await;
    assert_eq!(out, "unique 23505\n0\nrolled back\n0");

    let c = connect(srv.addr()).await;
    exec(&c, "CREATE TABLE t (id INT PRIMARY KEY, name TEXT)").await;
    exec(
        &c,
        "PREPARE ins (int, text) AS INSERT INTO t VALUES ($1, $2)",
    )
    .await;
    exec(&c, "EXECUTE ins(1, 'one'); EXECUTE ins (2, 'two')").await;
    exec(&c, "PREPARE one AS SELECT name FROM t WHERE id = $1").await;
    assert_eq!(rows(&c, "EXECUTE one(2)").await, cell("two"));
    assert_eq!(code(&c, "PREPARE one AS SELECT 1").await, "42P05");
    assert_eq!(code(&c, "EXECUTE one(1, 2)").await, "42601");
    exec(&c, "DEALLOCATE PREPARE one").await;
    assert_eq!(code(&c, "EXECUTE one(2)").await, "26000");
    assert_eq!(code(&c, "DEALLOCATE one").await, "26000");
    // A statement named by the protocol's Parse, dropped by DEALLOCATE ALL.
    let named = c
        .prepare("SELECT name FROM t WHERE id = $1")
        .await
        .expect("Parse");
    exec(&c, "DEALLOCATE ALL").await;
    assert!(c.query(&named, &[&1i32]).await.is_err(), "deallocated");
    assert_eq!(code(&c, "EXECUTE ins(3, 'x')").await, "26000");
    exec(&c, "PREPARE again AS SELECT 1; DISCARD PLANS").await;
    exec(&c, "DISCARD ALL").await;
    assert_eq!(code(&c, "EXECUTE again").await, "26000");
    assert_eq!(code(&c, "BEGIN; DISCARD ALL").await, "25001");
    srv.stop().await;
}

#[tokio::test]
async fn timestamps_have_microseconds_and_now_is_the_transaction_start() {
    let srv = server().await;
    let out = psycopg(
        srv.addr().port(),
        r#"
conn.execute("CREATE TABLE events (id INT PRIMARY KEY, at TIMESTAMPTZ DEFAULT now())")
conn.execute("INSERT INTO events (id) VALUES (1)")
conn.commit()
at = conn.execute("SELECT at FROM events").fetchone()[0]
print(type(at).__name__)
with conn.cursor(binary=True) as cur:
    print(cur.execute("SELECT at FROM events").fetchone()[0] == at)
with conn.transaction():
    first = conn.execute("SELECT now()").fetchone()[0]
    conn.execute("SELECT pg_sleep(0.01)")
    conn.execute("INSERT INTO events (id) VALUES (2)")
    same = conn.execute("SELECT now() = current_timestamp, now(), at FROM events WHERE id = 2").fetchone()
    print(same[0], same[1] == first, same[2] == first)
print(conn.execute("SELECT '2020-01-01 00:00:00.1234567'::timestamp").fetchone()[0])
"#,
    )
    .await;
    assert_eq!(
        out,
        "datetime\nTrue\nTrue True True\n2020-01-01 00:00:00.123457"
    );

    let c = connect(srv.addr()).await;
    let text = rows(&c, "SELECT now()::text").await;
    let text = text[0][0].clone().expect("a timestamp");
    let fraction = text.split('.').nth(1).unwrap_or("");
    assert!(fraction.len() <= 6, "{text}");
    assert_eq!(
        rows(&c, "SELECT '2020-01-01 10:00:00.5'::timestamp").await,
        cell("2020-01-01 10:00:00.5")
    );
    srv.stop().await;
}

#[tokio::test]
async fn filter_distinct_on_and_overflow_are_never_ignored() {
    let srv = server().await;
    let c = connect(srv.addr()).await;
    exec(
        &c,
        "CREATE TABLE accounts (id INT PRIMARY KEY, owner TEXT, balance NUMERIC(5,2));
         INSERT INTO accounts VALUES (1, 'ann', 0.5), (2, 'ann', 7), (3, 'bob', 3), (4, 'bob', 1)",
    )
    .await;
    let one = |sql: &'static str| {
        let c = &c;
        async move { rows(c, sql).await }
    };
    assert_eq!(
        one("SELECT count(*) FILTER (WHERE balance > 1), count(*) FROM accounts").await,
        vec![vec![Some("2".into()), Some("4".into())]]
    );
    assert_eq!(
        one("SELECT avg(balance) FILTER (WHERE false) IS NULL, sum(id) FILTER (WHERE owner = 'bob') FROM accounts").await,
        vec![vec![Some("t".into()), Some("7".into())]]
    );
    assert_eq!(
        one("SELECT owner, count(*) FILTER (WHERE balance >= 3) FROM accounts GROUP BY owner ORDER BY owner").await,
        vec![vec![Some("ann".into()), Some("1".into())], vec![Some("bob".into()), Some("1".into())]]
    );
    // DISTINCT ON: the first row of each owner in ORDER BY's order.
    assert_eq!(
        one("SELECT DISTINCT ON (owner) owner, id FROM accounts ORDER BY owner, balance DESC")
            .await,
        vec![
            vec![Some("ann".into()), Some("2".into())],
            vec![Some("bob".into()), Some("3".into())]
        ]
    );
    assert_eq!(
        one("SELECT DISTINCT ON (owner) id FROM accounts")
            .await
            .len(),
        2
    );
    assert_eq!(
        code(
            &c,
            "SELECT DISTINCT ON (owner) id FROM accounts ORDER BY id"
        )
        .await,
        "42P10"
    );
    assert_eq!(
        code(&c, "SELECT lower(owner) FILTER (WHERE true) FROM accounts").await,
        "42809"
    );
    assert_eq!(
        code(&c, "SELECT count(*) OVER () FROM accounts").await,
        "0A000"
    );

    // numeric(5,2): rounded to 2 places, at most 3 digits before the point.
    exec(&c, "INSERT INTO accounts VALUES (5, 'cy', 999.994)").await;
    assert_eq!(
        one("SELECT balance FROM accounts WHERE id = 5").await,
        cell("999.99")
    );
    assert_eq!(
        code(&c, "INSERT INTO accounts VALUES (6, 'cy', 999.995)").await,
        "22003"
    );
    assert_eq!(
        code(&c, "UPDATE accounts SET balance = 1000 WHERE id = 1").await,
        "22003"
    );
    assert_eq!(code(&c, "SELECT 12.5::numeric(2,1)").await, "22003");
    assert_eq!(one("SELECT 1.25::numeric(3,1)").await, cell("1.3"));

    // integer arithmetic overflows as integer; bigint has room.
    assert_eq!(code(&c, "SELECT 2147483647::int + 1").await, "22003");
    assert_eq!(
        code(&c, "SELECT id * 2147483647 FROM accounts WHERE id = 2").await,
        "22003"
    );
    assert_eq!(
        code(&c, "SELECT 32767::smallint + 1::smallint").await,
        "22003"
    );
    assert_eq!(
        one("SELECT 2147483647::bigint + 1").await,
        cell("2147483648")
    );
    assert_eq!(
        one("SELECT 2147483647 + 1::bigint").await,
        cell("2147483648")
    );
    srv.stop().await;
}

#[tokio::test]
async fn the_clients_declared_parameter_types_are_used() {
    let srv = server().await;
    let out = psycopg(
        srv.addr().port(),
        r#"
from datetime import date, datetime
from decimal import Decimal
conn.execute("CREATE TABLE days (d DATE, at TIMESTAMP, n INT)")
conn.execute("INSERT INTO days VALUES (%s, %s, %s)", (date(2026, 12, 6), datetime(2026, 12, 6, 1, 2, 3, 456789), 1))
print(conn.execute("SELECT d, at FROM days WHERE d = %s", (date(2026, 12, 6),)).fetchone())
print(repr(conn.execute("SELECT %s + 1", (1.5,)).fetchone()[0]))
print(repr(conn.execute("SELECT %s + 1", (Decimal("1.5"),)).fetchone()[0]))
print(repr(conn.execute("SELECT %s", (True,)).fetchone()[0]))
print(repr(conn.execute("SELECT %s", (7,)).fetchone()[0]))
print(repr(conn.execute("SELECT n + %s FROM days", (2,)).fetchone()[0]))
"#,
    )
    .await;
    assert_eq!(
        out,
        "(datetime.datetime(2026, 12, 6, 0, 0), datetime.datetime(2026, 12, 6, 1, 2, 3, 456789))\n2.5\nDecimal('2.5')\nTrue\n7\n3"
    );
    srv.stop().await;
}

async fn psycopg(port: u16, body: &str) -> String {
    let indented: String = body.lines().map(|l| format!("    {l}\n")).collect();
    python(format!(
        "import psycopg\nwith psycopg.connect(\"host=127.0.0.1 port={port} user=test dbname=test\") as conn:\n{indented}"
    ))
    .await
}

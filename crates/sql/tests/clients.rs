//! The sql server against real clients: tokio-postgres (simple and extended protocol),
//! psql and psycopg 3. Each test starts an in-memory server on port 0.

use std::process::Command;
use std::time::Duration;

use service::CancellationToken;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

mod common;

use common::{code, connect, need, python, rows, server, server_at, waiting};
use sql::isolation::Isolation;

/// A server whose sessions default to read committed (PostgreSQL's default, which
/// pgbench and the row-lock tests of issue 22 assume).
async fn read_committed_server() -> sql::Running {
    server_at(Isolation::ReadCommitted).await
}

/// Waits until `n` transactions are blocked on a lock, as `pg_locks` shows them.
async fn until_waiting(c: &Client, n: usize) {
    for _ in 0..2_000 {
        if waiting(c).await == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("expected {n} waiting transactions");
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[tokio::test]
async fn ddl_dml_queries_and_constraint_errors() {
    let srv = server().await;
    let c = connect(srv.addr()).await;
    c.batch_execute(
        "CREATE TABLE users (id SERIAL PRIMARY KEY, email VARCHAR(50) UNIQUE NOT NULL, age INT CHECK (age >= 0), score NUMERIC(10,2) DEFAULT 0);
         CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id INT REFERENCES users(id) ON DELETE CASCADE, total DOUBLE PRECISION, note TEXT);",
    )
    .await
    .expect("create tables");
    let inserted = rows(
        &c,
        "INSERT INTO users (email, age) VALUES ('a@x', 30), ('b@x', 20), ('c@x', NULL) RETURNING id, email",
    )
    .await;
    assert_eq!(
        inserted,
        vec![
            vec![s("1"), s("a@x")],
            vec![s("2"), s("b@x")],
            vec![s("3"), s("c@x")]
        ]
    );
    c.batch_execute(
        "INSERT INTO orders VALUES (10, 1, 5.5, 'x'), (11, 1, 4.5, NULL), (12, 2, 1, 'y')",
    )
    .await
    .expect("orders");
    // WHERE / ORDER BY / LIMIT / OFFSET
    assert_eq!(
        rows(
            &c,
            "SELECT email FROM users WHERE age IS NOT NULL ORDER BY age DESC LIMIT 1 OFFSET 1"
        )
        .await,
        vec![vec![s("b@x")]]
    );
    // Join (hash join) with aggregates, GROUP BY and HAVING
    assert_eq!(
        rows(
            &c,
            "SELECT u.email, count(*), sum(o.total) FROM users u JOIN orders o ON o.user_id = u.id GROUP BY u.email HAVING count(*) > 1"
        )
        .await,
        vec![vec![s("a@x"), s("2"), s("10")]]
    );
    assert_eq!(
        rows(&c, "SELECT u.email, o.id FROM users u LEFT JOIN orders o ON o.user_id = u.id WHERE u.id = 3").await,
        vec![vec![s("c@x"), None]]
    );
    assert_eq!(
        rows(&c, "SELECT DISTINCT user_id FROM orders ORDER BY 1").await,
        vec![vec![s("1")], vec![s("2")]]
    );
    // A key the column's type cannot hold finds nothing (and is no error).
    assert!(
        rows(&c, "SELECT * FROM users WHERE id = 1.5")
            .await
            .is_empty()
    );
    assert!(
        rows(&c, "SELECT * FROM users WHERE id = 3000000000")
            .await
            .is_empty()
    );
    // NUMERIC is exact and rounds to its scale.
    assert_eq!(
        rows(
            &c,
            "UPDATE users SET score = score + 0.105 WHERE id = 1 RETURNING score"
        )
        .await,
        vec![vec![s("0.11")]]
    );
    // EXPLAIN shows the index lookup and the join method.
    let plan = rows(&c, "EXPLAIN SELECT * FROM users WHERE id = 1").await;
    assert!(
        plan[0][0]
            .as_deref()
            .unwrap_or("")
            .contains("Index Scan using users_pkey"),
        "{plan:?}"
    );
    // Subqueries (uncorrelated) in IN, EXISTS and scalar position.
    assert_eq!(
        rows(&c, "SELECT email FROM users WHERE id IN (SELECT user_id FROM orders WHERE total > 2) ORDER BY email").await,
        vec![vec![s("a@x")]]
    );
    assert_eq!(
        rows(
            &c,
            "SELECT (SELECT max(total) FROM orders), EXISTS (SELECT 1 FROM orders WHERE id = 99)"
        )
        .await,
        vec![vec![s("5.5"), s("f")]]
    );
    assert_eq!(code(&c, "SELECT (SELECT id FROM orders)").await, "21000");
    assert_eq!(
        rows(
            &c,
            "SELECT user_id FROM orders UNION SELECT id FROM users ORDER BY 1 DESC LIMIT 2"
        )
        .await,
        vec![vec![s("3")], vec![s("2")]]
    );
    assert_eq!(rows(&c, "SELECT 1 UNION ALL SELECT 1").await.len(), 2);
    assert_eq!(
        rows(&c, "UPDATE orders SET note = 'big' WHERE user_id IN (SELECT id FROM users WHERE age > 25) RETURNING id").await.len(),
        2
    );
    assert_eq!(
        rows(
            &c,
            "SELECT count(*), sum(g) FROM generate_series(1, 10) AS g"
        )
        .await,
        vec![vec![s("10"), s("55")]]
    );
    let plan = rows(
        &c,
        "EXPLAIN SELECT * FROM users u JOIN orders o ON o.user_id = u.id",
    )
    .await;
    assert!(
        plan[0][0].as_deref().unwrap_or("").contains("Hash Join"),
        "{plan:?}"
    );
    // Constraint errors carry PostgreSQL's SQLSTATEs, and change nothing.
    assert_eq!(
        code(&c, "INSERT INTO users (email) VALUES ('a@x')").await,
        "23505"
    );
    assert_eq!(
        code(&c, "INSERT INTO orders VALUES (13, 99, 1, NULL)").await,
        "23503"
    );
    assert_eq!(
        code(&c, "INSERT INTO users (email, age) VALUES (NULL, 1)").await,
        "23502"
    );
    assert_eq!(
        code(&c, "INSERT INTO users (email, age) VALUES ('d@x', -1)").await,
        "23514"
    );
    assert_eq!(code(&c, "SELECT * FROM nope").await, "42P01");
    assert_eq!(code(&c, "SELECT nope FROM users").await, "42703");
    assert_eq!(code(&c, "SELECT 1/0").await, "22012");
    assert_eq!(
        code(
            &c,
            "INSERT INTO users (email) VALUES ('a@x') ON CONFLICT (email) WHERE age > 0 DO NOTHING"
        )
        .await,
        "0A000"
    );
    // ON CONFLICT DO NOTHING skips the duplicate and inserts the rest.
    let inserted = c
        .execute(
            "INSERT INTO users (email) VALUES ('a@x'), ('z@x') ON CONFLICT DO NOTHING",
            &[],
        )
        .await
        .expect("insert");
    assert_eq!(inserted, 1);
    c.batch_execute("DELETE FROM users WHERE email = 'z@x'")
        .await
        .expect("delete");
    match c.simple_query("SELECT * FROM users WHERE").await {
        Err(e) => {
            let db = e.as_db_error().expect("a server error");
            assert_eq!(db.code().code(), "42601");
            assert!(db.position().is_some(), "syntax errors carry a position");
        }
        Ok(_) => panic!("syntax error expected"),
    }
    assert_eq!(
        rows(&c, "SELECT count(*) FROM users").await,
        vec![vec![s("3")]]
    );
    // ON DELETE CASCADE removes the orders.
    c.batch_execute("DELETE FROM users WHERE id = 1")
        .await
        .expect("delete");
    assert_eq!(
        rows(&c, "SELECT count(*) FROM orders").await,
        vec![vec![s("1")]]
    );
    c.batch_execute("DROP TABLE orders; DROP TABLE users")
        .await
        .expect("drop");
    assert_eq!(code(&c, "SELECT * FROM users").await, "42P01");
    srv.stop().await;
}

#[tokio::test]
async fn transaction_blocks_abort_and_disconnect_rollback() {
    let srv = server().await;
    let c = connect(srv.addr()).await;
    c.batch_execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT)")
        .await
        .expect("create");
    c.batch_execute("BEGIN; INSERT INTO t VALUES (1, 'a'); ROLLBACK")
        .await
        .expect("rollback");
    assert_eq!(rows(&c, "SELECT count(*) FROM t").await, vec![vec![s("0")]]);
    c.batch_execute("START TRANSACTION; INSERT INTO t VALUES (1, 'a'); END")
        .await
        .expect("end");
    assert_eq!(rows(&c, "SELECT v FROM t").await, vec![vec![s("a")]]);
    // An error in a block: everything else refused with 25P02 until ROLLBACK.
    c.batch_execute("BEGIN").await.expect("begin");
    c.batch_execute("INSERT INTO t VALUES (2, 'b')")
        .await
        .expect("insert");
    assert_eq!(code(&c, "INSERT INTO t VALUES (1, 'dup')").await, "23505");
    assert_eq!(code(&c, "SELECT 1").await, "25P02");
    let commit = c
        .simple_query("COMMIT")
        .await
        .expect("commit of a failed block");
    assert!(matches!(
        commit.last(),
        Some(SimpleQueryMessage::CommandComplete(_))
    ));
    assert_eq!(rows(&c, "SELECT count(*) FROM t").await, vec![vec![s("1")]]);
    // Another client's uncommitted insert is invisible; disconnecting rolls it back.
    let other = connect(srv.addr()).await;
    other
        .batch_execute("BEGIN; INSERT INTO t VALUES (3, 'c')")
        .await
        .expect("insert");
    assert_eq!(rows(&c, "SELECT count(*) FROM t").await, vec![vec![s("1")]]);
    drop(other);
    // Once the session is gone, inserting key 3 neither waits nor conflicts.
    tokio::time::timeout(
        Duration::from_secs(10),
        c.batch_execute("INSERT INTO t VALUES (3, 'mine')"),
    )
    .await
    .expect("no wait after the disconnect rolled back")
    .expect("insert 3");
    srv.stop().await;
}

#[tokio::test]
async fn second_updater_waits_for_the_row_lock_and_deadlocks_are_detected() {
    let srv = read_committed_server().await;
    let a = connect(srv.addr()).await;
    let b = connect(srv.addr()).await;
    let observer = connect(srv.addr()).await;
    a.batch_execute("CREATE TABLE acct (id INT PRIMARY KEY, balance INT); INSERT INTO acct VALUES (1, 100), (2, 100)")
        .await
        .expect("setup");
    a.batch_execute("BEGIN; UPDATE acct SET balance = balance - 10 WHERE id = 1")
        .await
        .expect("a updates");
    let waiter = tokio::spawn(async move {
        b.batch_execute("UPDATE acct SET balance = balance - 5 WHERE id = 1")
            .await
            .map(|_| b)
    });
    // The second updater waits for the first's row lock.
    until_waiting(&observer, 1).await;
    assert!(!waiter.is_finished());
    a.batch_execute("COMMIT").await.expect("commit");
    let b = waiter
        .await
        .expect("join")
        .expect("b's update runs after a commits");
    // No lost update: both decrements applied.
    assert_eq!(
        rows(&a, "SELECT balance FROM acct WHERE id = 1").await,
        vec![vec![s("85")]]
    );

    // Deadlock: a locks 1 then wants 2; b locks 2 then wants 1.
    a.batch_execute("BEGIN; UPDATE acct SET balance = 0 WHERE id = 1")
        .await
        .expect("a1");
    b.batch_execute("BEGIN; UPDATE acct SET balance = 0 WHERE id = 2")
        .await
        .expect("b2");
    let a_task = tokio::spawn(async move {
        let r = a
            .batch_execute("UPDATE acct SET balance = 1 WHERE id = 2")
            .await;
        (a, r)
    });
    until_waiting(&observer, 1).await;
    let b_result = b
        .batch_execute("UPDATE acct SET balance = 1 WHERE id = 1")
        .await;
    let deadlocked = b_result
        .err()
        .and_then(|e| e.code().map(|c| c.code().to_string()));
    assert_eq!(deadlocked.as_deref(), Some("40P01"));
    b.batch_execute("ROLLBACK").await.expect("rollback");
    let (a, r) = a_task.await.expect("join");
    r.expect("a proceeds once b rolled back");
    a.batch_execute("COMMIT").await.expect("commit");
    srv.stop().await;
}

#[tokio::test]
async fn extended_protocol_with_parameters() {
    let srv = server().await;
    let c = connect(srv.addr()).await;
    c.batch_execute("CREATE TABLE kv (k INT PRIMARY KEY, v TEXT, n BIGINT, ok BOOLEAN)")
        .await
        .expect("create");
    let insert = c
        .prepare("INSERT INTO kv VALUES ($1, $2, $3, $4)")
        .await
        .expect("prepare");
    for i in 0..5i32 {
        c.execute(
            &insert,
            &[&i, &format!("v{i}"), &(i as i64 * 10), &(i % 2 == 0)],
        )
        .await
        .expect("insert");
    }
    let row = c
        .query_one("SELECT v, n, ok FROM kv WHERE k = $1", &[&3i32])
        .await
        .expect("select");
    assert_eq!(row.get::<_, String>(0), "v3");
    assert_eq!(row.get::<_, i64>(1), 30);
    assert!(!row.get::<_, bool>(2));
    let n = c
        .execute("UPDATE kv SET v = $1 WHERE k >= $2", &[&"big", &3i32])
        .await
        .expect("update");
    assert_eq!(n, 2);
    let all = c
        .query("SELECT k FROM kv WHERE v = $1 ORDER BY k", &[&"big"])
        .await
        .expect("query");
    assert_eq!(
        all.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>(),
        vec![3, 4]
    );
    let both = c
        .query(
            "SELECT k FROM kv WHERE k < $1 UNION SELECT k FROM kv WHERE k > $2 ORDER BY 1",
            &[&1i32, &3i32],
        )
        .await
        .expect("union over the extended protocol");
    assert_eq!(
        both.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>(),
        vec![0, 4]
    );
    let err = c
        .execute(&insert, &[&1i32, &"dup", &0i64, &true])
        .await
        .expect_err("duplicate");
    assert_eq!(err.code().map(|c| c.code()), Some("23505"));
    srv.stop().await;
}

#[tokio::test]
async fn psql_runs_commands() {
    need("psql");
    let srv = server().await;
    let port = srv.addr().port();
    let psql = |sql: &str| {
        let sql = sql.to_string();
        async move {
            tokio::task::spawn_blocking(move || {
                Command::new("psql")
                    .args(common::psql_args(port, &sql))
                    .output()
                    .expect("psql runs")
            })
            .await
            .expect("join")
        }
    };
    let out = psql("CREATE TABLE p (id INT PRIMARY KEY, name TEXT)").await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = psql("INSERT INTO p VALUES (1, 'one'), (2, 'two')").await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "INSERT 0 2");
    let out = psql("SELECT name FROM p ORDER BY id DESC").await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "two\none");
    let out = psql("INSERT INTO p VALUES (1, 'again')").await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("duplicate key value violates unique constraint \"p_pkey\"")
    );
    // psql's \dt is a catalog query; the server answers it from its own catalog.
    let out = psql("\\dt").await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "public|p|table|infralab"
    );
    srv.stop().await;
}

#[tokio::test]
async fn psycopg_end_to_end() {
    let srv = server().await;
    let port = srv.addr().port();
    let script = format!(
        r#"
import psycopg
with psycopg.connect("host=127.0.0.1 port={port} user=test dbname=test") as conn:
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE items (id INT PRIMARY KEY, name TEXT, price NUMERIC(8,2))")
        cur.execute("INSERT INTO items VALUES (%s, %s, %s)", (1, "pen", "1.50"))
        cur.execute("INSERT INTO items VALUES (%s, %s, %s)", (2, "ink", "7.25"))
    conn.commit()
    with conn.cursor() as cur:
        cur.execute("SELECT name, price FROM items WHERE id = %s", (2,))
        print(cur.fetchone())
        try:
            cur.execute("INSERT INTO items VALUES (1, 'dup', 0)")
        except psycopg.errors.UniqueViolation as e:
            print("unique", e.sqlstate)
    conn.rollback()
"#
    );
    let stdout = python(script).await;
    assert_eq!(stdout.trim(), "('ink', Decimal('7.25'))\nunique 23505");
    srv.stop().await;
}

#[tokio::test]
async fn checkpoints_bound_the_log_and_recovery_reads_them() {
    let dir = std::env::temp_dir().join(format!("infralab-sql-ckpt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let args = sql::Args {
        dir: Some(dir.clone()),
        checkpoint_bytes: 4096,
        ..sql::Args::ephemeral()
    };
    let srv = sql::start(args.clone(), CancellationToken::new())
        .await
        .expect("start");
    let c = connect(srv.addr()).await;
    c.batch_execute("CREATE TABLE p (id INT PRIMARY KEY); CREATE TABLE t (id SERIAL PRIMARY KEY, p INT REFERENCES p(id), v TEXT); INSERT INTO p VALUES (1)")
        .await
        .expect("schema");
    for i in 0..300 {
        c.batch_execute(&format!(
            "INSERT INTO t (p, v) VALUES (1, 'row {i} with some padding to grow the log')"
        ))
        .await
        .expect("insert");
    }
    c.batch_execute("UPDATE t SET v = 'changed' WHERE id = 7; DELETE FROM t WHERE id = 8")
        .await
        .expect("write");
    drop(c);
    srv.stop().await;
    let names: Vec<String> = std::fs::read_dir(&dir)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("checkpoint.") && n != "checkpoint.0"),
        "{names:?}"
    );
    assert!(
        !names.contains(&"wal.0".to_string()),
        "the first log was superseded: {names:?}"
    );
    let srv = sql::start(args, CancellationToken::new())
        .await
        .expect("restart");
    let c = connect(srv.addr()).await;
    assert_eq!(
        rows(&c, "SELECT count(*) FROM t").await,
        vec![vec![s("299")]]
    );
    assert_eq!(
        rows(&c, "SELECT v FROM t WHERE id = 7").await,
        vec![vec![s("changed")]]
    );
    // The sequence continues after the checkpoint, and the foreign key still holds.
    assert_eq!(
        rows(&c, "INSERT INTO t (p, v) VALUES (1, 'next') RETURNING id").await,
        vec![vec![s("301")]]
    );
    assert_eq!(
        code(&c, "INSERT INTO t (p, v) VALUES (2, 'x')").await,
        "23503"
    );
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn malformed_protocol_input_does_not_hurt_other_clients() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = server().await;
    let c = connect(srv.addr()).await;
    c.batch_execute("CREATE TABLE t (id INT)")
        .await
        .expect("create");
    let bad_inputs: Vec<Vec<u8>> = vec![
        b"garbage that is not a startup packet".to_vec(),
        // A startup packet announcing 1 GiB.
        [0x40u8, 0, 0, 0, 0, 3, 0, 0].to_vec(),
        // A length smaller than its own header.
        [0u8, 0, 0, 1].to_vec(),
    ];
    for bad in bad_inputs {
        let mut s = tokio::net::TcpStream::connect(srv.addr())
            .await
            .expect("connect");
        s.write_all(&bad).await.expect("write");
        let mut buf = vec![0u8; 1024];
        // The server answers with an error or closes; either way it goes on serving.
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
    }
    // After a valid startup: a query message announcing 2 GiB.
    let mut raw = tokio::net::TcpStream::connect(srv.addr())
        .await
        .expect("connect");
    let params = b"user\0test\0database\0test\0\0";
    let mut startup = Vec::new();
    startup.extend_from_slice(&((8 + params.len()) as u32).to_be_bytes());
    startup.extend_from_slice(&196608u32.to_be_bytes());
    startup.extend_from_slice(params);
    raw.write_all(&startup).await.expect("startup");
    let mut buf = vec![0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf)).await;
    raw.write_all(&[b'Q', 0x7f, 0xff, 0xff, 0xff])
        .await
        .expect("huge query");
    let _ = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf)).await;
    // Everyone else is still served.
    assert_eq!(rows(&c, "SELECT count(*) FROM t").await, vec![vec![s("0")]]);
    let again = connect(srv.addr()).await;
    assert_eq!(rows(&again, "SELECT 1").await, vec![vec![s("1")]]);
    srv.stop().await;
}

#[tokio::test]
async fn password_is_required_with_scram() {
    let args = sql::Args {
        password: Some("s3cret".into()),
        ..sql::Args::ephemeral()
    };
    let srv = sql::start(args, CancellationToken::new())
        .await
        .expect("start");
    let port = srv.addr().port();
    let wrong = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=u password=nope"),
        NoTls,
    )
    .await;
    assert!(wrong.is_err(), "a wrong password is refused");
    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=u password=s3cret"),
        NoTls,
    )
    .await
    .expect("the right password is accepted (SCRAM-SHA-256)");
    tokio::spawn(conn);
    assert_eq!(rows(&client, "SELECT 1 + 1").await, vec![vec![s("2")]]);
    srv.stop().await;
}

#[tokio::test]
async fn pgbench_initialises_and_runs_tpc_b() {
    need("pgbench");
    // pgbench does not retry 40001, so run it at PostgreSQL's default level.
    let srv = read_committed_server().await;
    let port = srv.addr().port().to_string();
    let run = |args: Vec<&'static str>| {
        let port = port.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                Command::new("pgbench")
                    .args(["-h", "127.0.0.1", "-p", &port, "-U", "test"])
                    .args(args)
                    .arg("test")
                    .output()
                    .expect("pgbench runs")
            })
            .await
            .expect("join")
        }
    };
    // Client-side generation: COPY ... FROM STDIN, then ALTER TABLE ... ADD PRIMARY KEY.
    let init = run(vec!["-i", "-s", "1"]).await;
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    for mode in ["simple", "prepared"] {
        let out = run(vec!["-n", "-c", "4", "-j", "2", "-t", "25", "-M", mode]).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("number of transactions actually processed: 100/100"),
            "{stdout}"
        );
    }
    // TPC-B keeps the books balanced: every delta is applied to an account, a teller
    // and a branch, and logged in the history.
    let c = connect(srv.addr()).await;
    assert_eq!(
        rows(&c, "SELECT count(*) FROM pgbench_history").await,
        vec![vec![s("200")]]
    );
    let a = rows(&c, "SELECT sum(abalance) FROM pgbench_accounts").await;
    let t = rows(&c, "SELECT sum(tbalance) FROM pgbench_tellers").await;
    let b = rows(&c, "SELECT sum(bbalance) FROM pgbench_branches").await;
    let h = rows(&c, "SELECT sum(delta) FROM pgbench_history").await;
    assert_eq!(a, t);
    assert_eq!(t, b);
    assert_eq!(b, h);
    assert_eq!(
        rows(&c, "SELECT count(*) FROM pgbench_accounts").await,
        vec![vec![s("100000")]]
    );
    srv.stop().await;
}

#[tokio::test]
async fn maxclients_refuses_with_53300() {
    let args = sql::Args {
        maxclients: 1,
        ..sql::Args::ephemeral()
    };
    let srv = sql::start(args, CancellationToken::new())
        .await
        .expect("start");
    let first = connect(srv.addr()).await;
    let second = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={} user=test", srv.addr().port()),
        NoTls,
    )
    .await;
    let code = second
        .err()
        .and_then(|e| e.code().map(|c| c.code().to_string()));
    assert_eq!(code.as_deref(), Some("53300"));
    assert_eq!(rows(&first, "SELECT 1").await, vec![vec![s("1")]]);
    srv.stop().await;
}

#[tokio::test]
async fn lock_timeout_and_statement_timeout_cancel_a_wait() {
    let srv = server().await;
    let a = connect(srv.addr()).await;
    let b = connect(srv.addr()).await;
    a.batch_execute("CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t VALUES (1, 0)")
        .await
        .expect("setup");
    a.batch_execute("BEGIN; UPDATE t SET v = 1 WHERE id = 1")
        .await
        .expect("lock");
    b.batch_execute("SET lock_timeout = '100ms'")
        .await
        .expect("set");
    assert_eq!(code(&b, "UPDATE t SET v = 2 WHERE id = 1").await, "55P03");
    b.batch_execute("SET lock_timeout = 0; SET statement_timeout = 100")
        .await
        .expect("set");
    assert_eq!(code(&b, "UPDATE t SET v = 2 WHERE id = 1").await, "57014");
    a.batch_execute("COMMIT").await.expect("commit");
    assert_eq!(rows(&b, "SELECT v FROM t").await, vec![vec![s("1")]]);
    srv.stop().await;
}

#[tokio::test]
async fn a_parse_error_in_a_block_aborts_it_in_both_protocols() {
    let srv = server().await;
    let c = connect(srv.addr()).await;
    c.batch_execute("CREATE TABLE t (id INT)")
        .await
        .expect("create");
    c.batch_execute("BEGIN").await.expect("begin");
    // Extended protocol: Parse fails.
    assert!(c.prepare("SELEC 1").await.is_err());
    assert_eq!(code(&c, "INSERT INTO t VALUES (1)").await, "25P02");
    assert_eq!(code(&c, "BEGIN").await, "25P02");
    c.batch_execute("ROLLBACK").await.expect("rollback");
    // Simple protocol: the same.
    c.batch_execute("BEGIN").await.expect("begin");
    assert_eq!(code(&c, "SELEC 1").await, "42601");
    assert_eq!(code(&c, "INSERT INTO t VALUES (1)").await, "25P02");
    c.batch_execute("ROLLBACK").await.expect("rollback");
    assert_eq!(rows(&c, "SELECT count(*) FROM t").await, vec![vec![s("0")]]);
    srv.stop().await;
}

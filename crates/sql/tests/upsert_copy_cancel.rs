//! INSERT ... ON CONFLICT, correlated subqueries, COPY FROM STDIN / TO STDOUT (text and
//! CSV), CancelRequest (and pg_cancel_backend, statement_timeout) and protected mode,
//! each against real clients: tokio-postgres, psql (`\copy`, Ctrl-C's cancel) and
//! psycopg 3's `copy()`. Each test starts an in-memory server on port 0 (the protected
//! mode test binds 0.0.0.0 and connects through this host's non-loopback address).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a test failure

use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

mod common;

use common::{connect, psql_args, rows, run, server, server_at, server_with};
use sql::isolation::Isolation;

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

/// Two sessions upsert one new key; the first holds its uncommitted insert. The second
/// must wait for it (neither inserting nor failing with 23505), then, at `level`, either
/// update the committed row (read committed) or give up with `outcome` (repeatable read:
/// the row changed after its snapshot, 40001, as PostgreSQL).
async fn concurrent_upserts(level: Isolation) -> Result<u64, String> {
    let srv = server_at(level).await;
    let setup = connect(srv.addr()).await;
    rows(&setup, "CREATE TABLE hits (page TEXT PRIMARY KEY, n INT)").await;
    let a = connect(srv.addr()).await;
    let b = connect(srv.addr()).await;
    let upsert = "INSERT INTO hits VALUES ('home', 1) ON CONFLICT (page) \
                  DO UPDATE SET n = hits.n + excluded.n";
    rows(&a, "BEGIN").await;
    assert_eq!(count(&a, upsert).await, 1);
    let mut waiting = tokio::spawn(async move {
        match b.simple_query(upsert).await {
            Ok(messages) => Ok(messages
                .into_iter()
                .find_map(|m| match m {
                    SimpleQueryMessage::CommandComplete(n) => Some(n),
                    _ => None,
                })
                .unwrap_or(0)),
            Err(e) => Err(e.code().map(|c| c.code().to_string()).unwrap_or_default()),
        }
    });
    // It does not finish (neither inserting nor failing) while a's insert is open.
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), &mut waiting)
            .await
            .is_err(),
        "the second upsert must wait for the first's uncommitted row"
    );
    rows(&a, "COMMIT").await;
    let outcome = waiting.await.unwrap();
    let expected = if outcome.is_ok() { "2" } else { "1" };
    assert_eq!(
        rows(&setup, "SELECT n FROM hits").await,
        table(&[&[expected]])
    );
    srv.stop().await;
    outcome
}

#[tokio::test]
async fn concurrent_upserts_of_one_new_key_never_lose_a_count() {
    assert_eq!(concurrent_upserts(Isolation::ReadCommitted).await, Ok(1));
    assert_eq!(
        concurrent_upserts(Isolation::RepeatableRead).await,
        Err("40001".to_string())
    );
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

#[tokio::test]
async fn copy_from_stdin_and_to_stdout_in_text_and_csv_with_tokio_postgres() {
    use futures::{SinkExt, TryStreamExt};
    let srv = server().await;
    let c = connect(srv.addr()).await;
    rows(
        &c,
        "CREATE TABLE people (id INT PRIMARY KEY, name TEXT, note TEXT, \
         score NUMERIC(5,1) DEFAULT 0)",
    )
    .await;

    // CSV with a header, quotes, a NULL and a line break inside quotes, sent in chunks
    // that cut rows (and a quoted field) in the middle.
    let data = "id,name,note\n1,\"Ann, \"\"the first\"\"\",\n2,bob,\"two\nlines\"\n3,\"\",x\n";
    let sink = c
        .copy_in("COPY people (id, name, note) FROM STDIN (FORMAT csv, HEADER)")
        .await
        .unwrap();
    futures::pin_mut!(sink);
    for chunk in data.as_bytes().chunks(7) {
        sink.send(bytes::Bytes::copy_from_slice(chunk))
            .await
            .unwrap();
    }
    assert_eq!(sink.finish().await.unwrap(), 3);
    assert_eq!(
        rows(&c, "SELECT id, name, note, score FROM people ORDER BY id").await,
        table(&[
            &["1", "Ann, \"the first\"", "NULL", "0.0"],
            &["2", "bob", "two\nlines", "0.0"],
            &["3", "", "x", "0.0"],
        ])
    );

    // Text format, the default: tabs, \N, backslash escapes.
    let sink = c.copy_in("COPY people FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(
        b"4\ttab\\there\t\\N\t1.5\n5\tback\\\\slash\tn\t2\n",
    ))
    .await
    .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 2);

    // Out again, exactly as PostgreSQL writes it.
    let out = |sql: &'static str| {
        let c = &c;
        async move {
            let stream = c.copy_out(sql).await.unwrap();
            let chunks: Vec<bytes::Bytes> = stream.try_collect().await.unwrap();
            String::from_utf8(chunks.concat()).unwrap()
        }
    };
    assert_eq!(
        out("COPY people TO STDOUT").await,
        "1\tAnn, \"the first\"\t\\N\t0.0\n2\tbob\ttwo\\nlines\t0.0\n3\t\tx\t0.0\n\
         4\ttab\\there\t\\N\t1.5\n5\tback\\\\slash\tn\t2.0\n"
    );
    assert_eq!(
        out("COPY people (id, name, note) TO STDOUT WITH (FORMAT csv, HEADER)").await,
        "id,name,note\n1,\"Ann, \"\"the first\"\"\",\n2,bob,\"two\nlines\"\n3,\"\",x\n\
         4,tab\there,\n5,back\\slash,n\n"
    );
    assert_eq!(
        out(
            "COPY (SELECT id, score * 2 AS double FROM people WHERE id > 3 ORDER BY id DESC) \
             TO STDOUT CSV HEADER"
        )
        .await,
        "id,double\n5,4.0\n4,3.0\n"
    );

    // A bad row fails the whole COPY: nothing of it stays, the server goes on.
    let sink = c
        .copy_in("COPY people (id, name) FROM STDIN")
        .await
        .unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"6\tok\nseven\tbad\n"))
        .await
        .unwrap();
    let err = sink.finish().await.unwrap_err();
    let db = err.as_db_error().expect("an error response");
    assert_eq!(db.code().code(), "22P02");
    assert!(db.message().contains("line 2"), "{}", db.message());
    assert_eq!(
        rows(&c, "SELECT count(*) FROM people").await,
        table(&[&["5"]])
    );
    // Unsupported and refused forms get errors, not silence.
    assert_eq!(
        error(&c, "COPY people TO STDOUT (FORMAT binary)").await.0,
        "0A000"
    );
    assert_eq!(error(&c, "COPY people TO '/tmp/x'").await.0, "42501");
    srv.stop().await;
}

#[tokio::test]
async fn psql_copy_and_psycopg_copy() {
    let srv = server().await;
    let port = srv.addr().port();
    let c = connect(srv.addr()).await;
    rows(
        &c,
        "CREATE TABLE t (id INT PRIMARY KEY, name TEXT, ok BOOLEAN)",
    )
    .await;
    let dir = std::env::temp_dir().join(format!("sql-copy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.csv");
    std::fs::write(&input, "id,name,ok\n1,\"a, b\",true\n2,,false\n").unwrap();

    // psql's \copy reads the file itself and sends COPY ... FROM STDIN ... csv header.
    let (ok, out, err) = run(
        "psql",
        psql_args(
            port,
            &format!("\\copy t from '{}' csv header", input.display()),
        ),
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "COPY 2");
    let output = dir.join("out.txt");
    let (ok, _, err) = run(
        "psql",
        psql_args(port, &format!("\\copy t to '{}'", output.display())),
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "1\ta, b\tt\n2\t\\N\tf\n"
    );

    // psycopg 3: write_row (text format) and reading CSV back.
    let script = format!(
        r#"
import psycopg
with psycopg.connect("host=127.0.0.1 port={port} user=test dbname=test") as conn:
    with conn.cursor() as cur:
        with cur.copy("COPY t (id, name) FROM STDIN") as copy:
            copy.write_row((3, "tab\there"))
            copy.write_row((4, None))
        print(cur.rowcount)
    conn.commit()
    with conn.cursor() as cur:
        data = b""
        with cur.copy("COPY (SELECT id, name FROM t WHERE id > 2 ORDER BY id) TO STDOUT (FORMAT CSV)") as copy:
            for chunk in copy:
                data += bytes(chunk)
        print(repr(data.decode()))
        with cur.copy("COPY t (id, name) TO STDOUT") as copy:
            print(sorted(copy.rows()))
"#
    );
    let (ok, out, err) = run("python3", vec!["-c".into(), script]).await;
    assert!(
        !err.contains("No module named 'psycopg'"),
        "psycopg missing: run .ci/run"
    );
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        "2\n'3,tab\\there\\n4,\\n'\n[('1', 'a, b'), ('2', None), ('3', 'tab\\there'), ('4', None)]"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    srv.stop().await;
}

/// A statement that runs for a long time (25 million join pairs, none kept) without
/// holding much memory.
const LONG_QUERY: &str = "SELECT count(*) FROM generate_series(1, 5000) a \
                          JOIN generate_series(1, 5000) b ON a.a + b.b < 0";

/// The SQLSTATE and message a query ended with (it must fail).
fn failure(result: Result<Vec<SimpleQueryMessage>, tokio_postgres::Error>) -> (String, String) {
    let e = result.expect_err("the statement must fail");
    let db = e.as_db_error().expect("an error response");
    (db.code().code().to_string(), db.message().to_string())
}

/// Keeps asking `cancel` until `query` ends (a cancel that arrives before the statement
/// starts is dropped, as in PostgreSQL), and returns how it ended.
async fn cancel_until_done<F, T>(
    mut query: tokio::task::JoinHandle<T>,
    mut cancel: impl FnMut() -> F,
) -> T
where
    F: std::future::Future<Output = ()>,
{
    for _ in 0..200 {
        cancel().await;
        if let Ok(done) =
            tokio::time::timeout(std::time::Duration::from_millis(100), &mut query).await
        {
            return done.unwrap();
        }
    }
    panic!("the statement was not cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_request_statement_timeout_and_pg_cancel_backend_stop_a_running_statement() {
    let srv = server().await;
    let a = connect(srv.addr()).await;
    let b = connect(srv.addr()).await;
    rows(&a, "CREATE TABLE t (id INT PRIMARY KEY)").await;

    // A CancelRequest with this connection's key (tokio-postgres's cancel token is what
    // psql's Ctrl-C sends). The statement is undone — with the INSERT before it, as the
    // two share the implicit transaction of one simple query — and the connection goes on.
    let token = a.cancel_token();
    let a = std::sync::Arc::new(a);
    let runner = a.clone();
    let query = tokio::spawn(async move {
        runner
            .simple_query(&format!("INSERT INTO t VALUES (1); {LONG_QUERY}"))
            .await
    });
    let result = cancel_until_done(query, || {
        let token = token.clone();
        async move { token.cancel_query(NoTls).await.unwrap() }
    })
    .await;
    assert_eq!(
        failure(result),
        (
            "57014".into(),
            "canceling statement due to user request".into()
        )
    );
    assert_eq!(rows(&a, "SELECT count(*) FROM t").await, table(&[&["0"]]));
    rows(&a, "INSERT INTO t VALUES (1)").await;

    // statement_timeout stops a statement that is running, not only one that waits.
    rows(&a, "SET statement_timeout = '200ms'").await;
    assert_eq!(
        failure(a.simple_query(LONG_QUERY).await),
        (
            "57014".into(),
            "canceling statement due to statement timeout".into()
        )
    );
    rows(&a, "SET statement_timeout = 0").await;

    // pg_cancel_backend(pid) from another session, with the pid from pg_backend_pid().
    let pid = rows(&a, "SELECT pg_backend_pid()").await[0][0]
        .clone()
        .unwrap();
    assert_eq!(
        rows(&b, "SELECT pg_cancel_backend(999999)").await,
        table(&[&["f"]])
    );
    let runner = a.clone();
    let query = tokio::spawn(async move { runner.simple_query(LONG_QUERY).await });
    let b = &b;
    let pid = &pid;
    let result = cancel_until_done(query, || async move {
        assert_eq!(
            rows(b, &format!("SELECT pg_cancel_backend({pid})")).await,
            table(&[&["t"]])
        );
    })
    .await;
    assert_eq!(failure(result).0, "57014");

    // A cancel that arrives while the connection is idle does not hit its next statement.
    // pg_cancel_backend, not the token: a CancelRequest travels on its own connection and
    // nothing tells its sender when the server has read it, so (as with PostgreSQL) one sent
    // just before a statement may land during it. The function's effect is done when its
    // SELECT returns, so "idle" is certain here.
    assert_eq!(
        rows(b, &format!("SELECT pg_cancel_backend({pid})")).await,
        table(&[&["t"]])
    );
    assert_eq!(rows(&a, "SELECT count(*) FROM t").await, table(&[&["1"]]));
    srv.stop().await;
}

#[tokio::test]
async fn psql_ctrl_c_cancels_pg_sleep() {
    let srv = server().await;
    let port = srv.addr().port();
    // `\echo` first: once it is printed psql is connected and has its Ctrl-C handler.
    let mut args = psql_args(port, "\\echo started");
    args.extend(["-c".to_string(), "SELECT pg_sleep(60)".to_string()]);
    let mut child = tokio::process::Command::new("psql")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("psql not runnable ({e}): run .ci/run"));
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("started"));
    let pid = child.id().unwrap().to_string();
    let waiting = tokio::spawn(child.wait_with_output());
    // Ctrl-C is SIGINT to psql, which sends a CancelRequest on a new connection.
    let out = cancel_until_done(waiting, || {
        let pid = pid.clone();
        async move {
            let _ = tokio::process::Command::new("kill")
                .args(["-INT", &pid])
                .status()
                .await;
        }
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("canceling statement due to user request"),
        "{stderr}"
    );
    // A sleep that ends by itself returns one empty row.
    let (ok, out, err) = run("psql", psql_args(port, "SELECT pg_sleep(0.01)")).await;
    assert!(ok, "{err}");
    assert_eq!(out, "\n");
    srv.stop().await;
}

#[tokio::test]
async fn protected_mode_refuses_remote_clients_until_a_password_is_set() {
    let exposed = sql::Args {
        bind: "0.0.0.0".into(),
        ..sql::Args::ephemeral()
    };
    let srv = server_with(exposed.clone()).await;
    let port = srv.addr().port();
    let remote = std::net::SocketAddr::new(testkit::non_loopback_ip(), port);

    // From another address: a FATAL error that says why and how to fix it.
    let refused = tokio_postgres::connect(
        &format!("host={} port={port} user=test dbname=test", remote.ip()),
        NoTls,
    )
    .await
    .err()
    .expect("a remote client is refused");
    let db = refused.as_db_error().expect("an error response");
    assert_eq!(db.code().code(), "28000");
    assert!(
        db.message().contains("protected mode")
            && db.message().contains("--password")
            && db.message().contains("--protected-mode no"),
        "{}",
        db.message()
    );
    // psql (which asks for SSL first) prints it.
    let mut args = psql_args(port, "SELECT 1");
    args[1] = remote.ip().to_string();
    let (ok, _, err) = run("psql", args).await;
    assert!(!ok);
    assert!(err.contains("protected mode"), "{err}");
    // From loopback: served.
    let local = connect(std::net::SocketAddr::from(([127, 0, 0, 1], port))).await;
    assert_eq!(rows(&local, "SELECT 1").await, table(&[&["1"]]));
    srv.stop().await;

    // With a password, remote clients may log in with it.
    let srv = server_with(sql::Args {
        password: Some("s3cret".into()),
        ..exposed.clone()
    })
    .await;
    let (c, conn) = tokio_postgres::connect(
        &format!(
            "host={} port={} user=test dbname=test password=s3cret",
            remote.ip(),
            srv.addr().port()
        ),
        NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    assert_eq!(rows(&c, "SELECT 2").await, table(&[&["2"]]));
    srv.stop().await;

    // And with protected mode off, anyone is served.
    let srv = server_with(sql::Args {
        protected_mode: service::protected::ProtectedMode::OFF,
        ..exposed
    })
    .await;
    let c = connect(std::net::SocketAddr::new(remote.ip(), srv.addr().port())).await;
    assert_eq!(rows(&c, "SELECT 3").await, table(&[&["3"]]));
    srv.stop().await;
}

//! What the sql server's test files share: a server on port 0 (at a chosen default
//! isolation level if need be), tokio-postgres sessions, queries whose outcome is the rows
//! as text or the SQLSTATE, and the client programs (psql, psycopg) the tests drive.
#![allow(dead_code, clippy::expect_used)] // each test file uses a part; a panic fails the test

use std::process::Command;
use std::sync::Arc;

use service::CancellationToken;
use sql::isolation::Isolation;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

pub type Rows = Vec<Vec<Option<String>>>;
/// A query's outcome: its rows, or the SQLSTATE it failed with.
pub type Outcome = Result<Rows, String>;

pub async fn server_with(args: sql::Args) -> sql::Running {
    sql::start(args, CancellationToken::new())
        .await
        .expect("sql server starts")
}

/// An in-memory server on 127.0.0.1, port 0.
pub async fn server() -> sql::Running {
    server_with(sql::Args::ephemeral()).await
}

/// The same, its sessions starting at `default`.
pub async fn server_at(default: Isolation) -> sql::Running {
    server_with(sql::Args {
        default_isolation: default,
        ..sql::Args::ephemeral()
    })
    .await
}

pub async fn connect(addr: std::net::SocketAddr) -> Client {
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

/// A session that tasks of a test share.
pub async fn session(srv: &sql::Running) -> Arc<Client> {
    Arc::new(connect(srv.addr()).await)
}

/// Runs `sql` (one or several statements) with the simple query protocol.
pub async fn query(c: &Client, sql: &str) -> Outcome {
    match c.simple_query(sql).await {
        Ok(messages) => Ok(messages
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect()),
        Err(e) => Err(e
            .code()
            .map(|c| c.code().to_string())
            .unwrap_or_else(|| e.to_string())),
    }
}

/// The rows of `sql`, which must succeed.
pub async fn rows(c: &Client, sql: &str) -> Rows {
    query(c, sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The rows as `a|b` lines (NULL as empty), for compact assertions.
pub async fn lines(c: &Client, sql: &str) -> Vec<String> {
    rows(c, sql)
        .await
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(Option::unwrap_or_default)
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

/// Runs `sql` (simple protocol), which must succeed.
pub async fn exec(c: &Client, sql: &str) {
    c.batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
}

/// The SQLSTATE `sql` fails with (it must fail).
pub async fn code(c: &Client, sql: &str) -> String {
    match query(c, sql).await {
        Ok(_) => panic!("{sql}: expected an error"),
        Err(code) => code,
    }
}

/// One text cell as a one-row, one-column result.
pub fn cell(v: &str) -> Rows {
    vec![vec![Some(v.to_string())]]
}

/// How many transactions are blocked on a lock now, as `pg_locks` shows them.
pub async fn waiting(observer: &Client) -> usize {
    rows(observer, "SELECT count(*) FROM pg_locks WHERE NOT granted")
        .await
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .and_then(|n| n.parse().ok())
        .expect("a count")
}

/// Fails with a clear message when a client program the test drives is missing.
pub fn need(tool: &str) {
    if Command::new(tool).arg("--version").output().is_err() {
        panic!("{tool} is not installed: run .ci/run (it installs psql and psycopg)");
    }
}

/// Runs a Python script (psycopg 3); returns its standard output.
pub async fn python(script: String) -> String {
    need("python3");
    let out =
        tokio::task::spawn_blocking(move || Command::new("python3").arg("-c").arg(script).output())
            .await
            .expect("join")
            .expect("python runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'psycopg'"),
        "psycopg missing: run .ci/run"
    );
    assert!(out.status.success(), "{stderr}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs a program to completion off the test's runtime; returns (success, stdout, stderr).
pub async fn run(program: &str, args: Vec<String>) -> (bool, String, String) {
    let name = program.to_string();
    let out = tokio::task::spawn_blocking(move || Command::new(&name).args(&args).output())
        .await
        .expect("join")
        .unwrap_or_else(|e| panic!("{program} not runnable ({e}): run .ci/run"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// psql's arguments to reach the server on `port` as user and database `test`, ignoring
/// any ~/.psqlrc (`-X`); psql's default (aligned) output.
pub fn psql_connection_args(port: u16) -> Vec<String> {
    let port = port.to_string();
    [
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-U",
        "test",
        "-d",
        "test",
        "-X",
    ]
    .map(String::from)
    .to_vec()
}

/// psql's arguments to run `commands` (one `-c` each) against the server on `port`,
/// unaligned and tuples only (`-A -t`).
pub fn psql_args_all(port: u16, commands: &[&str]) -> Vec<String> {
    let mut args = psql_connection_args(port);
    args.extend(["-A", "-t"].map(String::from));
    for c in commands {
        args.push("-c".into());
        args.push(c.to_string());
    }
    args
}

/// psql's arguments to run one `command`.
pub fn psql_args(port: u16, command: &str) -> Vec<String> {
    psql_args_all(port, &[command])
}

/// Runs psql with one `-c` per command, which must succeed; returns its standard output.
pub async fn psql(srv: &sql::Running, commands: &[&str]) -> String {
    need("psql");
    let (ok, out, err) = run("psql", psql_args_all(srv.addr().port(), commands)).await;
    assert!(ok, "{err}");
    out.trim().to_string()
}

//! Helpers shared by the transaction and isolation tests: a server on port 0 at a chosen
//! default isolation level, tokio-postgres sessions, and queries whose outcome is the
//! rows as text or the SQLSTATE.
#![allow(dead_code)]

use std::process::Command;
use std::sync::Arc;

use service::CancellationToken;
use sql::isolation::Isolation;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

pub type Rows = Vec<Vec<Option<String>>>;
/// A query's outcome: its rows, or the SQLSTATE it failed with.
pub type Outcome = Result<Rows, String>;

pub async fn server(default: Isolation) -> sql::Running {
    let args = sql::Args {
        default_isolation: default,
        ..sql::Args::ephemeral()
    };
    sql::start(args, CancellationToken::new())
        .await
        .expect("sql server starts")
}

pub async fn connect(srv: &sql::Running) -> Arc<Client> {
    let (client, conn) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=test dbname=test",
            srv.addr().port()
        ),
        NoTls,
    )
    .await
    .expect("connect");
    tokio::spawn(conn);
    Arc::new(client)
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

/// Runs `psql -X -A -t` with one `-c` per command; returns its standard output.
pub async fn psql(srv: &sql::Running, commands: &[&str]) -> String {
    need("psql");
    let port = srv.addr().port().to_string();
    let mut args: Vec<String> = [
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-U",
        "test",
        "-d",
        "test",
        "-X",
        "-A",
        "-t",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for c in commands {
        args.push("-c".into());
        args.push(c.to_string());
    }
    let out = tokio::task::spawn_blocking(move || Command::new("psql").args(args).output())
        .await
        .expect("join")
        .expect("psql runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

//! What the sql server's test files share: a server on port 0, a tokio-postgres client,
//! a simple query's rows as text, and psql's arguments.
#![allow(dead_code, clippy::expect_used)] // each test file uses a part; a panic fails the test

use service::CancellationToken;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

pub async fn server_with(args: sql::Args) -> sql::Running {
    sql::start(args, CancellationToken::new())
        .await
        .expect("sql server starts")
}

/// An in-memory server on 127.0.0.1, port 0.
pub async fn server() -> sql::Running {
    server_with(sql::Args::ephemeral()).await
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

/// The rows of a simple query, as text.
pub async fn rows(c: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
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

/// psql's arguments to run `command` against the server on `port`, unaligned and
/// tuples only (`-A -t`), ignoring any ~/.psqlrc (`-X`).
pub fn psql_args(port: u16, command: &str) -> Vec<String> {
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
        "-A",
        "-t",
        "-c",
        command,
    ]
    .map(String::from)
    .to_vec()
}

//! Durability of a bulk load: a COPY is one transaction, written to the log as one
//! record at COMMIT. Killed (SIGKILL) in the middle of a COPY, the server comes back with
//! none of it; a COPY acknowledged before the kill is there whole — also when its record
//! was big enough to start a checkpoint (`--checkpoint-bytes` is small here), so recovery
//! reads the rows back from the checkpoint and then from the new log.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::SinkExt;
use tokio_postgres::{Client, NoTls};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn spawn(dir: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_infralab"))
        .args(["sql", "--port", &port.to_string(), "--fsync", "always"])
        .args(["--checkpoint-bytes", "200000", "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start infralab sql")
}

async fn connect(port: u16) -> Client {
    for _ in 0..200 {
        if let Ok((client, conn)) =
            tokio_postgres::connect(&format!("host=127.0.0.1 port={port} user=t"), NoTls).await
        {
            tokio::spawn(conn);
            return client;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the sql server did not come up on port {port}");
}

/// pgbench's accounts rows `first..=last`, as COPY text.
fn rows(first: i64, last: i64) -> String {
    (first..=last)
        .map(|aid| format!("{aid}\t{}\t0\t\n", (aid - 1) / 1000 + 1))
        .collect()
}

/// Loads `first..=last` with one COPY and returns its count.
async fn copy(c: &Client, first: i64, last: i64) -> u64 {
    let sink = c
        .copy_in("COPY accounts FROM STDIN")
        .await
        .expect("COPY starts");
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from(rows(first, last)))
        .await
        .expect("COPY data");
    sink.finish().await.expect("COPY commits")
}

async fn count_and_sum(c: &Client) -> (i64, i64) {
    let r = c
        .query_one(
            "SELECT count(*), CAST(coalesce(sum(aid), 0) AS BIGINT) FROM accounts",
            &[],
        )
        .await
        .expect("count");
    (r.get(0), r.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_cut_by_sigkill_leaves_nothing_and_an_acknowledged_one_everything() {
    let dir = std::env::temp_dir().join(format!("infralab-sql-copy-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_port();
    let mut server = spawn(&dir, port);
    let c = connect(port).await;
    c.batch_execute(
        "CREATE TABLE accounts (aid INT PRIMARY KEY, bid INT, abalance INT, filler CHAR(84))",
    )
    .await
    .expect("schema");
    // 20,000 rows: a record several times --checkpoint-bytes, so a checkpoint follows.
    assert_eq!(copy(&c, 1, 20_000).await, 20_000);
    let sum = |n: i64| n * (n + 1) / 2;
    assert_eq!(count_and_sum(&c).await, (20_000, sum(20_000)));

    // A second COPY sends more than a batch of rows (they go into the table as they
    // arrive) and is killed before its end.
    let cut = connect(port).await;
    let sink = cut
        .copy_in("COPY accounts FROM STDIN")
        .await
        .expect("COPY starts");
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from(rows(20_001, 50_000)))
        .await
        .expect("COPY data");
    sink.flush().await.expect("COPY data sent");
    // Another session does not see the rows of a COPY still running.
    assert_eq!(count_and_sum(&c).await, (20_000, sum(20_000)));
    server.kill().expect("SIGKILL");
    let _ = server.wait();

    for restart in 0..2 {
        server = spawn(&dir, port);
        let c = connect(port).await;
        assert_eq!(
            count_and_sum(&c).await,
            (20_000, sum(20_000)),
            "restart {restart}: the acknowledged COPY whole, none of the cut one"
        );
        // The primary key still holds after recovery.
        let dup = c
            .batch_execute("INSERT INTO accounts VALUES (7, 1, 0, '')")
            .await
            .expect_err("a duplicate key");
        assert_eq!(
            dup.code().map(|s| s.code()),
            Some("23505"),
            "restart {restart}: {dup}"
        );
        server.kill().expect("SIGKILL");
        let _ = server.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

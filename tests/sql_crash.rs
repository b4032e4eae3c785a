//! Durability of the sql server across SIGKILL: 8 clients transfer money between 1,000
//! accounts, the server process is killed mid-load, restarted from the same directory:
//! every acknowledged COMMIT is there and the total balance is unchanged (no transaction
//! half-applied), trial after trial. And a bulk load: killed in the middle of a COPY, the
//! server comes back with none of it; a COPY acknowledged before the kill is there whole —
//! also when its record was big enough to start a checkpoint (`--checkpoint-bytes` is small
//! there), so recovery reads the rows back from the checkpoint and then from the new log.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::SinkExt;
use tokio_postgres::{Client, NoTls};

const ACCOUNTS: i64 = 1000;
const START: i64 = 1000;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn spawn(dir: &std::path::Path, port: u16) -> Child {
    spawn_with(dir, port, &[])
}

fn spawn_with(dir: &std::path::Path, port: u16, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_infralab"))
        .args([
            "sql",
            "--port",
            &port.to_string(),
            "--fsync",
            "always",
            // The transfers lock in id order and expect no 40001 (PostgreSQL's default).
            "--default-isolation",
            "read-committed",
        ])
        .args(extra)
        .arg("--dir")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_commits_survive_sigkill() {
    let dir = std::env::temp_dir().join(format!("infralab-sql-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_port();
    let mut server = spawn(&dir, port);
    let c = connect(port).await;
    c.batch_execute("CREATE TABLE accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL); CREATE TABLE transfers (id BIGINT PRIMARY KEY)")
        .await
        .expect("schema");
    let values: Vec<String> = (1..=ACCOUNTS).map(|i| format!("({i}, {START})")).collect();
    c.batch_execute(&format!("INSERT INTO accounts VALUES {}", values.join(",")))
        .await
        .expect("accounts");
    drop(c);
    for trial in 0..5u64 {
        let acknowledged = Arc::new(Mutex::new(HashSet::new()));
        let mut clients = Vec::new();
        for worker in 0..8u64 {
            let c = connect(port).await;
            let acknowledged = acknowledged.clone();
            clients.push(tokio::spawn(async move {
                for n in 0u64.. {
                    let id = (trial * 8 + worker) * 1_000_000 + n;
                    let a = (id * 7919 % ACCOUNTS as u64) as i64 + 1;
                    let b = (id * 104_729 % ACCOUNTS as u64) as i64 + 1;
                    if a == b {
                        continue;
                    }
                    // Lock in id order so transfers never deadlock.
                    let (first, second, amount) = if a < b { (a, b, 3) } else { (b, a, -3) };
                    let sql = format!(
                        "BEGIN; UPDATE accounts SET balance = balance - {amount} WHERE id = {first}; \
                         UPDATE accounts SET balance = balance + {amount} WHERE id = {second}; \
                         INSERT INTO transfers VALUES ({id}); COMMIT"
                    );
                    match c.batch_execute(&sql).await {
                        Ok(()) => {
                            acknowledged.lock().map(|mut s| s.insert(id)).ok();
                        }
                        Err(_) => return, // the server died
                    }
                }
            }));
        }
        // Let the load run, then kill -9 mid-flight.
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if acknowledged.lock().map(|s| s.len()).unwrap_or(0) >= 200 {
                break;
            }
        }
        server.kill().expect("SIGKILL");
        let _ = server.wait();
        for c in clients {
            let _ = c.await;
        }
        server = spawn(&dir, port);
        let c = connect(port).await;
        let total: i64 = c
            .query_one("SELECT CAST(sum(balance) AS TEXT) FROM accounts", &[])
            .await
            .map(|r| r.get::<_, String>(0).parse::<i64>().unwrap_or(-1))
            .expect("sum");
        assert_eq!(
            total,
            ACCOUNTS * START,
            "trial {trial}: money created or lost"
        );
        let present: HashSet<u64> = c
            .query("SELECT id FROM transfers", &[])
            .await
            .expect("transfers")
            .iter()
            .map(|r| r.get::<_, i64>(0) as u64)
            .collect();
        let acknowledged = acknowledged.lock().map(|s| s.clone()).unwrap_or_default();
        let missing: Vec<_> = acknowledged.difference(&present).collect();
        assert!(
            missing.is_empty(),
            "trial {trial}: acknowledged commits lost: {missing:?}"
        );
        assert!(acknowledged.len() >= 200);
    }
    server.kill().ok();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A checkpoint after every 200 kB of log: the first COPY below starts one.
const COPY_ARGS: &[&str] = &["--checkpoint-bytes", "200000"];

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
    let mut server = spawn_with(&dir, port, COPY_ARGS);
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
        server = spawn_with(&dir, port, COPY_ARGS);
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

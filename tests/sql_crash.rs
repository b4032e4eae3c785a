//! Durability of the sql server across SIGKILL: 8 clients transfer money between 1,000
//! accounts, the server process is killed mid-load, restarted from the same directory:
//! every acknowledged COMMIT is there and the total balance is unchanged (no transaction
//! half-applied), trial after trial.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
            "--dir",
        ])
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

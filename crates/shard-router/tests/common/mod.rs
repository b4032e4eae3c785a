#![allow(clippy::unwrap_used, dead_code)] // test code: a panic is a test failure

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use service::{CancellationToken, Running};

/// A throwaway redis-server on a free loopback port, killed on drop.
pub struct Redis {
    pub port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Redis {
    pub fn start() -> Redis {
        Redis::launch(free_port(), vec![])
    }

    pub fn replica_of(primary: &Redis) -> Redis {
        Redis::launch(
            free_port(),
            vec![
                "--replicaof".into(),
                "127.0.0.1".into(),
                primary.port.to_string(),
            ],
        )
    }

    fn launch(port: u16, mut extra: Vec<String>) -> Redis {
        // Its own directory: a replica writes the RDB it receives to `dump.rdb`, and every
        // redis-server loads `dump.rdb` from its directory at startup.
        let dir = temp_dir(&format!("redis-{port}"));
        extra.extend(["--dir".to_string(), dir.to_str().unwrap().to_string()]);
        let mut r = Redis {
            port,
            args: extra,
            child: None,
        };
        r.restart();
        r
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// kill -9.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts (again) on the same port, and waits until it answers.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start on {}", self.port);
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(format!("redis://{}/", self.addr())).unwrap()
    }

    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        self.client()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `[[shards]]` entries named s0, s1... for the given backends.
pub fn shards_toml(backends: &[&Redis]) -> String {
    backends
        .iter()
        .enumerate()
        .map(|(i, r)| format!("[[shards]]\nname = \"s{i}\"\nprimary = \"{}\"\n", r.addr()))
        .collect()
}

/// A temporary directory for config files.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "router-test-{tag}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts a router on port 0 with this config text; returns it and the config's path.
pub async fn router(config: &str) -> (Running, PathBuf) {
    let path = temp_dir("cfg").join("router.toml");
    std::fs::write(&path, config).unwrap();
    let args = <shard_router::Args as clap::Parser>::parse_from([
        "router",
        "--port",
        "0",
        "--config",
        path.to_str().unwrap(),
    ]);
    let running = shard_router::start(args, CancellationToken::new())
        .await
        .unwrap();
    (running, path)
}

pub async fn conn(running: &Running) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://{}/", running.addr()))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Waits (bounded) until `check` holds.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..500 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

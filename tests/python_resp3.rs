#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! redis-py 8 — the Python client users run, on its defaults (RESP3) and with
//! `protocol=2` — against kv, cache, pubsub, broker and the shard router over two kv
//! shards: `tests/python/test_resp3.py` holds the checks; this starts the servers on
//! port 0 and runs it twice. `.ci/run` installs redis-py; without it the test fails and
//! says so.

use std::path::PathBuf;
use std::process::Command;

use clap::Parser;
use service::{CancellationToken, Running};

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("infralab-py-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn kv() -> Running {
    kv::start(
        kv::Args::parse_from(["kv", "--port", "0"]),
        CancellationToken::new(),
    )
    .await
    .unwrap()
}

/// Every server the Python file talks to, each on its own port.
struct Servers {
    all: Vec<Running>,
    env: Vec<(&'static str, String)>,
    dir: PathBuf,
}

async fn start_servers() -> Servers {
    let dir = temp_dir("servers");
    let (kv_alone, shard_a, shard_b) = (kv().await, kv().await, kv().await);
    let cache = cache::start(
        cache::Args::parse_from(["cache", "--port", "0"]),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let pubsub = pubsub::start(
        pubsub::Args::parse_from(["pubsub", "--port", "0"]),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let broker_dir = dir.join("broker");
    let broker = broker::start(
        broker::Args::parse_from([
            "broker",
            "--port",
            "0",
            "--dir",
            broker_dir.to_str().unwrap(),
        ]),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let config = dir.join("router.toml");
    std::fs::write(
        &config,
        format!(
            "[[shards]]\nname = \"a\"\nprimary = \"{}\"\n[[shards]]\nname = \"b\"\nprimary = \"{}\"\n",
            shard_a.addr(),
            shard_b.addr()
        ),
    )
    .unwrap();
    let router = shard_router::start(
        shard_router::Args::parse_from([
            "router",
            "--port",
            "0",
            "--config",
            config.to_str().unwrap(),
        ]),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let env = vec![
        ("INFRALAB_KV", kv_alone.addr().to_string()),
        ("INFRALAB_CACHE", cache.addr().to_string()),
        ("INFRALAB_PUBSUB", pubsub.addr().to_string()),
        ("INFRALAB_BROKER", broker.addr().to_string()),
        ("INFRALAB_ROUTER", router.addr().to_string()),
    ];
    Servers {
        all: vec![kv_alone, shard_a, shard_b, cache, pubsub, broker, router],
        env,
        dir,
    }
}

/// Runs the Python file with `protocol` ("default" or "2"); panics with its output if
/// any check fails.
async fn run_python(servers: &Servers, protocol: &'static str) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/test_resp3.py");
    let env = servers.env.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(&script)
            .envs(env)
            .env("INFRALAB_RESP", protocol)
            .output()
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("cannot run python3 ({e}): run .ci/run"));
    assert!(
        output.status.success(),
        "redis-py, protocol {protocol}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_resp3_by_default_and_resp2() {
    let servers = start_servers().await;
    run_python(&servers, "default").await;
    run_python(&servers, "2").await;
    for running in servers.all {
        running.stop().await;
    }
    let _ = std::fs::remove_dir_all(&servers.dir);
}

//! Helpers shared by kv's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use clap::Parser;
use proto::Frame;
use service::{CancellationToken, RespClient, Running};

/// Starts kv on a free port with extra flags.
pub async fn start(extra: &[&str]) -> Running {
    let mut argv = vec!["kv", "--port", "0"];
    argv.extend_from_slice(extra);
    kv::start(kv::Args::parse_from(argv), CancellationToken::new())
        .await
        .expect("start kv")
}

/// Starts kv with a clock the test controls.
pub async fn start_with_clock(extra: &[&str], clock: Arc<kv::clock::ManualClock>) -> Running {
    let mut argv = vec!["kv", "--port", "0"];
    argv.extend_from_slice(extra);
    kv::start_with_clock(kv::Args::parse_from(argv), CancellationToken::new(), clock)
        .await
        .expect("start kv")
}

/// A fresh, empty directory under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "kv-test-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

pub async fn connect(server: &Running) -> RespClient {
    RespClient::connect(server.addr()).await.expect("connect")
}

/// Sends one command of text words.
pub async fn call(c: &mut RespClient, words: &[&str]) -> Frame {
    c.call(words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())))
        .await
        .expect("call")
}

pub fn bulk(s: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

pub fn int(n: i64) -> Frame {
    Frame::Integer(n)
}

pub fn err(s: &str) -> Frame {
    Frame::error(s)
}

pub fn frame_text(frame: &Frame) -> String {
    String::from_utf8_lossy(frame.as_bytes().expect("a string reply")).into_owned()
}

/// Every key of db 0 with its DUMP payload and absolute deadline.
pub async fn dataset(server: &Running) -> Vec<(Frame, Frame, Frame)> {
    let mut c = connect(server).await;
    let Frame::Array(keys) = call(&mut c, &["KEYS", "*"]).await else {
        panic!("KEYS");
    };
    let mut keys: Vec<String> = keys.iter().map(frame_text).collect();
    keys.sort();
    let mut out = Vec::new();
    for key in keys {
        let dump = call(&mut c, &["DUMP", &key]).await;
        let deadline = call(&mut c, &["PEXPIRETIME", &key]).await;
        out.push((bulk(&key), dump, deadline));
    }
    out
}

/// One write of every kind a collection can take, in an order where each applies to
/// something: replication and restart tests run it and compare the data after each.
pub const COLLECTION_EDITS: &[&[&str]] = &[
    &["LPUSH", "list", "x", "y"],
    &["RPUSH", "list", "z"],
    &["LPOP", "list"],
    &["RPOP", "list", "2"],
    &["LSET", "list", "1", "B"],
    &["LSET", "list", "-1", "last"],
    &["LTRIM", "list", "1", "-2"],
    &["LINSERT", "list", "BEFORE", "B", "ins"],
    &["LREM", "list", "0", "ins"],
    &["LMOVE", "list", "other", "LEFT", "RIGHT"],
    &["RPUSH", "fresh", "1", "2", "3"],
    &["RPOP", "fresh", "3"],
    &["HSET", "hash", "f3", "v3", "f1", "new"],
    &["HSETNX", "hash", "f4", "v4"],
    &["HDEL", "hash", "f3", "nope"],
    &["HINCRBY", "hash", "f2", "40"],
    &["HINCRBYFLOAT", "hash", "fl", "10.5"],
    &["HINCRBYFLOAT", "hash", "fl", "0.1"],
    &["SADD", "set", "a", "b", "c", "d", "e", "f", "g", "h"],
    &["SREM", "set", "a", "zz"],
    &["SPOP", "set"],
    &["SPOP", "set", "3"],
    &["SMOVE", "set", "set2", "b"],
    &[
        "ZADD", "zset", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e",
    ],
    &["ZADD", "zset", "GT", "CH", "10", "a", "0", "b"],
    &["ZINCRBY", "zset", "0.1", "c"],
    &["ZADD", "zset", "INCR", "7", "new"],
    &["ZREM", "zset", "d", "zz"],
    &["ZPOPMIN", "zset"],
    &["ZPOPMAX", "zset", "2"],
    &["EXPIRE", "zset", "1000"],
    &["EXPIRE", "hash", "2000"],
    &["PERSIST", "zset"],
    &["GETEX", "nothing", "PERSIST"],
    &["SET", "str", "v", "EX", "100"],
    &["PERSIST", "str"],
    &["SPOP", "set2"],
    &["RPOP", "other", "10"],
];

/// What [`COLLECTION_EDITS`] leaves, as [`dataset`] shows it: list, hash (with its
/// deadline), set, str and zset; fresh, set2 and other were emptied by pops.
pub fn check_edited(data: &[(Frame, Frame, Frame)]) {
    let keys: Vec<String> = data.iter().map(|(k, _, _)| frame_text(k)).collect();
    assert_eq!(keys, ["hash", "list", "set", "str", "zset"], "{data:?}");
    assert!(
        matches!(data[0].2, Frame::Integer(at) if at > 0),
        "hash TTL"
    );
    assert_eq!(data[4].2, Frame::Integer(-1), "zset persisted");
}

/// Runs `tests/python/<script>` with `args` (the first one also in `INFRALAB_KV_PORT`);
/// fails with its output unless it exits 0. `.ci/run` installs redis-py; without it the
/// script fails and says so.
pub async fn run_python(script: &str, args: &[String]) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let args = args.to_vec();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(&path)
            .args(&args)
            .env(
                "INFRALAB_KV_PORT",
                args.first().cloned().unwrap_or_default(),
            )
            .output()
    })
    .await
    .expect("python task")
    .unwrap_or_else(|e| panic!("cannot run python3 ({e}): run .ci/run"));
    assert!(
        output.status.success(),
        "{script}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

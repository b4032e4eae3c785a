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

/// Writes of every new kind: GEOADD, the geo and algebra STORE forms, ZRANGESTORE,
/// ZREMRANGEBYLEX (and a STORE that empties its destination).
pub const GEO_WRITES: &[&[&str]] = &[
    &[
        "GEOADD",
        "Sicily",
        "13.361389",
        "38.115556",
        "Palermo",
        "15.087269",
        "37.502669",
        "Catania",
        "12.5",
        "37.8",
        "Marsala",
    ],
    &["GEOADD", "Sicily", "XX", "CH", "13.4", "38.1", "Palermo"],
    &[
        "GEOSEARCHSTORE",
        "near",
        "Sicily",
        "FROMLONLAT",
        "15",
        "37",
        "BYRADIUS",
        "200",
        "km",
        "ASC",
    ],
    &[
        "GEORADIUSBYMEMBER",
        "Sicily",
        "Palermo",
        "300",
        "km",
        "STOREDIST",
        "dists",
    ],
    &["ZADD", "z1", "1", "a", "2", "b", "3", "c"],
    &["SADD", "s1", "b", "c", "d"],
    &[
        "ZUNIONSTORE",
        "union",
        "2",
        "z1",
        "s1",
        "WEIGHTS",
        "2",
        "10",
    ],
    &["ZINTERSTORE", "inter", "2", "z1", "s1", "AGGREGATE", "MAX"],
    &["ZDIFFSTORE", "diff", "2", "z1", "s1"],
    &["ZRANGESTORE", "top", "union", "0", "1", "REV"],
    &["ZADD", "lex", "0", "a", "0", "b", "0", "c", "0", "d"],
    &["ZREMRANGEBYLEX", "lex", "[b", "[c"],
    &["SET", "gone", "x"],
    &["ZINTERSTORE", "gone", "2", "z1", "nothing"],
    &["EXPIRE", "near", "1000"],
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

/// The writes of the multi-key pops, SORT ... STORE and MOVE (issue #26): restart and
/// replica tests run them and compare what every database holds.
pub const POP_STEPS: &[&[&str]] = &[
    &["RPUSH", "l", "a", "b", "c", "d", "e"],
    &["ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d"],
    &["SADD", "s", "3", "1", "2", "10"],
    &["LMPOP", "2", "none", "l", "LEFT", "COUNT", "2"],
    &["ZMPOP", "1", "z", "MAX"],
    &["BZPOPMIN", "z", "0"],
    &["BLMPOP", "0", "1", "l", "RIGHT"],
    &["BZMPOP", "0", "1", "z", "MIN", "COUNT", "5"],
    &["SORT", "s", "STORE", "sorted"],
    &["SORT", "s", "BY", "nosort", "STORE", "alpha"],
    &["SORT", "s", "DESC", "LIMIT", "0", "2", "STORE", "top"],
    &["SET", "m", "moved"],
    &["EXPIRE", "m", "1000"],
    &["MOVE", "m", "3"],
    &["SELECT", "3"],
    &["SET", "stays", "there"],
    &["SELECT", "0"],
    &["SET", "stays", "here"],
    // Refused: the key exists in database 3. Both copies stay.
    &["MOVE", "stays", "3"],
];

/// Every key of databases 0 and 3 with its DUMP payload and deadline (MOVE's target).
pub async fn pop_dataset(server: &Running) -> Vec<(Frame, Frame, Frame)> {
    let mut data = dataset(server).await;
    let mut c = connect(server).await;
    call(&mut c, &["SELECT", "3"]).await;
    for key in ["m", "stays"] {
        let dump = call(&mut c, &["DUMP", key]).await;
        let deadline = call(&mut c, &["PEXPIRETIME", key]).await;
        data.push((bulk(key), dump, deadline));
    }
    data
}

/// What [`POP_STEPS`] leaves: `l` [c, d], `sorted` [1 2 3 10], `alpha` [1 10 2 3], `top`
/// [10 3], no `z`, and `m` in database 3 with its TTL.
pub async fn check_popped(server: &Running) {
    let mut c = connect(server).await;
    let list = |items: &[&str]| Frame::Array(items.iter().map(|i| bulk(i)).collect());
    assert_eq!(
        call(&mut c, &["LRANGE", "l", "0", "-1"]).await,
        list(&["c", "d"])
    );
    assert_eq!(
        call(&mut c, &["LRANGE", "sorted", "0", "-1"]).await,
        list(&["1", "2", "3", "10"])
    );
    assert_eq!(
        call(&mut c, &["LRANGE", "alpha", "0", "-1"]).await,
        list(&["1", "10", "2", "3"])
    );
    assert_eq!(
        call(&mut c, &["LRANGE", "top", "0", "-1"]).await,
        list(&["10", "3"])
    );
    assert_eq!(call(&mut c, &["EXISTS", "z", "m"]).await, int(0));
    assert_eq!(call(&mut c, &["GET", "stays"]).await, bulk("here"));
    call(&mut c, &["SELECT", "3"]).await;
    assert_eq!(call(&mut c, &["GET", "m"]).await, bulk("moved"));
    assert_eq!(call(&mut c, &["GET", "stays"]).await, bulk("there"));
    assert!(matches!(call(&mut c, &["TTL", "m"]).await, Frame::Integer(t) if t > 900));
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

#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! Lua scripting end to end: the course's rate limiter and lock scripts give the same
//! results on kv and redis-server; a script is atomic; a runaway script is stopped by
//! `SCRIPT KILL` while other clients get `-BUSY`; a script's writes survive a crash and
//! reach a replica as their effects; the sandbox bounds memory.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{bulk, call, connect, err, int, start, temp_dir};
use proto::Frame;
use service::RespClient;
use testkit::RedisServer;

/// The course's sliding-window rate limiter (a sorted set of request times per client).
const RATE_LIMITER: &str = include_str!("data/lua/rate_limiter.lua");
/// The course's lock: take it with a token and a TTL (SET NX PX)...
const LOCK_ACQUIRE: &str = include_str!("data/lua/lock_acquire.lua");
/// ...and release it only if we still hold it (compare-and-delete).
const LOCK_RELEASE: &str = include_str!("data/lua/lock_release.lua");

async fn eval(c: &mut RespClient, script: &str, keys: &[&str], args: &[&str]) -> Frame {
    let mut words = vec![
        "EVAL".to_string(),
        script.to_string(),
        keys.len().to_string(),
    ];
    words.extend(keys.iter().map(|k| k.to_string()));
    words.extend(args.iter().map(|a| a.to_string()));
    c.call(words.into_iter().map(Bytes::from)).await.unwrap()
}

/// The same calls of both scripts against kv and redis-server: the same replies, step by
/// step, and the same data at the end.
#[tokio::test]
async fn rate_limiter_and_lock_behave_as_on_redis() {
    let redis = RedisServer::start(&[]);
    let server = start(&[]).await;
    let mut ours = connect(&server).await;
    let mut peer = RespClient::connect(redis.socket_addr()).await.unwrap();
    let mut replies = Vec::new();
    for c in [&mut ours, &mut peer] {
        let mut seen = Vec::new();
        // Limit 3 per 1000 ms, with the clock passed in: requests at t = 0, 100, 200 pass,
        // 300 and 900 are refused, 1150 passes once the first two have left the window.
        for (i, now) in [0, 100, 200, 300, 900, 1150, 1160].iter().enumerate() {
            let reply = eval(
                c,
                RATE_LIMITER,
                &["rate:alice"],
                &[
                    &(1_000_000 + now).to_string(),
                    "1000",
                    "3",
                    &format!("req{i}"),
                ],
            )
            .await;
            seen.push(reply);
        }
        seen.push(call(c, &["ZCARD", "rate:alice"]).await);
        seen.push(eval(c, RATE_LIMITER, &["rate:bob"], &["5", "1000", "3", "b1"]).await);
        // The lock: one holder at a time; only the holder's token releases it.
        seen.push(eval(c, LOCK_ACQUIRE, &["lock:job"], &["token-a", "30000"]).await);
        seen.push(eval(c, LOCK_ACQUIRE, &["lock:job"], &["token-b", "30000"]).await);
        seen.push(eval(c, LOCK_RELEASE, &["lock:job"], &["token-b"]).await);
        seen.push(call(c, &["GET", "lock:job"]).await);
        seen.push(eval(c, LOCK_RELEASE, &["lock:job"], &["token-a"]).await);
        seen.push(eval(c, LOCK_ACQUIRE, &["lock:job"], &["token-b", "30000"]).await);
        seen.push(call(c, &["GET", "lock:job"]).await);
        let pttl = call(c, &["PTTL", "lock:job"]).await;
        assert!(
            matches!(pttl, Frame::Integer(ms) if ms > 20_000 && ms <= 30_000),
            "{pttl:?}"
        );
        replies.push(seen);
    }
    let [ours_seen, peer_seen] = [&replies[0], &replies[1]];
    assert_eq!(ours_seen, peer_seen);
    // And they are the expected ones, not merely equal.
    let pair = |a, b| Frame::Array(vec![int(a), int(b)]);
    assert_eq!(
        ours_seen[..8],
        [
            pair(1, 1),
            pair(1, 2),
            pair(1, 3),
            pair(0, 3),
            pair(0, 3),
            pair(1, 2),
            pair(1, 3),
            int(3)
        ]
    );
    assert_eq!(
        ours_seen[9..],
        [
            Frame::ok(),
            Frame::Null,
            int(0),
            bulk("token-a"),
            int(1),
            Frame::ok(),
            bulk("token-b")
        ]
    );
}

/// Many clients increment one counter with a read-then-write script at once: without
/// atomicity, two scripts would read the same value and an increment would be lost.
#[tokio::test]
async fn a_script_is_atomic() {
    const READ_THEN_WRITE: &str = "local v = tonumber(redis.call('GET', KEYS[1]) or '0') \
         redis.call('SET', KEYS[1], v + 1) return v + 1";
    let server = start(&[]).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut c = connect(&server).await;
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                let reply = eval(&mut c, READ_THEN_WRITE, &["counter"], &[]).await;
                assert!(matches!(reply, Frame::Integer(_)), "{reply:?}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut c = connect(&server).await;
    assert_eq!(call(&mut c, &["GET", "counter"]).await, bulk("400"));
}

/// A server whose scripts make others busy after 100 ms, and a client of it.
async fn busy_after_100ms() -> (service::Running, RespClient) {
    let server = start(&[]).await;
    let mut admin = connect(&server).await;
    let set = ["CONFIG", "SET", "busy-reply-threshold", "100"];
    assert_eq!(call(&mut admin, &set).await, Frame::ok());
    (server, admin)
}

/// Sends a command again and again until its reply is `-BUSY`.
async fn until_busy(c: &mut RespClient) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reply = call(c, &["GET", "x"]).await;
        if reply
            == err(
                "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
            )
        {
            return;
        }
        assert_eq!(reply, Frame::Null, "before BUSY");
        assert!(Instant::now() < deadline, "no BUSY reply");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `while true do end`: past `busy-reply-threshold` other clients get `-BUSY`, `SCRIPT
/// KILL` from one of them stops the script, and the server serves everyone again.
#[tokio::test]
async fn a_runaway_script_is_killed_while_others_get_busy() {
    let server = start(&[]).await;
    let mut admin = connect(&server).await;
    assert_eq!(
        call(
            &mut admin,
            &["CONFIG", "SET", "busy-reply-threshold", "100"]
        )
        .await,
        Frame::ok()
    );
    assert_eq!(
        call(&mut admin, &["CONFIG", "GET", "lua-time-limit"]).await,
        Frame::Array(vec![bulk("lua-time-limit"), bulk("100")])
    );
    assert_eq!(
        call(&mut admin, &["SCRIPT", "KILL"]).await,
        err("NOTBUSY No scripts in execution right now.")
    );
    let mut runner = connect(&server).await;
    let running =
        tokio::spawn(async move { eval(&mut runner, "while true do end", &[], &[]).await });
    until_busy(&mut admin).await;
    let mut other = connect(&server).await;
    assert_eq!(
        call(&mut other, &["SET", "y", "1"]).await,
        err(
            "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
        )
    );
    assert_eq!(call(&mut other, &["SCRIPT", "KILL"]).await, Frame::ok());
    assert_eq!(
        running.await.unwrap(),
        err("ERR Script killed by user with SCRIPT KILL... script: \
             694a5fe1ddb97a4c6a1bf299d9537c7d3d0f84e7, on @user_script:1.")
    );
    assert_eq!(call(&mut other, &["SET", "y", "1"]).await, Frame::ok());
    assert_eq!(
        eval(&mut admin, "return redis.call('GET', 'y')", &[], &[]).await,
        bulk("1")
    );
}

/// A script that wrote cannot be killed (half its writes would stay): `-UNKILLABLE`, and
/// it runs to its end (here: two seconds by the server's clock).
#[tokio::test]
async fn a_script_that_wrote_is_unkillable() {
    const WRITE_THEN_SPIN: &str = "redis.call('SET', KEYS[1], 'written') \
         local t0 = tonumber(redis.call('TIME')[1]) \
         while tonumber(redis.call('TIME')[1]) - t0 < 2 do end return 'finished'";
    let (server, mut admin) = busy_after_100ms().await;
    let mut runner = connect(&server).await;
    let running =
        tokio::spawn(async move { eval(&mut runner, WRITE_THEN_SPIN, &["w"], &[]).await });
    until_busy(&mut admin).await;
    let kill = call(&mut admin, &["SCRIPT", "KILL"]).await;
    assert!(
        format!("{kill:?}").contains("UNKILLABLE Sorry the script already executed write"),
        "{kill:?}"
    );
    assert_eq!(running.await.unwrap(), bulk("finished"));
    assert_eq!(call(&mut admin, &["GET", "w"]).await, bulk("written"));
}

/// With `--fsync always` a script's acknowledged writes are on disk: a copy of the
/// directory taken while the server still runs (what a crash would leave) recovers them,
/// all of them, as one unit.
#[tokio::test]
async fn script_writes_survive_a_crash() {
    let dir = temp_dir("scripts");
    let server = start(&["--dir", dir.to_str().unwrap(), "--fsync", "always"]).await;
    let mut c = connect(&server).await;
    for i in 0..20 {
        let reply = eval(
            &mut c,
            "redis.call('INCR', KEYS[1]) redis.call('RPUSH', KEYS[2], ARGV[1]) \
             redis.call('HSET', KEYS[3], ARGV[1], ARGV[1] * 2) return redis.call('LLEN', KEYS[2])",
            &["count", "list", "hash"],
            &[&i.to_string()],
        )
        .await;
        assert_eq!(reply, int(i + 1));
    }
    let crashed = temp_dir("scripts-crashed");
    copy_dir(&dir, &crashed);
    let restarted = start(&["--dir", crashed.to_str().unwrap()]).await;
    let mut r = connect(&restarted).await;
    assert_eq!(call(&mut r, &["GET", "count"]).await, bulk("20"));
    assert_eq!(call(&mut r, &["LLEN", "list"]).await, int(20));
    assert_eq!(call(&mut r, &["HGET", "hash", "19"]).await, bulk("38"));
    restarted.stop().await;
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(crashed);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A replica gets a script's effects, not the script: a value the script computed from
/// the primary's clock arrives as it was written.
#[tokio::test]
async fn a_replica_applies_a_scripts_effects() {
    let primary = start(&[]).await;
    let address = format!("127.0.0.1:{}", primary.addr().port());
    let replica = start(&["--replicaof", &address]).await;
    let mut c = connect(&primary).await;
    let written = eval(
        &mut c,
        "local t = redis.call('TIME') redis.call('SET', KEYS[1], t[1] .. '.' .. t[2]) \
         redis.call('ZADD', KEYS[2], 1, 'a', 2, 'b') redis.call('ZREM', KEYS[2], 'a') \
         return redis.call('GET', KEYS[1])",
        &["stamp", "z"],
        &[],
    )
    .await;
    let mut r = connect(&replica).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while call(&mut r, &["GET", "stamp"]).await != written {
        assert!(
            Instant::now() < deadline,
            "the replica never got the script's write"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        call(&mut r, &["ZRANGE", "z", "0", "-1"]).await,
        Frame::Array(vec![bulk("b")])
    );
    // A replica runs read-only scripts, and refuses a script's writes.
    assert_eq!(
        eval(&mut r, "return redis.call('ZCARD', KEYS[1])", &["z"], &[]).await,
        int(1)
    );
    let refused = eval(&mut r, "return redis.call('SET', 'x', 1)", &[], &[]).await;
    assert!(format!("{refused:?}").contains("READONLY"), "{refused:?}");
}

/// The Lua state has a memory limit: a script that allocates without end fails with a
/// clear error, and the next script runs.
#[tokio::test]
async fn a_script_cannot_take_unbounded_memory() {
    let server = start(&[]).await;
    let mut c = connect(&server).await;
    let reply = eval(
        &mut c,
        "local mb, t = string.rep('x', 1048576), {} for i = 1, 1e6 do t[i] = mb .. i end",
        &[],
        &[],
    )
    .await;
    let Frame::Error(text) = &reply else {
        panic!("{reply:?}")
    };
    assert!(
        String::from_utf8_lossy(text).contains("not enough memory"),
        "{reply:?}"
    );
    assert_eq!(
        eval(&mut c, "return 'still here'", &[], &[]).await,
        bulk("still here")
    );
}

/// `EVAL` queued in `MULTI` runs in `EXEC`'s turn; `EVALSHA` finds what `SCRIPT LOAD`
/// cached; `SCRIPT FLUSH` forgets it.
#[tokio::test]
async fn scripts_in_transactions_and_the_cache() {
    let server = start(&[]).await;
    let mut c = connect(&server).await;
    let sha = call(
        &mut c,
        &["SCRIPT", "LOAD", "return redis.call('INCR', KEYS[1])"],
    )
    .await;
    let sha = common::frame_text(&sha);
    assert_eq!(call(&mut c, &["MULTI"]).await, Frame::simple("OK"));
    assert_eq!(
        call(&mut c, &["EVALSHA", &sha, "1", "n"]).await,
        Frame::simple("QUEUED")
    );
    assert_eq!(
        call(
            &mut c,
            &["EVAL", "return redis.call('INCRBY', KEYS[1], 10)", "1", "n"]
        )
        .await,
        Frame::simple("QUEUED")
    );
    assert_eq!(
        call(&mut c, &["EXEC"]).await,
        Frame::Array(vec![int(1), int(11)])
    );
    assert_eq!(call(&mut c, &["SCRIPT", "FLUSH"]).await, Frame::ok());
    assert_eq!(
        call(&mut c, &["EVALSHA", &sha, "1", "n"]).await,
        err("NOSCRIPT No matching script. Please use EVAL.")
    );
}

/// redis-py's `register_script` (EVALSHA, then EVAL on NOSCRIPT) runs the rate limiter
/// and the lock against kv and redis-server alike: `tests/python/scripts.py`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_registered_scripts_match_redis() {
    let redis = RedisServer::start(&[]);
    let server = start(&[]).await;
    let ports = [server.addr().port(), redis.port];
    common::run_python("scripts.py", &ports.map(|p| p.to_string())).await;
}

/// A script quick on its first runs runs inline on the event loop; when a later run spins
/// (here inside `pcall`, which must not catch the move or the kill), it is moved to the
/// VM's thread before it wrote: other clients get `-BUSY` and `SCRIPT KILL` stops it.
#[tokio::test]
async fn a_quick_script_that_turns_runaway_is_still_killed_while_others_get_busy() {
    const SOMETIMES_SPINS: &str = "if ARGV[1] == 'spin' then \
         while true do pcall(function() while true do end end) end end return 'quick'";
    let (server, mut admin) = busy_after_100ms().await;
    let mut runner = connect(&server).await;
    for _ in 0..3 {
        assert_eq!(
            eval(&mut runner, SOMETIMES_SPINS, &[], &["no"]).await,
            bulk("quick")
        );
    }
    let running =
        tokio::spawn(async move { eval(&mut runner, SOMETIMES_SPINS, &[], &["spin"]).await });
    until_busy(&mut admin).await;
    assert_eq!(call(&mut admin, &["SCRIPT", "KILL"]).await, Frame::ok());
    let killed = running.await.unwrap();
    assert!(
        format!("{killed:?}").contains("Script killed by user with SCRIPT KILL"),
        "{killed:?}"
    );
    assert_eq!(call(&mut admin, &["SET", "y", "1"]).await, Frame::ok());
    // Killed once, it goes on running where it is killable; quick again, inline again.
    let mut c = connect(&server).await;
    for _ in 0..3 {
        assert_eq!(
            eval(&mut c, SOMETIMES_SPINS, &[], &["no"]).await,
            bulk("quick")
        );
    }
}

/// A quick script that reads, then takes long before it writes, is started over on the
/// VM's thread: its write happens once, computed from what it read, and its reply is the
/// one of the run that finished.
#[tokio::test]
async fn a_script_moved_to_the_vm_thread_writes_once() {
    const READ_WAIT_WRITE: &str = "local v = tonumber(redis.call('GET', KEYS[1]) or '0') \
         if ARGV[1] == 'slow' then \
           local function now() local t = redis.call('TIME') return t[1] * 1000000 + t[2] end \
           local t0 = now() while now() - t0 < 200000 do end end \
         redis.call('SET', KEYS[1], v + 1) return v";
    let server = start(&[]).await;
    let mut c = connect(&server).await;
    for i in 0..3 {
        assert_eq!(
            eval(&mut c, READ_WAIT_WRITE, &["n"], &["fast"]).await,
            int(i)
        );
    }
    assert_eq!(
        eval(&mut c, READ_WAIT_WRITE, &["n"], &["slow"]).await,
        int(3)
    );
    assert_eq!(call(&mut c, &["GET", "n"]).await, bulk("4"));
    for i in 4..7 {
        assert_eq!(
            eval(&mut c, READ_WAIT_WRITE, &["n"], &["fast"]).await,
            int(i)
        );
    }
    assert_eq!(call(&mut c, &["GET", "n"]).await, bulk("7"));
}

/// A script is in the slow log like any command, as in Redis: its time is its own work,
/// whether it ran on the VM's thread (a script's first run) or inline on the event loop
/// (the runs after a quick one).
#[tokio::test]
async fn scripts_reach_the_slow_log_wherever_they_run() {
    let server = start(&[]).await;
    let mut c = connect(&server).await;
    call(&mut c, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]).await;
    for _ in 0..3 {
        assert_eq!(eval(&mut c, "return 1", &[], &[]).await, int(1));
    }
    call(&mut c, &["CONFIG", "SET", "slowlog-log-slower-than", "-1"]).await;
    let Frame::Array(entries) = call(&mut c, &["SLOWLOG", "GET", "-1"]).await else {
        panic!("SLOWLOG GET");
    };
    let scripts = entries
        .iter()
        .filter(|entry| {
            matches!(entry, Frame::Array(fields)
                if fields[3] == Frame::Array(vec![bulk("EVAL"), bulk("return 1"), bulk("0")]))
        })
        .count();
    assert_eq!(scripts, 3);
    server.stop().await;
}

/// Every script starts in its caller's database, even right after one that `SELECT`ed
/// another (scripts' commands share one session, reset as each script starts): on the
/// VM's thread (a script's first run) and inline (the runs after).
#[tokio::test]
async fn each_script_starts_in_its_callers_database() {
    const WRITE_IN_2: &str = "redis.call('select', 2) return redis.call('incr', KEYS[1])";
    const READ: &str = "return redis.call('get', KEYS[1])";
    let server = start(&[]).await;
    let mut c = connect(&server).await;
    for i in 1..=3 {
        assert_eq!(eval(&mut c, WRITE_IN_2, &["n"], &[]).await, int(i));
        assert_eq!(eval(&mut c, READ, &["n"], &[]).await, Frame::Null);
    }
    call(&mut c, &["SELECT", "2"]).await;
    assert_eq!(eval(&mut c, READ, &["n"], &[]).await, bulk("3"));
    server.stop().await;
}

/// A script sees the time it started at (Redis 7's "time snapshot"): a key that expires
/// while the script runs still exists for the script's later commands, on kv as on
/// redis-server, where without the snapshot it would be gone.
#[tokio::test]
async fn a_key_does_not_expire_in_the_middle_of_a_script() {
    const OUTLIVE: &str = "redis.call('set', KEYS[1], 'v', 'px', 1) \
        local t0 = redis.call('time') \
        repeat local t = redis.call('time') \
        until (t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) > 5000 \
        return {redis.call('exists', KEYS[1]), redis.call('get', KEYS[1])}";
    let redis = RedisServer::start(&[]);
    let mut theirs = RespClient::connect(redis.socket_addr()).await.unwrap();
    let server = start(&[]).await;
    let mut ours = connect(&server).await;
    let expected = Frame::Array(vec![int(1), bulk("v")]);
    assert_eq!(eval(&mut theirs, OUTLIVE, &["k"], &[]).await, expected);
    assert_eq!(eval(&mut ours, OUTLIVE, &["k"], &[]).await, expected);
    server.stop().await;
}

#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! Crash test for the bitmap, HyperLogLog and geo types and for script effects: writers
//! run `SETBIT`/`BITFIELD`, `PFADD`/`PFMERGE`/`PFCOUNT`, `GEOADD` and an `EVALSHA` script
//! that writes all of those types at once, against the real `infralab kv` binary, and
//! record every acknowledged write with what the server answered about it afterwards
//! (the sketch's count, the member's position). The process is killed with SIGKILL under
//! that load and restarted from the same directory: every acknowledged effect must be
//! there and read back the same (bit values, `PFCOUNT` equal to the count before the
//! kill, `GEOPOS` and `GEOSEARCH` finding the member), and every script — acknowledged or
//! cut off by the kill — must have left all of its effects or none.

mod kv_process;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kv_process::{KvProcess, remove, temp_dir};
use proto::Frame;
use service::RespClient;

/// Writers per kind of write.
const PER_KIND: u64 = 2;
const KINDS: u64 = 4;
const WRITERS: u64 = PER_KIND * KINDS;

/// Writes every type a script can: a string, a bit, a sketch and a geo member, then
/// counts itself.
const SCRIPT: &str = "redis.call('SET', KEYS[1], ARGV[1]) \
     redis.call('SETBIT', KEYS[2], ARGV[1], 1) \
     redis.call('PFADD', KEYS[3], 'a', 'b', 'c', ARGV[1]) \
     redis.call('GEOADD', KEYS[4], ARGV[2], ARGV[3], ARGV[1]) \
     return redis.call('INCR', KEYS[5])";

fn b(s: impl Into<String>) -> Bytes {
    Bytes::from(s.into())
}

/// A position for write `n`: spread over a few degrees around (0, 45).
fn lonlat(n: u64) -> (String, String) {
    let lon = -5.0 + (n % 1000) as f64 * 0.01;
    let lat = 40.0 + (n / 1000 % 1000) as f64 * 0.01;
    (format!("{lon:.5}"), format!("{lat:.5}"))
}

/// What a writer saw acknowledged: its number and the replies read back after it.
#[derive(Debug, Clone)]
struct Acked {
    n: u64,
    /// The replies the server gave to the reads that followed the write.
    seen: Vec<Frame>,
}

#[derive(Default)]
struct Log {
    acked: Vec<(u64, Acked)>,
    /// Every script write sent (acknowledged or not), by writer.
    scripts_sent: Vec<(u64, u64)>,
}

/// The commands of write `n` by writer `w`, and how many of their replies are reads
/// recorded in [`Acked::seen`] (the last ones).
fn commands(w: u64, n: u64, sha: &Bytes) -> (Vec<Vec<Bytes>>, usize) {
    let i = n / WRITERS;
    match w % KINDS {
        0 => (
            vec![
                vec![
                    b("SETBIT"),
                    b(format!("bits:{w}")),
                    b(n.to_string()),
                    b("1"),
                ],
                vec![
                    b("BITFIELD"),
                    b(format!("bf:{w}")),
                    b("SET"),
                    b("u16"),
                    b(format!("#{i}")),
                    b((n % 65536).to_string()),
                ],
                vec![b("GETBIT"), b(format!("bits:{w}")), b(n.to_string())],
                vec![
                    b("BITFIELD_RO"),
                    b(format!("bf:{w}")),
                    b("GET"),
                    b("u16"),
                    b(format!("#{i}")),
                ],
            ],
            2,
        ),
        1 => {
            // Sketches of 1 to 300 elements; the merge makes the union of this one and
            // the writer's previous one.
            let mut pfadd = vec![b("PFADD"), b(format!("hll:{n}"))];
            pfadd.extend((0..1 + n % 300).map(|e| b(format!("e{e}-{}", n % 7))));
            (
                vec![
                    pfadd,
                    vec![
                        b("PFMERGE"),
                        b(format!("pm:{n}")),
                        b(format!("hll:{n}")),
                        b(format!("hll:{}", n.wrapping_sub(WRITERS))),
                    ],
                    vec![b("PFCOUNT"), b(format!("hll:{n}"))],
                    vec![b("PFCOUNT"), b(format!("pm:{n}"))],
                ],
                2,
            )
        }
        2 => {
            let (lon, lat) = lonlat(n);
            (
                vec![
                    vec![
                        b("GEOADD"),
                        b(format!("geo:{w}")),
                        b(lon),
                        b(lat),
                        b(format!("m{n}")),
                    ],
                    vec![b("GEOPOS"), b(format!("geo:{w}")), b(format!("m{n}"))],
                ],
                1,
            )
        }
        _ => {
            let (lon, lat) = lonlat(n);
            (
                vec![vec![
                    b("EVALSHA"),
                    sha.clone(),
                    b("5"),
                    b(format!("s:{n}")),
                    b(format!("sbits:{w}")),
                    b(format!("shll:{n}")),
                    b(format!("sgeo:{w}")),
                    b(format!("scount:{w}")),
                    b(n.to_string()),
                    b(lon),
                    b(lat),
                ]],
                0,
            )
        }
    }
}

/// Writers send their writes (each one's commands in one pipeline) until the connection
/// dies; a write is acknowledged when every reply came back without an error.
fn spawn_writers(
    server: &KvProcess,
    sha: &Bytes,
    log: &Arc<Mutex<Log>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..WRITERS)
        .map(|w| {
            let (addr, log, sha) = (server.addr, log.clone(), sha.clone());
            tokio::spawn(async move {
                let Ok(mut c) = RespClient::connect(addr).await else {
                    return;
                };
                for i in 0.. {
                    let n = i * WRITERS + w;
                    let (commands, reads) = commands(w, n, &sha);
                    let count = commands.len();
                    for command in commands {
                        c.queue(command);
                    }
                    if w % KINDS == 3 {
                        log.lock().unwrap().scripts_sent.push((w, n));
                    }
                    if c.flush().await.is_err() {
                        return;
                    }
                    let mut replies = Vec::with_capacity(count);
                    for _ in 0..count {
                        match c.read_reply().await {
                            Ok(Frame::Error(e)) => panic!("write {n} of writer {w}: -{e:?}"),
                            Ok(reply) => replies.push(reply),
                            Err(_) => return,
                        }
                    }
                    let seen = replies.split_off(count - reads);
                    if w % KINDS == 3 {
                        assert!(matches!(replies[0], Frame::Integer(_)), "{replies:?}");
                    }
                    log.lock().unwrap().acked.push((w, Acked { n, seen }));
                }
            })
        })
        .collect()
}

async fn call(c: &mut RespClient, words: Vec<Bytes>) -> Frame {
    c.call(words).await.unwrap()
}

fn int(n: i64) -> Frame {
    Frame::Integer(n)
}

/// Checks write `n` of writer `w` after the restart: its reads answer as before the kill.
async fn check_acked(c: &mut RespClient, w: u64, acked: &Acked) {
    let n = acked.n;
    match w % KINDS {
        0..=2 => {
            let (commands, reads) = commands(w, n, &Bytes::new());
            let reads = &commands[commands.len() - reads..];
            for (read, before) in reads.iter().zip(&acked.seen) {
                let after = call(c, read.clone()).await;
                assert_eq!(&after, before, "{read:?} of acknowledged write {n}");
            }
            if w % KINDS == 2 {
                let (lon, lat) = lonlat(n);
                let near = call(
                    c,
                    vec![
                        b("GEOSEARCH"),
                        b(format!("geo:{w}")),
                        b("FROMLONLAT"),
                        b(lon),
                        b(lat),
                        b("BYRADIUS"),
                        b("1"),
                        b("m"),
                    ],
                )
                .await;
                let Frame::Array(found) = near else {
                    panic!("GEOSEARCH: {near:?}")
                };
                assert!(
                    found.contains(&Frame::Bulk(b(format!("m{n}")))),
                    "GEOSEARCH around m{n} found {found:?}"
                );
            }
        }
        _ => assert_eq!(
            script_effects(c, w, n).await,
            4,
            "acknowledged script {n} lost effects"
        ),
    }
}

/// How many of script `n`'s four effects are there.
async fn script_effects(c: &mut RespClient, w: u64, n: u64) -> usize {
    let string = call(c, vec![b("GET"), b(format!("s:{n}"))]).await;
    let bit = call(
        c,
        vec![b("GETBIT"), b(format!("sbits:{w}")), b(n.to_string())],
    )
    .await;
    let sketch = call(c, vec![b("PFCOUNT"), b(format!("shll:{n}"))]).await;
    let position = call(
        c,
        vec![b("GEOPOS"), b(format!("sgeo:{w}")), b(n.to_string())],
    )
    .await;
    let mut present = 0;
    if string != Frame::Null {
        assert_eq!(string, Frame::Bulk(b(n.to_string())));
        present += 1;
    }
    if bit == int(1) {
        present += 1;
    }
    // Four distinct elements: 4, or 3 if two of them share a register.
    match sketch {
        Frame::Integer(0) => {}
        Frame::Integer(3 | 4) => present += 1,
        other => panic!("PFCOUNT shll:{n}: {other:?}"),
    }
    match position {
        Frame::Array(items) if items.first().is_some_and(|p| matches!(p, Frame::Array(_))) => {
            present += 1;
        }
        Frame::Array(_) => {}
        other => panic!("GEOPOS: {other:?}"),
    }
    present
}

async fn crash_and_check(fsync: &str) {
    let dir = temp_dir(&format!("kv-types-crash-{fsync}"));
    let dir_arg = dir.to_str().unwrap();
    let mut server = KvProcess::start(&["--dir", dir_arg, "--fsync", fsync]);
    let mut c = RespClient::connect(server.addr).await.unwrap();
    let sha = match call(&mut c, vec![b("SCRIPT"), b("LOAD"), b(SCRIPT)]).await {
        Frame::Bulk(sha) => sha,
        other => panic!("SCRIPT LOAD: {other:?}"),
    };
    let log = Arc::new(Mutex::new(Log::default()));
    let writers = spawn_writers(&server, &sha, &log);
    // Under load until every kind has enough acknowledged writes (generous: CI is slow).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let enough = {
            let log = log.lock().unwrap();
            (0..KINDS).all(|kind| log.acked.iter().filter(|(w, _)| w % KINDS == kind).count() >= 60)
        };
        if enough {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "too few writes acknowledged"
        );
    }
    server.kill9();
    for w in writers {
        w.await.unwrap();
    }
    let log = std::mem::take(&mut *log.lock().unwrap());

    let server = KvProcess::start(&["--dir", dir_arg, "--fsync", fsync]);
    let mut c = RespClient::connect(server.addr).await.unwrap();
    for (w, acked) in &log.acked {
        check_acked(&mut c, *w, acked).await;
    }
    // Every script sent, acknowledged or cut off by the kill: all of it or none of it.
    let acked_scripts: HashSet<(u64, u64)> = log
        .acked
        .iter()
        .filter(|(w, _)| w % KINDS == 3)
        .map(|(w, a)| (*w, a.n))
        .collect();
    let mut whole = 0;
    for &(w, n) in &log.scripts_sent {
        match script_effects(&mut c, w, n).await {
            0 => assert!(!acked_scripts.contains(&(w, n)), "script {n} lost"),
            4 => whole += 1,
            part => panic!("script {n}: {part} of its 4 effects survived the crash"),
        }
    }
    // The scripts' counters count the scripts that left their effects.
    let mut counted = 0;
    for w in (0..WRITERS).filter(|w| w % KINDS == 3) {
        match call(&mut c, vec![b("GET"), b(format!("scount:{w}"))]).await {
            Frame::Bulk(v) => counted += std::str::from_utf8(&v).unwrap().parse::<u64>().unwrap(),
            other => panic!("scount:{w}: {other:?}"),
        }
    }
    assert_eq!(
        counted, whole,
        "INCR counters vs scripts with their effects"
    );
    println!(
        "fsync {fsync}: {} acknowledged writes all there after SIGKILL; {whole} of {} scripts \
         whole, none partial",
        log.acked.len(),
        log.scripts_sent.len()
    );
    drop(server);
    remove(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_always_keeps_every_acknowledged_bit_sketch_geo_and_script_effect() {
    crash_and_check("always").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_everysec_keeps_them_when_the_process_dies() {
    crash_and_check("everysec").await;
}

#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! Differential test of MULTI / EXEC / DISCARD / WATCH / UNWATCH: the same scripts, with
//! two clients taking turns, sent to kv and to a real `redis-server`; every reply must be
//! equal. Covers queueing errors (EXECABORT), run-time errors inside EXEC, the errors
//! Redis gives for misplaced commands, and what does and does not make a WATCH fail.

mod common;

use bytes::Bytes;
use proto::Frame;
use service::RespClient;
use testkit::RedisServer;

/// Each line is `N: command words` (client N of two). A line starting with `?` waits
/// until the command's reply is `0` (an expired key gone), then records that reply; one
/// starting with `!` is sent but its reply not compared.
/// Every script starts on an empty server: a FLUSHALL runs first, unrecorded.
const SCRIPTS: &[&str] = &[
    // Commands run at EXEC, in order; each reply in its slot.
    "0: MULTI\n0: SET a 1\n0: INCR a\n0: GET a\n0: EXEC\n0: GET a",
    // Run-time errors do not stop the others, and nothing is rolled back.
    "0: SET s text\n0: MULTI\n0: SET t 1\n0: INCR s\n0: SET u 2\n0: LPUSH s x\n0: SET a 1 XX NX\n0: EXEC\n0: MGET t u",
    // Queueing errors discard the whole transaction.
    "0: MULTI\n0: SET x 1\n0: NOSUCHCOMMAND a\n0: SET y 2\n0: EXEC\n0: EXISTS x y",
    "0: MULTI\n0: SET x 1\n0: GET\n0: EXEC\n0: EXISTS x",
    "0: MULTI\n0: SET x 1\n0: SAVE\n0: EXEC\n0: EXISTS x",
    // Misplaced commands.
    "0: EXEC\n0: DISCARD\n0: MULTI\n0: MULTI\n0: SET a 1\n0: EXEC\n0: GET a",
    "0: MULTI\n0: WATCH a\n0: SET a 1\n0: EXEC",
    "0: MULTI\n0: DISCARD\n0: EXEC\n0: MULTI\n0: SET a 1\n0: DISCARD\n0: EXISTS a",
    "0: MULTI\n0: EXEC",
    // Nothing of a transaction runs before EXEC: another client sees none of it.
    "0: MULTI\n0: SET a 1\n0: INCR n\n1: EXISTS a n\n0: EXEC\n1: MGET a n",
    // WATCH: another client's write, the client's own write, and no write at all.
    "0: SET k 1\n0: WATCH k\n1: SET k 2\n0: MULTI\n0: SET k 3\n0: EXEC\n0: GET k",
    "0: SET k 1\n0: WATCH k\n0: SET k 5\n0: MULTI\n0: INCR k\n0: EXEC\n0: GET k",
    "0: SET k 1\n0: WATCH k\n1: GET k\n0: MULTI\n0: INCR k\n0: EXEC\n0: GET k",
    // The same value written again is still a change.
    "0: SET k 1\n0: WATCH k\n1: SET k 1\n0: MULTI\n0: INCR k\n0: EXEC",
    // A write that changes nothing is not.
    "0: WATCH k\n1: DEL k\n1: PERSIST k\n0: MULTI\n0: SET k 1\n0: EXEC",
    // Deleted, renamed away, expired by EXPIRE 0, given a TTL, changed inside a collection.
    "0: SET k 1\n0: WATCH k\n1: DEL k\n0: MULTI\n0: PING\n0: EXEC",
    "0: SET k 1\n0: WATCH k\n1: RENAME k j\n0: MULTI\n0: PING\n0: EXEC",
    "0: SET k 1\n0: WATCH k\n1: EXPIRE k 100\n0: MULTI\n0: PING\n0: EXEC",
    "0: RPUSH l a b\n0: WATCH l\n1: LPOP l\n0: MULTI\n0: LLEN l\n0: EXEC",
    "0: HSET h f 1\n0: WATCH h\n1: HINCRBY h f 1\n0: MULTI\n0: HGET h f\n0: EXEC",
    // Created by another client after WATCH.
    "0: WATCH k\n1: SET k 1\n0: MULTI\n0: PING\n0: EXEC",
    // Expired after WATCH (waited for until it is gone).
    "0: SET k 1 PX 40\n0: WATCH k\n?1: EXISTS k\n0: MULTI\n0: PING\n0: EXEC",
    // FLUSHDB / FLUSHALL touch only watched keys that existed.
    "0: SET k 1\n0: WATCH k\n1: FLUSHDB\n0: MULTI\n0: PING\n0: EXEC",
    "0: SET k 1\n0: WATCH k\n1: FLUSHALL\n0: MULTI\n0: PING\n0: EXEC",
    "0: WATCH k\n1: FLUSHDB\n0: MULTI\n0: PING\n0: EXEC",
    "0: SET other 1\n0: WATCH k\n1: FLUSHALL\n0: MULTI\n0: PING\n0: EXEC",
    // SWAPDB: the key appears from, or leaves for, the other database.
    "1: SELECT 1\n1: SET k 1\n0: WATCH k\n1: SWAPDB 0 1\n0: MULTI\n0: PING\n0: EXEC\n0: GET k",
    "0: SET k 1\n0: WATCH k\n1: SWAPDB 0 1\n0: MULTI\n0: PING\n0: EXEC",
    "0: WATCH k\n1: SWAPDB 0 1\n0: MULTI\n0: PING\n0: EXEC",
    // A key in another database is another key.
    "0: SET k 1\n0: WATCH k\n1: SELECT 2\n1: SET k 2\n0: MULTI\n0: PING\n0: EXEC",
    // UNWATCH, DISCARD and EXEC forget the watched keys.
    "0: SET k 1\n0: WATCH k\n0: UNWATCH\n1: SET k 2\n0: MULTI\n0: PING\n0: EXEC",
    "0: SET k 1\n0: WATCH k\n0: MULTI\n0: DISCARD\n1: SET k 2\n0: MULTI\n0: PING\n0: EXEC",
    "0: SET k 1\n0: WATCH k\n0: MULTI\n0: PING\n0: EXEC\n1: SET k 2\n0: MULTI\n0: PING\n0: EXEC",
    // A failed EXEC also forgets them, and EXECABORT too.
    "0: SET k 1\n0: WATCH k\n1: SET k 2\n0: MULTI\n0: EXEC\n1: SET k 3\n0: MULTI\n0: PING\n0: EXEC",
    "0: SET k 1\n0: WATCH k\n0: MULTI\n0: NOSUCH\n0: EXEC\n1: SET k 3\n0: MULTI\n0: PING\n0: EXEC",
    // Several keys, one changed; UNWATCH inside MULTI is queued.
    "0: MSET a 1 b 2\n0: WATCH a\n0: WATCH b c\n1: SET c 3\n0: MULTI\n0: UNWATCH\n0: EXEC",
    // Blocking commands inside MULTI do not block.
    "0: MULTI\n0: BLPOP empty 0\n0: BRPOP empty 1\n0: BLMOVE empty dst LEFT LEFT 0\n0: BRPOPLPUSH empty dst 0\n0: RPUSH l x y\n0: BLPOP l 0\n0: BLMOVE l dst RIGHT LEFT 0\n0: EXEC\n0: LRANGE dst 0 -1",
    // Replies of every shape inside EXEC; SELECT inside EXEC stays selected.
    "0: RPUSH l a b c\n0: HSET h f v\n0: MULTI\n0: LRANGE l 0 -1\n0: HGET h f\n0: GET nope\n0: PING\n0: ECHO hi\n0: ZADD z 1 m\n0: SELECT 3\n0: SET a 1\n0: EXEC\n0: GET a\n0: SELECT 0\n0: GET a",
    // A list filled by EXEC serves a client blocked on it only after EXEC.
    "0: MULTI\n0: RPUSH q 1\n0: LLEN q\n0: RPUSH q 2\n0: LLEN q\n0: EXEC",
    // RESP3: EXEC's null is `_`, its array holds RESP3 replies (HELLO's reply, which
    // names the server, is not compared).
    "!0: HELLO 3\n0: SET k 1\n0: WATCH k\n1: SET k 2\n0: MULTI\n0: GET k\n0: EXEC\n0: MULTI\n0: GET nope\n0: INCR k\n0: EXEC",
    // The connection's own commands are queued too and run in their turn (Redis 7 queues
    // all but a few, such as SAVE and SYNC): CLIENT, CONFIG, ECHO, PING, AUTH, SELECT.
    "0: MULTI\n0: CLIENT SETNAME tx\n0: CLIENT GETNAME\n0: CONFIG SET maxmemory 0\n0: CONFIG GET maxmemory\n0: PING\n0: PING hi\n0: ECHO hi\n0: SELECT 1\n0: SET a 1\n0: EXEC\n0: CLIENT GETNAME\n0: GET a\n0: SELECT 0\n0: EXISTS a",
    "0: MULTI\n0: AUTH nopass\n0: SELECT 99\n0: HELLO 4\n0: COMMAND GETKEYS SET a b\n0: INFO nosuchsection\n0: SET x 1\n0: EXEC\n0: GET x",
    // ... and nothing of them runs before EXEC, or after a DISCARD.
    "0: MULTI\n0: CLIENT SETNAME early\n1: PING\n0: DISCARD\n0: CLIENT GETNAME",
    // Their mistakes are queueing errors: an unknown subcommand, a subcommand's arity.
    "0: MULTI\n0: SET x 1\n0: CLIENT NOSUCH\n0: EXEC\n0: EXISTS x",
    "0: MULTI\n0: SET x 1\n0: client nosuch\n0: EXEC\n0: EXISTS x",
    "0: MULTI\n0: SET x 1\n0: CONFIG GET\n0: EXEC\n0: EXISTS x",
    "0: MULTI\n0: SET x 1\n0: CLIENT SETNAME\n0: EXEC\n0: EXISTS x",
    "0: MULTI\n0: SET x 1\n0: CLIENT\n0: EXEC\n0: EXISTS x",
    "0: MULTI\n0: SET x 1\n0: PSYNC ? -1\n0: EXEC\n0: EXISTS x",
    // Keys in a database selected before WATCH.
    "0: SELECT 5\n0: SET k 1\n0: WATCH k\n1: SELECT 5\n1: INCR k\n0: MULTI\n0: GET k\n0: EXEC",
];

#[tokio::test]
async fn transactions_match_redis_server() {
    let redis = RedisServer::start(&[]);
    let server = common::start(&[]).await;
    let mut mismatches = Vec::new();
    let mut compared = 0;
    for script in SCRIPTS {
        let ours = run(server.addr(), script).await;
        let theirs = run(redis.socket_addr(), script).await;
        compared += ours.len();
        if ours != theirs {
            let mut text = format!("script:\n{script}\n");
            for (i, (line, (a, b))) in script.lines().zip(ours.iter().zip(&theirs)).enumerate() {
                let mark = if a == b { " " } else { "*" };
                text.push_str(&format!(
                    "{mark}{i:>2} {line}\n     kv:    {a:?}\n     redis: {b:?}\n"
                ));
            }
            mismatches.push(text);
        }
    }
    assert!(compared >= 200, "only {compared} replies compared");
    assert!(
        mismatches.is_empty(),
        "{} of {} scripts differ:\n{}",
        mismatches.len(),
        SCRIPTS.len(),
        mismatches.join("\n")
    );
    server.stop().await;
}

/// Runs one script against the server at `addr`, returning every reply in order.
async fn run(addr: impl tokio::net::ToSocketAddrs + Copy, script: &str) -> Vec<Frame> {
    let mut clients = [
        RespClient::connect(addr).await.unwrap(),
        RespClient::connect(addr).await.unwrap(),
    ];
    call(&mut clients[0], "FLUSHALL").await;
    let mut replies = Vec::new();
    for line in script.lines() {
        let (until_zero, line) = match line.strip_prefix('?') {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let (compared, line) = match line.strip_prefix('!') {
            Some(rest) => (false, rest),
            None => (true, line),
        };
        let (who, command) = line.split_once(": ").unwrap();
        let client = &mut clients[who.parse::<usize>().unwrap()];
        let mut reply = call(client, command).await;
        if until_zero {
            for _ in 0..500 {
                if reply == Frame::Integer(0) {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                reply = call(client, command).await;
            }
        }
        replies.push(if compared { reply } else { Frame::Null });
    }
    replies
}

async fn call(client: &mut RespClient, command: &str) -> Frame {
    client
        .call(
            command
                .split_whitespace()
                .map(|w| Bytes::copy_from_slice(w.as_bytes())),
        )
        .await
        .unwrap()
}

/// A `HELLO 3` queued in the middle of a transaction: Redis writes the replies before it
/// in RESP2 and the rest (its own map included) in RESP3, inside one array. The HELLO map
/// names the server, so the bytes are compared around it.
#[tokio::test]
async fn hello_inside_exec_switches_protocol_mid_array_as_redis_does() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let redis = RedisServer::start(&[]);
    let server = common::start(&[]).await;
    let request = b"MULTI\r\nGET nope\r\nHELLO 3\r\nGET nope\r\nEXEC\r\nGET nope\r\n";
    let mut shapes = Vec::new();
    for addr in [server.addr(), redis.socket_addr()] {
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        socket.write_all(request).await.unwrap();
        let mut reply = Vec::new();
        // Read until the last reply (the null of the GET after EXEC) is in.
        while !reply.ends_with(b"_\r\n_\r\n") {
            let mut chunk = [0u8; 4096];
            let n = socket.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&reply));
            reply.extend_from_slice(&chunk[..n]);
        }
        let text = String::from_utf8_lossy(&reply).into_owned();
        let map = text.find('%').unwrap();
        // Up to the map (kv's has more fields), and the two nulls after it.
        shapes.push((text[..=map].to_string(), text[text.len() - 6..].to_string()));
    }
    assert_eq!(
        shapes[0].0,
        "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n$-1\r\n%"
    );
    assert_eq!(shapes[0], shapes[1]);
    server.stop().await;
}

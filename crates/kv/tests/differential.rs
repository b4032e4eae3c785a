#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! Differential test: the corpus in `tests/data/corpus.txt` is sent to kv and to a real
//! `redis-server`, and every reply must be equal (TTLs within a tolerance, KEYS and SCAN
//! compared as sets because the two order keys differently).

mod common;

use std::time::Duration;

use bytes::Bytes;
use proto::{Frame, Protocol};
use service::RespClient;
use testkit::RedisServer;

/// A real redis-server and a client of it.
async fn start_redis() -> (RedisServer, RespClient) {
    let redis = RedisServer::start(&[]);
    let client = RespClient::connect(redis.socket_addr()).await.unwrap();
    (redis, client)
}

/// Splits a corpus line into words (see the corpus header for the syntax).
fn words(line: &str) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        let mut word = Vec::new();
        if first == '"' {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next().unwrap() {
                        'r' => word.push(b'\r'),
                        'n' => word.push(b'\n'),
                        't' => word.push(b'\t'),
                        '0' => word.push(0),
                        'x' => {
                            let hex: String = [chars.next().unwrap(), chars.next().unwrap()]
                                .iter()
                                .collect();
                            word.push(u8::from_str_radix(&hex, 16).unwrap());
                        }
                        other => word.extend(other.to_string().bytes()),
                    },
                    c => word.extend(c.to_string().bytes()),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                word.extend(c.to_string().bytes());
                chars.next();
            }
        }
        out.push(Bytes::from(word));
    }
    out
}

/// Puts replies that Redis documents as unordered (KEYS, SCAN, HGETALL, SMEMBERS, ...)
/// in a canonical order; field/value and member/score pairs are sorted as pairs.
fn normalize(request: &[Bytes], reply: Frame) -> Frame {
    // RESP3 maps and sets are unordered by definition: canonical order for both.
    let reply = match reply {
        Frame::Map(mut pairs) => {
            pairs.sort_by(|a, b| {
                (a.0.as_bytes(), a.1.as_bytes()).cmp(&(b.0.as_bytes(), b.1.as_bytes()))
            });
            return Frame::Map(pairs);
        }
        Frame::Set(mut items) => {
            items.sort_by(|a, b| a.as_bytes().cmp(&b.as_bytes()));
            return Frame::Set(items);
        }
        reply => reply,
    };
    let command = request[0].to_ascii_uppercase();
    let paired = matches!(command.as_slice(), b"HGETALL" | b"HSCAN" | b"ZSCAN")
        || request.iter().any(|w| {
            w.eq_ignore_ascii_case(b"WITHVALUES") || w.eq_ignore_ascii_case(b"WITHSCORES")
        });
    let sort = |items: Vec<Frame>| {
        let nested = items.iter().all(|f| matches!(f, Frame::Array(_)));
        if paired && nested && !items.is_empty() {
            // RESP3 pairs: [[member, score], ...], each pair sorted as one.
            let mut items = items;
            items.sort_by(|a, b| {
                let key = |f: &Frame| match f {
                    Frame::Array(pair) => pair.iter().map(|f| f.as_bytes().cloned()).collect(),
                    _ => Vec::new(),
                };
                key(a).cmp(&key(b))
            });
            return Frame::Array(items);
        }
        let mut groups: Vec<Vec<Frame>> = if paired {
            items.chunks(2).map(<[Frame]>::to_vec).collect()
        } else {
            items.into_iter().map(|f| vec![f]).collect()
        };
        groups.sort_by(|a, b| {
            a.iter()
                .map(Frame::as_bytes)
                .cmp(b.iter().map(Frame::as_bytes))
        });
        Frame::Array(groups.concat())
    };
    match (command.as_slice(), reply) {
        (
            b"KEYS" | b"SMEMBERS" | b"HKEYS" | b"HVALS" | b"HGETALL" | b"SINTER" | b"SUNION"
            | b"SDIFF" | b"SRANDMEMBER" | b"HRANDFIELD" | b"ZRANDMEMBER" | b"SPOP",
            Frame::Array(items),
        ) => sort(items),
        (b"SCAN" | b"HSCAN" | b"SSCAN" | b"ZSCAN", Frame::Array(mut parts)) if parts.len() == 2 => {
            if let Frame::Array(keys) = parts.pop().unwrap() {
                parts.push(sort(keys));
            }
            Frame::Array(parts)
        }
        (_, reply) => reply,
    }
}

fn close_enough(a: &Frame, b: &Frame) -> bool {
    match (a, b) {
        (Frame::Integer(x), Frame::Integer(y)) => (x - y).abs() <= 2.max(x.abs() / 50),
        _ => a == b,
    }
}

#[tokio::test]
async fn replies_match_redis_server() {
    compare_corpus(include_str!("data/corpus.txt"), 300, Protocol::Resp2).await;
}

/// Lua scripting (EVAL, EVALSHA, SCRIPT), in RESP2 and after `HELLO 3`.
#[tokio::test]
async fn script_replies_match_redis_server() {
    for protocol in [Protocol::Resp2, Protocol::Resp3] {
        compare_corpus(include_str!("data/scripting.txt"), 180, protocol).await;
    }
}

/// Hashes, lists, sets and sorted sets.
#[tokio::test]
async fn collection_replies_match_redis_server() {
    compare_corpus(include_str!("data/collections.txt"), 300, Protocol::Resp2).await;
}

/// The same corpus after `HELLO 3`: every reply must have the RESP3 type Redis gives it
/// (a map, a set, a double, a null...), not only the same contents.
#[tokio::test]
async fn resp3_replies_match_redis_server() {
    compare_corpus(include_str!("data/corpus.txt"), 300, Protocol::Resp3).await;
}

/// Collections after `HELLO 3`: HGETALL a map, SMEMBERS a set, ZSCORE a double,
/// WITHSCORES as [member, score] pairs.
#[tokio::test]
async fn resp3_collection_replies_match_redis_server() {
    compare_corpus(include_str!("data/collections.txt"), 300, Protocol::Resp3).await;
}

/// Bitmaps, BITFIELD, SUBSTR and HyperLogLog, in RESP2 and after `HELLO 3`.
#[tokio::test]
async fn bitmap_and_hyperloglog_replies_match_redis_server() {
    for protocol in [Protocol::Resp2, Protocol::Resp3] {
        compare_corpus(include_str!("data/bits.txt"), 200, protocol).await;
    }
}

/// LCS, the geo commands and sorted-set algebra, in RESP2 and after `HELLO 3`: scores,
/// positions and distances must be the same bits, not only close.
#[tokio::test]
async fn geo_lcs_and_zset_algebra_replies_match_redis_server() {
    for protocol in [Protocol::Resp2, Protocol::Resp3] {
        compare_corpus(include_str!("data/geo.txt"), 300, protocol).await;
    }
}

/// Multi-key and blocking pops, SORT, MOVE, OBJECT and the server commands, in RESP2
/// and after `HELLO 3`.
#[tokio::test]
async fn pops_sort_and_server_replies_match_redis_server() {
    for protocol in [Protocol::Resp2, Protocol::Resp3] {
        compare_corpus(include_str!("data/pops.txt"), 300, protocol).await;
    }
}

/// Sends every command of `corpus` to kv and to redis-server; all replies must match.
async fn compare_corpus(corpus: &str, at_least: usize, protocol: Protocol) {
    let (_redis, mut peer) = start_redis().await;
    let server = common::start(&[]).await;
    let mut kv = common::connect(&server).await;
    if protocol == Protocol::Resp3 {
        for client in [&mut kv, &mut peer] {
            let hello = client.call(["HELLO", "3"]).await.unwrap();
            assert!(matches!(hello, Frame::Map(_)), "HELLO 3: {hello:?}");
        }
    }
    let mut compared = 0;
    let mut mismatches = Vec::new();
    for (n, raw) in corpus.lines().enumerate() {
        let line = raw.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (mode, text) = match line.as_bytes()[0] {
            b'~' | b'!' | b'?' => (line.as_bytes()[0], &line[1..]),
            _ => (b'=', line),
        };
        let request = words(text);
        let ours = normalize(&request, kv.call(request.clone()).await.unwrap());
        let theirs = normalize(&request, peer.call(request.clone()).await.unwrap());
        let equal = match mode {
            b'!' => true,
            b'~' => close_enough(&ours, &theirs),
            b'?' => std::mem::discriminant(&ours) == std::mem::discriminant(&theirs),
            _ => ours == theirs,
        };
        compared += 1;
        if !equal {
            mismatches.push(format!(
                "line {}: {text}\n    kv:    {ours:?}\n    redis: {theirs:?}",
                n + 1
            ));
        }
    }
    assert!(
        compared >= at_least,
        "the corpus has only {compared} commands"
    );
    assert!(
        mismatches.is_empty(),
        "{} of {compared} replies differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    server.stop().await;
}

/// The blocking list commands with concurrent clients: the same script against kv and
/// redis-server, replies compared in order. Clients block one after another (each waits
/// until the server reports it blocked), so "served in the order they blocked" is
/// checked, along with timeouts, several keys, BLMOVE woken by a push, and errors.
#[tokio::test]
async fn blocking_pops_match_redis_server() {
    for protocol in [Protocol::Resp2, Protocol::Resp3] {
        let (redis, _peer) = start_redis().await;
        let server = common::start(&[]).await;
        let theirs = blocking_script(redis.socket_addr(), protocol).await;
        let ours = blocking_script(server.addr(), protocol).await;
        assert_eq!(ours, theirs, "{protocol:?}");
        assert!(ours.len() >= 20);
        server.stop().await;
    }
}

async fn blocking_script(
    addr: impl tokio::net::ToSocketAddrs + Copy,
    protocol: Protocol,
) -> Vec<Frame> {
    let connect = || async move {
        let mut c = RespClient::connect(addr).await.unwrap();
        if protocol == Protocol::Resp3 {
            c.call(["HELLO", "3"]).await.unwrap();
        }
        c
    };
    let mut c = connect().await;
    let mut log = Vec::new();
    async fn call(c: &mut RespClient, words: &[&str]) -> Frame {
        c.call(words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())))
            .await
            .unwrap()
    }
    async fn block(c: &mut RespClient, words: &[&str]) {
        c.queue(words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())));
        c.flush().await.unwrap();
    }
    async fn wait_blocked(c: &mut RespClient, n: usize) {
        let want = format!("blocked_clients:{n}\r\n");
        for _ in 0..2_000 {
            let info = call(c, &["INFO", "clients"]).await;
            if info
                .as_bytes()
                .is_some_and(|b| String::from_utf8_lossy(b).contains(&want))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("never saw {n} blocked clients");
    }
    log.push(call(&mut c, &["FLUSHALL"]).await);
    let (mut a, mut b, mut m) = (connect().await, connect().await, connect().await);
    block(&mut a, &["BLPOP", "q", "0"]).await;
    wait_blocked(&mut c, 1).await;
    block(&mut b, &["BRPOP", "other", "q", "0"]).await;
    wait_blocked(&mut c, 2).await;
    block(&mut m, &["BLMOVE", "src", "q", "LEFT", "RIGHT", "0"]).await;
    wait_blocked(&mut c, 3).await;
    // One push of three: the first blocked pops the left end, the second the right.
    log.push(call(&mut c, &["RPUSH", "q", "x", "y", "z"]).await);
    log.push(a.read_reply().await.unwrap());
    log.push(b.read_reply().await.unwrap());
    log.push(call(&mut c, &["LRANGE", "q", "0", "-1"]).await);
    // BLMOVE woken by a push to its source; the element lands in q.
    log.push(call(&mut c, &["RPUSH", "src", "m"]).await);
    log.push(m.read_reply().await.unwrap());
    log.push(call(&mut c, &["LRANGE", "q", "0", "-1"]).await);
    log.push(call(&mut c, &["EXISTS", "src"]).await);
    // Several keys: the first non-empty one in argument order, no waiting.
    log.push(call(&mut a, &["BLPOP", "empty", "q", "0"]).await);
    log.push(call(&mut a, &["BRPOP", "q", "0"]).await);
    log.push(call(&mut a, &["EXISTS", "q"]).await);
    // Timeouts: a null array, for BLMOVE too.
    log.push(call(&mut a, &["BLPOP", "none", "0.05"]).await);
    log.push(call(&mut a, &["BLMOVE", "none", "q", "LEFT", "LEFT", "0.05"]).await);
    log.push(call(&mut a, &["BRPOPLPUSH", "none", "q", "0.05"]).await);
    // A client blocked on two keys, woken by an LMOVE into the second.
    block(&mut a, &["BLPOP", "k1", "k2", "0"]).await;
    wait_blocked(&mut c, 1).await;
    log.push(call(&mut c, &["RPUSH", "tmp", "t1", "t2"]).await);
    log.push(call(&mut c, &["LMOVE", "tmp", "k2", "LEFT", "LEFT"]).await);
    log.push(a.read_reply().await.unwrap());
    log.push(call(&mut c, &["EXISTS", "k2"]).await);
    // FIFO across two pushes: the earlier blocker gets the first element.
    block(&mut a, &["BRPOP", "f", "0"]).await;
    wait_blocked(&mut c, 1).await;
    block(&mut b, &["BRPOP", "f", "0"]).await;
    wait_blocked(&mut c, 2).await;
    log.push(call(&mut c, &["LPUSH", "f", "first"]).await);
    log.push(a.read_reply().await.unwrap());
    log.push(call(&mut c, &["LPUSH", "f", "second"]).await);
    log.push(b.read_reply().await.unwrap());
    // Sorted sets as priority queues, and the multi-key forms: served in the order they
    // blocked, each by its kind of key (the list waiter on `pq` lets the zset pass by).
    block(&mut a, &["BZPOPMIN", "pq", "0"]).await;
    wait_blocked(&mut c, 1).await;
    block(
        &mut m,
        &["BLMPOP", "0", "2", "pq", "lq", "LEFT", "COUNT", "5"],
    )
    .await;
    wait_blocked(&mut c, 2).await;
    block(
        &mut b,
        &["BZMPOP", "0", "2", "none", "pq", "MAX", "COUNT", "2"],
    )
    .await;
    wait_blocked(&mut c, 3).await;
    log.push(
        call(
            &mut c,
            &["ZADD", "pq", "3", "c", "1", "a", "2", "b", "4", "d"],
        )
        .await,
    );
    log.push(a.read_reply().await.unwrap());
    log.push(b.read_reply().await.unwrap());
    log.push(call(&mut c, &["ZRANGE", "pq", "0", "-1", "WITHSCORES"]).await);
    log.push(call(&mut c, &["RPUSH", "lq", "1", "2"]).await);
    log.push(m.read_reply().await.unwrap());
    block(&mut a, &["BZPOPMAX", "pq2", "0"]).await;
    wait_blocked(&mut c, 1).await;
    log.push(call(&mut c, &["ZADD", "pq2", "1", "x", "9", "y"]).await);
    log.push(a.read_reply().await.unwrap());
    log.push(call(&mut a, &["BZPOPMIN", "none", "0.05"]).await);
    log.push(call(&mut a, &["BZMPOP", "0.05", "1", "none", "MIN"]).await);
    log.push(call(&mut a, &["BLMPOP", "0.05", "1", "none", "LEFT"]).await);
    // Errors.
    log.push(call(&mut c, &["SET", "s", "x"]).await);
    log.push(call(&mut c, &["BLPOP", "s", "0"]).await);
    log.push(call(&mut c, &["BLPOP", "none", "s", "0"]).await);
    log.push(call(&mut c, &["BLPOP", "q", "-1"]).await);
    log.push(call(&mut c, &["BLPOP", "q", "abc"]).await);
    log.push(call(&mut c, &["BLMOVE", "a", "b", "UP", "LEFT", "0"]).await);
    log.push(call(&mut c, &["BLPOP", "q"]).await);
    log
}

/// HyperLogLog at scale: 100,000 distinct elements (each added twice) to kv and to
/// redis-server. kv's estimate is within 2% of the truth and equal to Redis's, and the
/// dense sketch (Redis has left its sparse encoding by then) is byte for byte the same,
/// so a sketch moves between the two with GET and SET.
#[tokio::test]
async fn hyperloglog_matches_redis_byte_for_byte() {
    let (_redis, mut peer) = start_redis().await;
    let server = common::start(&[]).await;
    let mut kv = common::connect(&server).await;
    for client in [&mut kv, &mut peer] {
        for round in 0..2 {
            for batch in 0..100 {
                let mut words = vec![Bytes::from_static(b"PFADD"), Bytes::from_static(b"hll")];
                words.extend((0..1000).map(|i| Bytes::from(format!("user:{}", batch * 1000 + i))));
                let reply = client.call(words).await.unwrap();
                assert!(
                    round == 0 || reply == Frame::Integer(0),
                    "re-adding changed the sketch"
                );
            }
        }
    }
    let count = |reply: Frame| match reply {
        Frame::Integer(n) => n,
        other => panic!("PFCOUNT: {other:?}"),
    };
    let ours = count(kv.call(["PFCOUNT", "hll"]).await.unwrap());
    let theirs = count(peer.call(["PFCOUNT", "hll"]).await.unwrap());
    assert!((ours - 100_000).abs() < 2_000, "estimate {ours}");
    assert_eq!(ours, theirs);
    // Both cached the estimate in the header: the whole sketch is the same bytes. Then
    // move the sketch from Redis to kv and back.
    let ours = kv.call(["GET", "hll"]).await.unwrap();
    let theirs = peer.call(["GET", "hll"]).await.unwrap();
    let (Some(a), Some(b)) = (ours.as_bytes(), theirs.as_bytes()) else {
        panic!("GET hll: {ours:?} / {theirs:?}");
    };
    assert_eq!(a.len(), 12304);
    assert!(a == b, "the sketches differ");
    // A write after the count: both mark the cache stale the same way.
    let mut more = vec![Bytes::from_static(b"PFADD"), Bytes::from_static(b"hll")];
    more.extend((0..200).map(|i| Bytes::from(format!("new:{i}"))));
    assert_eq!(kv.call(more.clone()).await.unwrap(), Frame::Integer(1));
    assert_eq!(peer.call(more).await.unwrap(), Frame::Integer(1));
    let ours = kv.call(["GET", "hll"]).await.unwrap();
    let theirs = peer.call(["GET", "hll"]).await.unwrap();
    assert!(ours == theirs, "the sketches differ after PFADD");
    let from_redis = Frame::Bulk(b.clone());
    let set = |bytes: Bytes| {
        vec![
            Bytes::from_static(b"SET"),
            Bytes::from_static(b"copy"),
            bytes,
        ]
    };
    kv.call(set(b.clone())).await.unwrap();
    peer.call(set(a.clone())).await.unwrap();
    assert_eq!(kv.call(["GET", "copy"]).await.unwrap(), from_redis);
    assert_eq!(
        kv.call(["PFCOUNT", "copy"]).await.unwrap(),
        peer.call(["PFCOUNT", "copy"]).await.unwrap()
    );
    server.stop().await;
}

/// BITCOUNT and BITPOS on many small strings and ranges (deterministic pseudo-random),
/// compared with redis-server: the edge-byte masks and the clamping of negative and
/// out-of-range positions are where bitmap code goes wrong.
#[tokio::test]
async fn bit_ranges_match_redis_on_random_strings() {
    let (_redis, mut peer) = start_redis().await;
    let server = common::start(&[]).await;
    let mut kv = common::connect(&server).await;
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        (state >> 33) % n
    };
    let mut compared = 0;
    for _ in 0..150 {
        let len = next(5) as usize;
        let value: Vec<u8> = (0..len)
            .map(|_| match next(3) {
                0 => 0x00,
                1 => 0xff,
                _ => next(256) as u8,
            })
            .collect();
        let set = vec![
            Bytes::from_static(b"SET"),
            Bytes::from_static(b"r"),
            Bytes::from(value),
        ];
        kv.call(set.clone()).await.unwrap();
        peer.call(set).await.unwrap();
        for _ in 0..6 {
            let span = len as i64 * 8 + 4;
            let pos = |n: u64| (n as i64 % (2 * span + 1)) - span;
            let (start, end) = (pos(next(1000)), pos(next(1000)));
            let unit = ["BYTE", "BIT"][next(2) as usize];
            let bit = next(2).to_string();
            let (start, end) = (start.to_string(), end.to_string());
            let requests: [Vec<&str>; 4] = [
                vec!["BITCOUNT", "r", &start, &end, unit],
                vec!["BITPOS", "r", &bit, &start, &end, unit],
                vec!["BITPOS", "r", &bit, &start],
                vec!["BITPOS", "r", &bit],
            ];
            for request in requests {
                let words: Vec<Bytes> = request
                    .iter()
                    .map(|w| Bytes::copy_from_slice(w.as_bytes()))
                    .collect();
                let ours = kv.call(words.clone()).await.unwrap();
                let theirs = peer.call(words).await.unwrap();
                assert_eq!(
                    ours,
                    theirs,
                    "{request:?} on {:?}",
                    peer.call(["GET", "r"]).await
                );
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 3600);
    server.stop().await;
}

/// The README's bitmap and HyperLogLog session, typed into `redis-cli` against kv and
/// against redis-server: the same screen.
#[tokio::test]
async fn redis_cli_bitmap_session_matches_redis() {
    let script = "SETBIT active:mon 1001 1\nSETBIT active:mon 1002 1\nSETBIT active:tue 1001 1\n\
                  BITCOUNT active:mon\nBITOP AND active:both active:mon active:tue\n\
                  BITPOS active:both 1\nBITFIELD counters INCRBY u4 #7 3 GET u4 #7\n\
                  PFADD visitors:mon alice bob carol\nPFADD visitors:tue alice dave\n\
                  PFCOUNT visitors:mon visitors:tue\nPFMERGE visitors:week visitors:mon visitors:tue\n\
                  PFCOUNT visitors:week\nTYPE visitors:week\nSETBIT active:mon -1 1\n";
    let ours = same_screen(script).await;
    assert!(ours.contains("1001") && ours.contains("string"), "{ours}");
}

/// Geo searches on many random places, compared with redis-server: 3,000 members
/// (clustered and world-wide), then random searches by radius and by box, around points
/// and around members, in every unit, sorted or not, with COUNT and ANY. Unsorted
/// replies must come in the same order too: that checks the neighbour cells are the
/// same cells, scanned in the same order.
#[tokio::test]
async fn geo_searches_match_redis_on_random_places() {
    let (_redis, mut peer) = start_redis().await;
    let server = common::start(&[]).await;
    let mut kv = common::connect(&server).await;
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let centres = [
        (2.35, 48.85),
        (-73.98, 40.75),
        (139.69, 35.68),
        (-58.38, -34.6),
    ];
    for batch in 0..30 {
        let mut words = vec![Bytes::from_static(b"GEOADD"), Bytes::from_static(b"places")];
        for i in 0..100 {
            let (lon, lat) = if batch % 3 == 0 {
                (next() * 360.0 - 180.0, next() * 170.0 - 85.0)
            } else {
                let (clon, clat) = centres[(batch + i) % centres.len()];
                (clon + next() * 2.0 - 1.0, clat + next() * 2.0 - 1.0)
            };
            words.push(Bytes::from(format!("{lon:.6}")));
            words.push(Bytes::from(format!("{lat:.6}")));
            words.push(Bytes::from(format!("m{batch}-{i}")));
        }
        let ours = kv.call(words.clone()).await.unwrap();
        assert_eq!(ours, peer.call(words).await.unwrap());
    }
    let units = [("m", 1.0), ("km", 1000.0), ("mi", 1609.34), ("ft", 0.3048)];
    let (mut compared, mut found_several) = (0, 0);
    for round in 0..400 {
        let (unit, metres) = units[round % units.len()];
        let size = |next: &mut dyn FnMut() -> f64| {
            let m = if round % 5 == 0 {
                2_000_000.0
            } else {
                150_000.0
            };
            format!("{:.3}", next() * m / metres)
        };
        let mut words: Vec<String> = vec!["GEOSEARCH".into(), "places".into()];
        if round % 2 == 0 {
            let (clon, clat) = centres[round % centres.len()];
            words.push("FROMLONLAT".into());
            words.push(format!("{:.5}", clon + next() - 0.5));
            words.push(format!("{:.5}", clat + next() - 0.5));
        } else {
            words.push("FROMMEMBER".into());
            words.push(format!("m{}-{}", round % 30, round % 100));
        }
        if round % 3 == 0 {
            words.extend(["BYBOX".into(), size(&mut next), size(&mut next)]);
        } else {
            words.extend(["BYRADIUS".into(), size(&mut next)]);
        }
        words.push(unit.into());
        match round % 4 {
            0 => words.push("ASC".into()),
            1 => words.push("DESC".into()),
            _ => {}
        }
        if round % 7 == 0 {
            words.extend(["COUNT".into(), "5".into()]);
        }
        if round % 11 == 0 {
            words.extend(["COUNT".into(), "3".into(), "ANY".into()]);
        }
        words.extend(["WITHDIST".into(), "WITHHASH".into()]);
        if round % 2 == 1 {
            words.push("WITHCOORD".into());
        }
        let request: Vec<Bytes> = words.iter().map(|w| Bytes::from(w.clone())).collect();
        let ours = kv.call(request.clone()).await.unwrap();
        let theirs = peer.call(request).await.unwrap();
        assert_eq!(ours, theirs, "{}", words.join(" "));
        if matches!(&ours, Frame::Array(found) if found.len() > 1) {
            found_several += 1;
        }
        compared += 1;
    }
    assert_eq!(compared, 400);
    assert!(
        found_several > 200,
        "only {found_several} searches found places"
    );
    // The stored scores are the same geohashes, member by member.
    let all = ["ZRANGE", "places", "0", "-1", "WITHSCORES"];
    assert_eq!(kv.call(all).await.unwrap(), peer.call(all).await.unwrap());
    server.stop().await;
}

/// Types `script` into `redis-cli` against kv and against redis-server; the two screens
/// must be equal. Returns kv's.
async fn same_screen(script: &'static str) -> String {
    let redis = RedisServer::start(&[]);
    let server = common::start(&[]).await;
    let (kv_port, redis_port) = (server.addr().port(), redis.port);
    let (ours, theirs) = tokio::task::spawn_blocking(move || {
        (
            testkit::redis_cli(kv_port, script),
            testkit::redis_cli(redis_port, script),
        )
    })
    .await
    .unwrap();
    assert_eq!(ours, theirs);
    server.stop().await;
    ours
}

/// The README's geo, sorted-set algebra and LCS session, typed into `redis-cli` against kv
/// and against redis-server: the same screen.
#[tokio::test]
async fn redis_cli_geo_session_matches_redis() {
    let script = "GEOADD drivers 13.361389 38.115556 ada 15.087269 37.502669 bob 13.5 38.2 cy\n\
                  GEOPOS drivers ada\nGEODIST drivers ada bob km\nGEOHASH drivers ada bob\n\
                  GEOSEARCH drivers FROMLONLAT 13.4 38.1 BYRADIUS 20 km ASC WITHDIST\n\
                  GEOSEARCHSTORE near drivers FROMMEMBER ada BYRADIUS 50 km STOREDIST\n\
                  ZRANGE near 0 -1 WITHSCORES\nZSCORE drivers ada\n\
                  ZADD week1 10 ada 5 bob\nZADD week2 3 ada 8 cy\n\
                  ZUNION 2 week1 week2 WITHSCORES\n\
                  ZINTERSTORE both 2 week1 week2 WEIGHTS 1 2 AGGREGATE MAX\n\
                  ZRANGE both 0 -1 WITHSCORES\nSET a ohmytext\nSET b mynewtext\nLCS a b\n\
                  LCS a b IDX MINMATCHLEN 4 WITHMATCHLEN\n";
    let ours = same_screen(script).await;
    assert!(
        ours.contains("13.36138933897018433")
            && ours.contains("166.2742")
            && ours.contains("mytext"),
        "{ours}"
    );
}

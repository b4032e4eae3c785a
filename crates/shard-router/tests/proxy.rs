#![allow(clippy::unwrap_used)] // test code: a panic is a test failure

mod common;

use std::collections::HashMap;

use bytes::Bytes;
use common::{RedisServer, client, conn, connect, router, shard_info, shards_toml};
use proto::{Frame, Protocol};
use redis::AsyncCommands;
use service::RespClient;

fn words(line: &str) -> Vec<Bytes> {
    line.split_whitespace()
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect()
}

/// The same corpus through the router (3 shards) and straight to one redis-server must
/// give byte-for-byte equal replies for every routable command.
#[tokio::test]
async fn differential_router_versus_one_server() {
    differential(Protocol::Resp2).await;
}

/// The same after `HELLO 3` on both connections: forwarded replies keep the type the
/// backend gives them (HGETALL a map, ZSCORE a double, SMEMBERS a set), and merged ones
/// (MGET, DEL, EXISTS, DBSIZE across shards) have the type Redis gives them.
#[tokio::test]
async fn resp3_differential_router_versus_one_server() {
    differential(Protocol::Resp3).await;
}

async fn differential(protocol: Protocol) {
    let backends = [
        RedisServer::start(&[]),
        RedisServer::start(&[]),
        RedisServer::start(&[]),
    ];
    let direct = RedisServer::start(&[]);
    let (running, _) = router(&shards_toml(&backends.iter().collect::<Vec<_>>())).await;
    let mut through = RespClient::connect(running.addr()).await.unwrap();
    let mut straight = RespClient::connect(direct.addr()).await.unwrap();
    if protocol == Protocol::Resp3 {
        for c in [&mut through, &mut straight] {
            let hello = c.call(words("HELLO 3")).await.unwrap();
            assert!(matches!(hello, Frame::Map(_)), "{hello:?}");
        }
    }
    let mut corpus: Vec<String> = vec!["FLUSHALL".into()];
    for i in 0..40 {
        corpus.push(format!("SET k{i} v{i}"));
        corpus.push(format!("APPEND k{i} -tail"));
        corpus.push(format!("GET k{i}"));
        corpus.push(format!("STRLEN k{i}"));
    }
    corpus.extend(
        [
            "MGET k0 k1 k2 k3 k4 k5 k6 k7 k8 k9 nope",
            "MSET a 1 b 2 c 3 d 4 e 5 f 6",
            "MGET f e d c b a",
            "EXISTS a b c nope a",
            "TOUCH a b nope",
            "DEL a b nope",
            "UNLINK c d",
            "EXISTS a b c d e f",
            "INCR counter",
            "INCRBY counter 41",
            "DECR counter",
            "INCRBYFLOAT fl 1.5",
            "INCR k1",
            "SETNX k1 x",
            "SETNX fresh x",
            "GETSET fresh y",
            "GETDEL fresh",
            "GET fresh",
            "SET withttl v EX 100",
            "TTL withttl",
            "PERSIST withttl",
            "TTL withttl",
            "EXPIRE k2 1000",
            "TTL k2",
            "TYPE k2",
            "TYPE nope",
            "HSET h f1 a f2 b",
            "HGET h f1",
            "HGETALL h",
            "HINCRBY h n 5",
            "HLEN h",
            "LPUSH l a b c",
            "RPUSH l z",
            "LRANGE l 0 -1",
            "LPOP l",
            "LLEN l",
            "SADD s x y z",
            "SCARD s",
            "SISMEMBER s y",
            "ZADD z 1 one 2 two 3 three",
            "ZRANGE z 0 -1 WITHSCORES",
            "ZSCORE z two",
            "ZMSCORE z one nope three",
            "ZINCRBY z 0.5 two",
            "ZADD z INCR 1 one",
            "ZPOPMIN z 2",
            "ZSCORE z nope",
            // One member: a set's order is the server's hash order.
            "SADD single m",
            "SMEMBERS single",
            "SMEMBERS nope",
            "HGETALL nope",
            "HMGET h f1 nope",
            "MGET nope1 nope2 nope3 nope4",
            "DEL nope1 nope2 nope3 nope4",
            "LPUSH k3 x",
            "GET h",
            "SET {t}a 1",
            "SET {t}b 2",
            "RENAME {t}a {t}c",
            "MGET {t}a {t}b {t}c",
            "SETBIT {b}x 7 1",
            "SETBIT {b}y 100 1",
            "GETBIT {b}x 7",
            "BITCOUNT {b}x",
            "BITPOS {b}y 1",
            "BITOP OR {b}d {b}x {b}y",
            "GET {b}d",
            "BITFIELD {b}f INCRBY u8 #1 5",
            "BITFIELD_RO {b}f GET u8 #1",
            "SUBSTR k1 0 2",
            "PFADD {p}a x y z",
            "PFADD {p}b z w",
            "PFCOUNT {p}a {p}b",
            "PFMERGE {p}m {p}a {p}b",
            "PFCOUNT {p}m",
            "GET",
            "SET onlykey",
            "DBSIZE",
        ]
        .map(String::from),
    );
    for line in &corpus {
        let a = through.call(words(line)).await.unwrap();
        let b = straight.call(words(line)).await.unwrap();
        assert_eq!(a, b, "{protocol:?}: {line}");
    }
    running.stop().await;
}

#[tokio::test]
async fn redis_crate_split_merge_pipelines_and_placement() {
    let backends = [
        RedisServer::start(&[]),
        RedisServer::start(&[]),
        RedisServer::start(&[]),
    ];
    let (running, _) = router(&shards_toml(&backends.iter().collect::<Vec<_>>())).await;
    let mut c = conn(&running).await;

    // Pipelined requests come back in order.
    let mut pipe = redis::pipe();
    for i in 0..200 {
        pipe.set(format!("p{i}"), i).ignore();
    }
    for i in 0..200 {
        pipe.get(format!("p{i}"));
    }
    let values: Vec<i64> = pipe.query_async(&mut c).await.unwrap();
    assert_eq!(values, (0..200).collect::<Vec<i64>>());

    // The keys really are spread, each on the shard ROUTER SHARDOF names.
    let mut per_shard: HashMap<String, usize> = HashMap::new();
    for i in 0..200 {
        let key = format!("p{i}");
        let info = shard_info(&mut c, &key).await;
        let shard = &info["shard"];
        *per_shard.entry(shard.clone()).or_default() += 1;
        let index: usize = shard[1..].parse().unwrap();
        let mut direct = connect(&backends[index].addr()).await;
        let v: Option<i64> = direct.get(&key).await.unwrap();
        assert_eq!(v, Some(i), "{key} on {shard}");
        assert_eq!(info["node"], backends[index].addr());
    }
    assert_eq!(per_shard.len(), 3, "{per_shard:?}");

    // Multi-key commands split across shards and merge in the client's order.
    let keys: Vec<String> = (0..50).map(|i| format!("p{i}")).collect();
    let got: Vec<i64> = c.mget(&keys).await.unwrap();
    assert_eq!(got, (0..50).collect::<Vec<i64>>());
    let n: i64 = redis::cmd("EXISTS")
        .arg(&keys)
        .arg("missing")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(n, 50);
    let pairs: Vec<(String, String)> = (0..30)
        .map(|i| (format!("m{i}"), format!("v{i}")))
        .collect();
    let () = c.mset(&pairs).await.unwrap();
    let n: i64 = c.del(&keys).await.unwrap();
    assert_eq!(n, 50);
    let n: i64 = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
    assert_eq!(n, 150 + 30);

    // Hash tags keep keys together, so cross-key commands work on them...
    let () = c.set("{user:7}:name", "ada").await.unwrap();
    let () = c.rename("{user:7}:name", "{user:7}:nick").await.unwrap();
    let v: String = c.get("{user:7}:nick").await.unwrap();
    assert_eq!(v, "ada");
    // ...and keys on different shards get a clear error, with the connection kept.
    let (a, b) = two_keys_on_different_shards(&mut c).await;
    let e = c.rename::<_, _, ()>(&a, &b).await.unwrap_err();
    assert!(e.to_string().contains("different shards"), "{e}");
    for (name, keys) in [("PFCOUNT", vec![&a, &b]), ("PFMERGE", vec![&a, &b])] {
        let e = redis::cmd(name)
            .arg(keys)
            .query_async::<redis::Value>(&mut c)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("different shards"), "{name}: {e}");
    }
    let e = redis::cmd("BITOP")
        .arg("AND")
        .arg("dest")
        .arg(&a)
        .arg(&b)
        .query_async::<redis::Value>(&mut c)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("different shards"), "BITOP: {e}");
    for refused in ["KEYS *", "SCAN 0", "RANDOMKEY", "BLPOP q 0", "SUBSCRIBE ch"] {
        let mut cmd = redis::cmd(refused.split(' ').next().unwrap());
        for arg in refused.split(' ').skip(1) {
            cmd.arg(arg);
        }
        let e = cmd.query_async::<redis::Value>(&mut c).await.unwrap_err();
        assert!(
            e.to_string().contains("not supported by the shard router"),
            "{refused}: {e}"
        );
    }
    let e = redis::cmd("SELECT")
        .arg(1)
        .query_async::<()>(&mut c)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("out of range"), "{e}");
    let pong: String = redis::cmd("PING").query_async(&mut c).await.unwrap();
    assert_eq!(pong, "PONG");

    // Fan-out: INFO aggregates the shards' keyspace, FLUSHALL empties them all.
    let info: String = redis::cmd("INFO")
        .arg("keyspace")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(info.contains("db0:keys=181,"), "{info}");
    let shards: redis::Value = redis::cmd("ROUTER")
        .arg("SHARDS")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(format!("{shards:?}").contains("up"));
    let stats: redis::Value = redis::cmd("ROUTER")
        .arg("STATS")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(format!("{stats:?}").contains("requests"));
    let () = redis::cmd("FLUSHALL").query_async(&mut c).await.unwrap();
    for b in &backends {
        let n: i64 = redis::cmd("DBSIZE")
            .query_async(&mut connect(&b.addr()).await)
            .await
            .unwrap();
        assert_eq!(n, 0);
    }
    running.stop().await;
}

async fn two_keys_on_different_shards(
    c: &mut redis::aio::MultiplexedConnection,
) -> (String, String) {
    let shard = |info: HashMap<String, String>| info["shard"].clone();
    let first: HashMap<String, String> = redis::cmd("ROUTER")
        .arg("SHARDOF")
        .arg("x0")
        .query_async(c)
        .await
        .unwrap();
    for i in 1..100 {
        let key = format!("x{i}");
        let info: HashMap<String, String> = redis::cmd("ROUTER")
            .arg("SHARDOF")
            .arg(&key)
            .query_async(c)
            .await
            .unwrap();
        if shard(info) != first["shard"] {
            return ("x0".into(), key);
        }
    }
    panic!("all keys on one shard");
}

#[tokio::test]
async fn redis_cli_session_matches_a_direct_session() {
    let backends = [RedisServer::start(&[]), RedisServer::start(&[])];
    let direct = RedisServer::start(&[]);
    let (running, _) = router(&shards_toml(&backends.iter().collect::<Vec<_>>())).await;
    let script =
        "SET a 1\nSET b 2\nMGET a b nope\nINCR a\nDEL a b\nHSET h f v\nHGETALL h\nEXISTS a h\n";
    let session = |port: u16| testkit::redis_cli(port, script);
    let port = running.addr().port();
    let (through, straight) =
        tokio::task::spawn_blocking(move || (session(port), session(direct.port)))
            .await
            .unwrap();
    assert_eq!(through, straight);
    assert!(through.contains("OK"));
    running.stop().await;
}

#[tokio::test]
async fn directory_and_range_strategies_place_keys_where_configured() {
    let backends = [RedisServer::start(&[]), RedisServer::start(&[])];
    let dir = RedisServer::start(&[]);
    let mut d = connect(&dir.addr()).await;
    let () = d
        .hset("router:directory", "tenant:big", "s1")
        .await
        .unwrap();
    let config = format!(
        "strategy = \"directory\"\n[directory]\nnode = \"{}\"\ndefault = \"s0\"\n{}",
        dir.addr(),
        shards_toml(&[&backends[0], &backends[1]])
    );
    let (running, _) = router(&config).await;
    let mut c = conn(&running).await;
    let () = c.set("{tenant:big}:orders", "many").await.unwrap();
    let () = c.set("{tenant:small}:orders", "few").await.unwrap();
    let on = |i: usize, key: &'static str| {
        let client = client(&backends[i].addr());
        async move {
            let mut c = client.get_multiplexed_async_connection().await.unwrap();
            let v: Option<String> = c.get(key).await.unwrap();
            v
        }
    };
    assert_eq!(on(1, "{tenant:big}:orders").await.as_deref(), Some("many"));
    assert_eq!(on(0, "{tenant:small}:orders").await.as_deref(), Some("few"));
    running.stop().await;

    let config = format!(
        "strategy = \"range\"\n[[shards]]\nname = \"a-m\"\nprimary = \"{}\"\nuntil = \"n\"\n\
         [[shards]]\nname = \"n-z\"\nprimary = \"{}\"\n",
        backends[0].addr(),
        backends[1].addr()
    );
    let (running, path) = router(&config).await;
    let mut c = conn(&running).await;
    let () = c.set("apple", 1).await.unwrap();
    let () = c.set("zebra", 2).await.unwrap();
    assert_eq!(on(0, "apple").await.as_deref(), Some("1"));
    assert_eq!(on(1, "zebra").await.as_deref(), Some("2"));

    // RELOAD: a broken file is refused and the old layout kept; a good one is taken.
    std::fs::write(&path, "strategy = \"range\"\nshards = []\n").unwrap();
    let e = redis::cmd("ROUTER")
        .arg("RELOAD")
        .query_async::<()>(&mut c)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("old config kept"), "{e}");
    let v: Option<String> = c.get("apple").await.unwrap();
    assert_eq!(v.as_deref(), Some("1"));
    std::fs::write(&path, shards_toml(&[&backends[1]])).unwrap();
    let () = redis::cmd("ROUTER")
        .arg("RELOAD")
        .query_async(&mut c)
        .await
        .unwrap();
    let v: Option<String> = c.get("zebra").await.unwrap();
    assert_eq!(v.as_deref(), Some("2"));
    running.stop().await;
}

/// A backend that speaks only RESP2 and refuses `HELLO` (an old server, or a proxy such as
/// twemproxy): every GET misses, every HGETALL is one flat field/value list.
async fn resp2_only_backend() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut input = bytes::BytesMut::new();
                let mut requests = proto::RequestParser::default();
                loop {
                    let mut out = Vec::new();
                    while let Ok(Some(args)) = requests.next(&mut input, &proto::Limits::default())
                    {
                        out.extend_from_slice(match &args.raw_name().to_ascii_uppercase()[..] {
                            b"HELLO" => b"-ERR unknown command 'HELLO'\r\n",
                            b"GET" => b"$-1\r\n",
                            b"HGETALL" => b"*2\r\n$1\r\nf\r\n$1\r\nv\r\n",
                            b"PING" => b"+PONG\r\n",
                            _ => b"-ERR not in this test\r\n",
                        });
                    }
                    if socket.write_all(&out).await.is_err()
                        || matches!(socket.read_buf(&mut input).await, Ok(0) | Err(_))
                    {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A RESP3 client of a router whose backend refuses `HELLO 3`: the router keeps that
/// connection on RESP2 and converts what RESP2 can say — a missing value is RESP3's `_`
/// (the bytes checked, as `$-1` would decode to the same frame), a flat list stays a list.
#[tokio::test]
async fn a_backend_without_resp3_gets_its_replies_converted() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backend = resp2_only_backend().await;
    let (running, _) = router(&format!(
        "[[shards]]\nname = \"old\"\nprimary = \"{backend}\"\n"
    ))
    .await;
    let mut socket = tokio::net::TcpStream::connect(running.addr())
        .await
        .unwrap();
    socket
        .write_all(b"HELLO 3\r\nGET k\r\nHGETALL h\r\n")
        .await
        .unwrap();
    let mut input = bytes::BytesMut::new();
    let mut replies = Vec::new();
    while replies.len() < 3 {
        match proto::frame_len(&input, &proto::Limits::default()).unwrap() {
            Some(len) => replies.push(input.split_to(len).freeze()),
            None => assert!(socket.read_buf(&mut input).await.unwrap() > 0),
        }
    }
    assert!(replies[0].starts_with(b"%"), "HELLO 3: {:?}", replies[0]);
    assert_eq!(&replies[1][..], b"_\r\n");
    assert_eq!(&replies[2][..], b"*2\r\n$1\r\nf\r\n$1\r\nv\r\n");
    running.stop().await;
}

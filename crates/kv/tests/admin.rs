#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! The server commands a differential test cannot compare (their replies hold times,
//! addresses, or Redis 7.2+ encoding names the installed redis-server predates):
//! MONITOR's feed, SLOWLOG's entries, list and set encodings with their thresholds,
//! CONFIG RESETSTAT, and SHUTDOWN's refusals.

mod common;

use bytes::Bytes;
use common::{bulk, call, connect, err, frame_text, int, start};
use proto::Frame;

/// This connection's address as the server sees it (`CLIENT INFO`'s `addr=`).
async fn my_addr(c: &mut service::RespClient) -> String {
    let info = frame_text(&call(c, &["CLIENT", "INFO"]).await);
    let addr = info.split(' ').find_map(|f| f.strip_prefix("addr="));
    addr.unwrap().to_string()
}

#[tokio::test]
async fn monitor_streams_every_command_as_redis_formats_it() {
    let server = start(&[]).await;
    let mut watcher = connect(&server).await;
    assert_eq!(call(&mut watcher, &["MONITOR"]).await, Frame::ok());
    let mut c = connect(&server).await;
    let local = my_addr(&mut c).await;
    call(&mut c, &["set", "k", "a \"quoted\"\nvalue"]).await;
    call(&mut c, &["CONFIG", "SET", "maxmemory", "0"]).await; // admin: not shown
    call(&mut c, &["SELECT", "2"]).await;
    call(&mut c, &["GET", "k"]).await;
    let mut lines = Vec::new();
    while lines.len() < 3 {
        match watcher.read_reply().await.unwrap() {
            Frame::Simple(line) => lines.push(String::from_utf8(line.to_vec()).unwrap()),
            other => panic!("not a status line: {other:?}"),
        }
    }
    let expected = [
        format!("[0 {local}] \"set\" \"k\" \"a \\\"quoted\\\"\\nvalue\""),
        format!("[2 {local}] \"SELECT\" \"2\""),
        format!("[2 {local}] \"GET\" \"k\""),
    ];
    for (line, tail) in lines.iter().zip(&expected) {
        let (time, rest) = line.split_once(' ').unwrap();
        let (secs, micros) = time.split_once('.').unwrap();
        assert!(secs.parse::<u64>().unwrap() > 1_600_000_000, "{line}");
        assert_eq!(micros.len(), 6, "{line}");
        assert_eq!(rest, tail);
    }
    // A monitor that hangs up is dropped; the server goes on serving.
    drop(watcher);
    assert_eq!(call(&mut c, &["PING"]).await, Frame::simple("PONG"));
    server.stop().await;
}

#[tokio::test]
async fn slowlog_keeps_the_slow_commands_newest_first() {
    let server = start(&[]).await;
    let mut c = connect(&server).await;
    assert_eq!(call(&mut c, &["SLOWLOG", "LEN"]).await, int(0));
    let local = my_addr(&mut c).await;
    call(&mut c, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]).await;
    call(&mut c, &["SET", "a", "b"]).await;
    let Frame::Array(entries) = call(&mut c, &["SLOWLOG", "GET", "1"]).await else {
        panic!("SLOWLOG GET");
    };
    let Frame::Array(entry) = &entries[0] else {
        panic!("entry");
    };
    assert_eq!(entry.len(), 6);
    assert!(matches!(entry[1], Frame::Integer(t) if t > 1_600_000_000));
    assert!(matches!(entry[2], Frame::Integer(us) if us >= 0));
    assert_eq!(
        entry[3],
        Frame::Array(vec![bulk("SET"), bulk("a"), bulk("b")])
    );
    assert_eq!(frame_text(&entry[4]), local);
    call(&mut c, &["CONFIG", "SET", "slowlog-max-len", "2"]).await;
    call(&mut c, &["GET", "a"]).await;
    call(&mut c, &["GET", "a"]).await;
    assert_eq!(call(&mut c, &["SLOWLOG", "LEN"]).await, int(2));
    let long = "x".repeat(200);
    call(&mut c, &["SET", "big", &long]).await;
    let Frame::Array(entries) = call(&mut c, &["SLOWLOG", "GET"]).await else {
        panic!("SLOWLOG GET");
    };
    let Frame::Array(entry) = &entries[0] else {
        panic!("entry");
    };
    assert_eq!(
        entry[3],
        Frame::Array(vec![
            bulk("SET"),
            bulk("big"),
            bulk(&format!("{}... (72 more bytes)", "x".repeat(128)))
        ])
    );
    assert_eq!(call(&mut c, &["SLOWLOG", "RESET"]).await, Frame::ok());
    call(&mut c, &["CONFIG", "SET", "slowlog-log-slower-than", "-1"]).await;
    call(&mut c, &["SLOWLOG", "RESET"]).await;
    call(&mut c, &["SET", "a", "b"]).await;
    assert_eq!(call(&mut c, &["SLOWLOG", "LEN"]).await, int(0));
    server.stop().await;
}

/// Encodings as Redis 7.2+ names them (kv reports 7.4): lists are `listpack` while they
/// fit one chunk and `quicklist` beyond, with the chunk size `list-max-listpack-size`;
/// small sets of strings are `listpack`.
#[tokio::test]
async fn list_and_set_encodings_follow_the_thresholds() {
    let server = start(&[]).await;
    let mut c = connect(&server).await;
    let encoding = |key: &'static str| ["OBJECT", "ENCODING", key];
    call(&mut c, &["RPUSH", "small", "a", "b"]).await;
    assert_eq!(call(&mut c, &encoding("small")).await, bulk("listpack"));
    let mut push = vec![Bytes::from_static(b"RPUSH"), Bytes::from_static(b"long")];
    push.extend((0..400).map(|i| Bytes::from(format!("element-{i:04}"))));
    c.call(push.clone()).await.unwrap();
    // 400 elements of 12 bytes: one 8 KiB chunk (the default, -2)...
    assert_eq!(call(&mut c, &encoding("long")).await, bulk("listpack"));
    // ... but two 4 KiB ones once `list-max-listpack-size` is -1.
    call(&mut c, &["CONFIG", "SET", "list-max-listpack-size", "-1"]).await;
    push[1] = Bytes::from_static(b"long2");
    c.call(push).await.unwrap();
    assert_eq!(call(&mut c, &encoding("long2")).await, bulk("quicklist"));
    call(&mut c, &["CONFIG", "SET", "list-max-listpack-size", "-2"]).await;
    assert_eq!(
        call(&mut c, &["CONFIG", "SET", "list-max-listpack-size", "0"]).await,
        err(
            "ERR CONFIG SET failed (possibly related to argument 'list-max-listpack-size') - argument must be between -5 and 65535 (not 0)"
        )
    );
    call(&mut c, &["SADD", "words", "a", "b"]).await;
    assert_eq!(call(&mut c, &encoding("words")).await, bulk("listpack"));
    call(&mut c, &["CONFIG", "SET", "set-max-listpack-entries", "1"]).await;
    assert_eq!(call(&mut c, &encoding("words")).await, bulk("hashtable"));
    call(&mut c, &["SADD", "ints", "1", "2"]).await;
    assert_eq!(call(&mut c, &encoding("ints")).await, bulk("intset"));
    server.stop().await;
}

#[tokio::test]
async fn config_resetstat_resets_kv_counters_too() {
    let server = start(&[]).await;
    let mut c = connect(&server).await;
    call(&mut c, &["SET", "k", "v"]).await;
    call(&mut c, &["GET", "k"]).await;
    call(&mut c, &["GET", "missing"]).await;
    let stats = |info: &Frame| frame_text(info);
    let before = stats(&call(&mut c, &["INFO", "stats"]).await);
    assert!(before.contains("keyspace_hits:1\r\n"), "{before}");
    assert_eq!(call(&mut c, &["CONFIG", "RESETSTAT"]).await, Frame::ok());
    let after = stats(&call(&mut c, &["INFO", "stats"]).await);
    assert!(after.contains("keyspace_hits:0\r\n"), "{after}");
    assert!(after.contains("keyspace_misses:0\r\n"), "{after}");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_refuses_bad_options_and_keeps_serving() {
    let server = start(&[]).await;
    let mut c = connect(&server).await;
    let syntax = err("ERR syntax error");
    assert_eq!(call(&mut c, &["SHUTDOWN", "SAVE", "NOSAVE"]).await, syntax);
    assert_eq!(call(&mut c, &["SHUTDOWN", "ABORT", "NOW"]).await, syntax);
    assert_eq!(call(&mut c, &["SHUTDOWN", "LATER"]).await, syntax);
    assert_eq!(
        call(&mut c, &["SHUTDOWN", "ABORT"]).await,
        err("ERR No shutdown in progress.")
    );
    assert_eq!(call(&mut c, &["PING"]).await, Frame::simple("PONG"));
    // A plain SHUTDOWN of a server without --dir: the connection closes, the server stops.
    assert!(c.call(["SHUTDOWN"]).await.is_err());
    server.wait().await;
}

#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! The broker's structured replies through the `redis` crate in RESP3 (`HELLO 3`): a
//! message and a queue's stats are maps, so a client reads them by field name without
//! knowing the command; in RESP2 the same replies are flat arrays, as Redis lowers maps.

mod common;

use common::{start, temp_dir};
use redis::Value;

/// A `redis` crate connection, in RESP3 or (the crate's default) RESP2.
async fn connect(addr: std::net::SocketAddr, resp3: bool) -> redis::aio::MultiplexedConnection {
    let query = if resp3 { "?protocol=resp3" } else { "" };
    redis::Client::open(format!("redis://{addr}/{query}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn call(c: &mut redis::aio::MultiplexedConnection, words: &[&str]) -> Value {
    let mut cmd = redis::cmd(words[0]);
    for w in &words[1..] {
        cmd.arg(*w);
    }
    cmd.query_async(c).await.unwrap()
}

/// The value of `key` in a RESP3 map.
fn field<'a>(map: &'a Value, key: &str) -> &'a Value {
    let Value::Map(pairs) = map else {
        panic!("not a map: {map:?}")
    };
    pairs
        .iter()
        .find(|(k, _)| matches!(k, Value::BulkString(b) if b == key.as_bytes()))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {key} in {map:?}"))
}

#[tokio::test]
async fn messages_and_stats_are_maps_in_resp3() {
    let dir = temp_dir("resp3");
    let server = start(&dir, &[]).await;
    let mut c = connect(server.addr(), true).await;
    assert_eq!(call(&mut c, &["QCREATE", "jobs"]).await, Value::Okay);
    let Value::Int(id) = call(&mut c, &["QSEND", "jobs", "encode video"]).await else {
        panic!("QSEND replies an id")
    };
    call(&mut c, &["QSEND", "jobs", "second"]).await;

    // QPEEK: an array of maps, without taking anything.
    let Value::Array(peeked) = call(&mut c, &["QPEEK", "jobs", "COUNT", "10"]).await else {
        panic!("QPEEK replies an array")
    };
    assert_eq!(peeked.len(), 2);
    assert_eq!(field(&peeked[0], "id"), &Value::Int(id));
    assert_eq!(
        field(&peeked[0], "body"),
        &Value::BulkString(b"encode video".to_vec())
    );

    // QRECV: an array of deliveries, each a map with its receipt.
    let Value::Array(got) = call(&mut c, &["QRECV", "jobs"]).await else {
        panic!("QRECV replies an array")
    };
    let [delivery] = got.as_slice() else {
        panic!("one delivery: {got:?}")
    };
    assert_eq!(field(delivery, "id"), &Value::Int(id));
    assert_eq!(field(delivery, "deliveries"), &Value::Int(1));
    let Value::BulkString(receipt) = field(delivery, "receipt") else {
        panic!("a receipt is a string")
    };
    let receipt = String::from_utf8(receipt.clone()).unwrap();
    assert_eq!(call(&mut c, &["QACK", "jobs", &receipt]).await, Value::Okay);

    // QSTATS: a map of counts; a missing optional attribute is a RESP3 null.
    let stats = call(&mut c, &["QSTATS", "jobs"]).await;
    assert_eq!(field(&stats, "ready"), &Value::Int(1));
    assert_eq!(field(&stats, "acked"), &Value::Int(1));
    assert_eq!(field(&stats, "sent"), &Value::Int(2));
    assert_eq!(field(&stats, "maxdeliveries"), &Value::Nil);

    // HELLO itself: a map naming the server.
    let hello = call(&mut c, &["HELLO", "3"]).await;
    assert_eq!(field(&hello, "proto"), &Value::Int(3));
    server.stop().await;
}

#[tokio::test]
async fn the_same_replies_are_flat_arrays_in_resp2() {
    let dir = temp_dir("resp2");
    let server = start(&dir, &[]).await;
    let mut c = connect(server.addr(), false).await;
    call(&mut c, &["QSEND", "jobs", "x"]).await;
    let Value::Array(stats) = call(&mut c, &["QSTATS", "jobs"]).await else {
        panic!("QSTATS in RESP2 is a flat array")
    };
    assert_eq!(stats[0], Value::BulkString(b"ready".to_vec()));
    assert_eq!(stats[1], Value::Int(1));
    let Value::Array(got) = call(&mut c, &["QRECV", "jobs"]).await else {
        panic!("QRECV replies an array")
    };
    let Value::Array(delivery) = &got[0] else {
        panic!("a delivery in RESP2 is a flat array: {got:?}")
    };
    assert_eq!(delivery[0], Value::BulkString(b"id".to_vec()));
    server.stop().await;
}

#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! The stream server's structured replies through the `redis` crate in RESP3: a topic's
//! description, a group's join and description are maps (nested: a map of configs, an
//! array of per-partition maps); in RESP2 the same replies are flat arrays.

mod common;

use redis::Value;

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

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

#[tokio::test]
async fn topic_and_group_replies_are_maps_in_resp3() {
    let server = common::start("resp3", &[]).await;
    let mut c = connect(server.addr(), true).await;
    assert_eq!(
        call(&mut c, &["TOPIC.CREATE", "clicks", "PARTITIONS", "2"]).await,
        Value::Okay
    );
    call(&mut c, &["PRODUCE", "clicks", "v1", "PARTITION", "1"]).await;

    let topic = call(&mut c, &["TOPIC.DESCRIBE", "clicks"]).await;
    assert_eq!(field(&topic, "topic"), &bulk("clicks"));
    let Value::Array(partitions) = field(&topic, "partitions") else {
        panic!("partitions is an array: {topic:?}")
    };
    assert_eq!(partitions.len(), 2);
    assert_eq!(field(&partitions[1], "partition"), &Value::Int(1));
    assert_eq!(field(&partitions[1], "end"), &Value::Int(1));
    assert!(matches!(field(&topic, "config"), Value::Map(_)));

    let joined = call(&mut c, &["GROUP.JOIN", "g", "m1", "TOPICS", "clicks"]).await;
    assert_eq!(field(&joined, "generation"), &Value::Int(1));
    assert_eq!(
        field(field(&joined, "assignment"), "clicks"),
        &Value::Array(vec![Value::Int(0), Value::Int(1)])
    );

    let group = call(&mut c, &["GROUP.DESCRIBE", "g"]).await;
    assert_eq!(field(&group, "group"), &bulk("g"));
    let Value::Array(partitions) = field(&group, "partitions") else {
        panic!("partitions is an array: {group:?}")
    };
    // Nothing committed yet: a RESP3 null, not an empty string.
    assert_eq!(field(&partitions[0], "committed"), &Value::Nil);
    assert_eq!(field(&partitions[0], "owner"), &bulk("m1"));
    let Value::Array(members) = field(&group, "members") else {
        panic!("members is an array: {group:?}")
    };
    // A yes/no is a RESP3 boolean.
    assert_eq!(field(&members[0], "idle"), &Value::Boolean(false));
    server.running.stop().await;
}

#[tokio::test]
async fn the_same_replies_are_flat_arrays_in_resp2() {
    let server = common::start("resp2", &[]).await;
    let mut c = connect(server.addr(), false).await;
    call(&mut c, &["TOPIC.CREATE", "clicks"]).await;
    let Value::Array(topic) = call(&mut c, &["TOPIC.DESCRIBE", "clicks"]).await else {
        panic!("TOPIC.DESCRIBE in RESP2 is a flat array")
    };
    assert_eq!(topic[0], bulk("topic"));
    assert_eq!(topic[1], bulk("clicks"));
    server.running.stop().await;
}

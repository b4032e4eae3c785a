//! The RESP servers (kv, cache, router, broker, stream, pubsub), asked what any operator
//! with redis-cli could ask: `INFO`, and the servers' own stats commands (`QSTATS`,
//! `TOPIC.DESCRIBE`, `GROUP.DESCRIBE`, `DBSIZE`). The client is `service`'s [`RespClient`],
//! the same one a cache uses to reach its origin.

use std::collections::{BTreeMap, HashMap};
use std::io;

use bytes::Bytes;
use proto::Frame;
use service::RespClient;

use crate::sample::{Sample, fields, subfields};
use crate::topology::Kind;

/// At most this many queues, topics or groups are asked about per poll, so a server with
/// thousands of them costs the dashboard (and the server) a bounded amount of work.
pub const MAX_NAMES: usize = 12;

/// At most this many partitions of a topic are charted (the first ones); the records/s
/// counter still sums them all.
pub const MAX_PARTITIONS: f64 = 32.0;

/// One RESP server's connection, kept open between polls, and what the poll remembers.
#[derive(Default)]
pub struct RespProbe {
    client: Option<RespClient>,
    /// The router's shards' own connections (for `DBSIZE`: keys per shard).
    shards: HashMap<String, RespClient>,
    /// The router's shards' last status, to count failovers (up -> not up) as they happen.
    shard_up: HashMap<String, bool>,
    failovers: u64,
}

impl RespProbe {
    /// Polls the server once. A connection that failed is dropped and dialled again at
    /// the next poll.
    pub async fn poll(&mut self, kind: Kind, addr: &str, password: Option<&str>) -> Sample {
        let mut client = match self.client.take() {
            Some(c) => c,
            None => match connect(addr, password).await {
                Ok(c) => c,
                Err(e) => return Sample::down(e.to_string()),
            },
        };
        let result = match kind {
            Kind::Kv => kv(&mut client).await,
            Kind::Cache => cache(&mut client).await,
            Kind::Router => self.router(&mut client, password).await,
            Kind::Broker => broker(&mut client).await,
            Kind::Stream => stream(&mut client).await,
            Kind::Pubsub => pubsub(&mut client).await,
            Kind::Sql | Kind::Edge => Err(io::Error::other("not a RESP server")),
        };
        match result {
            Ok(sample) => {
                self.client = Some(client);
                sample
            }
            Err(e) => Sample::down(e.to_string()),
        }
    }

    /// `INFO`: per shard its status, requests and errors; and from each shard's primary
    /// its `DBSIZE`, which is how keys moving during a reshard show.
    async fn router(
        &mut self,
        client: &mut RespClient,
        password: Option<&str>,
    ) -> io::Result<Sample> {
        let info = fields(&info(client).await?);
        let mut s = common(&info);
        s.take(&info, &[("shards", "shards"), ("migrating", "migrating")]);
        if let Some(strategy) = info.get("strategy") {
            s.label("strategy", strategy);
        }
        for (field, value) in &info {
            let Some(name) = field.strip_prefix("shard_") else {
                continue;
            };
            let parts = subfields(value);
            let status = parts.get("status").copied().unwrap_or("unknown");
            let up = status == "up";
            if self.shard_up.insert(name.to_owned(), up) == Some(true) && !up {
                self.failovers += 1;
            }
            s.label(format!("shard.{name}.status"), status);
            s.set(format!("shard.{name}.up"), f64::from(u8::from(up)));
            for (key, metric) in [("requests", "requests_total"), ("errors", "errors_total")] {
                if let Some(v) = parts.get(key).and_then(|v| v.parse().ok()) {
                    s.set(format!("shard.{name}.{metric}"), v);
                }
            }
            if let Some(primary) = parts.get("primary") {
                s.label(format!("shard.{name}.primary"), *primary);
                if let Some(keys) = self.dbsize(primary, password).await {
                    s.set(format!("shard.{name}.keys"), keys);
                }
            }
        }
        s.set("failovers", self.failovers as f64);
        Ok(s)
    }

    /// `DBSIZE` on a shard's primary, over a connection kept per shard (none while the
    /// shard is unreachable).
    async fn dbsize(&mut self, addr: &str, password: Option<&str>) -> Option<f64> {
        let mut client = match self.shards.remove(addr) {
            Some(c) => c,
            None => connect(addr, password).await.ok()?,
        };
        match client.call(["DBSIZE"]).await {
            Ok(Frame::Integer(n)) => {
                self.shards.insert(addr.to_owned(), client);
                Some(n as f64)
            }
            _ => None,
        }
    }
}

/// Dials `addr`, with `AUTH` first when the servers have a password; gives up after a
/// second, as the poll does (the dashboard must never wait on one server for long).
async fn connect(addr: &str, password: Option<&str>) -> io::Result<RespClient> {
    let mut client = RespClient::connect(addr).await?;
    if let Some(password) = password
        && let Frame::Error(e) = ask(&mut client, &["AUTH", password]).await?
    {
        return Err(io::Error::other(String::from_utf8_lossy(&e).into_owned()));
    }
    Ok(client)
}

/// One request whose words are borrowed (a queue's or topic's name).
async fn ask(client: &mut RespClient, words: &[&str]) -> io::Result<Frame> {
    client
        .call(words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())))
        .await
}

/// `INFO`'s text: a bulk string in RESP2.
async fn info(client: &mut RespClient) -> io::Result<String> {
    match client.call(["INFO"]).await? {
        Frame::Bulk(b) | Frame::Verbatim { text: b, .. } => {
            Ok(String::from_utf8_lossy(&b).into_owned())
        }
        Frame::Error(e) => Err(io::Error::other(String::from_utf8_lossy(&e).into_owned())),
        other => Err(io::Error::other(format!("INFO replied {other:?}"))),
    }
}

/// What every RESP server's `INFO` has: clients, commands, memory, keys.
fn common(info: &BTreeMap<String, String>) -> Sample {
    let mut s = Sample::up();
    s.take(
        info,
        &[
            ("connected_clients", "clients"),
            ("total_commands_processed", "commands_total"),
            ("used_memory", "memory"),
        ],
    );
    if let Some(keys) = info
        .get("db0")
        .and_then(|db0| subfields(db0).get("keys")?.parse().ok())
    {
        s.set("keys", keys);
    }
    s
}

/// kv: hits and misses, and replication — the primary's offset and, per replica, how far
/// behind it is (bytes and milliseconds); a replica's own offset and link.
async fn kv(client: &mut RespClient) -> io::Result<Sample> {
    let info = fields(&info(client).await?);
    let mut s = common(&info);
    s.take(
        &info,
        &[
            ("keyspace_hits", "hits_total"),
            ("keyspace_misses", "misses_total"),
            ("connected_slaves", "replicas"),
        ],
    );
    let role = info.get("role").map_or("master", String::as_str);
    s.label("role", role);
    if role == "slave" {
        s.take(&info, &[("slave_repl_offset", "repl_offset")]);
        if let Some(link) = info.get("master_link_status") {
            s.label("master_link_status", link);
        }
    } else {
        s.take(&info, &[("master_repl_offset", "repl_offset")]);
    }
    for (field, value) in &info {
        // `slave0`, `slave1`, ...: one line per connected replica.
        let is_replica = field
            .strip_prefix("slave")
            .is_some_and(|n| n.parse::<u32>().is_ok());
        if !is_replica {
            continue;
        }
        let p = subfields(value);
        let replica = format!(
            "{}:{}",
            p.get("ip").unwrap_or(&"?"),
            p.get("port").unwrap_or(&"?")
        );
        for (key, metric) in [
            ("offset", "offset"),
            ("lag_bytes", "lag_bytes"),
            ("lag_ms", "lag_ms"),
        ] {
            if let Some(v) = p.get(key).and_then(|v| v.parse().ok()) {
                s.set(format!("replica.{replica}.{metric}"), v);
            }
        }
    }
    Ok(s)
}

/// cache: the hit ratio (hits / lookups since start), hits, misses, evictions.
async fn cache(client: &mut RespClient) -> io::Result<Sample> {
    let info = fields(&info(client).await?);
    let mut s = common(&info);
    s.take(
        &info,
        &[
            ("hit_ratio", "hit_ratio"),
            ("keyspace_hits", "hits_total"),
            ("keyspace_misses", "misses_total"),
            ("evicted_keys", "evictions_total"),
            ("maxmemory", "maxmemory"),
        ],
    );
    Ok(s)
}

/// pubsub: channels, messages published/delivered/dropped, queued bytes, and the slow
/// subscribers the server disconnected.
async fn pubsub(client: &mut RespClient) -> io::Result<Sample> {
    let info = fields(&info(client).await?);
    let mut s = common(&info);
    s.take(
        &info,
        &[
            ("pubsub_channels", "channels"),
            ("pubsub_patterns", "patterns"),
            ("subscribers", "subscribers"),
            ("published_messages", "published_total"),
            ("delivered_messages", "delivered_total"),
            ("dropped_messages", "dropped_total"),
            ("slow_subscriber_disconnections", "slow_disconnects"),
            ("pubsub_queued_bytes", "queued_bytes"),
        ],
    );
    Ok(s)
}

/// broker: per queue (`QLIST`, then `QSTATS` each) the depth, messages in flight, delayed,
/// and dead-lettered.
async fn broker(client: &mut RespClient) -> io::Result<Sample> {
    let info = fields(&info(client).await?);
    let mut s = common(&info);
    s.take(&info, &[("queues", "queues"), ("messages", "messages")]);
    for queue in names(client.call(["QLIST"]).await?) {
        let stats = pairs(ask(client, &["QSTATS", &queue]).await?);
        for (key, metric) in [
            ("ready", "ready"),
            ("inflight", "inflight"),
            ("delayed", "delayed"),
            ("deadlettered", "deadlettered"),
            ("acked", "acked_total"),
        ] {
            if let Some(v) = stats.get(key).and_then(number) {
                s.set(format!("queue.{queue}.{metric}"), v);
            }
        }
    }
    Ok(s)
}

/// stream: each partition's end offset (`TOPIC.DESCRIBE`), each group's lag per partition
/// (`GROUP.DESCRIBE`), and the records appended per second (the end offsets' sum, as a
/// counter).
async fn stream(client: &mut RespClient) -> io::Result<Sample> {
    let info = fields(&info(client).await?);
    let mut s = common(&info);
    s.take(
        &info,
        &[
            ("topics", "topics"),
            ("partitions", "partitions"),
            ("groups", "groups"),
        ],
    );
    let mut records = 0.0;
    for topic in names(client.call(["TOPIC.LIST"]).await?) {
        let described = pairs(ask(client, &["TOPIC.DESCRIBE", &topic]).await?);
        for partition in items(described.get("partitions")) {
            let p = pairs(partition);
            if let (Some(id), Some(end)) = (
                p.get("partition").and_then(number),
                p.get("end").and_then(number),
            ) {
                if id < MAX_PARTITIONS {
                    s.set(format!("end.{topic}.{id}"), end);
                }
                records += end;
            }
        }
    }
    s.set("records_total", records);
    for group in names(client.call(["GROUP.LIST"]).await?) {
        let described = pairs(ask(client, &["GROUP.DESCRIBE", &group]).await?);
        for partition in items(described.get("partitions")) {
            let p = pairs(partition);
            let (Some(topic), Some(id)) = (
                p.get("topic").and_then(word),
                p.get("partition").and_then(number),
            ) else {
                continue;
            };
            if id >= MAX_PARTITIONS {
                continue;
            }
            if let Some(lag) = p.get("lag").and_then(number) {
                s.set(format!("lag.{group}.{topic}.{id}"), lag);
            }
        }
    }
    Ok(s)
}

/// The first [`MAX_NAMES`] names of a `*.LIST` reply, sorted.
fn names(frame: Frame) -> Vec<String> {
    let mut names: Vec<String> = items(Some(&frame)).iter().filter_map(word).collect();
    names.sort();
    names.truncate(MAX_NAMES);
    names
}

fn items(frame: Option<&Frame>) -> Vec<Frame> {
    match frame {
        Some(Frame::Array(items) | Frame::Set(items)) => items.clone(),
        _ => Vec::new(),
    }
}

/// A map reply as key -> value: RESP3's map, or RESP2's flat array of pairs.
fn pairs(frame: Frame) -> HashMap<String, Frame> {
    match frame {
        Frame::Map(pairs) | Frame::Pairs(pairs) => pairs
            .into_iter()
            .filter_map(|(k, v)| Some((word(&k)?, v)))
            .collect(),
        Frame::Array(flat) => flat
            .chunks_exact(2)
            .filter_map(|kv| Some((word(&kv[0])?, kv[1].clone())))
            .collect(),
        _ => HashMap::new(),
    }
}

fn word(frame: &Frame) -> Option<String> {
    match frame {
        Frame::Bulk(b) | Frame::Simple(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

fn number(frame: &Frame) -> Option<f64> {
    match frame {
        Frame::Integer(n) => Some(*n as f64),
        Frame::Double(d) => Some(*d),
        Frame::Bulk(b) | Frame::Simple(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_read_the_same_in_resp2_and_resp3() {
        let flat = Frame::Array(vec![
            Frame::bulk("ready"),
            Frame::Integer(3),
            Frame::bulk("inflight"),
            Frame::Integer(1),
        ]);
        let map = Frame::Map(vec![(Frame::bulk("ready"), Frame::Integer(3))]);
        assert_eq!(pairs(flat).get("ready").and_then(number), Some(3.0));
        assert_eq!(pairs(map).get("ready").and_then(number), Some(3.0));
    }
}

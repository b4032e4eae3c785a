//! Commands that concern every shard: sent to each primary, answers combined.
//!
//! FLUSHALL and FLUSHDB succeed only if every shard flushed; DBSIZE is the sum; INFO
//! asks every shard for its keyspace and reports the total next to the router's own
//! sections (`# Shards` lists each shard with its health and counters).

use std::sync::Arc;

use proto::{Args, Frame};
use service::{Deferred, Reply};

use crate::backend::Node;
use crate::server::{Router, request};

pub async fn execute(router: &Router, lane: u64, args: Args) -> Reply {
    let layout = router.layout();
    let mut nodes = layout.primaries();
    if let Some(previous) = &layout.previous {
        for node in previous.primaries() {
            if !nodes.iter().any(|n| n.addr == node.addr) {
                nodes.push(node);
            }
        }
    }
    let summing = args.name() == "dbsize";
    let req = request(args.raw_name(), &args.peek_bytes());
    let pending = broadcast(&nodes, lane, &req).await;
    Reply::Deferred(Deferred::new(async move {
        let mut sum = 0;
        for (node, pending) in pending {
            let reply = match pending {
                Ok(p) => p.reply().await,
                Err(e) => Err(e),
            };
            node.record(&reply);
            match reply {
                Ok(Frame::Integer(n)) if summing => sum += n,
                Ok(Frame::Error(e)) => return Frame::Error(e),
                Ok(_) if !summing => {}
                Ok(other) => return Frame::error(format!("ERR unexpected reply {other:?}")),
                Err(e) => return e.to_frame(),
            }
        }
        if summing {
            Frame::Integer(sum)
        } else {
            Frame::ok()
        }
    }))
}

type Sent = Vec<(
    Arc<Node>,
    Result<crate::backend::Pending, crate::backend::BackendError>,
)>;

async fn broadcast(nodes: &[Arc<Node>], lane: u64, req: &Frame) -> Sent {
    let mut sent = Vec::with_capacity(nodes.len());
    for node in nodes {
        sent.push((node.clone(), node.send(lane, req.clone()).await));
    }
    sent
}

/// `INFO`: refreshes the aggregated keyspace from every shard, then lets the built-in
/// INFO render it with the router's sections.
pub async fn info(router: &Router, lane: u64, args: Args) -> Reply {
    let layout = router.layout();
    let req = Frame::bulk_array(["INFO", "keyspace"]);
    let (mut keys, mut expires) = (0u64, 0u64);
    for (node, pending) in broadcast(&layout.primaries(), lane, &req).await {
        let reply = match pending {
            Ok(p) => p.reply().await,
            Err(e) => Err(e),
        };
        node.record(&reply);
        if let Ok(Frame::Bulk(text)) = reply {
            let (k, e) = parse_keyspace(&String::from_utf8_lossy(&text));
            keys += k;
            expires += e;
        }
    }
    match router.keyspace.lock() {
        Ok(mut g) => *g = (keys, expires),
        Err(p) => *p.into_inner() = (keys, expires),
    }
    Reply::Unhandled(args)
}

/// Sums `keys=` and `expires=` over the `dbN:` lines of an INFO keyspace section.
pub fn parse_keyspace(text: &str) -> (u64, u64) {
    let (mut keys, mut expires) = (0, 0);
    for line in text.lines().filter(|l| l.starts_with("db")) {
        let Some((_, fields)) = line.split_once(':') else {
            continue;
        };
        for field in fields.split(',') {
            match field.trim().split_once('=') {
                Some(("keys", n)) => keys += n.parse::<u64>().unwrap_or(0),
                Some(("expires", n)) => expires += n.parse::<u64>().unwrap_or(0),
                _ => {}
            }
        }
    }
    (keys, expires)
}

#[cfg(test)]
mod tests {
    #[test]
    fn keyspace_lines_are_summed() {
        let text =
            "# Keyspace\r\ndb0:keys=10,expires=2,avg_ttl=0\r\ndb1:keys=5,expires=0,avg_ttl=0\r\n";
        assert_eq!(super::parse_keyspace(text), (15, 2));
    }
}

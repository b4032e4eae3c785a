//! `ROUTER SHARDOF key | SHARDS | STATS | RELOAD | HELP`: the router explains itself.

use std::sync::atomic::Ordering;

use proto::{Args, CommandError, Frame};
use service::Reply;

use crate::backend::Node;
use crate::hashtag::hash_tag;
use crate::server::Router;
use crate::strategy::key_hash;

pub async fn execute(router: &Router, lane: u64, mut args: Args) -> Reply {
    let Some(sub) = args.next_keyword() else {
        return args.wrong_arity().into();
    };
    let layout = router.layout();
    let result = match sub.as_str() {
        "SHARDOF" => match (args.next_bytes(), args.finish()) {
            (Ok(key), Ok(())) => match layout.shard_of(&key, lane).await {
                Ok(i) => {
                    let shard = &layout.shards[i];
                    let reads = router
                        .node_for(&layout, shard, false)
                        .map(|n| Frame::bulk(n.addr.clone()))
                        .unwrap_or(Frame::Null);
                    Ok(Frame::Map(vec![
                        pair("hash", Frame::bulk(format!("{:016x}", key_hash(&key)))),
                        pair("tag", Frame::Bulk(bytes::Bytes::copy_from_slice(hash_tag(&key)))),
                        pair("shard", Frame::bulk(shard.name.clone())),
                        pair("node", Frame::bulk(shard.primary.addr.clone())),
                        pair("read_node", reads),
                    ]))
                }
                Err(e) => Ok(e),
            },
            (Err(e), _) | (_, Err(e)) => Err(e),
        },
        "SHARDS" => Ok(Frame::Array(
            layout
                .shards
                .iter()
                .map(|s| {
                    Frame::Map(vec![
                        pair("name", Frame::bulk(s.name.clone())),
                        pair("primary", Frame::bulk(s.primary.addr.clone())),
                        pair("status", Frame::bulk(s.primary.status().as_str())),
                        pair(
                            "replicas",
                            Frame::Array(
                                s.replicas
                                    .iter()
                                    .map(|r| Frame::bulk(format!("{} {}", r.addr, r.status().as_str())))
                                    .collect(),
                            ),
                        ),
                    ])
                })
                .collect(),
        )),
        "STATS" => Ok(Frame::Array(
            layout
                .shards
                .iter()
                .map(|s| {
                    let mut fields = vec![
                        pair("shard", Frame::bulk(s.name.clone())),
                        pair("requests", Frame::Integer(count(&s.requests))),
                        pair("errors", Frame::Integer(count(&s.errors))),
                    ];
                    for node in std::iter::once(&s.primary).chain(&s.replicas) {
                        fields.push(pair(&node.addr, node_stats(node)));
                    }
                    Frame::Map(fields)
                })
                .collect(),
        )),
        "RELOAD" => match router.reload() {
            Ok(()) => Ok(Frame::ok()),
            Err(e) => Err(CommandError::err(format!("reload failed, old config kept: {e}"))),
        },
        "HELP" => Ok(Frame::Array(
            [
                "ROUTER SHARDOF <key> -- hash, hash tag, shard and nodes of a key.",
                "ROUTER SHARDS -- every shard with its primary, replicas and health.",
                "ROUTER STATS -- requests and errors per shard and per node.",
                "ROUTER RELOAD -- re-read the config file (connections to unchanged nodes are kept).",
            ]
            .into_iter()
            .map(Frame::simple)
            .collect(),
        )),
        _ => Err(CommandError::err(format!(
            "unknown subcommand '{sub}'. Try ROUTER HELP."
        ))),
    };
    match result {
        Ok(frame) => frame.into(),
        Err(e) => e.into(),
    }
}

fn pair(name: &str, value: Frame) -> (Frame, Frame) {
    (Frame::bulk(name.to_string()), value)
}

fn count(c: &std::sync::atomic::AtomicU64) -> i64 {
    c.load(Ordering::Relaxed) as i64
}

fn node_stats(node: &Node) -> Frame {
    Frame::bulk(format!(
        "requests={} errors={} status={}",
        count(&node.requests),
        count(&node.errors),
        node.status().as_str()
    ))
}

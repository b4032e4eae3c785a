//! Multi-key commands split by shard, sent in parallel, merged in the client's order.
//!
//! `MGET a b c d` with a, c on shard 0 and b, d on shard 1 becomes `MGET a c` to shard 0
//! and `MGET b d` to shard 1; the replies are woven back into `[a, b, c, d]`. If shard 1
//! fails, b and d get an error each and a and c still get their values. MSET is split the
//! same way (each shard's part is atomic, the whole is not — unlike Redis, where MSET is
//! all or nothing); DEL, UNLINK, EXISTS and TOUCH add up the shards' counts.

use proto::{Args, CommandError, Frame, Protocol};
use service::{Deferred, Reply};

use crate::commands::{Route, send, sub_request};
use crate::migrate;
use crate::server::Router;

pub async fn execute(router: &Router, lane: u64, protocol: Protocol, args: Args) -> Reply {
    let name = args.name().to_string();
    // Borrowed from the request: splitting and forwarding only read the words.
    let words: Vec<&[u8]> = args.peek_all().collect();
    let step = if name == "mset" { 2 } else { 1 };
    if !words.len().is_multiple_of(step) {
        return CommandError::WrongArity(name).into();
    }
    let layout = router.layout();
    // Shard of each key, and the keys (by position) each shard gets.
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    let mut keys = Vec::with_capacity(words.len() / step);
    for (i, chunk) in words.chunks(step).enumerate() {
        let shard = match layout.shard_of(chunk[0], lane).await {
            Ok(shard) => shard,
            Err(e) => return e.into(),
        };
        keys.push(chunk[0]);
        match groups.iter_mut().find(|(s, _)| *s == shard) {
            Some((_, positions)) => positions.push(i),
            None => groups.push((shard, vec![i])),
        }
    }
    if let Err(e) = migrate::pull_keys(&layout, &keys, lane).await {
        return e.into();
    }
    let write = matches!(name.as_str(), "mset" | "del" | "unlink");
    let to = |shard| Route {
        shard,
        write,
        lane,
        protocol,
    };
    if let [(shard, _)] = groups.as_slice() {
        // All on one shard: forward as is.
        let whole = std::iter::once(args.raw_name()).chain(words.iter().copied());
        return Reply::Deferred(send(router, &layout, to(*shard), whole).await);
    }
    // The merged reply is a `Frame`, encoded in the client's protocol: an array for
    // MGET (its missing values `_` in RESP3), an integer for DEL, +OK for MSET.
    let mut sent: Vec<(Vec<usize>, Deferred)> = Vec::with_capacity(groups.len());
    for (shard, positions) in groups {
        let part = sub_request(args.raw_name(), &words, &positions, step);
        let later = send(router, &layout, to(shard), part.iter().copied()).await;
        sent.push((positions, later));
    }
    let total = keys.len();
    Reply::Deferred(Deferred::new(async move {
        let mut replies = Vec::with_capacity(sent.len());
        for (positions, later) in sent {
            replies.push((positions, later.frame().await));
        }
        merge(&name, total, replies)
    }))
}

/// Combines the shards' replies: `(positions of the keys sent to a shard, its reply)`.
pub fn merge(name: &str, total: usize, replies: Vec<(Vec<usize>, Frame)>) -> Frame {
    match name {
        "mget" => {
            let mut values = vec![Frame::Null; total];
            for (positions, reply) in replies {
                match reply {
                    Frame::Array(items) if items.len() == positions.len() => {
                        for (i, item) in positions.into_iter().zip(items) {
                            values[i] = item;
                        }
                    }
                    other => {
                        let error = match other {
                            Frame::Error(e) => Frame::Error(e),
                            _ => Frame::error("ERR unexpected reply from shard"),
                        };
                        for i in positions {
                            values[i] = error.clone();
                        }
                    }
                }
            }
            Frame::Array(values)
        }
        "mset" => replies
            .into_iter()
            .map(|(_, r)| r)
            .find(Frame::is_error)
            .unwrap_or_else(Frame::ok),
        _ => {
            let mut sum = 0;
            for (_, reply) in replies {
                match reply {
                    Frame::Integer(n) => sum += n,
                    Frame::Error(e) => return Frame::Error(e),
                    _ => return Frame::error("ERR unexpected reply from shard"),
                }
            }
            Frame::Integer(sum)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mget_weaves_values_back_and_isolates_a_failed_shard() {
        let merged = merge(
            "mget",
            4,
            vec![
                (
                    vec![0, 2],
                    Frame::Array(vec![Frame::bulk("a"), Frame::Null]),
                ),
                (vec![1, 3], Frame::error("ERR backend down")),
            ],
        );
        assert_eq!(
            merged,
            Frame::Array(vec![
                Frame::bulk("a"),
                Frame::error("ERR backend down"),
                Frame::Null,
                Frame::error("ERR backend down"),
            ])
        );
    }

    #[test]
    fn counts_add_up_and_errors_win() {
        let ok = merge(
            "del",
            3,
            vec![
                (vec![0], Frame::Integer(1)),
                (vec![1, 2], Frame::Integer(2)),
            ],
        );
        assert_eq!(ok, Frame::Integer(3));
        let bad = merge(
            "exists",
            2,
            vec![
                (vec![0], Frame::Integer(1)),
                (vec![1], Frame::error("ERR x")),
            ],
        );
        assert!(bad.is_error());
        assert_eq!(
            merge(
                "mset",
                2,
                vec![(vec![0], Frame::ok()), (vec![1], Frame::ok())]
            ),
            Frame::ok()
        );
    }
}

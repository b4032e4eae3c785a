//! `PRODUCE` and `PRODUCE.BATCH`: append messages and reply where they landed.
//!
//! The records go into the partition's unwritten tail and the reply is *deferred* until
//! the tail is written (see [`StreamServer::reply_when_written`]): the connection executes
//! the rest of the client's pipeline first, so a pipeline of 100 produces is one `write`
//! to the segment file, not 100 — and under `--fsync always` one fsync, shared with every
//! other connection whose records that write or fsync covered (group commit).

use bytes::{BufMut, Bytes, BytesMut};
use proto::{Args, CommandError};
use service::Reply;

use super::{Line, line, log_error, next_u64, partition, topic_error};
use crate::record::Record;
use crate::server::StreamServer;

/// `PRODUCE topic value [KEY key] [PARTITION p] [TIMESTAMP ms] [HEADER name value]...`
/// → `[partition, offset]`.
pub async fn produce(s: &StreamServer, args: &mut Args) -> Result<Reply, CommandError> {
    let name = args.next_bytes()?;
    let value = args.next_bytes()?;
    let mut record = Record {
        key: None,
        value: Some(value),
        timestamp: s.now_ms(),
        headers: Vec::new(),
    };
    let mut explicit = None;
    while !args.is_empty() {
        if args.next_flag("KEY") {
            record.key = Some(args.next_bytes()?);
        } else if args.next_flag("PARTITION") {
            explicit = Some(next_u64(args, "PARTITION", u64::from(u32::MAX))?);
        } else if args.next_flag("TIMESTAMP") {
            record.timestamp = args.next_int()?;
        } else if args.next_flag("HEADER") {
            let header = args.next_bytes()?;
            record.headers.push((header, Some(args.next_bytes()?)));
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let topic = s
        .topic_for_produce(topic_name(&name)?)
        .map_err(topic_error)?;
    let id = match explicit {
        Some(p) => p as u32,
        None => topic.choose_partition(record.key.as_deref()),
    };
    let p = partition(&topic, u64::from(id))?;
    let appended = p
        .append_unwritten(std::slice::from_ref(&record), s.now_ms())
        .map_err(log_error)?;
    let mut reply = BytesMut::with_capacity(PLACED_LEN);
    placed(&mut reply, id, appended.base_offset);
    Ok(s.reply_when_written(std::iter::once((p, appended.last_offset)), reply.freeze()))
}

/// `PRODUCE.BATCH topic [PARTITION p] VALUES v [v ...] | PAIRS k v [k v ...]` → one
/// `[partition, offset]` per message, in order. Messages bound for the same partition go
/// into one record batch: one append, one CRC, one index check — that is what batching
/// buys.
pub async fn produce_batch(s: &StreamServer, args: &mut Args) -> Result<Reply, CommandError> {
    let name = args.next_bytes()?;
    let mut explicit = None;
    let keyed = loop {
        if args.next_flag("PARTITION") {
            explicit = Some(next_u64(args, "PARTITION", u64::from(u32::MAX))? as u32);
        } else if args.next_flag("VALUES") {
            break false;
        } else if args.next_flag("PAIRS") {
            break true;
        } else if args.is_empty() {
            return Err(args.wrong_arity());
        } else {
            return Err(CommandError::Syntax);
        }
    };
    let words = args.peek_all();
    if words.is_empty() || (keyed && !words.len().is_multiple_of(2)) {
        return Err(args.wrong_arity());
    }
    let now = s.now_ms();
    let message = |key: Option<&Bytes>, value: &Bytes| Record {
        key: key.cloned(),
        value: Some(value.clone()),
        timestamp: now,
        headers: Vec::new(),
    };
    let topic = s
        .topic_for_produce(topic_name(&name)?)
        .map_err(topic_error)?;
    // Which partition each message goes to, then one batch per partition, in the order
    // the partitions first appear.
    let mut batches: Vec<(u32, Vec<Record>, Vec<usize>)> = Vec::new();
    let mut targets = Vec::with_capacity(words.len() / (1 + usize::from(keyed)));
    if keyed {
        for (i, kv) in words.chunks_exact(2).enumerate() {
            let p = match explicit {
                Some(p) => p,
                None => topic.choose_partition(Some(&kv[0])),
            };
            targets.push(p);
            let at = match batches.iter().position(|b| b.0 == p) {
                Some(at) => at,
                None => {
                    batches.push((p, Vec::new(), Vec::new()));
                    batches.len() - 1
                }
            };
            batches[at].1.push(message(Some(&kv[0]), &kv[1]));
            batches[at].2.push(i);
        }
    } else {
        // Unkeyed: the whole batch to one partition (the next in turn, as Kafka's sticky
        // partitioner does per batch), keeping the batch whole.
        let p = explicit.unwrap_or_else(|| topic.choose_partition(None));
        targets.resize(words.len(), p);
        let records = words.iter().map(|v| message(None, v)).collect();
        batches.push((p, records, Vec::new()));
    }
    let mut offsets = vec![0u64; targets.len()];
    let mut written = Vec::with_capacity(batches.len());
    for (id, records, indexes) in &batches {
        let p = partition(&topic, u64::from(*id))?;
        let a = p.append_unwritten(records, now).map_err(log_error)?;
        if keyed {
            for (n, &i) in indexes.iter().enumerate() {
                offsets[i] = a.base_offset + n as u64;
            }
        } else {
            for (n, o) in offsets.iter_mut().enumerate() {
                *o = a.base_offset + n as u64;
            }
        }
        written.push((p, a.last_offset));
    }
    let mut reply = BytesMut::with_capacity(16 + targets.len() * PLACED_LEN);
    line(&mut reply, b'*', targets.len() as i64);
    // Mostly one partition and consecutive offsets: lines formatted once, counted up.
    let (mut partition_line, mut offset_line) = (Line::new(b':'), Line::new(b':'));
    for (&p, o) in targets.iter().zip(offsets) {
        reply.put_slice(b"*2\r\n");
        partition_line.put(&mut reply, i64::from(p));
        offset_line.put_next(&mut reply, o);
    }
    Ok(s.reply_when_written(written, reply.freeze()))
}

/// Room for one [`placed`] reply (two integers of up to 20 digits and their framing).
const PLACED_LEN: usize = 52;

/// Where one message landed, `[partition, offset]`, encoded as RESP2 — written straight
/// into the reply, where a `Frame` per message would cost an allocation to build and
/// another to drop: with 100-byte messages, as much as storing the message.
fn placed(out: &mut BytesMut, partition: u32, offset: u64) {
    out.put_slice(b"*2\r\n");
    line(out, b':', i64::from(partition));
    line(out, b':', offset as i64);
}

/// A topic name argument, borrowed (UTF-8; validity is checked where topics are created).
fn topic_name(name: &Bytes) -> Result<&str, CommandError> {
    std::str::from_utf8(name).map_err(|_| CommandError::err("names must be UTF-8"))
}

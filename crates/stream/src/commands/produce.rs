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

use super::{Line, increment_decimal, line, log_error, next_u64, partition, topic_error};
use crate::partitioner::partition_for_key;
use crate::record::{Message, Record};
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
///
/// The messages are encoded into the batch straight from the request's bytes
/// ([`Message`] borrows them), and a batch bound for one partition — unkeyed, `PARTITION`
/// named, or a topic of one partition — gets its reply in one pass ([`placed_run`]).
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
    let messages: Vec<Message> = if keyed {
        words
            .chunks_exact(2)
            .map(|kv| Message {
                key: Some(&kv[0]),
                value: Some(&kv[1]),
                timestamp: now,
            })
            .collect()
    } else {
        words
            .iter()
            .map(|v| Message {
                key: None,
                value: Some(v),
                timestamp: now,
            })
            .collect()
    };
    let topic = s
        .topic_for_produce(topic_name(&name)?)
        .map_err(topic_error)?;
    // One partition for the whole batch: the one named; without keys, the next in turn
    // (as Kafka's sticky partitioner does per batch), keeping the batch whole; with keys,
    // the only one there is (murmur2 modulo 1).
    let partitions = topic.partition_count();
    let single = match explicit {
        Some(id) => Some(id),
        None if !keyed => Some(topic.choose_partition(None)),
        None if partitions == 1 => Some(0),
        None => None,
    };
    if let Some(id) = single {
        let p = partition(&topic, u64::from(id))?;
        let a = p.append_unwritten(&messages, now).map_err(log_error)?;
        let count = messages.len();
        let mut reply = Vec::with_capacity(24 + count * placed_len(id, a.last_offset));
        line(&mut reply, b'*', count as i64);
        placed_run(&mut reply, id, a.base_offset, count);
        return Ok(s.reply_when_written([(p, a.last_offset)], Bytes::from(reply)));
    }
    // Keyed, over several partitions: each message where its key hashes (the partition
    // count read once for the batch), one batch per partition in the order the
    // partitions first appear.
    let targets: Vec<u32> = messages
        .iter()
        .map(|m| partition_for_key(m.key.unwrap_or_default(), partitions))
        .collect();
    let mut batches: Vec<(u32, Vec<Message>)> = Vec::new();
    for (m, &id) in messages.iter().zip(&targets) {
        match batches.iter_mut().find(|b| b.0 == id) {
            Some(batch) => batch.1.push(*m),
            None => batches.push((id, vec![*m])),
        }
    }
    // Per batch (same order): its partition's line, and the offset line of the next of
    // its messages in request order — kept per partition, so each is formatted once and
    // then counted up, however the keys interleave.
    let mut lines = Vec::with_capacity(batches.len());
    let mut written = Vec::with_capacity(batches.len());
    for (id, messages) in &batches {
        let p = partition(&topic, u64::from(*id))?;
        let a = p.append_unwritten(messages, now).map_err(log_error)?;
        lines.push((Line::new(b':'), Line::new(b':'), a.base_offset));
        written.push((p, a.last_offset));
    }
    let mut reply = BytesMut::with_capacity(16 + targets.len() * PLACED_LEN);
    line(&mut reply, b'*', targets.len() as i64);
    for &id in &targets {
        let at = batches.iter().position(|b| b.0 == id).unwrap_or(0);
        let (partition_line, offset_line, next) = &mut lines[at];
        reply.put_slice(b"*2\r\n");
        partition_line.put(&mut reply, i64::from(id));
        offset_line.put_next(&mut reply, *next);
        *next += 1;
    }
    Ok(s.reply_when_written(written, reply.freeze()))
}

/// Room for one [`placed`] reply (two integers of up to 20 digits and their framing).
const PLACED_LEN: usize = 52;

/// Where one message landed, `[partition, offset]`, encoded as RESP2 — written straight
/// into the reply, where a `Frame` per message would cost an allocation to build and
/// another to drop: with 100-byte messages, as much as storing the message.
fn placed(out: &mut impl BufMut, partition: u32, offset: u64) {
    out.put_slice(b"*2\r\n");
    line(out, b':', i64::from(partition));
    line(out, b':', offset as i64);
}

/// Bytes of a [`placed`] reply whose offset has at most the digits of `offset`.
fn placed_len(partition: u32, offset: u64) -> usize {
    let digits = |n: u64| n.checked_ilog10().map_or(1, |d| d as usize + 1);
    "*2\r\n::\r\n\r\n".len() + digits(u64::from(partition)) + digits(offset)
}

/// The replies of `count` messages stored in one partition at consecutive offsets from
/// `base`: the first [`placed`] is formatted, each next one is the one before with its
/// offset counted up in place (`:41\r\n` → `:42\r\n`), formatted afresh only when the
/// offset grows a digit, and appended in one piece. Formatting two numbers per message,
/// and appending the reply in three pieces each time, was a tenth of a batched 100-byte
/// produce.
fn placed_run(out: &mut Vec<u8>, partition: u32, base: u64, count: usize) {
    let mut entry = Vec::with_capacity(PLACED_LEN);
    placed(&mut entry, partition, base);
    for offset in base..base + count as u64 {
        if offset > base && !increment_decimal(&mut entry) {
            entry.clear();
            placed(&mut entry, partition, offset);
        }
        out.extend_from_slice(&entry);
    }
}

/// A topic name argument, borrowed (UTF-8; validity is checked where topics are created).
fn topic_name(name: &Bytes) -> Result<&str, CommandError> {
    std::str::from_utf8(name).map_err(|_| CommandError::err("names must be UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The run's copy-and-count-up gives the bytes [`placed`] formats, message by
    /// message, across every change in the number of digits.
    #[test]
    fn placed_run_is_placed_for_each_offset() {
        for (partition, base, count) in [
            (0, 0, 1),
            (0, 0, 12),
            (3, 7, 95),
            (12, 995, 10),
            (9, 99_990, 20),
            (1, u64::from(u32::MAX) - 3, 8),
        ] {
            let mut run = Vec::new();
            placed_run(&mut run, partition, base, count);
            let mut each = BytesMut::new();
            for offset in base..base + count as u64 {
                placed(&mut each, partition, offset);
            }
            assert_eq!(run, each, "{partition} {base} {count}");
            assert!(run.len() <= count * placed_len(partition, base + count as u64 - 1));
        }
        let mut none = Vec::new();
        placed_run(&mut none, 0, 5, 0);
        assert!(none.is_empty());
    }
}

//! `PRODUCE` and `PRODUCE.BATCH`: append messages and reply where they landed.

use std::collections::BTreeMap;
use std::sync::Arc;

use proto::{Args, CommandError, Frame};

use super::{io_error, log_error, next_name, next_u64, partition, topic_error};
use crate::log::Appended;
use crate::record::Record;
use crate::server::StreamServer;
use crate::topic::Topic;

/// `PRODUCE topic value [KEY key] [PARTITION p] [TIMESTAMP ms] [HEADER name value]...`
/// → `[partition, offset]`.
pub async fn produce(s: &StreamServer, args: &mut Args) -> Result<Frame, CommandError> {
    let name = next_name(args)?;
    let value = args.next_bytes()?;
    let mut record = Record {
        key: None,
        value: Some(value),
        timestamp: s.now_ms(),
        headers: Vec::new(),
    };
    let mut explicit = None;
    while let Some(option) = args.next_keyword() {
        match option.as_str() {
            "KEY" => record.key = Some(args.next_bytes()?),
            "PARTITION" => explicit = Some(next_u64(args, "PARTITION", u64::from(u32::MAX))?),
            "TIMESTAMP" => record.timestamp = args.next_int()?,
            "HEADER" => {
                let header = args.next_bytes()?;
                record.headers.push((header, Some(args.next_bytes()?)));
            }
            _ => return Err(CommandError::Syntax),
        }
    }
    let topic = s.topic_for_produce(&name).map_err(topic_error)?;
    let id = match explicit {
        Some(p) => p as u32,
        None => topic.choose_partition(record.key.as_deref()),
    };
    let appended = append(s, &topic, id, &[record])?;
    s.make_durable(std::slice::from_ref(&appended))
        .await
        .map_err(io_error)?;
    Ok(Frame::Array(vec![
        Frame::Integer(i64::from(id)),
        Frame::Integer(appended.base_offset as i64),
    ]))
}

/// `PRODUCE.BATCH topic [PARTITION p] VALUES v [v ...] | PAIRS k v [k v ...]` → one
/// `[partition, offset]` per message, in order. Messages bound for the same partition go
/// into one record batch: one append, one CRC, one index check — that is what batching
/// buys.
pub async fn produce_batch(s: &StreamServer, args: &mut Args) -> Result<Frame, CommandError> {
    let name = next_name(args)?;
    let mut explicit = None;
    let keyed = loop {
        match args.next_keyword().as_deref() {
            Some("PARTITION") => {
                explicit = Some(next_u64(args, "PARTITION", u64::from(u32::MAX))? as u32)
            }
            Some("VALUES") => break false,
            Some("PAIRS") => break true,
            Some(_) => return Err(CommandError::Syntax),
            None => return Err(args.wrong_arity()),
        }
    };
    let words = args.rest();
    if words.is_empty() || (keyed && !words.len().is_multiple_of(2)) {
        return Err(args.wrong_arity());
    }
    let now = s.now_ms();
    let records: Vec<Record> = if keyed {
        words
            .chunks_exact(2)
            .map(|kv| Record {
                key: Some(kv[0].clone()),
                value: Some(kv[1].clone()),
                timestamp: now,
                headers: Vec::new(),
            })
            .collect()
    } else {
        words
            .into_iter()
            .map(|v| Record {
                key: None,
                value: Some(v),
                timestamp: now,
                headers: Vec::new(),
            })
            .collect()
    };
    let topic = s.topic_for_produce(&name).map_err(topic_error)?;
    // Which partition each message goes to, then one batch per partition.
    let targets: Vec<u32> = match explicit {
        Some(p) => vec![p; records.len()],
        None if keyed => records
            .iter()
            .map(|r| topic.choose_partition(r.key.as_deref()))
            .collect(),
        // Unkeyed: the whole batch to the next partition in turn (as Kafka's sticky
        // partitioner does per batch), keeping the batch whole.
        None => vec![topic.choose_partition(None); records.len()],
    };
    let mut by_partition: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, &p) in targets.iter().enumerate() {
        by_partition.entry(p).or_default().push(i);
    }
    let mut offsets = vec![0u64; records.len()];
    let mut appended = Vec::with_capacity(by_partition.len());
    for (&p, indexes) in &by_partition {
        let batch: Vec<Record> = indexes.iter().map(|&i| records[i].clone()).collect();
        let a = append(s, &topic, p, &batch)?;
        for (n, &i) in indexes.iter().enumerate() {
            offsets[i] = a.base_offset + n as u64;
        }
        appended.push(a);
    }
    s.make_durable(&appended).await.map_err(io_error)?;
    Ok(Frame::Array(
        targets
            .iter()
            .zip(offsets)
            .map(|(&p, o)| {
                Frame::Array(vec![Frame::Integer(i64::from(p)), Frame::Integer(o as i64)])
            })
            .collect(),
    ))
}

fn append(
    s: &StreamServer,
    topic: &Arc<Topic>,
    id: u32,
    records: &[Record],
) -> Result<Appended, CommandError> {
    let p = partition(topic, u64::from(id))?;
    let mut batch = crate::record::encode_batch(records);
    p.append(&mut batch, s.now_ms()).map_err(log_error)
}

//! `FETCH` (read from an offset, optionally waiting) and `LISTOFFSETS`.

use std::time::Duration;

use proto::{Args, CommandError, Frame};

use super::{int, log_error, next_name, next_u64, partition, topic_error};
use crate::record::{self, BatchError, StoredRecord};
use crate::server::StreamServer;

/// Default and largest `MAXBYTES` of one fetch.
const DEFAULT_MAX_BYTES: u64 = 1 << 20;
const MAX_MAX_BYTES: u64 = 64 << 20;

/// `FETCH topic partition offset [COUNT n] [MAXBYTES bytes] [BLOCK ms]` → records, each
/// `[offset, timestamp, key, value, headers]`. At the end offset it returns an empty array
/// — or, with `BLOCK`, waits until a record arrives or the time is up (`BLOCK 0`: forever),
/// which is how a consumer tails a partition without polling in a loop.
pub async fn fetch(s: &StreamServer, args: &mut Args) -> Result<Frame, CommandError> {
    let name = next_name(args)?;
    let id = next_u64(args, "the partition", u64::from(u32::MAX))?;
    let offset = next_u64(args, "the offset", i64::MAX as u64)?;
    let mut count = usize::MAX;
    let mut max_bytes = DEFAULT_MAX_BYTES;
    let mut block = None;
    while let Some(option) = args.next_keyword() {
        match option.as_str() {
            "COUNT" => count = next_u64(args, "COUNT", u32::MAX.into())?.max(1) as usize,
            "MAXBYTES" => max_bytes = next_u64(args, "MAXBYTES", MAX_MAX_BYTES)?.max(1),
            "BLOCK" => block = Some(next_u64(args, "BLOCK", i64::MAX as u64)?),
            _ => return Err(CommandError::Syntax),
        }
    }
    let topic = s.topics.require(&name).map_err(topic_error)?;
    let p = partition(&topic, id)?;
    let mut end = p.watch_end();
    let records = read(&p, offset, max_bytes, count)?;
    let Some(block) = block.filter(|_| records.is_empty()) else {
        return Ok(reply(records));
    };
    // Long poll: wait for the end offset to pass `offset`, the deadline, or shutdown.
    let wait = end.wait_for(|&e| e > offset);
    let arrived = tokio::select! {
        r = async {
            if block == 0 {
                wait.await.is_ok()
            } else {
                matches!(tokio::time::timeout(Duration::from_millis(block), wait).await, Ok(Ok(_)))
            }
        } => r,
        _ = s.shutdown.cancelled() => false,
    };
    if !arrived {
        return Ok(Frame::NullArray);
    }
    Ok(reply(read(&p, offset, max_bytes, count)?))
}

fn read(
    p: &crate::topic::Partition,
    offset: u64,
    max_bytes: u64,
    count: usize,
) -> Result<Vec<StoredRecord>, CommandError> {
    let bytes = p
        .read(offset, max_bytes as usize, count as u64)
        .map_err(log_error)?;
    record::decode_batches(&bytes, offset, count).map_err(|e| match e {
        // A Kafka client's compressed batch: stored as sent, not decompressed here (yet).
        BatchError::Compressed(_) => CommandError::coded("UNSUPPORTED_COMPRESSION_TYPE", e),
        _ => CommandError::coded("CORRUPT_MESSAGE", e),
    })
}

fn reply(records: Vec<StoredRecord>) -> Frame {
    Frame::Array(records.into_iter().map(record_frame).collect())
}

/// One record as `[offset, timestamp, key, value, headers]` (`headers` a flat
/// `[name, value, ...]` array): positional like `XRANGE`'s `[id, fields]`, so a fetch of
/// many small records stays small on the wire.
fn record_frame(r: StoredRecord) -> Frame {
    let nullable = |b: Option<bytes::Bytes>| b.map_or(Frame::Null, Frame::Bulk);
    let headers = r
        .record
        .headers
        .into_iter()
        .flat_map(|(k, v)| [Frame::Bulk(k), nullable(v)])
        .collect();
    Frame::Array(vec![
        int(r.offset),
        Frame::Integer(r.record.timestamp),
        nullable(r.record.key),
        nullable(r.record.value),
        Frame::Array(headers),
    ])
}

/// `LISTOFFSETS topic partition EARLIEST|LATEST|timestamp-ms` → an offset (nil: no
/// record at or after that time).
pub fn list_offsets(s: &StreamServer, args: &mut Args) -> Result<Frame, CommandError> {
    let name = next_name(args)?;
    let id = next_u64(args, "the partition", u64::from(u32::MAX))?;
    let what = args.next_bytes()?;
    args.finish()?;
    let topic = s.topics.require(&name).map_err(topic_error)?;
    let p = partition(&topic, id)?;
    let offset = if what.eq_ignore_ascii_case(b"EARLIEST") {
        Some(p.start_offset())
    } else if what.eq_ignore_ascii_case(b"LATEST") {
        Some(p.end_offset())
    } else {
        let timestamp = proto::decode::parse_int(&what).ok_or_else(|| {
            CommandError::err("expected EARLIEST, LATEST or a timestamp in milliseconds")
        })?;
        p.offset_for_timestamp(timestamp).map_err(log_error)?
    };
    Ok(offset.map_or(Frame::Null, int))
}

//! `FETCH` (read from an offset, optionally waiting) and `LISTOFFSETS`.

use std::cell::RefCell;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use proto::{Args, CommandError, Frame};
use service::{Deferred, Reply, Settled};

use super::{int, line, log_error, next_name, next_u64, partition, topic_error};
use crate::record::{self, BatchError, Crc};
use crate::server::StreamServer;

/// Default and largest `MAXBYTES` of one fetch.
const DEFAULT_MAX_BYTES: u64 = 1 << 20;
const MAX_MAX_BYTES: u64 = 64 << 20;

/// `FETCH topic partition offset [COUNT n] [MAXBYTES bytes] [BLOCK ms]` → records, each
/// `[offset, timestamp, key, value, headers]`. At the end offset it returns an empty array
/// — or, with `BLOCK`, waits until a record arrives or the time is up (`BLOCK 0`: forever),
/// which is how a consumer tails a partition without polling in a loop.
pub async fn fetch(s: &StreamServer, args: &mut Args) -> Result<Reply, CommandError> {
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
    let Some(block) = block.filter(|_| records.is_none()) else {
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
        return Ok(Reply::One(Frame::NullArray));
    }
    Ok(reply(read(&p, offset, max_bytes, count)?))
}

thread_local! {
    /// The buffer fetches on this thread read into, kept between fetches so it is never
    /// zeroed or allocated again (see [`crate::segment::SegmentView::read_into`]).
    static READ_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A read buffer grown past this (by a big `MAXBYTES`) is freed after its fetch.
const KEEP_READ_BUFFER: usize = 4 << 20;

/// Reads up to `count` records from `offset` and encodes them as the RESP2 reply; `None`
/// when there are none (yet).
///
/// Each value is copied by the kernel from the page cache into the read buffer, by the
/// encoder from there into the reply (between its `$len` headers), and by the connection
/// into its output buffer. Nothing else is made per record — no zeroed buffer, no owned
/// record, no reply `Frame` tree (six frames and a `Vec` per record) to build and drop,
/// which is what the copies replaced.
fn read(
    p: &crate::topic::Partition,
    offset: u64,
    max_bytes: u64,
    count: usize,
) -> Result<Option<Bytes>, CommandError> {
    READ_BUFFER.with_borrow_mut(|buf| {
        let batches = p
            .read_into(offset, max_bytes as usize, count as u64, buf)
            .map_err(log_error)?;
        let reply = encode_records(&buf[batches], offset, count);
        if buf.len() > KEEP_READ_BUFFER {
            *buf = Vec::new();
        }
        reply
    })
}

/// Encodes the records of `batches` as a RESP2 array of
/// `[offset, timestamp, key, value, [header, value, ...]]`: positional like `XRANGE`'s
/// `[id, fields]`, so a fetch of many small records stays small on the wire.
fn encode_records(
    batches: &[u8],
    offset: u64,
    count: usize,
) -> Result<Option<Bytes>, CommandError> {
    // The array's length comes first but is known last: leave room for its header and
    // write it right-aligned into that room once the records are counted.
    const ROOM: usize = 16;
    let mut out = BytesMut::with_capacity(ROOM + batches.len() + batches.len() / 2 + 64);
    out.put_bytes(0, ROOM);
    // Records of a batch (and neighbouring batches) mostly share a millisecond: format a
    // timestamp once and copy it while it repeats.
    let (mut timestamp, mut timestamp_line) = (None, Vec::with_capacity(24));
    let records = record::for_each_record(batches, offset, count, Crc::Trust, |r| {
        out.put_slice(b"*5\r\n");
        line(&mut out, b':', r.offset as i64);
        if timestamp != Some(r.timestamp) {
            timestamp = Some(r.timestamp);
            timestamp_line.clear();
            line(&mut timestamp_line, b':', r.timestamp);
        }
        out.put_slice(&timestamp_line);
        bulk(&mut out, r.key);
        bulk(&mut out, r.value);
        line(&mut out, b'*', 2 * r.header_count as i64);
        for (name, value) in r.headers() {
            bulk(&mut out, Some(name));
            bulk(&mut out, value);
        }
    })
    .map_err(|e| match e {
        // A Kafka client's compressed batch: stored as sent, not decompressed here (yet).
        BatchError::Compressed(_) => CommandError::coded("UNSUPPORTED_COMPRESSION_TYPE", e),
        _ => CommandError::coded("CORRUPT_MESSAGE", e),
    })?;
    if records == 0 {
        return Ok(None);
    }
    let mut header = Vec::with_capacity(ROOM);
    line(&mut header, b'*', records as i64);
    let skip = ROOM - header.len();
    out[skip..ROOM].copy_from_slice(&header);
    out.advance(skip);
    Ok(Some(out.freeze()))
}

/// A bulk string, or RESP2's null bulk (`$-1`).
fn bulk(out: &mut BytesMut, data: Option<&[u8]>) {
    match data {
        None => out.put_slice(b"$-1\r\n"),
        Some(data) => {
            line(out, b'$', data.len() as i64);
            out.put_slice(data);
            out.put_slice(b"\r\n");
        }
    }
}

/// The encoded records as a reply (the empty array when there were none). Already RESP2
/// bytes, the connection copies them into its output as they are; a RESP3 client gets
/// them re-encoded (its null is `_`).
fn reply(records: Option<Bytes>) -> Reply {
    let bytes = records.unwrap_or_else(|| Bytes::from_static(b"*0\r\n"));
    Reply::Deferred(Deferred::settled(std::future::ready(Settled::Resp2(bytes))))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    fn parse(bytes: Bytes) -> Frame {
        let mut buf = BytesMut::from(bytes);
        let frame = proto::parse_frame(&mut buf, &proto::Limits::default(), proto::Mode::Reply)
            .unwrap()
            .unwrap();
        assert!(buf.is_empty(), "exactly one reply");
        frame
    }

    #[test]
    fn records_encode_as_the_positional_reply() {
        let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        let records = [
            Record {
                key: Some(b("k")),
                value: Some(b("v1")),
                timestamp: 1_700_000_000_123,
                headers: vec![(b("h"), Some(b("x"))), (b("nil"), None)],
            },
            Record {
                key: None,
                value: None,
                timestamp: 1_700_000_000_000,
                headers: vec![],
            },
        ];
        let mut batches = Vec::new();
        record::encode_batch_into(&mut batches, &records[..1], 41);
        record::encode_batch_into(&mut batches, &records[1..], 42);
        let expected = Frame::Array(vec![
            Frame::Array(vec![
                Frame::Integer(41),
                Frame::Integer(1_700_000_000_123),
                Frame::Bulk(b("k")),
                Frame::Bulk(b("v1")),
                Frame::Array(vec![
                    Frame::Bulk(b("h")),
                    Frame::Bulk(b("x")),
                    Frame::Bulk(b("nil")),
                    Frame::Null,
                ]),
            ]),
            Frame::Array(vec![
                Frame::Integer(42),
                Frame::Integer(1_700_000_000_000),
                Frame::Null,
                Frame::Null,
                Frame::Array(vec![]),
            ]),
        ]);
        let reply = encode_records(&batches, 41, usize::MAX).unwrap().unwrap();
        assert_eq!(parse(reply), expected);
        // From the middle, and with a count.
        let reply = encode_records(&batches, 42, 5).unwrap().unwrap();
        assert_eq!(
            parse(reply),
            Frame::Array(vec![array(&expected)[1].clone()])
        );
        let reply = encode_records(&batches, 0, 1).unwrap().unwrap();
        assert_eq!(
            parse(reply),
            Frame::Array(vec![array(&expected)[0].clone()])
        );
        // Repeated timestamps (formatted once, copied) and a change after them.
        let at = |ts: i64| Record {
            timestamp: ts,
            ..Record::default()
        };
        let mut same = Vec::new();
        record::encode_batch_into(&mut same, &[at(5), at(5), at(1_700_000_000_000)], 0);
        let timestamps: Vec<Frame> = array(&parse(encode_records(&same, 0, 9).unwrap().unwrap()))
            .iter()
            .map(|r| array(r)[1].clone())
            .collect();
        assert_eq!(
            timestamps,
            [5, 5, 1_700_000_000_000].map(Frame::Integer).to_vec()
        );
        // Past the end: no records, and the empty reply.
        assert_eq!(encode_records(&batches, 43, 5).unwrap(), None);
        assert_eq!(encode_records(&[], 0, 5).unwrap(), None);
    }

    #[test]
    fn bytes_that_do_not_parse_are_an_error_not_a_panic() {
        let record = Record {
            value: Some(Bytes::from_static(b"value")),
            ..Record::default()
        };
        let mut batch = Vec::new();
        record::encode_batch_into(&mut batch, &[record], 0);
        for cut in 1..batch.len() {
            let _ = encode_records(&batch[..cut], 0, 10);
        }
        // A record length that overruns its batch (the CRC is trusted, not checked).
        let last = batch.len() - 1;
        let length_at = record::BATCH_HEADER_LEN;
        batch[length_at] = 0x7e;
        let e = encode_records(&batch, 0, 10).unwrap_err();
        assert!(
            matches!(e.to_frame(), Frame::Error(m) if m.starts_with(b"CORRUPT_MESSAGE")),
            "{e:?}"
        );
        batch[last] ^= 0xff;
        let _ = encode_records(&batch, 0, 10);
    }

    fn array(frame: &Frame) -> &[Frame] {
        match frame {
            Frame::Array(items) => items,
            other => panic!("not an array: {other:?}"),
        }
    }
}

//! `FETCH` (read from an offset, optionally waiting) and `LISTOFFSETS`.

use std::cell::RefCell;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use proto::{Args, CommandError, Frame};
use service::{Deferred, Reply, Settled};

use super::{Line, int, line, log_error, next_name, next_u64, partition, topic_error};
use crate::record::{self, BatchError, Crc};
use crate::server::StreamServer;
use crate::topic::Partition;
use std::sync::Arc;

/// Default and largest `MAXBYTES` of one fetch.
const DEFAULT_MAX_BYTES: u64 = 1 << 20;
const MAX_MAX_BYTES: u64 = 64 << 20;

/// `FETCH topic partition offset [COUNT n] [MAXBYTES bytes] [BLOCK ms]` → records, each
/// `[offset, timestamp, key, value, header, value, ...]`. At the end offset it returns an
/// empty array — or, with `BLOCK`, waits until a record arrives or the time is up
/// (`BLOCK 0`: forever), which is how a consumer tails a partition without polling in a
/// loop.
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
    let records = read(s, &p, offset, max_bytes, count)?;
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
    Ok(reply(read(s, &p, offset, max_bytes, count)?))
}

thread_local! {
    /// Buffers fetches on this thread read into, kept between fetches so they are not
    /// zeroed or allocated again (see [`crate::segment::SegmentView::read_into`]). A
    /// buffer is lent out with the reply (its large values are slices of it) and can be
    /// read into again once the connection has sent that reply and dropped the slices:
    /// usually before the next fetch on this thread, so one or two buffers serve them all.
    static READ_BUFFERS: RefCell<Vec<Bytes>> = const { RefCell::new(Vec::new()) };
    /// The buffer replies are encoded into on this thread. Each reply is split off it
    /// (the parts go to the connection); once they are sent and dropped, `reserve` takes
    /// the whole allocation back, so a fetch does not `malloc` and `free` its reply.
    static REPLY_BUFFER: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// A read buffer grown past this (by a big `MAXBYTES`) is freed after its fetch.
const KEEP_READ_BUFFER: usize = 4 << 20;

/// At most this many read buffers are kept per thread.
const KEEP_READ_BUFFERS: usize = 4;

/// A value this long or longer is sent as a slice of the read buffer; a shorter one is
/// copied into the reply (cheaper than one more part for the connection to send).
const VALUE_AS_SLICE: usize = 512;

/// Reads up to `count` records from `offset` and encodes them as the RESP2 reply, in
/// parts; `None` when there are none (yet).
///
/// Copies per value: the kernel copies it from the page cache into the read buffer
/// (`pread`), and from there into the socket (`writev` of the reply's parts) — values of
/// `VALUE_AS_SLICE` bytes or more are parts of the reply as they are, slices of the read
/// buffer between the encoded `$len` headers. Shorter values are copied once more, into
/// the reply, where they cost less than an `iovec` each. Redis copies a value twice too:
/// from its memory into the client's reply buffer, and from there into the socket.
/// Nothing else is made per record — no zeroed buffer, no owned record, no reply `Frame`
/// tree (six frames and a `Vec` per record).
fn read(
    s: &StreamServer,
    p: &Arc<Partition>,
    offset: u64,
    max_bytes: u64,
    count: usize,
) -> Result<Option<Vec<Bytes>>, CommandError> {
    // Batches other fetches read lately are in memory: no `pread`, and the values go to
    // the socket as slices of the cached bytes (see `crate::read_cache`). Below the
    // partition's start the read below refuses the offset.
    if offset >= p.start_offset()
        && let Some((run, batches)) = s
            .read_cache
            .get(p, offset, max_bytes as usize, count as u64)
    {
        return encode_reply(&run.slice(batches), offset, count);
    }
    let mut buf = READ_BUFFERS.with_borrow_mut(|kept| {
        // A buffer no reply holds slices of any more, with its bytes still initialised.
        let free = kept.iter().position(Bytes::is_unique)?;
        kept.swap_remove(free).try_into_mut().ok()
    });
    let batches = p
        .read_into(
            offset,
            max_bytes as usize,
            count as u64,
            buf.get_or_insert_with(BytesMut::new),
        )
        .map_err(log_error)?;
    let whole = buf.map(BytesMut::freeze).unwrap_or_default();
    s.read_cache.offer(p, &whole[batches.clone()]);
    let reply = encode_reply(&whole.slice(batches), offset, count);
    if whole.len() <= KEEP_READ_BUFFER {
        READ_BUFFERS.with_borrow_mut(|kept| {
            if kept.len() < KEEP_READ_BUFFERS {
                kept.push(whole);
            } else if let Some(held) = kept.iter().position(|b| !b.is_unique()) {
                // Still lent to a reply a slow client has not taken yet: it is freed when
                // that reply is sent; keep this one instead.
                kept[held] = whole;
            }
        });
    }
    reply
}

/// [`encode_records`] into this thread's `REPLY_BUFFER`.
fn encode_reply(
    batches: &Bytes,
    offset: u64,
    count: usize,
) -> Result<Option<Vec<Bytes>>, CommandError> {
    let mut out = REPLY_BUFFER.take();
    let reply = encode_records(batches, offset, count, &mut out);
    REPLY_BUFFER.set(out);
    reply
}

/// Encodes the records of `batches` as a RESP2 array of
/// `[offset, timestamp, key, value, header, value, ...]`: positional like `XRANGE`'s
/// `[id, fields]`, so a fetch of many small records stays small on the wire. A record's
/// headers (usually none) follow its value as name-value pairs, flat like `HGETALL`'s,
/// rather than in an array of their own: a client library builds one object per RESP
/// element, and for a 100-byte record an empty headers array was one object in six —
/// measured, redis-benchmark parsed the nested form at 31k fetches of 100 records per
/// second and `XREAD`'s five objects per entry at 36k. The reply comes in parts: encoded
/// bytes, and values of `VALUE_AS_SLICE` bytes or more as slices of `batches`.
///
/// The parts are split off `out`, which is left empty (see `REPLY_BUFFER`).
fn encode_records(
    batches: &Bytes,
    offset: u64,
    count: usize,
    out: &mut BytesMut,
) -> Result<Option<Vec<Bytes>>, CommandError> {
    // The array's length comes first but is known last: leave room for its header and
    // write it right-aligned into that room once the records are counted.
    const ROOM: usize = 16;
    out.clear();
    // Sized for copied values; with sliced values most of it stays untouched.
    out.reserve(ROOM + 64 + (batches.len() + batches.len() / 2).min(256 << 10));
    // The first part is the array's header, filled in at the end; then two parts per
    // sliced value (the bytes before it, and it), and the bytes after the last.
    let sliced = count.min(batches.len() / VALUE_AS_SLICE);
    let mut parts = Vec::with_capacity(2 * sliced + 2);
    parts.push(Bytes::new());
    out.put_bytes(0, ROOM);
    // Records of a batch (and neighbouring batches) mostly share a millisecond: format a
    // timestamp once and copy it while it repeats.
    // Records of a batch (and neighbouring batches) mostly share a millisecond and a
    // value length, and their offsets count up by one: a line is formatted once and then
    // copied (or its digits counted up) while it repeats — formatting decimals was a
    // fifth of a fetch's instructions.
    let mut offset_line = Line::new(b':');
    let mut timestamp_line = Line::new(b':');
    let mut length_line = Line::new(b'$');
    let records = record::for_each_record(batches, offset, count, Crc::Trust, |r| {
        if r.header_count == 0 {
            out.put_slice(b"*4\r\n");
        } else {
            line(out, b'*', 4 + 2 * r.header_count as i64);
        }
        offset_line.put_next(out, r.offset);
        timestamp_line.put(out, r.timestamp);
        bulk(out, r.key);
        match r.value {
            Some(value) => {
                length_line.put(out, value.len() as i64);
                if value.len() >= VALUE_AS_SLICE {
                    parts.push(out.split().freeze());
                    parts.push(batches.slice_ref(value));
                } else {
                    out.put_slice(value);
                }
                out.put_slice(b"\r\n");
            }
            None => out.put_slice(b"$-1\r\n"),
        }
        for (name, value) in r.headers() {
            bulk(out, Some(name));
            bulk(out, value);
        }
    });
    let records = match records {
        Ok(0) => {
            out.clear();
            return Ok(None);
        }
        Ok(records) => records,
        Err(e) => {
            out.clear();
            return Err(match e {
                // A Kafka client's compressed batch: stored as sent, not decompressed
                // here (yet).
                BatchError::Compressed(_) => CommandError::coded("UNSUPPORTED_COMPRESSION_TYPE", e),
                _ => CommandError::coded("CORRUPT_MESSAGE", e),
            });
        }
    };
    if parts.len() == 1 {
        // One part (no value sliced): the header goes right-aligned into the room.
        let mut header = [0u8; ROOM];
        let mut at = &mut header[..];
        line(&mut at, b'*', records as i64);
        let len = ROOM - at.len();
        out[ROOM - len..ROOM].copy_from_slice(&header[..len]);
        out.advance(ROOM - len);
        parts[0] = out.split().freeze();
    } else {
        // The room went out with the first part: skip it, and send the header before.
        parts[1] = parts[1].slice(ROOM..);
        parts.push(out.split().freeze());
        line(out, b'*', records as i64);
        parts[0] = out.split().freeze();
    }
    Ok(Some(parts))
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
/// bytes, which the connection sends as they are; a RESP3 client gets them re-encoded
/// (its null is `_`).
fn reply(records: Option<Vec<Bytes>>) -> Reply {
    let settled = match records {
        Some(parts) => Settled::Resp2Parts(parts),
        None => Settled::Resp2(Bytes::from_static(b"*0\r\n")),
    };
    Reply::Deferred(Deferred::settled(std::future::ready(settled)))
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
        p.offset_for_timestamp(timestamp)
            .map_err(log_error)?
            .map(|(offset, _)| offset)
    };
    Ok(offset.map_or(Frame::Null, int))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    /// Encodes with a fresh buffer, and again with one left over from a bigger reply.
    fn encode(
        batches: &Bytes,
        offset: u64,
        count: usize,
    ) -> Result<Option<Vec<Bytes>>, CommandError> {
        let fresh = encode_records(batches, offset, count, &mut BytesMut::new());
        let mut used = BytesMut::from(&[7u8; 100][..]);
        used.reserve(1 << 16);
        let again = encode_records(batches, offset, count, &mut used);
        assert!(used.is_empty());
        assert_eq!(format!("{fresh:?}"), format!("{again:?}"));
        fresh
    }

    fn parse(parts: Vec<Bytes>) -> Frame {
        let mut buf = BytesMut::from(&parts.concat()[..]);
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
        let batches = Bytes::from(batches);
        let expected = Frame::Array(vec![
            Frame::Array(vec![
                Frame::Integer(41),
                Frame::Integer(1_700_000_000_123),
                Frame::Bulk(b("k")),
                Frame::Bulk(b("v1")),
                Frame::Bulk(b("h")),
                Frame::Bulk(b("x")),
                Frame::Bulk(b("nil")),
                Frame::Null,
            ]),
            Frame::Array(vec![
                Frame::Integer(42),
                Frame::Integer(1_700_000_000_000),
                Frame::Null,
                Frame::Null,
            ]),
        ]);
        let reply = encode(&batches, 41, usize::MAX).unwrap().unwrap();
        assert_eq!(parse(reply), expected);
        // From the middle, and with a count.
        let reply = encode(&batches, 42, 5).unwrap().unwrap();
        assert_eq!(
            parse(reply),
            Frame::Array(vec![array(&expected)[1].clone()])
        );
        let reply = encode(&batches, 0, 1).unwrap().unwrap();
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
        let same = Bytes::from(same);
        let timestamps: Vec<Frame> = array(&parse(encode(&same, 0, 9).unwrap().unwrap()))
            .iter()
            .map(|r| array(r)[1].clone())
            .collect();
        assert_eq!(
            timestamps,
            [5, 5, 1_700_000_000_000].map(Frame::Integer).to_vec()
        );
        // Past the end: no records, and the empty reply.
        assert_eq!(encode(&batches, 43, 5).unwrap(), None);
        assert_eq!(encode(&Bytes::new(), 0, 5).unwrap(), None);
    }

    #[test]
    fn bytes_that_do_not_parse_are_an_error_not_a_panic() {
        let record = Record {
            value: Some(Bytes::from_static(b"value")),
            ..Record::default()
        };
        let mut batch = Vec::new();
        record::encode_batch_into(&mut batch, &[record], 0);
        let whole = Bytes::from(batch.clone());
        for cut in 1..batch.len() {
            let _ = encode(&whole.slice(..cut), 0, 10);
        }
        // A record length that overruns its batch (the CRC is trusted, not checked).
        let last = batch.len() - 1;
        let length_at = record::BATCH_HEADER_LEN;
        batch[length_at] = 0x7e;
        let e = encode(&Bytes::from(batch.clone()), 0, 10).unwrap_err();
        assert!(
            matches!(e.to_frame(), Frame::Error(m) if m.starts_with(b"CORRUPT_MESSAGE")),
            "{e:?}"
        );
        batch[last] ^= 0xff;
        let _ = encode(&Bytes::from(batch), 0, 10);
    }

    #[test]
    fn offsets_count_up_in_place_and_repeated_lines_are_copied() {
        let mut offsets = Line::new(b':');
        let mut out = BytesMut::new();
        let mut expected = Vec::new();
        for o in [
            0, 1, 2, 8, 9, 10, 11, 99, 100, 101, 5, 999_999, 1_000_000, 1_000_001,
        ] {
            offsets.put_next(&mut out, o);
            line(&mut expected, b':', o as i64);
        }
        let mut lengths = Line::new(b'$');
        for n in [3, 3, 10, 10, 9, 3] {
            lengths.put(&mut out, n);
            line(&mut expected, b'$', n);
        }
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&expected)
        );
    }

    #[test]
    fn large_values_are_slices_of_the_read_buffer() {
        let value = |n: usize| Some(Bytes::from(vec![b'a' + (n % 26) as u8; n]));
        let records: Vec<Record> = [10, VALUE_AS_SLICE, 3000, 0, VALUE_AS_SLICE - 1, 70_000]
            .into_iter()
            .map(|n| Record {
                key: Some(Bytes::from_static(b"key")),
                value: value(n),
                timestamp: 1_700_000_000_000 + n as i64,
                headers: vec![(Bytes::from_static(b"h"), value(n))],
            })
            .collect();
        let mut batches = Vec::new();
        record::encode_batch_into(&mut batches, &records[..3], 7);
        record::encode_batch_into(&mut batches, &records[3..], 10);
        let batches = Bytes::from(batches);
        for from in 7..13 {
            let parts = encode(&batches, from, usize::MAX).unwrap().unwrap();
            let sliced = parts
                .iter()
                .filter(|p| batches.as_ptr_range().contains(&p.as_ptr()))
                .count();
            let large = records[(from - 7) as usize..]
                .iter()
                .filter(|r| r.value.as_ref().is_some_and(|v| v.len() >= VALUE_AS_SLICE))
                .count();
            assert_eq!(sliced, large, "from {from}");
            let got = array(&parse(parts)).to_vec();
            assert_eq!(got.len(), 13 - from as usize);
            for (i, r) in got.iter().enumerate() {
                let expected = &records[(from - 7) as usize + i];
                let fields = array(r);
                assert_eq!(fields[0], Frame::Integer(from as i64 + i as i64));
                assert_eq!(fields[1], Frame::Integer(expected.timestamp));
                assert_eq!(fields[3], Frame::Bulk(expected.value.clone().unwrap()));
                assert_eq!(
                    fields[4..],
                    [
                        Frame::Bulk(Bytes::from_static(b"h")),
                        Frame::Bulk(expected.value.clone().unwrap())
                    ]
                );
            }
        }
    }

    fn array(frame: &Frame) -> &[Frame] {
        match frame {
            Frame::Array(items) => items,
            other => panic!("not an array: {other:?}"),
        }
    }
}

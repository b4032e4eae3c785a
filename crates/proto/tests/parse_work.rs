//! Parse work is linear in the bytes received, however many reads they arrive in.
//!
//! A parser that walks a partly arrived request from its start on every read does work
//! proportional to (bytes so far) x (reads): a client announcing a 16-million-word request
//! and trickling the words in makes the server walk the same words again and again. The
//! parsers keep their place instead (see `FrameParser`), and count the bytes they walk
//! (`scanned()`), which these tests bound — work, not time, so they cannot be flaky.

use bytes::{Bytes, BytesMut};
use proto::{Frame, FrameParser, Limits, Mode, Protocol, RequestParser};

/// A request of `words` small arguments: `*N\r\n$5\r\nword0\r\n...`.
fn big_request(words: usize) -> Vec<u8> {
    Frame::bulk_array((0..words).map(|i| Bytes::from(format!("w{:04}", i % 10_000))))
        .to_bytes(Protocol::Resp2)
        .to_vec()
}

/// Feeds `wire` to the request parser `piece` bytes at a time, as reads would deliver
/// it; returns the parser (for its count) and how many requests came out.
fn trickle_requests(wire: &[u8], piece: usize) -> (RequestParser, usize) {
    let mut parser = RequestParser::default();
    let mut buf = BytesMut::new();
    let mut requests = 0;
    for chunk in wire.chunks(piece) {
        buf.extend_from_slice(chunk);
        while parser
            .next(&mut buf, &Limits::default())
            .expect("valid")
            .is_some()
        {
            requests += 1;
        }
    }
    assert!(buf.is_empty(), "bytes left over");
    (parser, requests)
}

/// The bound every test checks: each byte walked about once, plus a few bytes re-read per
/// read (the header of a word whose payload is still arriving).
fn assert_linear(scanned: u64, bytes: usize, reads: usize) {
    let bound = 2 * bytes as u64 + 32 * reads as u64;
    assert!(
        scanned <= bound,
        "walked {scanned} bytes for {bytes} received in {reads} reads (bound {bound}): \
         the parser is re-walking what it has already seen"
    );
    assert!(
        scanned >= bytes as u64 / 2,
        "the count measures nothing: {scanned}"
    );
}

#[test]
fn a_request_trickled_in_many_reads_is_walked_once() {
    // 100,000 words (1.1 MB) in 1,400-byte reads: walking the request from its start on
    // each read would be ~400x the bytes.
    let wire = big_request(100_000);
    let (parser, requests) = trickle_requests(&wire, 1_400);
    assert_eq!(requests, 1);
    assert_linear(parser.scanned(), wire.len(), wire.len().div_ceil(1_400));
}

#[test]
fn a_request_sent_byte_by_byte_is_walked_once() {
    let wire = big_request(5_000);
    let (parser, requests) = trickle_requests(&wire, 1);
    assert_eq!(requests, 1);
    assert_linear(parser.scanned(), wire.len(), wire.len());
}

#[test]
fn a_large_word_trickled_in_is_measured_not_scanned() {
    let value = vec![b'x'; 4 << 20];
    let wire = Frame::bulk_array([
        Bytes::from_static(b"SET"),
        Bytes::from_static(b"k"),
        Bytes::from(value),
    ])
    .to_bytes(Protocol::Resp2);
    let (parser, requests) = trickle_requests(&wire, 16 * 1024);
    assert_eq!(requests, 1);
    assert_linear(parser.scanned(), wire.len(), wire.len().div_ceil(16 * 1024));
}

#[test]
fn long_lines_trickled_in_are_searched_once() {
    // An inline command, and a pipeline of length headers padded to the line limit's
    // edge, each a byte at a time: the search for a line's end resumes where it stopped.
    let mut wire = b"ECHO ".to_vec();
    wire.extend(std::iter::repeat_n(b'a', 60_000));
    wire.extend_from_slice(b"\r\n");
    let (parser, requests) = trickle_requests(&wire, 1);
    assert_eq!(requests, 1);
    assert_linear(parser.scanned(), wire.len(), wire.len());

    // A header line that never ends is refused at the limit, after one search.
    let mut parser = RequestParser::default();
    let mut buf = BytesMut::from(&b"*1\r\n$"[..]);
    let mut fed = buf.len();
    let err = loop {
        match parser.next(&mut buf, &Limits::default()) {
            Ok(None) => {
                buf.extend_from_slice(b"1");
                fed += 1;
            }
            Ok(Some(_)) => panic!("no request here"),
            Err(e) => break e,
        }
    };
    assert_eq!(err.to_string(), "Protocol error: too big bulk count line");
    assert_linear(parser.scanned(), fed, fed);
}

#[test]
fn a_reply_trickled_in_is_walked_once_to_decode_or_to_measure() {
    // What a proxy or a replica reads from a server: a large nested reply.
    let reply = Frame::Array(
        (0..20_000)
            .map(|i| {
                Frame::Array(vec![
                    Frame::Integer(i),
                    Frame::Bulk(Bytes::from(format!("v{i}"))),
                ])
            })
            .collect(),
    )
    .to_bytes(Protocol::Resp3);
    let limits = Limits::default();

    let mut decoder = FrameParser::default();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in reply.chunks(100) {
        buf.extend_from_slice(chunk);
        if let Some(frame) = decoder.next(&mut buf, &limits, Mode::Reply).expect("valid") {
            frames.push(frame);
        }
    }
    assert_eq!(frames.len(), 1);
    assert_linear(decoder.scanned(), reply.len(), reply.len().div_ceil(100));

    let mut measurer = FrameParser::default();
    let mut len = None;
    for end in (100..reply.len()).step_by(100).chain([reply.len()]) {
        len = measurer.measure(&reply[..end], &limits).expect("valid");
    }
    assert_eq!(len, Some(reply.len()));
    assert_linear(measurer.scanned(), reply.len(), reply.len().div_ceil(100));
}

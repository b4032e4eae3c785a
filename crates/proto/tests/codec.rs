//! Properties of the codec: what is encoded decodes to the same frame, however the bytes
//! are split across reads, and every malformed input gets a precise protocol error.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use proto::{Frame, Limits, Mode, Protocol, parse_frame};

/// Frames that survive a RESP3 round trip unchanged (NaN is never equal to itself, and
/// `Null`/`NullArray` are both `_` in RESP3, so they are generated separately).
fn frame() -> impl Strategy<Value = Frame> {
    let bytes = || proptest::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from);
    let line = || "[a-zA-Z0-9 .:_-]{0,20}".prop_map(Bytes::from);
    let leaf = prop_oneof![
        line().prop_map(Frame::Simple),
        line().prop_map(Frame::Error),
        any::<i64>().prop_map(Frame::Integer),
        bytes().prop_map(Frame::Bulk),
        Just(Frame::Null),
        any::<bool>().prop_map(Frame::Boolean),
        any::<f64>()
            .prop_filter("nan", |d| !d.is_nan())
            .prop_map(Frame::Double),
        "-?[1-9][0-9]{0,40}".prop_map(|s| Frame::BigNumber(Bytes::from(s))),
        bytes().prop_map(|text| Frame::Verbatim {
            format: *b"txt",
            text
        }),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Frame::Array),
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Frame::Set),
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Frame::Push),
            proptest::collection::vec((inner.clone(), inner), 0..4).prop_map(Frame::Map),
        ]
    })
}

/// Decodes chunks arriving one after another with one parser, as a connection does: the
/// parser resumes a partly arrived frame where it stopped.
fn decode_all(chunks: &[&[u8]], mode: Mode) -> Vec<Frame> {
    let limits = Limits::default();
    let mut parser = proto::FrameParser::default();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(f) = parser.next(&mut buf, &limits, mode).expect("valid input") {
            out.push(f);
        }
    }
    assert!(buf.is_empty(), "bytes left over: {buf:?}");
    out
}

/// A request as a client sends it: an array of bulk strings. Words of one, two and
/// three length digits: the parser and `Args` read the first two kinds in one step, the
/// rest digit by digit.
fn request() -> impl Strategy<Value = Frame> {
    let word = prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..30),
        1 => proptest::collection::vec(any::<u8>(), 95..130),
    ];
    proptest::collection::vec(word, 1..6)
        .prop_map(|words| Frame::bulk_array(words.into_iter().map(Bytes::from)))
}

proptest! {
    /// `frame_len` (what a proxy forwards by) ends exactly where `parse_frame` does, and
    /// says "not yet" for every proper prefix.
    #[test]
    fn frame_len_is_where_parse_frame_stops(f in frame(), next in frame()) {
        let one = f.to_bytes(Protocol::Resp3);
        let mut wire = one.to_vec();
        wire.extend_from_slice(&next.to_bytes(Protocol::Resp3));
        let limits = Limits::default();
        prop_assert_eq!(proto::frame_len(&wire, &limits), Ok(Some(one.len())));
        for cut in 0..one.len() {
            prop_assert_eq!(proto::frame_len(&one[..cut], &limits), Ok(None));
        }
        // Resumed: one parser fed the frame a byte at a time stops at the same place.
        let mut parser = proto::FrameParser::default();
        for cut in 0..one.len() {
            prop_assert_eq!(parser.measure(&wire[..cut], &limits), Ok(None));
        }
        prop_assert_eq!(parser.measure(&wire, &limits), Ok(Some(one.len())));
    }

    /// `encode_command` writes what encoding the same words as a `Frame` writes.
    #[test]
    fn encode_command_matches_a_bulk_array(words in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 1..6)) {
        let mut direct = BytesMut::new();
        proto::encode_command(&mut direct, words.iter().map(Vec::as_slice));
        let framed = Frame::bulk_array(words.iter().cloned().map(Bytes::from)).to_bytes(Protocol::Resp2);
        prop_assert_eq!(direct.freeze(), framed);
    }

    #[test]
    fn resp3_round_trip(f in frame()) {
        let bytes = f.to_bytes(Protocol::Resp3);
        prop_assert_eq!(decode_all(&[&bytes], Mode::Reply), vec![f]);
    }

    #[test]
    fn any_split_of_a_pipeline_decodes_the_same(
        frames in proptest::collection::vec(frame(), 1..10),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut wire = Vec::new();
        for f in &frames {
            wire.extend_from_slice(&f.to_bytes(Protocol::Resp3));
        }
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut last = 0;
        for p in points {
            chunks.push(&wire[last..p]);
            last = p;
        }
        chunks.push(&wire[last..]);
        prop_assert_eq!(decode_all(&chunks, Mode::Reply), frames);
    }

    #[test]
    fn pipelined_requests_split_byte_by_byte(reqs in proptest::collection::vec(request(), 1..8)) {
        let mut wire = Vec::new();
        for r in &reqs {
            wire.extend_from_slice(&r.to_bytes(Protocol::Resp2));
        }
        let chunks: Vec<&[u8]> = wire.chunks(1).collect();
        prop_assert_eq!(decode_all(&chunks, Mode::Request), reqs);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        for mode in [Mode::Request, Mode::Reply] {
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(_)) = parse_frame(&mut buf, &Limits::default(), mode) {}
        }
    }
}

#[test]
fn inline_commands_decode_as_bulk_arrays() {
    let frames = decode_all(&[b"PING\r\n\r\nSET k \"a b\"\nECHO x\r\n"], Mode::Request);
    assert_eq!(
        frames,
        vec![
            Frame::bulk_array(["PING"]),
            Frame::bulk_array(["SET", "k", "a b"]),
            Frame::bulk_array(["ECHO", "x"]),
        ]
    );
}

#[test]
fn empty_requests_are_skipped() {
    let frames = decode_all(&[b"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n"], Mode::Request);
    assert_eq!(frames, vec![Frame::bulk_array(["PING"])]);
}

#[test]
fn resp2_null_array_and_bulk() {
    assert_eq!(
        decode_all(&[b"*-1\r\n$-1\r\n"], Mode::Reply),
        vec![Frame::NullArray, Frame::Null]
    );
}

/// Each malformed input and the exact error it produces.
#[test]
fn malformed_inputs_table() {
    let small = Limits {
        max_bulk_len: 100,
        max_array_len: 10,
        max_depth: 3,
        max_inline_len: 32,
    };
    let cases: &[(&[u8], Mode, Limits, &str)] = &[
        (
            b"*-5\r\n",
            Mode::Request,
            Limits::default(),
            "invalid multibulk length",
        ),
        (
            b"*abc\r\n",
            Mode::Request,
            Limits::default(),
            "invalid multibulk length",
        ),
        (
            b"*1\r\n$99999999999\r\n",
            Mode::Request,
            Limits::default(),
            "invalid bulk length",
        ),
        (
            b"$99999999999\r\n",
            Mode::Request,
            Limits::default(),
            "invalid bulk length",
        ),
        (
            b"$3\r\nabc\r\n",
            Mode::Request,
            Limits::default(),
            "expected '*', got '$'",
        ),
        (
            b"*1\r\n$-2\r\n",
            Mode::Request,
            Limits::default(),
            "invalid bulk length",
        ),
        (
            b"*1\r\n:1\r\n",
            Mode::Request,
            Limits::default(),
            "expected '$', got ':'",
        ),
        (
            b"*2\r\n*1\r\n",
            Mode::Request,
            Limits::default(),
            "expected '$', got '*'",
        ),
        (
            b"*1\r\n$3\r\nabcd\r\n",
            Mode::Request,
            Limits::default(),
            "bulk string not terminated by CRLF",
        ),
        (
            b"*1\r\n$101\r\n",
            Mode::Request,
            small,
            "invalid bulk length",
        ),
        (b"*11\r\n", Mode::Request, small, "invalid multibulk length"),
        (
            b"*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
            Mode::Reply,
            small,
            "too deeply nested aggregate",
        ),
        (
            b"PING aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            Mode::Request,
            small,
            "too big inline request",
        ),
        (
            b"*111111111111111111111111111111111111",
            Mode::Request,
            small,
            "too big mbulk count line",
        ),
        (
            b"ECHO \"abc\r\n",
            Mode::Request,
            Limits::default(),
            "unbalanced quotes in request",
        ),
        (
            b"?x\r\n",
            Mode::Reply,
            Limits::default(),
            "invalid type byte '?'",
        ),
        (
            b":12a\r\n",
            Mode::Reply,
            Limits::default(),
            "invalid integer",
        ),
        (b"#x\r\n", Mode::Reply, Limits::default(), "invalid boolean"),
        (
            b",abc\r\n",
            Mode::Reply,
            Limits::default(),
            "invalid double",
        ),
        (
            b"=3\r\nabc\r\n",
            Mode::Reply,
            Limits::default(),
            "invalid verbatim string",
        ),
        (
            b"+OK\rX",
            Mode::Reply,
            Limits::default(),
            "simple line not terminated by CRLF",
        ),
    ];
    for (input, mode, limits, expected) in cases {
        let mut buf = BytesMut::from(*input);
        let err = parse_frame(&mut buf, limits, *mode)
            .expect_err(&format!("{:?} should fail", Bytes::copy_from_slice(input)));
        assert_eq!(
            err.0,
            *expected,
            "input {:?}",
            Bytes::copy_from_slice(input)
        );
        assert_eq!(err.to_string(), format!("Protocol error: {expected}"));
    }
}

#[test]
fn incomplete_input_waits_and_keeps_bytes() {
    for partial in [
        &b"*2\r\n$3\r\nGET\r\n$1\r\n"[..],
        b"*1\r\n$4\r\nPI",
        b"*1",
        b"PIN",
    ] {
        let mut buf = BytesMut::from(partial);
        assert_eq!(
            parse_frame(&mut buf, &Limits::default(), Mode::Request),
            Ok(None)
        );
        assert_eq!(&buf[..], partial);
    }
}

/// The server's one-pass request parser agrees with the general parser on any stream of
/// requests, however it is split, and on every malformed input of the table above.
mod request_parser {
    use super::*;
    use proto::{Args, RequestParser};

    fn words(args: Args) -> Vec<Bytes> {
        let mut args = args;
        let mut out = vec![Bytes::copy_from_slice(args.raw_name())];
        out.extend(args.rest());
        out
    }

    proptest! {
        #[test]
        fn agrees_with_the_general_parser(
            reqs in proptest::collection::vec(request(), 1..8),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let mut wire = Vec::new();
            for r in &reqs {
                wire.extend_from_slice(&r.to_bytes(Protocol::Resp2));
            }
            wire.extend_from_slice(b"*0\r\nECHO \"x y\"\r\n");
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
            points.sort_unstable();
            let mut parser = RequestParser::default();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut last = 0;
            for p in points.into_iter().chain([wire.len()]) {
                buf.extend_from_slice(&wire[last..p]);
                last = p;
                while let Some(args) = parser.next(&mut buf, &Limits::default()).expect("valid") {
                    got.push(words(args));
                }
            }
            let expected: Vec<Vec<Bytes>> = decode_all(&[&wire], Mode::Request)
                .into_iter()
                .map(|f| words(Args::from_frame(f).expect("bulk array")))
                .collect();
            prop_assert_eq!(got, expected);
        }
    }

    #[test]
    fn same_errors_as_the_general_parser() {
        let small = Limits {
            max_bulk_len: 100,
            max_array_len: 10,
            max_depth: 3,
            max_inline_len: 32,
        };
        let inputs: &[&[u8]] = &[
            b"*-5\r\n",
            b"*abc\r\n",
            b"*1\r\n$99999999999\r\n",
            b"$99999999999\r\n",
            b"$3\r\nabc\r\n",
            b"*1\r\n$-2\r\n",
            b"*1\r\n$-1\r\n",
            b"*1\r\n:1\r\n",
            b"*2\r\n*1\r\n",
            b"*1\r\n$3\r\nabcd\r\n",
            b"*1\r\n$101\r\n",
            b"*11\r\n",
            b"*111111111111111111111111111111111111",
            b"ECHO \"abc\r\n",
            b"*01\r\n$4\r\nPING\r\n",
            // Headers the digit-by-digit fast path must leave to the careful one.
            b"*1\r\n$03\r\nabc\r\n",
            b"*1\r\n$3\rxabc\r\n",
            b"*+1\r\n",
            b"*1\r\n$1234567890123456789\r\n",
            // ... and those the one- and two-digit steps must leave to it.
            b"*1\r\n$00\r\n\r\n",
            b"*1\r\n$1\r\ra\r\n",
            b"*1\r\n$12\rx",
            b"*1\r\n$-3\r\n",
        ];
        for input in inputs {
            let general = parse_frame(&mut BytesMut::from(*input), &small, Mode::Request)
                .expect_err("malformed");
            let fast = RequestParser::default()
                .next(&mut BytesMut::from(*input), &small)
                .expect_err("malformed");
            assert_eq!(fast, general, "input {:?}", Bytes::copy_from_slice(input));
        }
    }
}

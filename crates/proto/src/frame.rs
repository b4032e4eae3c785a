//! The values RESP can carry, and how each one is written on the wire.
//!
//! RESP (REdis Serialization Protocol) is a tiny, text-framed protocol: every value starts
//! with one *type byte* and ends with `\r\n`. Strings that may contain anything ("bulk"
//! strings) are length-prefixed, so a parser never scans their contents for a terminator —
//! that is what makes RESP binary-safe and fast to parse.
//!
//! | type byte | RESP2 | RESP3 | example |
//! |---|---|---|---|
//! | `+` | simple string | same | `+OK\r\n` |
//! | `-` | error | same | `-ERR syntax error\r\n` |
//! | `:` | integer | same | `:-42\r\n` |
//! | `$` | bulk string (`$-1` is null) | same | `$5\r\nhello\r\n` |
//! | `*` | array (`*-1` is null) | same | `*2\r\n:1\r\n:2\r\n` |
//! | `_` | – | null | `_\r\n` |
//! | `%` | – | map | `%1\r\n+k\r\n:1\r\n` |
//! | `~` | – | set | `~1\r\n:1\r\n` |
//! | `,` | – | double | `,3.14\r\n` |
//! | `#` | – | boolean | `#t\r\n` |
//! | `>` | – | push (out-of-band data, e.g. pub/sub messages) | `>2\r\n...` |
//! | `(` | – | big number | `(3492890328409238509324850943850943825024385\r\n` |
//! | `=` | – | verbatim string | `=15\r\ntxt:Some string\r\n` |
//!
//! A server speaks RESP2 until a client sends `HELLO 3`. The RESP3 types exist so a client
//! can tell a map from a list without knowing the command; when the connection is still on
//! RESP2, [`Frame::encode`] lowers each RESP3 type to the RESP2 shape Redis itself uses
//! (a map becomes a flat array of key, value, key, value...).
//!
//! ## Which type a reply has: decided here, once
//!
//! A command says what its reply *is* — a map, a set, a score — by the variant it builds,
//! and never looks at the connection's protocol. [`Frame::encode`] is the one place that
//! turns that meaning into bytes for the dialect the connection speaks, the way Redis's
//! `addReplyMap`, `addReplySet` and `addReplyDouble` do. So RESP2 clients keep getting
//! exactly the bytes they always got, and RESP3 clients get Redis 7's types:
//!
//! | the reply is... | build | RESP3 | RESP2 | Redis commands |
//! |---|---|---|---|---|
//! | fields and values | [`Frame::Map`] | `%` | flat `*` | HGETALL, CONFIG GET, HELLO, stats |
//! | unique members | [`Frame::Set`] | `~` | `*` | SMEMBERS, SINTER, SUNION, SDIFF, SPOP n |
//! | a floating-point number | [`Frame::Double`] | `,` | `$` text | ZSCORE, ZMSCORE, ZINCRBY, ZADD INCR |
//! | a list of pairs | [`Frame::Pairs`] | `*` of `*2` | flat `*` | WITHSCORES, WITHVALUES, ZPOPMIN n |
//! | nothing | [`Frame::Null`], [`Frame::NullArray`] | `_` | `$-1`, `*-1` | GET missing, BLPOP timeout |
//! | yes or no | [`Frame::Boolean`] | `#` | `:1`/`:0` | our servers' structured replies |
//! | a message nobody asked for | [`Frame::Push`] | `>` | `*` | pub/sub messages |
//! | text for humans | [`Frame::Verbatim`] | `=` | `$` | INFO, CLIENT INFO, CLIENT LIST |
//!
//! Everything else (strings, integers, errors, plain arrays) is the same in both. The
//! common replies — `+OK`, a bulk string, an integer — take the first arms of the match,
//! so `GET` and `SET` pay nothing for RESP3.

use bytes::{BufMut, Bytes, BytesMut};

/// Which dialect a connection speaks. Chosen per connection by `HELLO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

impl Protocol {
    /// The number `HELLO` uses for this dialect.
    pub fn version(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// One RESP value. Strings are [`Bytes`], never `String`: keys and values are binary-safe.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `+OK` — a short status line; may not contain `\r` or `\n`.
    Simple(Bytes),
    /// `-ERR message` — the first word is the error code (`ERR`, `WRONGTYPE`, `NOAUTH`...).
    Error(Bytes),
    /// `:42`
    Integer(i64),
    /// `$5\r\nhello` — binary-safe string.
    Bulk(Bytes),
    /// The absence of a value: `$-1` in RESP2, `_` in RESP3.
    Null,
    /// A missing array (`*-1` in RESP2, what BLPOP returns on timeout); `_` in RESP3.
    NullArray,
    /// `*N` followed by N frames.
    Array(Vec<Frame>),
    /// RESP3 `%N`: N key/value pairs, in order.
    Map(Vec<(Frame, Frame)>),
    /// A list of pairs that is not a map (a member may repeat, order matters): RESP3
    /// sends an array of two-element arrays, RESP2 one flat array — Redis's
    /// `if (c->resp > 2) addReplyArrayLen(c, 2)` before each pair of `ZRANGE ...
    /// WITHSCORES`, `HRANDFIELD ... WITHVALUES` or `ZPOPMIN key count`. Only ever built
    /// by a server; a RESP3 decoder reads these bytes back as arrays.
    Pairs(Vec<(Frame, Frame)>),
    /// RESP3 `~N`: N unordered, unique frames.
    Set(Vec<Frame>),
    /// RESP3 `,1.5` (also `inf`, `-inf`, `nan`); a bulk string of the same text in
    /// RESP2 (see [`format_double`]).
    Double(f64),
    /// RESP3 `#t` / `#f`.
    Boolean(bool),
    /// RESP3 `>N`: data the server pushes without being asked (pub/sub messages).
    Push(Vec<Frame>),
    /// RESP3 `(digits`: an integer too big for 64 bits, kept as its decimal text.
    BigNumber(Bytes),
    /// RESP3 `=N\r\nfmt:text`: a string with a three-letter format (`txt`, `mkd`).
    Verbatim { format: [u8; 3], text: Bytes },
}

impl Frame {
    /// `+OK`, the most common reply of all.
    pub fn ok() -> Frame {
        Frame::Simple(Bytes::from_static(b"OK"))
    }

    /// A simple-string reply from static text.
    pub fn simple(text: &'static str) -> Frame {
        Frame::Simple(Bytes::from_static(text.as_bytes()))
    }

    /// An error reply. `message` includes the code: `"ERR syntax error"`.
    pub fn error(message: impl Into<String>) -> Frame {
        Frame::Error(Bytes::from(message.into()))
    }

    /// A bulk string reply.
    pub fn bulk(data: impl Into<Bytes>) -> Frame {
        Frame::Bulk(data.into())
    }

    /// An array of bulk strings, the shape of every request and of replies such as KEYS.
    pub fn bulk_array<I, B>(items: I) -> Frame
    where
        I: IntoIterator<Item = B>,
        B: Into<Bytes>,
    {
        Frame::Array(items.into_iter().map(|b| Frame::Bulk(b.into())).collect())
    }

    /// A set of bulk strings (SMEMBERS, SINTER...): `~` in RESP3, an array in RESP2.
    pub fn bulk_set<I, B>(items: I) -> Frame
    where
        I: IntoIterator<Item = B>,
        B: Into<Bytes>,
    {
        Frame::Set(items.into_iter().map(|b| Frame::Bulk(b.into())).collect())
    }

    /// `true` for `-...` replies.
    pub fn is_error(&self) -> bool {
        matches!(self, Frame::Error(_))
    }

    /// The bytes of a string-like frame (simple, bulk, verbatim, big number).
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match self {
            Frame::Simple(b) | Frame::Bulk(b) | Frame::BigNumber(b) | Frame::Error(b) => Some(b),
            Frame::Verbatim { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Writes this frame in the given dialect, appending to `dst`.
    ///
    /// RESP3-only types are lowered for RESP2 clients the way Redis does it, so one
    /// command implementation serves both: map and pairs → flat array, set → array,
    /// double → bulk string, boolean → integer 0/1, push → array, big number and
    /// verbatim → bulk. (The table at the top of this module lists them.)
    pub fn encode(&self, protocol: Protocol, dst: &mut BytesMut) {
        let resp3 = protocol == Protocol::Resp3;
        match self {
            Frame::Simple(s) => line(dst, b'+', s),
            Frame::Error(e) => line(dst, b'-', e),
            Frame::Integer(n) => header(dst, b':', *n),
            Frame::Bulk(b) => bulk(dst, b),
            Frame::Null if resp3 => dst.put_slice(b"_\r\n"),
            Frame::Null => dst.put_slice(b"$-1\r\n"),
            Frame::NullArray if resp3 => dst.put_slice(b"_\r\n"),
            Frame::NullArray => dst.put_slice(b"*-1\r\n"),
            Frame::Array(items) => aggregate(dst, b'*', items, protocol),
            Frame::Set(items) => aggregate(dst, if resp3 { b'~' } else { b'*' }, items, protocol),
            Frame::Push(items) => aggregate(dst, if resp3 { b'>' } else { b'*' }, items, protocol),
            Frame::Map(pairs) => {
                if resp3 {
                    header(dst, b'%', pairs.len() as i64);
                } else {
                    header(dst, b'*', 2 * pairs.len() as i64);
                }
                for (k, v) in pairs {
                    k.encode(protocol, dst);
                    v.encode(protocol, dst);
                }
            }
            Frame::Pairs(pairs) => {
                let len = pairs.len() as i64;
                header(dst, b'*', if resp3 { len } else { 2 * len });
                for (a, b) in pairs {
                    if resp3 {
                        dst.put_slice(b"*2\r\n");
                    }
                    a.encode(protocol, dst);
                    b.encode(protocol, dst);
                }
            }
            Frame::Double(d) => {
                let text = format_double(*d);
                if resp3 {
                    line(dst, b',', text.as_bytes());
                } else {
                    bulk(dst, text.as_bytes());
                }
            }
            Frame::Boolean(b) if resp3 => dst.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            Frame::Boolean(b) => header(dst, b':', i64::from(*b)),
            Frame::BigNumber(n) if resp3 => line(dst, b'(', n),
            Frame::BigNumber(n) => bulk(dst, n),
            Frame::Verbatim { format, text } if resp3 => {
                header(dst, b'=', (text.len() + 4) as i64);
                dst.put_slice(format);
                dst.put_u8(b':');
                dst.put_slice(text);
                dst.put_slice(b"\r\n");
            }
            Frame::Verbatim { text, .. } => bulk(dst, text),
        }
    }

    /// Encodes into a fresh buffer: handy for tests and for "encode once, send to many"
    /// (pub/sub fan-out shares the resulting [`Bytes`] among all subscribers).
    pub fn to_bytes(&self, protocol: Protocol) -> Bytes {
        let mut buf = BytesMut::new();
        self.encode(protocol, &mut buf);
        buf.freeze()
    }
}

/// Writes a command — an array of bulk strings, the shape of every request — straight
/// from borrowed words, without building a [`Frame::Array`] first. A proxy forwards each
/// request this way: no vector of frames, no per-word reference count, one copy of each
/// word into the output buffer. The iterator is walked twice (once to count).
pub fn encode_command<'a>(dst: &mut BytesMut, words: impl Iterator<Item = &'a [u8]> + Clone) {
    header(dst, b'*', words.clone().count() as i64);
    for word in words {
        bulk(dst, word);
    }
}

/// Formats a double as Redis 7.0 replies it (`addReplyDouble`): C's `%.17g` — 17
/// significant digits, trailing zeros dropped, an exponent below 1e-4 or from 1e17 —
/// and `inf`, `-inf`, `nan`. `1500` → `1500`, `2.5` → `2.5`, `0.1` →
/// `0.10000000000000001`, `1e20` → `1e+20`. Seventeen digits always read back as the
/// same `f64`, which is why Redis chose them.
pub fn format_double(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // `{:.16e}` rounds to 17 significant digits exactly as printf does.
    let sci = format!("{:.16e}", v.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let sign = if v < 0.0 { "-" } else { "" };
    if !(-4..17).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{dot}{rest}e{esign}{:02}", exp.abs());
    }
    if exp < 0 {
        let zeros = "0".repeat((-exp - 1) as usize);
        return format!("{sign}0.{zeros}{digits}");
    }
    let int_len = exp as usize + 1;
    if digits.len() <= int_len {
        format!("{sign}{digits}{}", "0".repeat(int_len - digits.len()))
    } else {
        let (int, frac) = digits.split_at(int_len);
        format!("{sign}{int}.{frac}")
    }
}

/// A one-line reply (`+...`, `-...`, `,...`). A line ends at the first CR LF, so a CR or
/// LF inside the text would end the reply early and the client would read the rest as
/// the next reply: an error that quotes what a client sent (`unknown command 'X\r\n+OK'`)
/// would forge a `+OK` and put every later reply off by one. Like Redis, each CR or LF
/// is written as a space.
fn line(dst: &mut BytesMut, type_byte: u8, text: &[u8]) {
    dst.reserve(text.len() + 3);
    dst.put_u8(type_byte);
    if text.iter().any(|&b| b == b'\r' || b == b'\n') {
        put_one_line(dst, text);
    } else {
        dst.put_slice(text);
    }
    dst.put_slice(b"\r\n");
}

#[cold]
#[inline(never)]
fn put_one_line(dst: &mut BytesMut, text: &[u8]) {
    dst.extend(
        text.iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
}

/// Encodes an array of `count` bulk strings straight from borrowed bytes — the same
/// bytes in RESP2 and RESP3 — without building a [`Frame`] per element: for a server
/// that replies with many elements read out of its own storage (`LRANGE`). `items` must
/// yield exactly `count` elements.
pub fn encode_bulk_array<'a>(
    dst: &mut BytesMut,
    count: usize,
    items: impl IntoIterator<Item = &'a [u8]>,
) {
    header(dst, b'*', count as i64);
    for item in items {
        bulk(dst, item);
    }
}

/// Writes `type_byte`, the decimal `n` and CRLF — `$5\r\n`, `:42\r\n` — as one append.
///
/// The line is assembled on the stack, right to left, and copied into `dst` once: three
/// appends (type byte, digits, CRLF), each checking `dst`'s room and moving its length,
/// were ~40 instructions more per reply, and a bulk reply has this line and its CRLF.
fn header(dst: &mut BytesMut, type_byte: u8, n: i64) {
    // Type byte, sign and at most 19 digits (`i64::MIN`), CRLF.
    let mut line = [0u8; 23];
    let crlf = line.len() - 2;
    line[crlf..].copy_from_slice(b"\r\n");
    let start = decimal_ending_at(&mut line, crlf, n) - 1;
    line[start] = type_byte;
    dst.extend_from_slice(&line[start..]);
}

fn bulk(dst: &mut BytesMut, data: &[u8]) {
    dst.reserve(data.len() + 16);
    header(dst, b'$', data.len() as i64);
    dst.extend_from_slice(data);
    dst.extend_from_slice(b"\r\n");
}

fn aggregate(dst: &mut BytesMut, type_byte: u8, items: &[Frame], protocol: Protocol) {
    header(dst, type_byte, items.len() as i64);
    for item in items {
        item.encode(protocol, dst);
    }
}

/// Writes the decimal digits of `n` without going through `fmt` (this runs for every
/// reply and every length header, so it is worth the dozen lines). Public for encoders
/// that write RESP by hand into a buffer of their own (pub/sub's `encode_push`).
pub fn put_decimal(dst: &mut impl BufMut, n: i64) {
    let mut text = [0u8; 20];
    let start = decimal_ending_at(&mut text, 20, n);
    dst.put_slice(&text[start..]);
}

/// Writes `n` in decimal (sign included) into `buf` so that it ends just before `end`,
/// right to left; returns where it starts. `end` must leave room for 20 bytes.
fn decimal_ending_at(buf: &mut [u8], end: usize, n: i64) -> usize {
    let mut i = end;
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: &Frame, p: Protocol) -> Vec<u8> {
        f.to_bytes(p).to_vec()
    }

    /// The borrowed-bytes encoder writes exactly what an array of bulk frames encodes
    /// to, in both protocols.
    #[test]
    fn bulk_array_from_slices_equals_the_frame_encoding() {
        let items: [&[u8]; 4] = [b"a", b"", b"binary\r\n\0", b"xxx"];
        let frame = Frame::Array(
            items
                .iter()
                .map(|i| Frame::Bulk(Bytes::copy_from_slice(i)))
                .collect(),
        );
        for protocol in [Protocol::Resp2, Protocol::Resp3] {
            let mut out = BytesMut::new();
            encode_bulk_array(&mut out, items.len(), items);
            assert_eq!(&out[..], &enc(&frame, protocol)[..]);
        }
        let mut out = BytesMut::new();
        encode_bulk_array(&mut out, 0, []);
        assert_eq!(&out[..], b"*0\r\n");
    }

    /// An error quoting what a client sent cannot end early and forge a reply: CR and LF
    /// become spaces, and the reply parses back as one error.
    #[test]
    fn a_line_reply_stays_one_line() {
        let error = Frame::error("ERR unknown command 'NOSUCH\r\n+OK'");
        for protocol in [Protocol::Resp2, Protocol::Resp3] {
            let out = enc(&error, protocol);
            assert_eq!(&out[..], b"-ERR unknown command 'NOSUCH  +OK'\r\n");
        }
        let status = Frame::Simple(Bytes::from_static(b"a\nb"));
        assert_eq!(&enc(&status, Protocol::Resp2)[..], b"+a b\r\n");
    }

    /// Every header length and sign comes out as `fmt` would write it.
    #[test]
    fn headers_and_decimals_match_fmt() {
        for n in [
            0,
            1,
            9,
            10,
            99,
            100,
            12345,
            -1,
            -10,
            i64::MAX,
            i64::MIN,
            i64::MIN + 1,
        ] {
            let mut out = BytesMut::new();
            header(&mut out, b':', n);
            assert_eq!(&out[..], format!(":{n}\r\n").as_bytes());
            let mut out = BytesMut::new();
            put_decimal(&mut out, n);
            assert_eq!(&out[..], n.to_string().as_bytes());
        }
        let mut out = BytesMut::new();
        bulk(&mut out, b"hello");
        assert_eq!(&out[..], b"$5\r\nhello\r\n");
    }

    #[test]
    fn resp2_lowering_matches_redis() {
        let map = Frame::Map(vec![(Frame::bulk("a"), Frame::Integer(1))]);
        assert_eq!(enc(&map, Protocol::Resp2), b"*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&map, Protocol::Resp3), b"%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&Frame::Boolean(true), Protocol::Resp2), b":1\r\n");
        assert_eq!(enc(&Frame::Double(1.5), Protocol::Resp2), b"$3\r\n1.5\r\n");
        assert_eq!(enc(&Frame::Double(3.0), Protocol::Resp3), b",3\r\n");
        assert_eq!(enc(&Frame::Null, Protocol::Resp2), b"$-1\r\n");
        assert_eq!(enc(&Frame::NullArray, Protocol::Resp2), b"*-1\r\n");
        assert_eq!(enc(&Frame::Null, Protocol::Resp3), b"_\r\n");
        assert_eq!(
            enc(&Frame::Integer(i64::MIN), Protocol::Resp2),
            b":-9223372036854775808\r\n"
        );
        let v = Frame::Verbatim {
            format: *b"txt",
            text: Bytes::from_static(b"hi"),
        };
        assert_eq!(enc(&v, Protocol::Resp3), b"=6\r\ntxt:hi\r\n");
        assert_eq!(enc(&v, Protocol::Resp2), b"$2\r\nhi\r\n");
    }

    /// Pairs: nested in RESP3, one flat array in RESP2 (what Redis 7 sends for
    /// `ZRANGE z 0 -1 WITHSCORES`).
    #[test]
    fn pairs_nest_in_resp3_and_flatten_in_resp2() {
        let pairs = Frame::Pairs(vec![
            (Frame::bulk("a"), Frame::Double(1.5)),
            (Frame::bulk("b"), Frame::Double(2.0)),
        ]);
        assert_eq!(
            enc(&pairs, Protocol::Resp3),
            b"*2\r\n*2\r\n$1\r\na\r\n,1.5\r\n*2\r\n$1\r\nb\r\n,2\r\n"
        );
        assert_eq!(
            enc(&pairs, Protocol::Resp2),
            b"*4\r\n$1\r\na\r\n$3\r\n1.5\r\n$1\r\nb\r\n$1\r\n2\r\n"
        );
        assert_eq!(enc(&Frame::Pairs(vec![]), Protocol::Resp3), b"*0\r\n");
    }

    #[test]
    fn doubles_print_like_redis_7_0() {
        for (v, text) in [
            (1500.0, "1500"),
            (2.5, "2.5"),
            (-2.5, "-2.5"),
            (0.1, "0.10000000000000001"),
            (1e20, "1e+20"),
            (1.5e-7, "1.4999999999999999e-07"),
            (0.0001, "0.0001"),
            (123456789.0, "123456789"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
        ] {
            assert_eq!(format_double(v), text);
            assert_eq!(
                enc(&Frame::Double(v), Protocol::Resp3),
                format!(",{text}\r\n").as_bytes()
            );
        }
    }
}

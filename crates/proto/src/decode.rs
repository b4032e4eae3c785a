//! Streaming RESP parser: turns bytes as they arrive from a socket into [`Frame`]s.
//!
//! TCP delivers a byte stream, not messages: one read may hold half a command, or forty
//! pipelined commands and the first bytes of the forty-first. The parser must therefore
//! (a) say "not yet" without losing anything when a frame is incomplete, and (b) parse
//! every complete frame in the buffer so a pipeline is served in one go.
//!
//! It works in two passes over one grammar (`Grammar::element`, one element at a time):
//! 1. **check** — scan the buffer, validate every header against the [`Limits`], and find
//!    where the first frame ends. Nothing is allocated: a client announcing
//!    `*1000000000\r\n` gets no billion-element vector, and one announcing a 512 MB bulk
//!    string gets nothing until those bytes have actually arrived. The check is
//!    *resumable*: when the bytes run out, [`FrameParser`] keeps its place, and the next
//!    read continues from there instead of from the top of the frame.
//! 2. **build** — only once the frame is known to be complete, split exactly those bytes
//!    off the buffer and build the frame. Bulk strings become zero-copy slices of the
//!    read buffer ([`Bytes::slice`]).
//!
//! A note on that zero-copy slice: it keeps the whole read buffer chunk alive. An engine
//! that stores a value for a long time should copy it (`Bytes::copy_from_slice`) so one
//! small key does not pin kilobytes of buffer.

use bytes::{Buf, Bytes, BytesMut};

use crate::frame::Frame;

/// Bounds on what a peer may make us buffer or build. Every limit a client can push
/// against is here, so none of them is forgotten in one code path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk string (`proto-max-bulk-len`; Redis's default is 512 MiB).
    pub max_bulk_len: usize,
    /// Most elements in one array, map, set or push.
    pub max_array_len: usize,
    /// Deepest nesting of aggregates (requests are depth 1; replies nest a little).
    pub max_depth: usize,
    /// Longest inline command or header line before its `\r\n` (Redis: 64 KiB).
    pub max_inline_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            max_array_len: 1024 * 1024 * 16,
            max_depth: 64,
            max_inline_len: 64 * 1024,
        }
    }
}

/// What the decoder accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Server side: a request is an array of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`)
    /// or an inline command line (`GET k\r\n`, what telnet sends). Empty requests are
    /// skipped, as Redis does.
    Request,
    /// Client side: any RESP2/RESP3 value (replies from a backend server).
    Reply,
}

/// A malformed or over-limit input. The connection cannot be trusted to be in sync any
/// more, so the server replies `-ERR Protocol error: ...` and closes it, as Redis does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl ProtocolError {
    fn new(what: impl Into<String>) -> Self {
        ProtocolError(what.into())
    }

    /// The reply a server sends before closing the connection.
    pub fn to_frame(&self) -> Frame {
        Frame::error(format!("ERR {self}"))
    }
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Protocol error: {}", self.0)
    }
}

impl std::error::Error for ProtocolError {}

/// Parses the first complete frame at the front of `buf`, removing its bytes — a one-off
/// [`FrameParser`], for a caller that parses one buffer once (a test, a reply already whole).
///
/// Returns `Ok(None)` when more bytes are needed (the buffer is left untouched), and skips
/// empty requests in [`Mode::Request`]. A caller reading a socket keeps a [`FrameParser`]
/// instead, so a frame arriving in many reads is not walked again from its start on each.
pub fn parse_frame(
    buf: &mut BytesMut,
    limits: &Limits,
    mode: Mode,
) -> Result<Option<Frame>, ProtocolError> {
    FrameParser::default().next(buf, limits, mode)
}

/// Where the first complete frame at the front of `buf` ends, without building it — a
/// one-off [`FrameParser::measure`].
pub fn frame_len(buf: &[u8], limits: &Limits) -> Result<Option<usize>, ProtocolError> {
    FrameParser::default().measure(buf, limits)
}

/// A streaming parser that remembers how far it got into a frame that has only partly
/// arrived, so each byte is walked once however many reads the frame takes. Keep one per
/// connection, and hand it the same buffer each time with only new bytes appended.
///
/// This is what Redis's query buffer does with its `qb_pos`, `multibulklen` and `bulklen`:
/// a client that announces `*16777215` and trickles the elements in should cost work in
/// proportion to the bytes it sends. A parser that starts from the top of the buffer on
/// every read costs that much *per read* — quadratic in the size of the request, a core
/// burnt by one slow client.
///
/// What it remembers is small: where the next unparsed element starts, how many elements
/// each open aggregate still expects (a stack, as deep as the nesting), and how far the
/// search for the end of an incomplete line has got.
#[derive(Debug, Clone, Default)]
pub struct FrameParser {
    /// Where the next element to walk starts (0: no frame in progress).
    pos: usize,
    /// Elements each open aggregate still expects, outermost first.
    open: Vec<usize>,
    /// No `\r` (inline: `\n`) before this offset in the line being read: where the
    /// search for its end resumes.
    scan_from: usize,
    /// Bytes walked so far; see [`FrameParser::scanned`].
    scanned: u64,
}

impl FrameParser {
    /// Takes the first complete frame off `buf`. `Ok(None)`: more bytes are needed, and
    /// `buf` is untouched. Empty requests are skipped in [`Mode::Request`]. After an
    /// error the parser and the buffer are out of step: close the connection.
    pub fn next(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
        mode: Mode,
    ) -> Result<Option<Frame>, ProtocolError> {
        loop {
            let Some(&first) = buf.first() else {
                return Ok(None);
            };
            if mode == Mode::Request && !is_request_type_byte(first) {
                match crate::inline::parse_inline(
                    buf,
                    limits,
                    &mut self.scan_from,
                    &mut self.scanned,
                )? {
                    InlineOutcome::Incomplete => return Ok(None),
                    InlineOutcome::Empty => continue,
                    InlineOutcome::Command(frame) => return Ok(Some(frame)),
                }
            }
            let grammar = Grammar { limits, mode };
            let Some(end) = self.check(&grammar, buf)? else {
                return Ok(None);
            };
            let data = buf.split_to(end).freeze();
            match grammar.build(&data)? {
                // `*0` and `*-1` are empty requests: Redis silently ignores them.
                Frame::Array(ref items) if mode == Mode::Request && items.is_empty() => continue,
                Frame::NullArray if mode == Mode::Request => continue,
                frame => return Ok(Some(frame)),
            }
        }
    }

    /// Where the first complete frame in `buf` ends, without building it: the check pass
    /// of [`FrameParser::next`] on its own, so it validates exactly what `next` validates
    /// and allocates nothing a peer announced. `Ok(None)`: not complete yet.
    ///
    /// A proxy needs no more than this to forward a backend's replies: it only has to know
    /// where each reply ends to hand those bytes, as they came, to the client that asked.
    /// Once this returns `Some(len)`, take exactly `len` bytes off the front of the buffer
    /// (`buf.split_to(len)`) before calling again. Only RESP frames are measured (any
    /// RESP2/RESP3 value, as [`Mode::Reply`] accepts); an inline command line is not a frame.
    pub fn measure(&mut self, buf: &[u8], limits: &Limits) -> Result<Option<usize>, ProtocolError> {
        let grammar = Grammar {
            limits,
            mode: Mode::Reply,
        };
        self.check(&grammar, buf)
    }

    /// Bytes this parser has walked over in its life: each line searched for its end and
    /// each element stepped over. It measures parse work, so a test can show that work
    /// grows with the bytes received and not with the number of reads they came in.
    pub fn scanned(&self) -> u64 {
        self.scanned
    }

    /// The check pass, resumed where the last call stopped: walks elements until the frame
    /// at the front of `src` is complete (its length) or the bytes run out (`None`, with
    /// the position kept for next time).
    fn check(&mut self, grammar: &Grammar<'_>, src: &[u8]) -> Result<Option<usize>, ProtocolError> {
        loop {
            let from = self.scan_from.max(self.pos);
            let step = grammar.element(src, self.pos, self.open.len(), from, None)?;
            let finished = match step {
                Parsed::Partial { scan_from } => {
                    self.scanned += scan_from.saturating_sub(from) as u64;
                    self.scan_from = scan_from;
                    return Ok(None);
                }
                Parsed::Value { end, .. } => {
                    self.scanned += (end - from) as u64;
                    self.pos = end;
                    true
                }
                Parsed::Aggregate { count, next, .. } => {
                    self.scanned += (next - from) as u64;
                    self.pos = next;
                    if count > 0 {
                        self.open.push(count);
                    }
                    count == 0
                }
            };
            if finished && self.close_finished() {
                let end = self.pos;
                self.pos = 0;
                self.scan_from = 0;
                return Ok(Some(end));
            }
        }
    }

    /// One element is complete: count it off its aggregate, closing every aggregate that
    /// is thereby complete. `true` when the whole frame is.
    fn close_finished(&mut self) -> bool {
        while let Some(left) = self.open.last_mut() {
            *left -= 1;
            if *left > 0 {
                return false;
            }
            self.open.pop();
        }
        true
    }
}

/// What an inline line turned out to be.
pub(crate) enum InlineOutcome {
    Incomplete,
    Empty,
    Command(Frame),
}

/// In a request, these bytes start a RESP frame; anything else starts an inline command.
/// `$` is included so a desynchronised client sending a bare bulk header gets a protocol
/// error rather than an "unknown command '$5'".
fn is_request_type_byte(b: u8) -> bool {
    b == b'*' || b == b'$'
}

/// The RESP grammar, one element at a time: walked once to check (resumably, by
/// [`FrameParser`]) and once to build.
struct Grammar<'a> {
    limits: &'a Limits,
    mode: Mode,
}

/// One step of the grammar: what starts at a position.
enum Parsed {
    /// The element has not fully arrived. The search for the end of its line may resume at
    /// `scan_from` next time (nothing before it is a `\r`).
    Partial { scan_from: usize },
    /// A whole value ending at `end`, built if building.
    Value { end: usize, frame: Option<Frame> },
    /// An aggregate's header (type byte `kind`): `count` elements (a map's pairs counted
    /// as two) follow from `next`.
    Aggregate { kind: u8, count: usize, next: usize },
}

impl Grammar<'_> {
    /// Builds the frame that `data` holds from its start, which the check pass found
    /// complete. Iterative, with an explicit stack of the aggregates being filled.
    fn build(&self, data: &Bytes) -> Result<Frame, ProtocolError> {
        let changed = || ProtocolError::new("frame changed between passes");
        let mut open: Vec<(u8, usize, Vec<Frame>)> = Vec::new();
        let mut pos = 0;
        loop {
            let mut frame = match self.element(data, pos, open.len(), pos, Some(data))? {
                Parsed::Partial { .. } => return Err(changed()),
                Parsed::Value { end, frame } => {
                    pos = end;
                    frame.ok_or_else(changed)?
                }
                Parsed::Aggregate { kind, count, next } => {
                    pos = next;
                    if count > 0 {
                        open.push((kind, count, Vec::with_capacity(count)));
                        continue;
                    }
                    aggregate(kind, Vec::new())
                }
            };
            // Place the frame in its aggregate; a full aggregate is itself placed in turn.
            loop {
                let Some((kind, left, items)) = open.last_mut() else {
                    return Ok(frame);
                };
                items.push(frame);
                *left -= 1;
                if *left > 0 {
                    break;
                }
                let kind = *kind;
                let items = std::mem::take(items);
                open.pop();
                frame = aggregate(kind, items);
            }
        }
    }

    /// Reads the element at `pos` (at nesting `depth`): a whole value, or an aggregate's
    /// header. With `build = Some(bytes)` (the same bytes, frozen) a value is also built,
    /// bulk payloads sliced out of `bytes` without copying. `scan_from` (≥ `pos`) is where
    /// the search for the end of the element's line starts.
    fn element(
        &self,
        src: &[u8],
        pos: usize,
        depth: usize,
        scan_from: usize,
        build: Option<&Bytes>,
    ) -> Result<Parsed, ProtocolError> {
        let partial_line = || Parsed::Partial {
            scan_from: src.len().saturating_sub(1),
        };
        let Some(&type_byte) = src.get(pos) else {
            return Ok(Parsed::Partial { scan_from: pos });
        };
        if self.mode == Mode::Request && depth > 0 && type_byte != b'$' {
            return Err(ProtocolError(format!(
                "expected '$', got '{}'",
                char::from(type_byte)
            )));
        }
        if self.mode == Mode::Request && depth == 0 && type_byte == b'$' {
            // A bare bulk string is not a request. Validate its length first so an absurd
            // header gets the more useful message.
            let Some((len, _)) = self.length_line(src, pos + 1, scan_from, "bulk")? else {
                return Ok(partial_line());
            };
            self.check_bulk_len(len)?;
            return Err(ProtocolError::new("expected '*', got '$'"));
        }
        let Some((line, next)) = self.line(src, pos + 1, scan_from, type_name(type_byte))? else {
            return Ok(partial_line());
        };
        let value = |frame| Ok(Parsed::Value { end: next, frame });
        let text = |line: &[u8]| build.map(|b| b.slice_ref(line));
        match type_byte {
            b'+' => value(text(line).map(Frame::Simple)),
            b'-' => value(text(line).map(Frame::Error)),
            b'(' => {
                let digits = line.strip_prefix(b"-").unwrap_or(line);
                if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                    return Err(ProtocolError::new("invalid big number"));
                }
                value(text(line).map(Frame::BigNumber))
            }
            b':' => {
                let n = parse_int(line).ok_or_else(|| ProtocolError::new("invalid integer"))?;
                value(Some(Frame::Integer(n)))
            }
            b',' => {
                let d = parse_double(line).ok_or_else(|| ProtocolError::new("invalid double"))?;
                value(Some(Frame::Double(d)))
            }
            b'#' => match line {
                b"t" => value(Some(Frame::Boolean(true))),
                b"f" => value(Some(Frame::Boolean(false))),
                _ => Err(ProtocolError::new("invalid boolean")),
            },
            b'_' if line.is_empty() => value(Some(Frame::Null)),
            b'_' => Err(ProtocolError::new("invalid null")),
            b'$' | b'=' => {
                let len = parse_len(line, "bulk")?;
                if len < 0 && self.mode == Mode::Request {
                    return Err(ProtocolError::new("invalid bulk length"));
                }
                if len < 0 {
                    return value(Some(Frame::Null));
                }
                let len = self.check_bulk_len(len)?;
                let end = next + len;
                if src.len() < end + 2 {
                    // Only the payload is missing. Next time the header's search starts
                    // at its `\r`, and the payload is never scanned, only measured.
                    return Ok(Parsed::Partial {
                        scan_from: next - 2,
                    });
                }
                if &src[end..end + 2] != b"\r\n" {
                    return Err(ProtocolError::new("bulk string not terminated by CRLF"));
                }
                let frame = match build {
                    None => None,
                    Some(bytes) if type_byte == b'$' => Some(Frame::Bulk(bytes.slice(next..end))),
                    Some(bytes) => Some(verbatim(bytes.slice(next..end))?),
                };
                if type_byte == b'=' && build.is_none() && (len < 4 || src[next + 3] != b':') {
                    return Err(ProtocolError::new("invalid verbatim string"));
                }
                Ok(Parsed::Value {
                    end: end + 2,
                    frame,
                })
            }
            b'*' | b'~' | b'>' | b'%' => {
                let len = parse_len(line, "multibulk")?;
                if len < 0 {
                    return value(Some(Frame::NullArray));
                }
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                if len > self.limits.max_array_len {
                    return Err(ProtocolError::new("invalid multibulk length"));
                }
                if depth + 1 > self.limits.max_depth {
                    return Err(ProtocolError::new("too deeply nested aggregate"));
                }
                let count = if type_byte == b'%' { len * 2 } else { len };
                Ok(Parsed::Aggregate {
                    kind: type_byte,
                    count,
                    next,
                })
            }
            other => Err(ProtocolError(format!(
                "invalid type byte '{}'",
                char::from(other).escape_default()
            ))),
        }
    }

    fn line<'s>(
        &self,
        src: &'s [u8],
        pos: usize,
        scan_from: usize,
        what: &str,
    ) -> Result<Option<(&'s [u8], usize)>, ProtocolError> {
        line(src, pos, scan_from, self.limits.max_inline_len, what)
    }

    fn length_line(
        &self,
        src: &[u8],
        pos: usize,
        scan_from: usize,
        what: &str,
    ) -> Result<Option<(i64, usize)>, ProtocolError> {
        match self.line(src, pos, scan_from, what)? {
            None => Ok(None),
            Some((line, next)) => Ok(Some((parse_len(line, what)?, next))),
        }
    }

    fn check_bulk_len(&self, len: i64) -> Result<usize, ProtocolError> {
        match usize::try_from(len) {
            Ok(len) if len <= self.limits.max_bulk_len => Ok(len),
            _ => Err(ProtocolError::new("invalid bulk length")),
        }
    }
}

/// Finds the `\r\n`-terminated line starting at `pos`: `(line, position after CRLF)`,
/// `None` if the line is not complete yet, an error if it is longer than `max` bytes.
/// The search for its `\r` starts at `scan_from` (a caller that searched this line before
/// knows there is none earlier); `None` means there is none before `src.len() - 1`.
pub(crate) fn line<'s>(
    src: &'s [u8],
    pos: usize,
    scan_from: usize,
    max: usize,
    what: &str,
) -> Result<Option<(&'s [u8], usize)>, ProtocolError> {
    let window = &src[pos.min(src.len())..];
    let skip = scan_from.saturating_sub(pos).min(window.len());
    let found = window[skip..].iter().position(|&b| b == b'\r');
    match found.map(|i| i + skip) {
        Some(i) if i > max => Err(ProtocolError(format!("too big {what} line"))),
        Some(i) => match window.get(i + 1) {
            None => Ok(None),
            Some(b'\n') => Ok(Some((&window[..i], pos + i + 2))),
            Some(_) => Err(ProtocolError(format!("{what} line not terminated by CRLF"))),
        },
        None if window.len() > max => Err(ProtocolError(format!("too big {what} line"))),
        None => Ok(None),
    }
}

fn type_name(type_byte: u8) -> &'static str {
    match type_byte {
        b'*' | b'~' | b'>' | b'%' => "mbulk count",
        b'$' | b'=' => "bulk count",
        _ => "simple",
    }
}

/// A length header: `-1` (null) or a non-negative count. Anything else is malformed.
pub(crate) fn parse_len(line: &[u8], what: &str) -> Result<i64, ProtocolError> {
    match parse_int(line) {
        Some(n) if n >= -1 => Ok(n),
        _ => Err(ProtocolError(format!("invalid {what} length"))),
    }
}

/// Strict decimal integer, exactly as Redis's `string2ll`: optional `-`, then digits with
/// no leading zero (`"0"` itself is fine; `"010"`, `"-0"`, `"+1"` and `" 1"` are not
/// integers), and the value must fit in `i64`.
pub fn parse_int(text: &[u8]) -> Option<i64> {
    if text == b"0" {
        return Some(0);
    }
    let (negative, digits) = match text.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if digits.is_empty() || digits.len() > 20 || digits[0] == b'0' {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let digit = i64::from(d - b'0');
        n = n.checked_mul(10)?;
        n = if negative {
            n.checked_sub(digit)?
        } else {
            n.checked_add(digit)?
        };
    }
    Some(n)
}

fn parse_double(text: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(text).ok()?;
    match s {
        "inf" | "+inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        "nan" | "-nan" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

fn verbatim(payload: Bytes) -> Result<Frame, ProtocolError> {
    match payload.get(..4) {
        Some([a, b, c, b':']) => Ok(Frame::Verbatim {
            format: [*a, *b, *c],
            text: payload.slice(4..),
        }),
        _ => Err(ProtocolError::new("invalid verbatim string")),
    }
}

/// The aggregate of type byte `kind` holding `items`.
fn aggregate(kind: u8, items: Vec<Frame>) -> Frame {
    match kind {
        b'*' => Frame::Array(items),
        b'~' => Frame::Set(items),
        b'>' => Frame::Push(items),
        _ => Frame::Map(pairs(items)),
    }
}

fn pairs(items: Vec<Frame>) -> Vec<(Frame, Frame)> {
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    out
}

/// Advances past `n` bytes (for callers that already looked at them).
pub(crate) fn consume(buf: &mut BytesMut, n: usize) {
    buf.advance(n);
}

//! The server's hot path: parsing requests straight into [`Args`].
//!
//! Every request a client sends is an array of bulk strings (`*3\r\n$3\r\nSET\r\n...`), so
//! the general two-pass [`FrameParser`] does more than a server needs. [`RequestParser`]
//! walks a request once, checking every header, and only when the whole request is in the
//! buffer splits those bytes off and hands them to [`Args`] as they are: the arguments are
//! read out of the request when a command takes them, with no list built and nothing
//! copied. Inline commands and malformed input take the general path, so both paths give
//! the same errors.
//!
//! A request that has only partly arrived costs nothing but the walk — and the walk is
//! never repeated: the parser remembers the word it stopped at, as Redis's query buffer
//! does, so a request trickled in over many reads is walked once in all, not once per
//! read (which would let one slow client with a 16-million-word request burn a core).

use bytes::BytesMut;

use crate::args::Args;
use crate::decode::{FrameParser, InlineOutcome, Limits, Mode, ProtocolError, line, parse_len};
use crate::inline::parse_inline;

/// Parses requests off a connection's read buffer. Keep one per connection, and hand it
/// the same buffer each time with only new bytes appended: it remembers how far into a
/// partly arrived request it has walked.
#[derive(Debug, Default)]
pub struct RequestParser {
    /// The request being walked, while its words have only partly arrived.
    walk: Walk,
    /// No `\r` (inline: `\n`) before this offset in the line being read: where the
    /// search for its end resumes.
    scan_from: usize,
    /// Bytes walked so far; see [`RequestParser::scanned`].
    scanned: u64,
    /// Input that does not start a request: a bare `$` header, before its error.
    general: FrameParser,
}

/// How far into a request of `count` words the walk has got: the words before `pos`
/// (`left` still to come) are checked. `count == 0`: no request in progress.
#[derive(Debug, Default, Clone, Copy)]
struct Walk {
    count: usize,
    /// Where the first word's bytes (the command name) lie, once walked.
    name: (usize, usize),
    pos: usize,
    left: usize,
}

/// A length header's number (`3` of `$3\r\n`) at `pos`, and where the line after it
/// starts; `Ok(None)` if the line has not fully arrived.
///
/// Nearly every header is a few plain digits and CRLF, so those are read in one pass,
/// digit by digit. Anything else (a sign, a leading zero, a stray byte, a line still
/// arriving) goes the careful way, [`line`] then [`parse_len`], which also words the
/// errors: the fast path only ever accepts what the careful one would, with the same
/// value. Measured under kv's `GET`: the parser's ~1,000 instructions per request
/// down to ~850.
///
/// `scan_from` is where the careful path's search for the line's end starts (see
/// [`line`]).
#[inline]
fn header(buf: &[u8], pos: usize, scan_from: usize, max_line: usize, kind: Header) -> HeaderResult {
    match plain_digits(buf, pos, max_line) {
        Some(found) => Ok(Some(found)),
        None => careful_header(buf, pos, scan_from, max_line, kind),
    }
}

/// The number in a header and where the next line starts (see [`header`]).
type HeaderResult = Result<Option<(i64, usize)>, ProtocolError>;

/// Which header [`header`] reads, for the wording of its errors.
#[derive(Debug, Clone, Copy)]
enum Header {
    /// `*N`: the number of words.
    Count,
    /// `$N`: the length of one word.
    Bulk,
}

/// The careful path of [`header`], out of line so the fast one stays small.
#[cold]
fn careful_header(
    buf: &[u8],
    pos: usize,
    scan_from: usize,
    max_line: usize,
    kind: Header,
) -> HeaderResult {
    let (line_what, len_what) = match kind {
        Header::Count => ("mbulk count", "multibulk"),
        Header::Bulk => ("bulk count", "bulk"),
    };
    let Some((text, next)) = line(buf, pos, scan_from, max_line, line_what)? else {
        return Ok(None);
    };
    Ok(Some((parse_len(text, len_what)?, next)))
}

/// The fast path of [`header`]: `None` unless `pos` starts plain digits (no leading
/// zero, at most 18, so no overflow) and CRLF.
#[inline]
fn plain_digits(buf: &[u8], pos: usize, max_line: usize) -> Option<(i64, usize)> {
    let digits = buf.get(pos..)?;
    // The commonest headers, a word count or a length under 100 (`*3`, `$3`, `$16`),
    // in one step each, not a loop with a bounds check per byte.
    match *digits {
        [d @ b'0'..=b'9', b'\r', b'\n', ..] if max_line >= 1 => {
            return Some((i64::from(d - b'0'), pos + 3));
        }
        [d1 @ b'1'..=b'9', d2 @ b'0'..=b'9', b'\r', b'\n', ..] if max_line >= 2 => {
            return Some((i64::from(d1 - b'0') * 10 + i64::from(d2 - b'0'), pos + 4));
        }
        _ => {}
    }
    let first = *digits.first()?;
    if !first.is_ascii_digit() {
        return None;
    }
    let mut n = i64::from(first - b'0');
    let mut i = 1;
    loop {
        match *digits.get(i)? {
            b @ b'0'..=b'9' if i < 18 => n = n * 10 + i64::from(b - b'0'),
            b'\r' if digits.get(i + 1) == Some(&b'\n') && (first != b'0' || i == 1) => {
                return (i <= max_line).then_some((n, pos + i + 2));
            }
            _ => return None,
        }
        i += 1;
    }
}

impl RequestParser {
    /// Takes the first complete request off `buf`. `Ok(None)`: more bytes are needed and
    /// `buf` is untouched. Empty requests (`*0`, blank inline lines) are skipped. After an
    /// error the parser and the buffer are out of step: close the connection.
    pub fn next(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Option<Args>, ProtocolError> {
        loop {
            if self.walk.count > 0 {
                return self.words(buf, limits);
            }
            match buf.first() {
                None => return Ok(None),
                Some(b'*') => {}
                Some(b'$') => return self.general(buf, limits),
                Some(_) => match parse_inline(buf, limits, &mut self.scan_from, &mut self.scanned)?
                {
                    InlineOutcome::Incomplete => return Ok(None),
                    InlineOutcome::Empty => continue,
                    InlineOutcome::Command(frame) => {
                        return Args::from_frame(frame)
                            .map(Some)
                            .map_err(|e| ProtocolError(e.to_string()));
                    }
                },
            }
            let max_line = limits.max_inline_len;
            let Some((count, pos)) = header(buf, 1, self.scan_from, max_line, Header::Count)?
            else {
                self.line_incomplete(buf, 1);
                return Ok(None);
            };
            self.scanned += pos as u64;
            self.scan_from = 0;
            if count <= 0 {
                // `*0` and `*-1` are empty requests: Redis ignores them.
                let _ = buf.split_to(pos);
                continue;
            }
            let count = usize::try_from(count).unwrap_or(usize::MAX);
            if count > limits.max_array_len {
                return Err(ProtocolError("invalid multibulk length".into()));
            }
            self.walk = Walk {
                count,
                name: (0, 0),
                pos,
                left: count,
            };
        }
    }

    /// Bytes this parser has walked over in its life: each header and word stepped over,
    /// each incomplete line searched. It measures parse work, so a test can show that the
    /// work grows with the bytes received, not with the number of reads they came in.
    pub fn scanned(&self) -> u64 {
        self.scanned + self.general.scanned()
    }

    /// Walks the words of the request in progress from where the last call stopped; once
    /// all have arrived, splits the request off.
    #[inline]
    fn words(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Option<Args>, ProtocolError> {
        let max_line = limits.max_inline_len;
        let Walk {
            count,
            mut name,
            mut pos,
            mut left,
        } = self.walk;
        let start = pos;
        while left > 0 {
            match buf.get(pos) {
                None => break,
                Some(b'$') => {}
                Some(&other) => {
                    return Err(ProtocolError(format!(
                        "expected '$', got '{}'",
                        char::from(other)
                    )));
                }
            }
            let Some((len, data)) = header(buf, pos + 1, self.scan_from, max_line, Header::Bulk)?
            else {
                self.line_incomplete(buf, pos + 1);
                break;
            };
            let len = match usize::try_from(len) {
                Ok(len) if len <= limits.max_bulk_len => len,
                _ => return Err(ProtocolError("invalid bulk length".into())),
            };
            let end = data + len;
            if buf.len() < end + 2 {
                // Only the payload is missing: next time the header is read again (a
                // valid one is a few bytes); the payload is never scanned, only measured.
                break;
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(ProtocolError("bulk string not terminated by CRLF".into()));
            }
            if left == count {
                name = (data, end);
            }
            pos = end + 2;
            left -= 1;
        }
        self.scanned += (pos - start) as u64;
        if left > 0 {
            self.walk.name = name;
            self.walk.pos = pos;
            self.walk.left = left;
            return Ok(None);
        }
        self.walk = Walk::default();
        self.scan_from = 0;
        let request = buf.split_to(pos).freeze();
        Ok(Some(Args::from_walked(request, name, count)))
    }

    /// The line starting at `line_start` has no end yet: remember how far its search got.
    #[cold]
    fn line_incomplete(&mut self, buf: &[u8], line_start: usize) {
        let from = self.scan_from.max(line_start);
        let searched_to = buf.len().saturating_sub(1).max(from);
        self.scanned += (searched_to - from) as u64;
        self.scan_from = searched_to;
    }

    /// The general parser, for the rare shapes the fast path leaves to it (it produces
    /// the precise protocol error).
    fn general(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Option<Args>, ProtocolError> {
        match self.general.next(buf, limits, Mode::Request)? {
            None => Ok(None),
            Some(frame) => Args::from_frame(frame)
                .map(Some)
                .map_err(|e| ProtocolError(e.to_string())),
        }
    }
}

//! The server's hot path: parsing requests straight into [`Args`].
//!
//! Every request a client sends is an array of bulk strings (`*3\r\n$3\r\nSET\r\n...`), so
//! the general two-pass [`parse_frame`](crate::decode::parse_frame) does more than a
//! server needs. [`RequestParser`] walks a request once, remembering where each argument
//! lies in a scratch list it reuses for every request of the connection (so a request
//! that has only partly arrived costs no allocation), and only when the whole request is
//! in the buffer splits those bytes off and slices the arguments out of them without
//! copying. Inline commands and malformed input take the general path, so both paths give
//! the same errors.

use bytes::BytesMut;

use crate::args::Args;
use crate::decode::{InlineOutcome, Limits, Mode, ProtocolError, line, parse_frame, parse_len};

/// Parses requests off a connection's read buffer. Keep one per connection.
#[derive(Debug, Default)]
pub struct RequestParser {
    /// `(start, end)` of each argument of the request being parsed.
    spans: Vec<(usize, usize)>,
}

impl RequestParser {
    /// Takes the first complete request off `buf`. `Ok(None)`: more bytes are needed and
    /// `buf` is untouched. Empty requests (`*0`, blank inline lines) are skipped.
    pub fn next(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Option<Args>, ProtocolError> {
        loop {
            match buf.first() {
                None => return Ok(None),
                Some(b'*') => {}
                Some(b'$') => return self.general(buf, limits),
                Some(_) => match crate::inline::parse_inline(buf, limits)? {
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
            let Some((header, mut pos)) = line(buf, 1, max_line, "mbulk count")? else {
                return Ok(None);
            };
            let count = parse_len(header, "multibulk")?;
            if count <= 0 {
                // `*0` and `*-1` are empty requests: Redis ignores them.
                let _ = buf.split_to(pos);
                continue;
            }
            let count = usize::try_from(count).unwrap_or(usize::MAX);
            if count > limits.max_array_len {
                return Err(ProtocolError("invalid multibulk length".into()));
            }
            self.spans.clear();
            for _ in 0..count {
                match buf.get(pos) {
                    None => return Ok(None),
                    Some(b'$') => {}
                    Some(&other) => {
                        return Err(ProtocolError(format!(
                            "expected '$', got '{}'",
                            char::from(other)
                        )));
                    }
                }
                let Some((header, start)) = line(buf, pos + 1, max_line, "bulk count")? else {
                    return Ok(None);
                };
                let len = match usize::try_from(parse_len(header, "bulk")?) {
                    Ok(len) if len <= limits.max_bulk_len => len,
                    _ => return Err(ProtocolError("invalid bulk length".into())),
                };
                let end = start + len;
                if buf.len() < end + 2 {
                    return Ok(None);
                }
                if &buf[end..end + 2] != b"\r\n" {
                    return Err(ProtocolError("bulk string not terminated by CRLF".into()));
                }
                self.spans.push((start, end));
                pos = end + 2;
            }
            let request = buf.split_to(pos).freeze();
            return Ok(Some(Args::new(
                self.spans
                    .iter()
                    .map(|&(s, e)| request.slice(s..e))
                    .collect(),
            )));
        }
    }

    /// The general parser, for the rare shapes the fast path leaves to it (it produces
    /// the precise protocol error).
    fn general(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Option<Args>, ProtocolError> {
        match parse_frame(buf, limits, Mode::Request)? {
            None => Ok(None),
            Some(frame) => Args::from_frame(frame)
                .map(Some)
                .map_err(|e| ProtocolError(e.to_string())),
        }
    }
}

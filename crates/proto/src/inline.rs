//! Inline commands: `PING\r\n` or `SET "a key" 'v'\n`, typed by a person in telnet or sent by
//! `redis-benchmark -t ping_inline`. A line is split into words like a shell does, with
//! Redis's quoting rules (`"..."` understands `\n`, `\t`, `\xHH`...; `'...'` only `\'`).

use bytes::{Bytes, BytesMut};

use crate::decode::{InlineOutcome, Limits, ProtocolError, consume};
use crate::frame::Frame;

/// Takes one inline line off the front of `buf`.
///
/// The search for its `\n` starts at `*scan_from`: while the line is incomplete, the
/// parser remembers there how far it has searched (and resets it to 0 once the line is
/// taken), so a long line arriving a byte at a time is searched once, not once per byte.
/// The bytes searched are added to `scanned`.
pub(crate) fn parse_inline(
    buf: &mut BytesMut,
    limits: &Limits,
    scan_from: &mut usize,
    scanned: &mut u64,
) -> Result<InlineOutcome, ProtocolError> {
    let skip = (*scan_from).min(buf.len());
    let found = buf[skip..].iter().position(|&b| b == b'\n');
    let Some(newline) = found.map(|i| i + skip) else {
        if buf.len() > limits.max_inline_len {
            return Err(ProtocolError("too big inline request".into()));
        }
        *scanned += (buf.len() - skip) as u64;
        *scan_from = buf.len();
        return Ok(InlineOutcome::Incomplete);
    };
    *scanned += (newline + 1 - skip) as u64;
    *scan_from = 0;
    if newline > limits.max_inline_len {
        return Err(ProtocolError("too big inline request".into()));
    }
    let line = buf[..newline]
        .strip_suffix(b"\r")
        .unwrap_or(&buf[..newline]);
    let words = split_words(line)?;
    consume(buf, newline + 1);
    if words.is_empty() {
        return Ok(InlineOutcome::Empty);
    }
    Ok(InlineOutcome::Command(Frame::bulk_array(words)))
}

/// Splits a line into arguments (Redis's `sdssplitargs`).
pub fn split_words(line: &[u8]) -> Result<Vec<Bytes>, ProtocolError> {
    let unbalanced = || ProtocolError("unbalanced quotes in request".into());
    let mut words = Vec::new();
    let mut i = 0;
    while i < line.len() {
        if line[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let mut word = Vec::new();
        loop {
            match line.get(i) {
                None => break,
                Some(c) if c.is_ascii_whitespace() => break,
                Some(b'"') => {
                    i += 1;
                    loop {
                        match line.get(i) {
                            None => return Err(unbalanced()),
                            Some(b'"') => break,
                            Some(b'\\') if line.get(i + 1) == Some(&b'x') => {
                                match hex_byte(line.get(i + 2..i + 4)) {
                                    Some(b) => {
                                        word.push(b);
                                        i += 3;
                                    }
                                    None => word.push(b'\\'),
                                }
                            }
                            Some(b'\\') if i + 1 < line.len() => {
                                i += 1;
                                word.push(match line[i] {
                                    b'n' => b'\n',
                                    b'r' => b'\r',
                                    b't' => b'\t',
                                    b'b' => 0x08,
                                    b'a' => 0x07,
                                    other => other,
                                });
                            }
                            Some(&c) => word.push(c),
                        }
                        i += 1;
                    }
                    i += 1;
                    // A closing quote must be followed by a space or the end of line.
                    if line.get(i).is_some_and(|c| !c.is_ascii_whitespace()) {
                        return Err(unbalanced());
                    }
                }
                Some(b'\'') => {
                    i += 1;
                    loop {
                        match line.get(i) {
                            None => return Err(unbalanced()),
                            Some(b'\'') => break,
                            Some(b'\\') if line.get(i + 1) == Some(&b'\'') => {
                                word.push(b'\'');
                                i += 1;
                            }
                            Some(&c) => word.push(c),
                        }
                        i += 1;
                    }
                    i += 1;
                    if line.get(i).is_some_and(|c| !c.is_ascii_whitespace()) {
                        return Err(unbalanced());
                    }
                }
                Some(&c) => {
                    word.push(c);
                    i += 1;
                }
            }
        }
        words.push(Bytes::from(word));
    }
    Ok(words)
}

fn hex_byte(digits: Option<&[u8]>) -> Option<u8> {
    let digits = std::str::from_utf8(digits?).ok()?;
    u8::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<Vec<u8>> {
        split_words(s.as_bytes())
            .expect("valid")
            .into_iter()
            .map(|b| b.to_vec())
            .collect()
    }

    #[test]
    fn splits_like_redis() {
        assert_eq!(
            words("SET a b"),
            vec![b"SET".to_vec(), b"a".to_vec(), b"b".to_vec()]
        );
        assert_eq!(words("  PING  "), vec![b"PING".to_vec()]);
        assert_eq!(words(r#"SET "a b" 'c d'"#)[1], b"a b");
        assert_eq!(words(r#"SET "a b" 'c d'"#)[2], b"c d");
        assert_eq!(words(r#"ECHO "\x41\n""#)[1], b"A\n");
        assert_eq!(words(r"ECHO 'it\'s'")[1], b"it's");
        assert!(split_words(br#"ECHO "abc"#).is_err());
        assert!(split_words(br#"ECHO "abc"def"#).is_err());
        assert!(words("").is_empty());
    }
}

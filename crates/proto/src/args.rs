//! Reading a command's arguments, with Redis's own error wording.
//!
//! Every command parser in the workspace is written against [`Args`]: take the arguments
//! in order, each with the conversion it needs, then [`Args::finish`]. Errors come out as
//! the exact replies Redis sends, so clients that match on error text keep working:
//!
//! ```
//! use proto::{Args, Frame};
//! let mut args = Args::new(vec!["SET".into(), "k".into(), "v".into(), "EX".into(), "10".into()]);
//! let key = args.next_bytes().unwrap();
//! let value = args.next_bytes().unwrap();
//! let mut ttl = None;
//! while let Some(option) = args.next_keyword() {
//!     match option.as_str() {
//!         "EX" => ttl = Some(args.next_int().unwrap()),
//!         _ => panic!("syntax error"),
//!     }
//! }
//! args.finish().unwrap();
//! assert_eq!((key.as_ref(), value.as_ref(), ttl), (&b"k"[..], &b"v"[..], Some(10)));
//! ```

use bytes::{Bytes, BytesMut};

use crate::decode::parse_int;
use crate::frame::{Frame, encode_bulk_array};

/// An error reply from a command. The connection stays open; only this command failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// `ERR wrong number of arguments for 'get' command`
    WrongArity(String),
    /// `ERR value is not an integer or out of range`
    NotInteger,
    /// `ERR value is not a valid float`
    NotFloat,
    /// `ERR syntax error`
    Syntax,
    /// `WRONGTYPE Operation against a key holding the wrong kind of value`
    WrongType,
    /// Any other error; the text includes its code (`ERR ...`, `READONLY ...`).
    Reply(String),
}

impl CommandError {
    /// An `ERR`-coded error with the given message.
    pub fn err(message: impl std::fmt::Display) -> Self {
        CommandError::Reply(format!("ERR {message}"))
    }

    /// An error with its own code: `CommandError::coded("NOAUTH", "Authentication required.")`.
    pub fn coded(code: &str, message: impl std::fmt::Display) -> Self {
        CommandError::Reply(format!("{code} {message}"))
    }

    pub fn to_frame(&self) -> Frame {
        Frame::error(self.to_string())
    }
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandError::WrongArity(cmd) => {
                write!(f, "ERR wrong number of arguments for '{cmd}' command")
            }
            CommandError::NotInteger => f.write_str("ERR value is not an integer or out of range"),
            CommandError::NotFloat => f.write_str("ERR value is not a valid float"),
            CommandError::Syntax => f.write_str("ERR syntax error"),
            CommandError::WrongType => {
                f.write_str("WRONGTYPE Operation against a key holding the wrong kind of value")
            }
            CommandError::Reply(text) => f.write_str(text),
        }
    }
}

impl std::error::Error for CommandError {}

impl From<CommandError> for Frame {
    fn from(e: CommandError) -> Frame {
        e.to_frame()
    }
}

/// A command name and a cursor over its arguments.
///
/// The arguments are not split into a list: `Args` holds the request exactly as it
/// arrived — `*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n`, one reference-counted
/// buffer — and a position in it, and reads each argument's `$len` header as the command
/// takes it. RESP's request form is already a length-prefixed list, so there is nothing to
/// build: no vector per request, and no reference-count increment (an atomic instruction)
/// per argument to hand out a view of it and a decrement to drop it. Under kv's
/// `redis-benchmark -P 16` those were a tenth of the server's time per request. A command
/// that keeps an argument takes it as [`Bytes`] (a view of the request, one increment); one
/// that only reads it (a number, an option, a key to look up) takes nothing.
#[derive(Debug, Clone)]
pub struct Args {
    name: CommandName,
    /// The name as the caller's command table spells it, once looked up (see
    /// [`Args::set_known_name`]).
    known: Option<&'static str>,
    /// The whole request in RESP's request form (see [`Args::from_request`]).
    request: Bytes,
    /// Where the command name, as sent, lies in `request`.
    raw_name: (usize, usize),
    /// Where the next argument's `$len` header starts in `request`.
    next: usize,
    /// Arguments not yet taken.
    left: usize,
}

/// The lowercased command name, kept inline: every request has one, and a heap allocation
/// per request for it would show up in a profile. No command name is longer than 32
/// bytes; a longer or non-ASCII name is stored as empty, which matches no command.
#[derive(Debug, Clone, Copy)]
struct CommandName {
    bytes: [u8; 32],
    len: u8,
}

impl CommandName {
    /// One pass over the name, lowering each byte as it is copied: a call to `memcpy`,
    /// then an ASCII check, then a lowering pass cost ~60 instructions per request for a
    /// three-letter name.
    fn new(raw: &[u8]) -> Self {
        let mut bytes = [0u8; 32];
        if raw.len() > bytes.len() {
            return CommandName { bytes, len: 0 };
        }
        let mut ascii = true;
        for (to, &from) in bytes.iter_mut().zip(raw) {
            ascii &= from.is_ascii();
            *to = from.to_ascii_lowercase();
        }
        if !ascii {
            return CommandName {
                bytes: [0u8; 32],
                len: 0,
            };
        }
        CommandName {
            bytes,
            len: raw.len() as u8,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

/// The word whose `$len\r\n` header starts at `pos` of a checked request: where its bytes
/// lie. The next header starts two bytes (its CRLF) after the end.
///
/// Only reads: [`Args::from_request`]'s caller has checked every header (plain digits,
/// CRLF, the bytes and their CRLF all there), and [`Args::new`] writes them itself.
///
/// Nearly every word is shorter than 100 bytes, so one and two digits are read in one
/// step each; a digit-by-digit loop with a bounds check per byte cost ~50 instructions
/// a word, and every argument a command takes goes through here.
#[inline]
fn word_at(request: &[u8], pos: usize) -> (usize, usize) {
    let header = request.get(pos + 1..).unwrap_or_default();
    let (len, digits) = match *header {
        [d, b'\r', ..] => (usize::from(d.wrapping_sub(b'0')), 1),
        [d1, d2, b'\r', ..] => (
            usize::from(d1.wrapping_sub(b'0')) * 10 + usize::from(d2.wrapping_sub(b'0')),
            2,
        ),
        _ => {
            let mut len = 0;
            let mut digits = 0;
            while let Some(&d @ b'0'..=b'9') = header.get(digits) {
                len = len * 10 + usize::from(d - b'0');
                digits += 1;
            }
            (len, digits)
        }
    };
    let start = pos + 1 + digits + 2;
    (start, start + len)
}

impl Args {
    /// `words[0]` is the command name. An empty vector gives an empty name.
    ///
    /// The words are copied into one buffer in request form: the way for requests that
    /// did not arrive as RESP arrays (inline commands, frames, commands a server makes up).
    pub fn new(words: Vec<Bytes>) -> Self {
        let mut request = BytesMut::new();
        if words.is_empty() {
            // `*0` is not a request: an empty vector stands for one empty word.
            encode_bulk_array(&mut request, 1, [&b""[..]]);
        } else {
            encode_bulk_array(&mut request, words.len(), words.iter().map(|w| &w[..]));
        }
        // The first word's header starts after the `*N\r\n` line.
        let first = request
            .iter()
            .position(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        Args::from_request(request.freeze(), first, words.len().max(1))
    }

    /// Arguments over a request in RESP's request form (`*N`, then N bulk strings), whose
    /// first word's `$` header starts at `first`. The caller vouches for the form — every
    /// header plain digits and CRLF, every word and its CRLF present — as the
    /// [`RequestParser`](crate::RequestParser) checks it before it hands a request over.
    pub fn from_request(request: Bytes, first: usize, count: usize) -> Self {
        let raw_name = word_at(&request, first);
        Args::from_walked(request, raw_name, count)
    }

    /// [`Args::from_request`] for a caller that has already found where the name lies
    /// (`raw_name`): the [`RequestParser`](crate::RequestParser), which has just walked
    /// every header, so the name's is not read twice.
    pub(crate) fn from_walked(request: Bytes, raw_name: (usize, usize), count: usize) -> Self {
        let name = CommandName::new(&request[raw_name.0..raw_name.1]);
        Args {
            name,
            known: None,
            next: raw_name.1 + 2,
            raw_name,
            request,
            left: count - 1,
        }
    }

    /// A request frame (array of bulk strings, as the request decoder produces) to `Args`.
    pub fn from_frame(frame: Frame) -> Result<Args, CommandError> {
        let Frame::Array(items) = frame else {
            return Err(CommandError::err(
                "Protocol error: expected an array of bulk strings",
            ));
        };
        let mut words = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Frame::Bulk(b) | Frame::Simple(b) => words.push(b),
                Frame::Integer(n) => words.push(Bytes::from(n.to_string())),
                _ => return Err(CommandError::err("Protocol error: expected bulk strings")),
            }
        }
        Ok(Args::new(words))
    }

    /// The command name, lowercased (`"get"`), as Redis quotes it in errors.
    pub fn name(&self) -> &str {
        match self.known {
            Some(name) => name,
            None => self.name.as_str(),
        }
    }

    /// [`Self::name`] as bytes, without checking again that they are UTF-8 (a command
    /// table looks the name up by these: `str::from_utf8` on every request's name was
    /// ~50 instructions of a `GET`).
    pub fn name_bytes(&self) -> &[u8] {
        match self.known {
            Some(name) => name.as_bytes(),
            None => self.name.as_bytes(),
        }
    }

    /// Records that [`Self::name`] is `name`, the spelling of a command table that
    /// matched it. A server asks for the name several times per request (to look the
    /// command up, then in each dispatch `match`); without this, each call would check
    /// the name's bytes are UTF-8 again, which a profile of `GET` shows as ~150
    /// instructions per request. `name` must equal the current [`Self::name`].
    pub fn set_known_name(&mut self, name: &'static str) {
        debug_assert_eq!(name, self.name.as_str());
        self.known = Some(name);
    }

    /// The command name exactly as the client sent it (for `unknown command 'FoO'`).
    pub fn raw_name(&self) -> &[u8] {
        &self.request[self.raw_name.0..self.raw_name.1]
    }

    /// Arguments not yet taken.
    pub fn remaining(&self) -> usize {
        self.left
    }

    pub fn is_empty(&self) -> bool {
        self.left == 0
    }

    /// The remaining arguments, without taking them.
    pub fn peek_all(&self) -> Words<'_> {
        Words {
            request: &self.request,
            next: self.next,
            left: self.left,
        }
    }

    /// The remaining arguments as views of the request (a reference count each), without
    /// taking them: for code that keeps or forwards them.
    pub fn peek_bytes(&self) -> Vec<Bytes> {
        self.clone().rest()
    }

    /// Every word of the request as it arrived, the name as sent first, whatever the
    /// command has taken since: for the slow log and `MONITOR`, which show a command
    /// after it ran. Views of the request (a reference count each).
    pub fn words(&self) -> Vec<Bytes> {
        let mut words = vec![self.request.slice(self.raw_name.0..self.raw_name.1)];
        // Every `Args` holds exactly one request, in RESP's request form (see
        // `from_request` and `new`): its words run to the end of the buffer.
        let mut next = self.raw_name.1 + 2;
        while next < self.request.len() {
            let (start, end) = word_at(&self.request, next);
            words.push(self.request.slice(start..end));
            next = end + 2;
        }
        words
    }

    /// The error for a missing or extra argument.
    pub fn wrong_arity(&self) -> CommandError {
        CommandError::WrongArity(self.name().to_string())
    }

    /// Takes the next argument: where it lies in the request.
    fn take(&mut self) -> Result<(usize, usize), CommandError> {
        let mut words = self.peek_all();
        let Some(span) = words.advance() else {
            return Err(self.wrong_arity());
        };
        (self.next, self.left) = (words.next, words.left);
        Ok(span)
    }

    /// The next argument as raw bytes: a view of the request, not a copy.
    pub fn next_bytes(&mut self) -> Result<Bytes, CommandError> {
        let (start, end) = self.take()?;
        Ok(self.request.slice(start..end))
    }

    /// The next argument, borrowed: for a word the command only reads (a number, a
    /// flag). A view ([`Self::next_bytes`]) costs two atomic updates of the request's
    /// reference count, one to make and one to drop, ~20 cycles each that an
    /// instruction count does not show.
    pub fn next_word(&mut self) -> Result<&[u8], CommandError> {
        let (start, end) = self.take()?;
        Ok(&self.request[start..end])
    }

    /// The next argument as UTF-8 text (`syntax error` if it is not).
    pub fn next_str(&mut self) -> Result<String, CommandError> {
        let (start, end) = self.take()?;
        String::from_utf8(self.request[start..end].to_vec()).map_err(|_| CommandError::Syntax)
    }

    /// The next argument as a signed 64-bit integer, parsed as strictly as Redis does
    /// (`"+1"`, `" 1"` and `"01x"` are not integers).
    pub fn next_int(&mut self) -> Result<i64, CommandError> {
        let (start, end) = self.take()?;
        parse_int(&self.request[start..end]).ok_or(CommandError::NotInteger)
    }

    /// The next argument as a float (`inf`/`-inf` allowed, `nan` not, as in Redis).
    pub fn next_f64(&mut self) -> Result<f64, CommandError> {
        let (start, end) = self.take()?;
        parse_f64(&self.request[start..end]).ok_or(CommandError::NotFloat)
    }

    /// Takes the next argument if it equals `flag` (case-insensitively).
    pub fn next_flag(&mut self, flag: &str) -> bool {
        let mut words = self.peek_all();
        let matches = words
            .next()
            .is_some_and(|b| b.eq_ignore_ascii_case(flag.as_bytes()));
        if matches {
            (self.next, self.left) = (words.next, words.left);
        }
        matches
    }

    /// The next argument uppercased, for option loops (`EX`, `NX`, `MATCH`...).
    pub fn next_keyword(&mut self) -> Option<String> {
        if self.left == 0 {
            // Not `take`'s error: its text would be allocated only to be dropped.
            return None;
        }
        let (start, end) = self.take().ok()?;
        Some(String::from_utf8_lossy(&self.request[start..end]).to_ascii_uppercase())
    }

    /// Takes every remaining argument.
    pub fn rest(&mut self) -> Vec<Bytes> {
        let mut words = Vec::with_capacity(self.left);
        // Counted, not "until `next_bytes` fails": its failure is an error reply, whose
        // text is allocated (a profile of `PFCOUNT` showed it).
        for _ in 0..self.left {
            match self.next_bytes() {
                Ok(word) => words.push(word),
                Err(_) => break,
            }
        }
        words
    }

    /// Ends parsing: leftover arguments are a `wrong number of arguments` error.
    pub fn finish(&self) -> Result<(), CommandError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.wrong_arity())
        }
    }
}

/// The arguments [`Args::peek_all`] has not taken yet, borrowed from the request.
#[derive(Debug, Clone)]
pub struct Words<'a> {
    request: &'a [u8],
    next: usize,
    left: usize,
}

impl Words<'_> {
    /// Where the next word lies in the request, stepping past it.
    fn advance(&mut self) -> Option<(usize, usize)> {
        if self.left == 0 {
            return None;
        }
        let (start, end) = word_at(self.request, self.next);
        self.next = end + 2;
        self.left -= 1;
        Some((start, end))
    }
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let request = self.request;
        self.advance().map(|(start, end)| &request[start..end])
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Words<'_> {}

/// Parses a float as Redis's `getDoubleFromObject`: no spaces, no `nan`.
pub fn parse_f64(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty() || s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return None;
    }
    let v: f64 = match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    (!v.is_nan()).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Args {
        Args::new(
            words
                .iter()
                .map(|w| Bytes::copy_from_slice(w.as_bytes()))
                .collect(),
        )
    }

    #[test]
    fn errors_use_redis_wording() {
        let mut a = args(&["GET"]);
        assert_eq!(
            a.next_bytes().unwrap_err().to_string(),
            "ERR wrong number of arguments for 'get' command"
        );
        let mut a = args(&["INCRBY", "k", "1x"]);
        a.next_bytes().unwrap();
        assert_eq!(
            a.next_int().unwrap_err().to_string(),
            "ERR value is not an integer or out of range"
        );
        let mut a = args(&["X", "+1", "9223372036854775808", "-9223372036854775808"]);
        assert!(a.next_int().is_err());
        assert!(a.next_int().is_err());
        assert_eq!(a.next_int(), Ok(i64::MIN));
        assert_eq!(CommandError::Syntax.to_string(), "ERR syntax error");
        let a = args(&["GET", "k", "extra"]);
        assert!(a.finish().is_err());
    }

    #[test]
    fn words_are_the_whole_request_whatever_was_taken() {
        let mut a = args(&["SET", "k", "", "EX", "10"]);
        a.next_bytes().unwrap();
        a.next_bytes().unwrap();
        let expected: Vec<Bytes> = ["SET", "k", "", "EX", "10"]
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        assert_eq!(a.words(), expected);
        let mut parser = crate::RequestParser::default();
        let mut buf =
            bytes::BytesMut::from(&b"*2\r\n$3\r\nGeT\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n"[..]);
        let limits = crate::Limits::default();
        let mut get = parser.next(&mut buf, &limits).unwrap().unwrap();
        get.next_bytes().unwrap();
        assert_eq!(get.words(), vec![Bytes::from("GeT"), Bytes::from("k")]);
        let ping = parser.next(&mut buf, &limits).unwrap().unwrap();
        assert_eq!(ping.words(), vec![Bytes::from("PING")]);
    }

    #[test]
    fn flags_are_case_insensitive() {
        let mut a = args(&["SET", "nx", "ex"]);
        assert!(a.next_flag("NX"));
        assert!(!a.next_flag("NX"));
        assert_eq!(a.next_keyword().as_deref(), Some("EX"));
        assert!(a.finish().is_ok());
    }

    #[test]
    fn taking_peeking_and_the_rest_agree() {
        for n in 0..8 {
            let words: Vec<String> = (0..n).map(|i| format!("w{i}")).collect();
            let all: Vec<&str> = std::iter::once("CMD")
                .chain(words.iter().map(String::as_str))
                .collect();
            for first in 0..=n {
                let mut a = args(&all);
                for word in &words[..first] {
                    assert_eq!(a.next_bytes().unwrap(), word.as_bytes());
                }
                let left: Vec<Bytes> = words[first..]
                    .iter()
                    .map(|w| Bytes::copy_from_slice(w.as_bytes()))
                    .collect();
                assert_eq!(a.remaining(), n - first);
                assert_eq!(a.peek_all().len(), left.len());
                assert!(a.peek_all().eq(left.iter().map(|w| &w[..])));
                assert_eq!(a.peek_bytes(), left);
                assert_eq!(a.clone().rest(), left);
                let mut b = a.clone();
                b.rest();
                assert!(b.is_empty() && b.next_bytes().is_err() && b.rest().is_empty());
            }
            let mut a = args(&all);
            while a.next_bytes().is_ok() {}
            assert!(a.finish().is_ok());
        }
    }

    #[test]
    fn words_given_as_a_list_read_back_the_same() {
        let a = Args::new(Vec::new());
        assert_eq!((a.name(), a.raw_name(), a.remaining()), ("", &b""[..], 0));
        let mut a = args(&["SeT", "", "a\r\nb"]);
        assert_eq!((a.name(), a.raw_name()), ("set", &b"SeT"[..]));
        assert_eq!(a.name_bytes(), b"set");
        // A name no command has (not ASCII, or too long) is empty: it matches none.
        for odd in ["GÉT", &"X".repeat(33)] {
            let a = args(&[odd, "k"]);
            assert_eq!((a.name(), a.name_bytes()), ("", &b""[..]));
            assert_eq!(a.raw_name(), odd.as_bytes());
        }
        let long = "y".repeat(123);
        let mut b = args(&["ECHO", &long, "z"]);
        assert_eq!(b.next_bytes().unwrap(), long.as_bytes());
        assert_eq!(b.next_bytes().unwrap(), &b"z"[..]);
        assert_eq!(a.next_bytes().unwrap(), &b""[..]);
        assert_eq!(a.next_bytes().unwrap(), &b"a\r\nb"[..]);
        assert!(a.finish().is_ok());
    }

    #[test]
    fn floats() {
        let mut a = args(&["X", "1.5", "inf", "nan", " 1"]);
        assert_eq!(a.next_f64(), Ok(1.5));
        assert_eq!(a.next_f64(), Ok(f64::INFINITY));
        assert_eq!(a.next_f64(), Err(CommandError::NotFloat));
        assert_eq!(a.next_f64(), Err(CommandError::NotFloat));
    }
}

//! beanstalkd's wire format: a command is one line ending in `\r\n`; `put` is followed by
//! its body and another `\r\n`. Replies are lines too, some followed by a body.
//!
//! [`Codec`] cuts the byte stream into [`Request`]s as bytes arrive. It never goes back
//! over bytes it has looked at (it remembers how far it searched for the line's end), and
//! it never sets memory aside for a body that has not arrived: a `put` announcing 60 KB
//! waits until 60 KB are in the buffer, which holds only what was received. Lines are
//! bounded ([`MAX_LINE`], as beanstalkd's `LINE_BUF_SIZE`) and bodies by `-z`.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

/// The longest command line, `\r\n` included (beanstalkd's `LINE_BUF_SIZE`).
pub const MAX_LINE: usize = 224;
/// The longest tube name (beanstalkd's `MAX_TUBE_NAME_LEN` less its NUL).
pub const MAX_TUBE_NAME: usize = 200;

/// One command, its arguments checked. Times are in seconds, as on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Put {
        pri: u32,
        delay: u32,
        ttr: u32,
        body: Bytes,
    },
    Use(Bytes),
    Reserve,
    ReserveWithTimeout(u32),
    ReserveJob(u64),
    Delete(u64),
    Release {
        id: u64,
        pri: u32,
        delay: u32,
    },
    Bury {
        id: u64,
        pri: u32,
    },
    Touch(u64),
    Watch(Bytes),
    Ignore(Bytes),
    Peek(u64),
    PeekReady,
    PeekDelayed,
    PeekBuried,
    Kick(u32),
    KickJob(u64),
    StatsJob(u64),
    StatsTube(Bytes),
    Stats,
    ListTubes,
    ListTubeUsed,
    ListTubesWatched,
    PauseTube {
        tube: Bytes,
        delay: u32,
    },
    Quit,
}

/// What the codec hands on: a command, or the error line to answer with. Either way
/// the connection goes on (beanstalkd closes a connection only on `quit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Command(Command),
    Error(&'static str),
}

pub const BAD_FORMAT: &str = "BAD_FORMAT";
pub const UNKNOWN_COMMAND: &str = "UNKNOWN_COMMAND";
pub const JOB_TOO_BIG: &str = "JOB_TOO_BIG";
pub const EXPECTED_CRLF: &str = "EXPECTED_CRLF";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a command line; `scanned` bytes are known to hold no `\r\n`.
    Line { scanned: usize },
    /// A line too long: dropping bytes up to the next `\r\n`.
    Overlong { scanned: usize },
    /// A `put`'s body of `len` bytes (and its `\r\n`).
    Body {
        pri: u32,
        delay: u32,
        ttr: u32,
        len: usize,
    },
    /// A body too big for `-z`: dropping `left` more bytes, then `JOB_TOO_BIG`.
    TooBig { left: usize },
}

/// The request decoder of one connection.
#[derive(Debug)]
pub struct Codec {
    max_job_size: usize,
    state: State,
}

impl Codec {
    pub fn new(max_job_size: usize) -> Self {
        Codec {
            max_job_size,
            state: State::Line { scanned: 0 },
        }
    }
}

/// Where `\r\n` starts in `buf`, searching from `from` (less one: a `\r` may end the part
/// already searched).
fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(1);
    buf.get(start..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| start + i)
}

impl Decoder for Codec {
    type Item = Request;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Request>, std::io::Error> {
        loop {
            match self.state {
                State::Line { scanned } => match find_crlf(src, scanned) {
                    Some(end) if end + 2 <= MAX_LINE => {
                        // Parsed in place, then skipped (the request owns what it
                        // keeps): the buffer stays one unshared allocation, reused
                        // read after read.
                        let parsed = parse_line(&src[..end], self.max_job_size);
                        src.advance(end + 2);
                        self.state = State::Line { scanned: 0 };
                        match parsed {
                            Parsed::Done(request) => return Ok(Some(request)),
                            Parsed::Body {
                                pri,
                                delay,
                                ttr,
                                len,
                            } => {
                                self.state = State::Body {
                                    pri,
                                    delay,
                                    ttr,
                                    len,
                                }
                            }
                            Parsed::TooBig(len) => {
                                // The body and its `\r\n` (a size near 2^64 saturates: it
                                // is never all sent, and the connection drops bytes until
                                // the client gives up).
                                self.state = State::TooBig {
                                    left: len.saturating_add(2),
                                }
                            }
                        }
                    }
                    Some(end) => {
                        src.advance(end + 2);
                        return Ok(Some(Request::Error(BAD_FORMAT)));
                    }
                    None if src.len() >= MAX_LINE => {
                        self.state = State::Overlong { scanned: 0 };
                        return Ok(Some(Request::Error(BAD_FORMAT)));
                    }
                    None => {
                        self.state = State::Line { scanned: src.len() };
                        return Ok(None);
                    }
                },
                State::Overlong { scanned } => match find_crlf(src, scanned) {
                    Some(end) => {
                        src.advance(end + 2);
                        self.state = State::Line { scanned: 0 };
                    }
                    None => {
                        // Keep a last `\r`: its `\n` may be in the next read.
                        let keep = usize::from(src.last() == Some(&b'\r'));
                        src.advance(src.len() - keep);
                        self.state = State::Overlong { scanned: keep };
                        return Ok(None);
                    }
                },
                State::Body {
                    pri,
                    delay,
                    ttr,
                    len,
                } => {
                    if src.len() < len + 2 {
                        return Ok(None);
                    }
                    // A copy of exactly the body, rather than a slice of the read
                    // buffer: a slice would keep the whole buffer (16 KiB) alive for as
                    // long as the job waits in its tube, and the buffer could not be
                    // reused for the next read.
                    let body = Bytes::copy_from_slice(&src[..len]);
                    let crlf = src[len..len + 2] == *b"\r\n";
                    src.advance(len + 2);
                    self.state = State::Line { scanned: 0 };
                    if !crlf {
                        return Ok(Some(Request::Error(EXPECTED_CRLF)));
                    }
                    let put = Command::Put {
                        pri,
                        delay,
                        ttr,
                        body,
                    };
                    return Ok(Some(Request::Command(put)));
                }
                State::TooBig { left } => {
                    let n = left.min(src.len());
                    src.advance(n);
                    if n < left {
                        self.state = State::TooBig { left: left - n };
                        return Ok(None);
                    }
                    self.state = State::Line { scanned: 0 };
                    return Ok(Some(Request::Error(JOB_TOO_BIG)));
                }
            }
        }
    }
}

enum Parsed {
    Done(Request),
    /// A `put` line: its body comes next.
    Body {
        pri: u32,
        delay: u32,
        ttr: u32,
        len: usize,
    },
    /// A `put` whose body is over `-z`: skip it.
    TooBig(usize),
}

/// Parses one command line (without its `\r\n`). As beanstalkd: a known command with a
/// missing argument list is `UNKNOWN_COMMAND`; bad arguments are `BAD_FORMAT`.
fn parse_line(line: &[u8], max_job_size: usize) -> Parsed {
    let (name, rest) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], Some(&line[i + 1..])),
        None => (line, None),
    };
    let done = |r: Result<Command, &'static str>| {
        Parsed::Done(match r {
            Ok(c) => Request::Command(c),
            Err(e) => Request::Error(e),
        })
    };
    let Some(rest) = rest else {
        return done(match name {
            b"reserve" => Ok(Command::Reserve),
            b"peek-ready" => Ok(Command::PeekReady),
            b"peek-delayed" => Ok(Command::PeekDelayed),
            b"peek-buried" => Ok(Command::PeekBuried),
            b"stats" => Ok(Command::Stats),
            b"list-tubes" => Ok(Command::ListTubes),
            b"list-tube-used" => Ok(Command::ListTubeUsed),
            b"list-tubes-watched" => Ok(Command::ListTubesWatched),
            b"quit" => Ok(Command::Quit),
            _ => Err(UNKNOWN_COMMAND),
        });
    };
    let mut args = Args(rest.split(|&b| b == b' '));
    if name == b"put" {
        let header = (|| {
            let put = (args.num()?, args.num()?, args.num()?, args.num::<u64>()?);
            args.end()?;
            Ok::<_, &'static str>(put)
        })();
        return match header {
            Err(e) => done(Err(e)),
            Ok((_, _, _, len)) if len > max_job_size as u64 => {
                Parsed::TooBig(usize::try_from(len).unwrap_or(usize::MAX))
            }
            Ok((pri, delay, ttr, len)) => Parsed::Body {
                pri,
                delay,
                ttr,
                len: len as usize,
            },
        };
    }
    let command = (|| {
        let command = match name {
            b"use" => Command::Use(args.tube()?),
            b"reserve-with-timeout" => Command::ReserveWithTimeout(args.num()?),
            b"reserve-job" => Command::ReserveJob(args.num()?),
            b"delete" => Command::Delete(args.num()?),
            b"release" => Command::Release {
                id: args.num()?,
                pri: args.num()?,
                delay: args.num()?,
            },
            b"bury" => Command::Bury {
                id: args.num()?,
                pri: args.num()?,
            },
            b"touch" => Command::Touch(args.num()?),
            b"watch" => Command::Watch(args.tube()?),
            b"ignore" => Command::Ignore(args.tube()?),
            b"peek" => Command::Peek(args.num()?),
            b"kick" => Command::Kick(args.num()?),
            b"kick-job" => Command::KickJob(args.num()?),
            b"stats-job" => Command::StatsJob(args.num()?),
            b"stats-tube" => Command::StatsTube(args.tube()?),
            b"pause-tube" => Command::PauseTube {
                tube: args.tube()?,
                delay: args.num()?,
            },
            _ => return Err(UNKNOWN_COMMAND),
        };
        args.end()?;
        Ok(command)
    })();
    done(command)
}

/// Can `name` be a tube? 1 to 200 of `A-Za-z0-9-+/;.$_()`, not starting with `-`. (A
/// queue made over RESP may have any name; one that is not a tube name, such as a
/// dead-letter queue's `jobs:dlq`, is not listed to beanstalkd clients.)
pub fn is_tube_name(name: &[u8]) -> bool {
    let allowed = |b: &u8| b.is_ascii_alphanumeric() || b"-+/;.$_()".contains(b);
    !name.is_empty() && name.len() <= MAX_TUBE_NAME && name[0] != b'-' && name.iter().all(allowed)
}

/// The space-separated arguments of a line.
struct Args<'a, I: Iterator<Item = &'a [u8]>>(I);

impl<'a, I: Iterator<Item = &'a [u8]>> Args<'a, I> {
    /// A decimal number: digits only, in range.
    fn num<T: std::str::FromStr>(&mut self) -> Result<T, &'static str> {
        let word = self.0.next().ok_or(BAD_FORMAT)?;
        if word.is_empty() || !word.iter().all(u8::is_ascii_digit) {
            return Err(BAD_FORMAT);
        }
        std::str::from_utf8(word)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(BAD_FORMAT)
    }

    /// A tube name ([`is_tube_name`]).
    fn tube(&mut self) -> Result<Bytes, &'static str> {
        let word = self.0.next().ok_or(BAD_FORMAT)?;
        if !is_tube_name(word) {
            return Err(BAD_FORMAT);
        }
        Ok(Bytes::copy_from_slice(word))
    }

    fn end(&mut self) -> Result<(), &'static str> {
        match self.0.next() {
            None => Ok(()),
            Some(_) => Err(BAD_FORMAT),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], chunk: usize) -> Vec<Request> {
        let mut codec = Codec::new(16);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            while let Some(r) = codec.decode(&mut buf).unwrap() {
                out.push(r);
            }
        }
        out
    }

    fn cmd(c: Command) -> Request {
        Request::Command(c)
    }

    #[test]
    fn table() {
        let b = |s: &'static str| Bytes::from_static(s.as_bytes());
        let err = Request::Error;
        let long = format!("use {}\r\n", "a".repeat(MAX_LINE));
        let cases: Vec<(&[u8], Vec<Request>)> = vec![
            (
                b"put 1 2 3 5\r\nhello\r\n",
                vec![cmd(Command::Put {
                    pri: 1,
                    delay: 2,
                    ttr: 3,
                    body: b("hello"),
                })],
            ),
            (b"put 0 0 1 0\r\n\r\n", vec![cmd(Command::Put {
                pri: 0,
                delay: 0,
                ttr: 1,
                body: Bytes::new(),
            })]),
            (b"put 1 2 3 5\r\nhelloXY", vec![err(EXPECTED_CRLF)]),
            (b"put 1 2 3 17\r\n01234567890123456\r\nstats\r\n", vec![err(JOB_TOO_BIG), cmd(Command::Stats)]),
            (b"put 1 2 3\r\n", vec![err(BAD_FORMAT)]),
            (b"put -1 2 3 4\r\n", vec![err(BAD_FORMAT)]),
            (b"put 4294967296 0 1 1\r\n", vec![err(BAD_FORMAT)]),
            (b"put\r\n", vec![err(UNKNOWN_COMMAND)]),
            (b"\r\n", vec![err(UNKNOWN_COMMAND)]),
            (b"frobnicate 1\r\n", vec![err(UNKNOWN_COMMAND)]),
            (b"reserve\r\nreserve-with-timeout 5\r\n", vec![cmd(Command::Reserve), cmd(Command::ReserveWithTimeout(5))]),
            (b"reserve-with-timeout x\r\n", vec![err(BAD_FORMAT)]),
            (b"delete 42\r\ndelete 42 43\r\ndelete\r\n", vec![cmd(Command::Delete(42)), err(BAD_FORMAT), err(UNKNOWN_COMMAND)]),
            (b"release 1 2 3\r\nbury 4 5\r\ntouch 6\r\n", vec![
                cmd(Command::Release { id: 1, pri: 2, delay: 3 }),
                cmd(Command::Bury { id: 4, pri: 5 }),
                cmd(Command::Touch(6)),
            ]),
            (b"use a-b_c(1);$.+/\r\nwatch -x\r\nignore a b\r\n", vec![
                cmd(Command::Use(b("a-b_c(1);$.+/"))),
                err(BAD_FORMAT),
                err(BAD_FORMAT),
            ]),
            (b"use caf\xc3\xa9\r\n", vec![err(BAD_FORMAT)]),
            (long.as_bytes(), vec![err(BAD_FORMAT)]),
            (b"kick 10\r\nkick-job 3\r\npeek 9\r\npeek-ready\r\npeek-delayed\r\npeek-buried\r\n", vec![
                cmd(Command::Kick(10)),
                cmd(Command::KickJob(3)),
                cmd(Command::Peek(9)),
                cmd(Command::PeekReady),
                cmd(Command::PeekDelayed),
                cmd(Command::PeekBuried),
            ]),
            (b"stats-job 1\r\nstats-tube default\r\nlist-tubes\r\nlist-tube-used\r\nlist-tubes-watched\r\n", vec![
                cmd(Command::StatsJob(1)),
                cmd(Command::StatsTube(b("default"))),
                cmd(Command::ListTubes),
                cmd(Command::ListTubeUsed),
                cmd(Command::ListTubesWatched),
            ]),
            (b"pause-tube t 5\r\nreserve-job 7\r\nquit\r\n", vec![
                cmd(Command::PauseTube { tube: b("t"), delay: 5 }),
                cmd(Command::ReserveJob(7)),
                cmd(Command::Quit),
            ]),
        ];
        for (input, want) in cases {
            for chunk in [1, 2, 3, 7, input.len()] {
                assert_eq!(
                    decode_all(input, chunk),
                    want,
                    "{:?} in chunks of {chunk}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn an_overlong_line_is_dropped_to_its_end_and_the_next_command_is_served() {
        let mut input = vec![b'x'; 5000];
        input.extend_from_slice(b"\r\nstats\r\n");
        for chunk in [1, 100, 5009] {
            assert_eq!(
                decode_all(&input, chunk),
                vec![Request::Error(BAD_FORMAT), cmd(Command::Stats)]
            );
        }
    }

    #[test]
    fn the_largest_size_announced_is_skipped_without_overflow() {
        let mut codec = Codec::new(16);
        let mut buf = BytesMut::from(&b"put 0 0 1 18446744073709551615\r\nxyz"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert!(buf.is_empty(), "the body's bytes are dropped as they come");
        assert_eq!(
            codec.state,
            State::TooBig {
                left: usize::MAX - 3
            }
        );
    }

    #[test]
    fn a_body_announced_but_not_sent_holds_no_memory_for_itself() {
        let mut codec = Codec::new(usize::MAX);
        let mut buf = BytesMut::from(&b"put 0 0 1 4000000000\r\n"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert!(buf.capacity() < 1024, "{}", buf.capacity());
    }
}

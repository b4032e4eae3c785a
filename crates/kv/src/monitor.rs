//! `MONITOR`: a client that watches every command the server runs, as it runs.
//!
//! After `MONITOR` a connection stops being a request/reply client and becomes a feed:
//! each command any client runs afterwards arrives as one status line, in Redis's format,
//!
//! ```text
//! +1700000000.123456 [0 127.0.0.1:50000] "set" "k" "v"
//! ```
//!
//! (the time, the database, the client's address, then the words quoted with C-style
//! escapes). It is the debugging tool for "what is my application actually sending?".
//! Admin commands (`CONFIG`, `SLOWLOG`, ...) and credentials (`AUTH`, `HELLO`) are not
//! shown, as in Redis.
//!
//! A monitor is a reader that can fall behind a busy server, so its queue is bounded by
//! bytes: one that lets [`MAX_QUEUED`] bytes pile up is disconnected, the policy Redis
//! applies to a slow pub/sub subscriber.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

/// Bytes of lines a monitor may have queued and not yet read.
const MAX_QUEUED: usize = 32 * 1024 * 1024;

struct Feed {
    tx: mpsc::UnboundedSender<Bytes>,
    queued: Arc<AtomicUsize>,
}

/// The monitoring clients (one registry per server).
#[derive(Default)]
pub struct Monitors {
    /// Any monitor at all? Checked on every command, so that a server nobody monitors
    /// pays one load.
    active: AtomicBool,
    feeds: Mutex<Vec<Feed>>,
}

/// A monitoring connection's end of its feed.
#[derive(Debug)]
pub struct Watching {
    rx: mpsc::UnboundedReceiver<Bytes>,
    queued: Arc<AtomicUsize>,
}

impl Watching {
    /// The next lines (all that are waiting, joined); `None` once the server dropped
    /// this monitor for falling behind.
    pub async fn next(&mut self) -> Option<Bytes> {
        let first = self.rx.recv().await?;
        Some(self.drain(first))
    }

    /// Lines already waiting, without waiting.
    pub fn try_next(&mut self) -> Option<Bytes> {
        let first = self.rx.try_recv().ok()?;
        Some(self.drain(first))
    }

    fn drain(&mut self, first: Bytes) -> Bytes {
        let mut out = BytesMut::from(&first[..]);
        while let Ok(more) = self.rx.try_recv() {
            out.extend_from_slice(&more);
        }
        self.queued.fetch_sub(out.len(), Ordering::Relaxed);
        out.freeze()
    }
}

impl Monitors {
    /// Registers a new monitor.
    pub fn add(&self) -> Watching {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        crate::lock(&self.feeds).push(Feed {
            tx,
            queued: queued.clone(),
        });
        self.active.store(true, Ordering::Relaxed);
        Watching { rx, queued }
    }

    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Sends one executed command to every monitor. `words`: its name and arguments.
    pub fn feed(&self, db: usize, client: SocketAddr, words: &[Bytes]) {
        let line = format_line(now_micros(), db, client, words);
        let mut feeds = crate::lock(&self.feeds);
        feeds.retain(|f| {
            let queued = f.queued.fetch_add(line.len(), Ordering::Relaxed) + line.len();
            // Over its budget, or gone: dropping the sender ends the monitor's feed.
            queued <= MAX_QUEUED && f.tx.send(line.clone()).is_ok()
        });
        self.active.store(!feeds.is_empty(), Ordering::Relaxed);
    }
}

fn now_micros() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

/// One monitor line: `+secs.micros [db addr] "word" ...\r\n`.
pub fn format_line(unix_micros: u128, db: usize, client: SocketAddr, words: &[Bytes]) -> Bytes {
    let mut out = format!(
        "+{}.{:06} [{db} {client}]",
        unix_micros / 1_000_000,
        unix_micros % 1_000_000
    )
    .into_bytes();
    for word in words {
        out.push(b' ');
        quote(word, &mut out);
    }
    out.extend_from_slice(b"\r\n");
    Bytes::from(out)
}

/// Redis's `sdscatrepr`: a double-quoted string with `\n`, `\r`, `\t`, `\a`, `\b`, `\\`
/// and `\"` escaped, and other non-printable bytes as `\xHH`.
fn quote(word: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in word {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            7 => out.extend_from_slice(b"\\a"),
            8 => out.extend_from_slice(b"\\b"),
            b' '..=b'~' => out.push(b),
            _ => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_look_like_redis_lines() {
        let addr: SocketAddr = "127.0.0.1:50000".parse().unwrap_or_else(|_| unreachable!());
        let words = [
            Bytes::from_static(b"set"),
            Bytes::from_static(b"k"),
            Bytes::from_static(b"a \"b\"\n\x01"),
        ];
        let line = format_line(1_700_000_000_123_456, 0, addr, &words);
        assert_eq!(
            &line[..],
            &b"+1700000000.123456 [0 127.0.0.1:50000] \"set\" \"k\" \"a \\\"b\\\"\\n\\x01\"\r\n"[..]
        );
    }

    #[tokio::test]
    async fn a_monitor_that_falls_behind_is_dropped() {
        let monitors = Monitors::default();
        let mut watching = monitors.add();
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap_or_else(|_| unreachable!());
        monitors.feed(0, addr, &[Bytes::from_static(b"ping")]);
        assert!(
            watching
                .next()
                .await
                .is_some_and(|l| l.ends_with(b"\"ping\"\r\n"))
        );
        let big = Bytes::from(vec![b'x'; MAX_QUEUED]);
        monitors.feed(0, addr, &[big]);
        assert!(!monitors.active());
        assert!(watching.next().await.is_none());
    }
}

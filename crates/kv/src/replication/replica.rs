//! The replica's side: `REPLICAOF`, and the link task that connects to the primary,
//! resyncs, applies the stream in order and acknowledges it.
//!
//! The link speaks RESP to the primary's ordinary port, as Redis replicas do; it shares
//! nothing with the primary but the kv crate's formats ([`crate::codec`], the snapshot).
//! When the connection drops it reconnects (100 ms, doubling to 1 s) and asks to continue
//! from its offset; the primary answers with a partial or a full resync.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use proto::{Args, CommandError, Frame, FrameParser, Limits, Mode, RequestParser, encode_command};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{info, warn};

use super::{Upstream, lock, new_replid, snapshot};
use crate::codec;
use crate::keyspace::Change;
use crate::server::Kv;

/// A primary sends a `PING` every second; this long without a byte means the link is dead.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a replica acknowledges when nothing arrives.
const ACK_INTERVAL: Duration = Duration::from_secs(1);

/// `REPLICAOF host port` / `REPLICAOF NO ONE` (and `SLAVEOF`).
pub(crate) fn replicaof(kv: &Kv, args: &mut Args) -> Result<Frame, CommandError> {
    let host = args.next_str()?;
    let port = args.next_str()?;
    if host.eq_ignore_ascii_case("no") && port.eq_ignore_ascii_case("one") {
        promote(kv);
        return Ok(Frame::ok());
    }
    let port: u16 = port.parse().map_err(|_| CommandError::NotInteger)?;
    let upstream = lock(&kv.replication.upstream).clone();
    if upstream.is_some_and(|up| up.host == host && up.port == port) {
        return Ok(Frame::Simple(Bytes::from_static(
            b"OK Already connected to specified master",
        )));
    }
    let Some(kv) = kv
        .replication
        .server
        .get()
        .and_then(|(me, _, _)| me.upgrade())
    else {
        return Err(CommandError::err("the server is not running"));
    };
    follow(&kv, host, port);
    Ok(Frame::ok())
}

/// Becomes a replica of `host:port`: writes are refused from now on, local expiry stops
/// deleting, our own replicas (if we were a primary) are disconnected, and the link
/// task starts.
pub(crate) fn follow(kv: &Arc<Kv>, host: String, port: u16) {
    let repl = &kv.replication;
    let up = Arc::new(Upstream {
        host,
        port,
        up: AtomicBool::new(false),
        offset: AtomicU64::new(repl.offset()),
        last_io: AtomicU64::new(0),
        created: Instant::now(),
        stop: repl.shutdown_token().child_token(),
    });
    kv.read(|ks, _| {
        ks.set_follower(true);
        if let Some(old) = lock(&repl.upstream).replace(up.clone()) {
            old.stop.cancel();
        }
        lock(&repl.backlog).take();
        repl.epoch.fetch_add(1, Ordering::Relaxed);
    });
    repl.stream.send_modify(|_| {});
    info!(host = %up.host, port = up.port, "replicating");
    tokio::spawn(run(Arc::downgrade(kv), up));
}

/// `REPLICAOF NO ONE`: stop following and accept writes. The data and the offset are
/// kept (a promoted replica continues the history it has); a new replication id says
/// that from here on it is a different history.
fn promote(kv: &Kv) {
    let repl = &kv.replication;
    kv.read(|ks, _| {
        let Some(up) = lock(&repl.upstream).take() else {
            return;
        };
        up.stop.cancel();
        ks.set_follower(false);
        repl.base_offset
            .store(up.offset.load(Ordering::Relaxed), Ordering::Relaxed);
        *lock(&repl.replid) = new_replid();
        info!("promoted to primary");
    });
}

/// Reconnects until stopped.
async fn run(kv: Weak<Kv>, up: Arc<Upstream>) {
    let mut delay = Duration::from_millis(100);
    loop {
        let Some(server) = kv.upgrade() else { return };
        let result = tokio::select! {
            _ = up.stop.cancelled() => return,
            result = link(&server, &up) => result,
        };
        drop(server);
        up.up.store(false, Ordering::Relaxed);
        match result {
            Ok(()) => delay = Duration::from_millis(100),
            Err(e) => warn!(host = %up.host, port = up.port, "replication link: {e}"),
        }
        tokio::select! {
            _ = up.stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

/// One connection to the primary.
struct Connection {
    stream: TcpStream,
    input: BytesMut,
    limits: Limits,
    /// Keeps its place in a frame arriving over many reads (a large snapshot).
    frames: FrameParser,
    /// The stream after the handshake: commands (`CHANGE <record>`, `PING`), parsed as a
    /// server parses its clients' requests, and as Redis's replica reads its primary's
    /// stream. The general frame parser walks each frame twice and builds a list per
    /// frame; this one walks it once and hands the record over as a slice of the read
    /// buffer (measured on the replica, SET -P 16: ~2,500 instructions per change
    /// spent parsing before).
    requests: RequestParser,
    /// Where each command to the primary is encoded (reused: a `REPLCONF ACK` follows
    /// every batch the replica applies).
    out: BytesMut,
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

impl Connection {
    async fn send(&mut self, words: &[&str]) -> io::Result<()> {
        self.out.clear();
        encode_command(&mut self.out, words.iter().map(|w| w.as_bytes()));
        self.stream.write_all(&self.out).await
    }

    /// The next frame and its size in bytes, reading as needed.
    async fn frame(&mut self, up: &Upstream) -> io::Result<(Frame, usize)> {
        loop {
            if let Some(parsed) = self.parsed()? {
                return Ok(parsed);
            }
            self.fill(up).await?;
        }
    }

    /// A frame already buffered, if any.
    fn parsed(&mut self) -> io::Result<Option<(Frame, usize)>> {
        let before = self.input.len();
        match self.frames.next(&mut self.input, &self.limits, Mode::Reply) {
            Ok(Some(frame)) => Ok(Some((frame, before - self.input.len()))),
            Ok(None) => Ok(None),
            Err(e) => Err(invalid(e.to_string())),
        }
    }

    /// A stream command already buffered, if any, and its size in bytes.
    fn command(&mut self) -> io::Result<Option<(Args, usize)>> {
        let before = self.input.len();
        match self.requests.next(&mut self.input, &self.limits) {
            Ok(Some(args)) => Ok(Some((args, before - self.input.len()))),
            Ok(None) => Ok(None),
            Err(e) => Err(invalid(e.to_string())),
        }
    }

    /// Reads more during the handshake, where nothing else watches for a silent primary.
    async fn fill(&mut self, up: &Upstream) -> io::Result<()> {
        match tokio::time::timeout(READ_TIMEOUT, self.read(up)).await {
            Err(_) => Err(silent()),
            Ok(read) => read,
        }
    }

    /// Reads more, with no timer of its own: the streaming loop's once-a-second tick
    /// watches `last_io` instead. (A timeout around every read would arm and cancel a
    /// timer per read, and a replica under write load reads thousands of times a second.)
    async fn read(&mut self, up: &Upstream) -> io::Result<()> {
        self.input.reserve(64 * 1024);
        match self.stream.read_buf(&mut self.input).await? {
            0 => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "primary closed the link",
            )),
            _ => {
                up.last_io
                    .store(up.created.elapsed().as_millis() as u64, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// `REPLCONF ACK <offset>`: sent after every batch the replica applies, which in
    /// sync mode is what releases the primary's waiting writes.
    async fn ack(&mut self, offset: u64) -> io::Result<()> {
        self.send(&["REPLCONF", "ACK", &offset.to_string()]).await
    }
}

fn silent() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "primary silent")
}

fn simple(frame: &Frame) -> io::Result<String> {
    match frame {
        Frame::Simple(text) => Ok(String::from_utf8_lossy(text).into_owned()),
        Frame::Error(text) => Err(invalid(String::from_utf8_lossy(text))),
        other => Err(invalid(format!("unexpected reply {other:?}"))),
    }
}

/// Applies changes from the primary in one step under the keyspace lock.
fn apply(kv: &Kv, changes: Vec<Change>) {
    if !changes.is_empty() {
        kv.read(|ks, _| changes.into_iter().for_each(|c| ks.replay(c)));
    }
}

/// A change record from a stream command: `CHANGE <record>` (or `None` for `PING`).
fn change_of(mut command: Args) -> io::Result<Option<Change>> {
    let name = command.raw_name();
    if name.eq_ignore_ascii_case(b"PING") && command.is_empty() {
        return Ok(None);
    }
    if !name.eq_ignore_ascii_case(b"CHANGE") || command.remaining() != 1 {
        return Err(invalid("unknown stream command"));
    }
    let record = command
        .next_bytes()
        .map_err(|_| invalid("unknown stream command"))?;
    codec::decode_change(&record)
        .map(Some)
        .map_err(|e| invalid(format!("bad change record: {e:?}")))
}

/// Handshake, resync, then the stream until the link fails.
async fn link(kv: &Kv, up: &Upstream) -> io::Result<()> {
    let repl = &kv.replication;
    let address = (up.host.as_str(), up.port);
    let stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(address))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    let mut conn = Connection {
        stream,
        input: BytesMut::with_capacity(64 * 1024),
        limits: Limits::default(),
        frames: FrameParser::default(),
        requests: RequestParser::default(),
        out: BytesMut::new(),
    };
    let my_port = repl.server.get().map_or(0, |(_, _, port)| *port);
    conn.send(&["REPLCONF", "listening-port", &my_port.to_string()])
        .await?;
    simple(&conn.frame(up).await?.0)?;
    let replid = lock(&repl.replid).clone();
    let offset = up.offset.load(Ordering::Relaxed).to_string();
    conn.send(&["PSYNC", &replid, &offset]).await?;
    let reply = simple(&conn.frame(up).await?.0)?;
    let mut words = reply.split(' ');
    match (words.next(), words.next(), words.next()) {
        (Some("CONTINUE"), Some(id), None) => {
            *lock(&repl.replid) = id.to_string();
            info!(offset, "partial resync");
        }
        (Some("FULLRESYNC"), Some(id), Some(start)) => {
            let start: u64 = start
                .parse()
                .map_err(|_| invalid("bad FULLRESYNC offset"))?;
            let Frame::Bulk(payload) = conn.frame(up).await?.0 else {
                return Err(invalid("expected a snapshot"));
            };
            let changes =
                snapshot::decode(&payload).map_err(|e| invalid(format!("bad snapshot: {e:?}")))?;
            let keys = changes.len().saturating_sub(1);
            apply(kv, changes);
            up.offset.store(start, Ordering::Relaxed);
            *lock(&repl.replid) = id.to_string();
            info!(keys, offset = start, "full resync");
        }
        _ => return Err(invalid(format!("unexpected PSYNC reply {reply}"))),
    }
    up.up.store(true, Ordering::Relaxed);
    let mut offset = up.offset.load(Ordering::Relaxed);
    conn.ack(offset).await?;
    let mut acked = offset;
    let mut tick = tokio::time::interval(ACK_INTERVAL);
    loop {
        // Everything buffered, applied in one step, then acknowledged.
        let mut batch = Vec::new();
        while let Some((command, size)) = conn.command()? {
            offset += size as u64;
            batch.extend(change_of(command)?);
        }
        // A script running here must not see the data change under it.
        kv.scripts.gate.idle().await;
        apply(kv, batch);
        up.offset.store(offset, Ordering::Relaxed);
        if offset != acked {
            conn.ack(offset).await?;
            acked = offset;
        }
        tokio::select! {
            read = conn.read(up) => read?,
            _ = tick.tick() => {
                let since_io = (up.created.elapsed().as_millis() as u64)
                    .saturating_sub(up.last_io.load(Ordering::Relaxed));
                if since_io > READ_TIMEOUT.as_millis() as u64 {
                    return Err(silent());
                }
                conn.ack(offset).await?;
            }
        }
    }
}

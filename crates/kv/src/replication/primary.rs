//! The primary's side: `PSYNC` (full or partial resync), each replica's sender, the
//! acknowledgements, `WAIT`, sync mode, the heartbeat and `INFO replication`.
//!
//! A replica's connection is an ordinary client connection that sent `PSYNC`. From then
//! on the server pushes it the stream (`Server::next_push`), reading from the backlog at
//! the link's own offset, and the replica's `REPLCONF ACK`s arrive as ordinary commands.
//! A replica that falls further behind than the backlog holds is disconnected; it
//! reconnects and gets a full resync.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proto::{Args, CommandError, Frame, Protocol};
use service::{CancellationToken, Client, CommandSpec, Deferred, InfoSection, Push, Reply};
use tokio::sync::watch;

use super::held::Gate;
use super::{Acks, Backlog, Follower, Mode, PING, Replication, lock, replica, snapshot};
use crate::server::{Kv, Session};

/// Most bytes pushed to a replica in one write.
const MAX_PUSH: usize = 256 * 1024;

/// Replication commands (added to kv's own table).
pub(crate) static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "replicaof",
        3,
        &["admin", "noscript", "stale"],
        "server",
        "Makes this server a replica of another, or (NO ONE) a primary.",
    )
    .syntax("host port | NO ONE"),
    CommandSpec::new(
        "slaveof",
        3,
        &["admin", "noscript", "stale"],
        "server",
        "Alias of REPLICAOF.",
    )
    .syntax("host port | NO ONE"),
    CommandSpec::new(
        "replconf",
        -1,
        &["admin", "noscript", "loading", "stale"],
        "server",
        "Replication handshake and acknowledgements (used by replicas).",
    ),
    CommandSpec::new(
        "psync",
        -3,
        &["admin", "noscript"],
        "server",
        "Starts the replication stream (used by replicas).",
    )
    .syntax("replicationid offset"),
    CommandSpec::new(
        "wait",
        3,
        &["noscript"],
        "generic",
        "Blocks until this client's writes are acknowledged by N replicas, or a timeout.",
    )
    .syntax("numreplicas timeout"),
    CommandSpec::new(
        "role",
        1,
        &["noscript", "loading", "stale", "fast"],
        "server",
        "Returns the replication role.",
    ),
];

/// Per-connection replication state.
#[derive(Debug, Default)]
pub struct ReplSession {
    /// Set when this connection is a replica's link.
    link: Option<Link>,
    /// `REPLCONF listening-port`.
    port: u16,
    /// Stream offset just past this client's last write (`WAIT`, sync mode).
    pub(crate) written: u64,
    /// `written` as [`after_write`] last saw it: a command wrote when `written` moved
    /// past this. (`written` itself stays, for a later `WAIT`.)
    answered: u64,
    /// Sync mode: the gate holding this batch's replies, while replies may join it.
    gate: Option<Arc<Gate>>,
}

/// A replica's link, held by its connection; dropping it (the connection closed)
/// unregisters the replica.
#[derive(Debug)]
pub struct Link {
    id: u64,
    /// Offset of the next byte to push.
    sent: u64,
    /// False until the `PSYNC` reply is written: the stream must follow it.
    started: bool,
    epoch: u64,
    stream: watch::Receiver<u64>,
    acks: Arc<Acks>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.acks.followers().remove(&self.id);
        self.acks.bump();
    }
}

impl Replication {
    /// Bytes for `link`, if the backlog has any past its position.
    fn take(&self, link: &mut Link) -> Option<Push> {
        let guard = lock(&self.backlog);
        let Some(backlog) = guard.as_ref() else {
            return Some(Push::Disconnect(
                "this server stopped being a primary".into(),
            ));
        };
        if self.epoch.load(Ordering::Relaxed) != link.epoch {
            return Some(Push::Disconnect("replication history changed".into()));
        }
        match backlog.read(link.sent, MAX_PUSH) {
            Err(_) => Some(Push::Disconnect(
                "replica fell behind the backlog; it must resync".into(),
            )),
            Ok(bytes) if bytes.is_empty() => None,
            Ok(bytes) => {
                link.sent += bytes.len() as u64;
                Some(Push::Bytes(Bytes::from(bytes)))
            }
        }
    }

    /// The next stream bytes for a replica's connection (pending forever for others).
    pub(crate) async fn next_push(&self, session: &mut ReplSession) -> Push {
        let Some(link) = session.link.as_mut() else {
            return std::future::pending().await;
        };
        link.started = true;
        loop {
            link.stream.borrow_and_update();
            self.senders_waiting.store(true, Ordering::Release);
            if let Some(push) = self.take(link) {
                return push;
            }
            if link.stream.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Stream bytes already waiting, once the link's `PSYNC` reply has been written.
    pub(crate) fn pending_push(&self, session: &mut ReplSession) -> Option<Bytes> {
        let link = session.link.as_mut().filter(|l| l.started)?;
        match self.take(link)? {
            Push::Bytes(bytes) => Some(bytes),
            // `next_push` reports the disconnect.
            Push::Disconnect(_) => None,
        }
    }
}

/// Sends a `PING` down the stream once a second while replicas are connected, so they
/// can tell a quiet primary from a dead link.
pub(crate) async fn heartbeat(kv: Arc<Kv>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let repl = &kv.replication;
        if repl.acks.followers().is_empty() {
            continue;
        }
        let end = match lock(&repl.backlog).as_mut() {
            Some(backlog) => {
                backlog.append(PING, None);
                backlog.end()
            }
            None => continue,
        };
        repl.wake_senders(end);
    }
}

/// Runs a replication command, or hands `args` back. None waits (`WAIT` answers
/// [`Reply::Deferred`]), so this is not `async`: every kv command passes through here.
pub(crate) fn execute(kv: &Kv, client: &mut Client<Session>, mut args: Args) -> Reply {
    let result = match args.name() {
        "replicaof" | "slaveof" => replica::replicaof(kv, &mut args),
        "replconf" => return replconf(kv, client, &mut args),
        "psync" => return psync(kv, client, &mut args),
        "wait" => return wait(kv, client, &mut args),
        "role" => Ok(role(kv)),
        _ => return Reply::Unhandled(args),
    };
    match result {
        Ok(frame) => Reply::One(frame),
        Err(e) => e.into(),
    }
}

fn replconf(kv: &Kv, client: &mut Client<Session>, args: &mut Args) -> Reply {
    let session = &mut client.session.repl;
    loop {
        let Some(option) = args.next_keyword() else {
            return Frame::ok().into();
        };
        let Ok(value) = args.next_bytes() else {
            return CommandError::Syntax.into();
        };
        match option.as_str() {
            "LISTENING-PORT" => match std::str::from_utf8(&value)
                .ok()
                .and_then(|p| p.parse().ok())
            {
                Some(port) => session.port = port,
                None => return CommandError::NotInteger.into(),
            },
            "ACK" => {
                let Some(offset) = std::str::from_utf8(&value)
                    .ok()
                    .and_then(|o| o.parse().ok())
                else {
                    return Reply::Many(Vec::new());
                };
                if let Some(link) = &session.link {
                    let acks = &kv.replication.acks;
                    if let Some(f) = acks.followers().get_mut(&link.id) {
                        f.ack = f.ack.max(offset);
                        f.ack_at = Instant::now();
                    }
                    acks.bump();
                }
                // Redis never answers an ACK: the replica is not reading replies.
                return Reply::Many(Vec::new());
            }
            // capa, ip-address, getack...: accepted, nothing to do.
            _ => {}
        }
    }
}

/// `PSYNC replid offset`: continue from the backlog, or send a snapshot.
fn psync(kv: &Kv, client: &mut Client<Session>, args: &mut Args) -> Reply {
    let repl = &kv.replication;
    if repl.is_replica() {
        return CommandError::err("this server is a replica; chained replication is not supported")
            .into();
    }
    let (Ok(wanted_id), Ok(wanted_offset)) = (args.next_str(), args.next_str()) else {
        return CommandError::Syntax.into();
    };
    let wanted_offset = wanted_offset.parse::<u64>().ok();
    let replid = lock(&repl.replid).clone();
    // Under the keyspace lock: the snapshot and its offset describe the same instant,
    // and every later change lands in the backlog after that offset.
    let (start, epoch, snapshot) = kv.read(|ks, now| {
        ks.start_journal();
        let mut guard = lock(&repl.backlog);
        let backlog = guard.get_or_insert_with(|| {
            Backlog::new(
                repl.config.backlog_size,
                repl.base_offset.load(Ordering::Relaxed),
            )
        });
        let epoch = repl.epoch.load(Ordering::Relaxed);
        match wanted_offset {
            Some(offset) if wanted_id == replid && backlog.covers(offset) => (offset, epoch, None),
            _ => (backlog.end(), epoch, Some(ks.snapshot(now))),
        }
    });
    let acks = repl.acks.clone();
    let id = repl.next_follower.fetch_add(1, Ordering::Relaxed);
    acks.followers().insert(
        id,
        Follower {
            ip: client.addr().ip().to_string(),
            port: client.session.repl.port,
            // A full resync has nothing acknowledged until the snapshot is loaded.
            ack: if snapshot.is_some() { 0 } else { start },
            ack_at: Instant::now(),
        },
    );
    acks.bump();
    let counter = if snapshot.is_some() {
        &repl.sync_full
    } else {
        &repl.sync_partial_ok
    };
    counter.fetch_add(1, Ordering::Relaxed);
    client.set_flags("S");
    client.session.repl.link = Some(Link {
        id,
        sent: start,
        started: false,
        epoch,
        stream: repl.stream.subscribe(),
        acks,
    });
    match snapshot {
        None => Frame::Simple(Bytes::from(format!("CONTINUE {replid}"))).into(),
        Some(changes) => Reply::Many(vec![
            Frame::Simple(Bytes::from(format!("FULLRESYNC {replid} {start}"))),
            Frame::Bulk(Bytes::from(snapshot::encode(&changes))),
        ]),
    }
}

fn parse_timeout(args: &mut Args) -> Result<Option<Duration>, CommandError> {
    match args.next_int()? {
        ms if ms < 0 => Err(CommandError::err("timeout is negative")),
        0 => Ok(None),
        ms => Ok(Some(Duration::from_millis(ms as u64))),
    }
}

/// `WAIT numreplicas timeout`: how many replicas acknowledged this client's last write.
fn wait(kv: &Kv, client: &mut Client<Session>, args: &mut Args) -> Reply {
    let repl = &kv.replication;
    if repl.is_replica() {
        return CommandError::err("WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.").into();
    }
    let wanted = match args.next_int() {
        Ok(n) => n.max(0) as usize,
        Err(e) => return e.into(),
    };
    let timeout = match parse_timeout(args) {
        Ok(t) => t,
        Err(e) => return e.into(),
    };
    let offset = client.session.repl.written;
    let acks = repl.acks();
    Reply::Deferred(Deferred::new(async move {
        Frame::Integer(acks.wait(offset, wanted, timeout).await as i64)
    }))
}

/// Sync mode: holds a write's reply until `--sync-replicas` replicas acknowledged it.
/// Every reply the server gives passes through here (`protocol`: the connection's).
///
/// A batch's replies are held together, behind one [`Gate`] (see [`super::held`]): the
/// first write of the batch that is not yet acknowledged opens it, and every later reply
/// of the batch joins it while it is open. A write that is already acknowledged when its
/// command returns (a replica faster than this client), with no gate open, is not held
/// at all.
pub(crate) fn after_write(
    repl: &Replication,
    session: &mut ReplSession,
    protocol: Protocol,
    reply: Reply,
) -> Reply {
    let offset = session.written;
    let wrote = offset != session.answered;
    // (`written` itself stays, for a later `WAIT`.)
    session.answered = offset;
    let reply = match &session.gate {
        Some(gate) => match gate.join(reply, wrote.then_some(offset)) {
            // Held in the gate: nothing goes to the output now.
            None => return Reply::Many(Vec::new()),
            // Sealed: this reply goes to the output, after the gate.
            Some(reply) => {
                session.gate = None;
                reply
            }
        },
        None => reply,
    };
    let config = &repl.config;
    if !wrote || config.mode != Mode::Sync {
        return reply;
    }
    let Reply::One(frame) = reply else {
        return reply;
    };
    if repl.acks.synced(offset) {
        return Reply::One(frame);
    }
    let (wanted, timeout) = (config.sync_replicas, config.sync_timeout);
    let (gate, reply) = Gate::open(repl.acks(), protocol, offset, frame, wanted, timeout);
    session.gate = Some(gate);
    reply
}

impl ReplSession {
    /// Something goes to the output that did not pass through [`after_write`] (a
    /// command the service refused): no later reply may join the open gate.
    pub(crate) fn seal(&mut self) {
        if let Some(gate) = self.gate.take() {
            gate.seal();
        }
    }

    /// The open gate, if any, for pushes to join (see [`Gate::push`]).
    pub(crate) fn open_gate(&mut self) -> Option<&Arc<Gate>> {
        if self.gate.as_ref().is_some_and(|gate| !gate.is_open()) {
            self.gate = None;
        }
        self.gate.as_ref()
    }
}

/// `ROLE`.
fn role(kv: &Kv) -> Frame {
    let repl = &kv.replication;
    if let Some(up) = lock(&repl.upstream).clone() {
        let state = if up.up.load(Ordering::Relaxed) {
            "connected"
        } else {
            "connect"
        };
        return Frame::Array(vec![
            Frame::bulk("slave"),
            Frame::bulk(up.host.clone()),
            Frame::Integer(i64::from(up.port)),
            Frame::bulk(state),
            Frame::Integer(up.offset.load(Ordering::Relaxed) as i64),
        ]);
    }
    let followers = repl
        .acks
        .followers()
        .values()
        .map(|f| {
            Frame::Array(vec![
                Frame::bulk(f.ip.clone()),
                Frame::bulk(f.port.to_string()),
                Frame::bulk(f.ack.to_string()),
            ])
        })
        .collect();
    Frame::Array(vec![
        Frame::bulk("master"),
        Frame::Integer(repl.offset() as i64),
        Frame::Array(followers),
    ])
}

/// `INFO replication`, with Redis's field names; `lag` is Redis's (seconds since the
/// last acknowledgement), `lag_bytes` and `lag_ms` are how far behind the replica is.
pub(crate) fn info(repl: &Replication) -> InfoSection {
    let replid = lock(&repl.replid).clone();
    let mut section = InfoSection::new("replication");
    let upstream = lock(&repl.upstream).clone();
    if let Some(up) = &upstream {
        let offset = up.offset.load(Ordering::Relaxed);
        let since_io = (up.created.elapsed().as_millis() as u64)
            .saturating_sub(up.last_io.load(Ordering::Relaxed));
        section = section
            .field("role", "slave")
            .field("master_host", &up.host)
            .field("master_port", up.port)
            .field(
                "master_link_status",
                if up.up.load(Ordering::Relaxed) {
                    "up"
                } else {
                    "down"
                },
            )
            .field("master_last_io_seconds_ago", since_io / 1000)
            .field("master_sync_in_progress", 0)
            .field("slave_read_repl_offset", offset)
            .field("slave_repl_offset", offset)
            .field("slave_read_only", 1)
            .field("connected_slaves", 0)
            .field("master_replid", replid)
            .field("master_repl_offset", offset);
        return section;
    }
    let now = Instant::now();
    let followers: Vec<Follower> = repl.acks.followers().values().cloned().collect();
    let guard = lock(&repl.backlog);
    let offset = guard
        .as_ref()
        .map_or(repl.base_offset.load(Ordering::Relaxed), Backlog::end);
    section = section
        .field("role", "master")
        .field("connected_slaves", followers.len());
    for (i, f) in followers.iter().enumerate() {
        let lag_ms = match guard.as_ref().and_then(|b| b.oldest_write_after(f.ack)) {
            Some(at) => now.saturating_duration_since(at).as_millis(),
            None => 0,
        };
        section = section.field(
            format!("slave{i}"),
            format!(
                "ip={},port={},state=online,offset={},lag={},lag_bytes={},lag_ms={lag_ms}",
                f.ip,
                f.port,
                f.ack,
                now.saturating_duration_since(f.ack_at).as_secs(),
                offset.saturating_sub(f.ack),
            ),
        );
    }
    let (active, size, first, histlen) = match guard.as_ref() {
        Some(b) => (1, b.capacity(), b.start(), b.end() - b.start()),
        None => (0, repl.config.backlog_size, 0, 0),
    };
    section
        .field("master_failover_state", "no-failover")
        .field("master_replid", replid)
        .field("master_repl_offset", offset)
        .field("repl_backlog_active", active)
        .field("repl_backlog_size", size)
        .field("repl_backlog_first_byte_offset", first)
        .field("repl_backlog_histlen", histlen)
        .field("sync_full", repl.sync_full.load(Ordering::Relaxed))
        .field(
            "sync_partial_ok",
            repl.sync_partial_ok.load(Ordering::Relaxed),
        )
        .field("infralab_replication", repl.config.mode.name())
        .field("infralab_sync_replicas", repl.config.sync_replicas)
}

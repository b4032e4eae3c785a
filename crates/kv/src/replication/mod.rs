//! # Replication: read replicas, synchronous or asynchronous
//!
//! The course's *scaling databases*: keep one primary for writes, copy every write to
//! replicas, and serve reads from them. A replica is another kv process started with
//! `--replicaof HOST:PORT` (or told `REPLICAOF host port`); it rejects writes with Redis's
//! `READONLY` error and serves reads.
//!
//! ## What travels: effects, from the one write path
//!
//! Every change the primary makes goes through [`crate::keyspace::Keyspace::apply`], which
//! journals it as a [`Change`] (the key's new record with its *absolute* deadline, a
//! removal, a flushed or swapped database). The server drains that journal after each
//! command, under the keyspace lock, and hands it to persistence *and* to
//! [`Replication::feed`] — so the stream has exactly the disk's order, and a new command
//! or data type replicates with no code here. Each change travels as one RESP array,
//! `CHANGE <codec::encode_change(change)>`; the primary also sends `PING` once a second.
//!
//! ## What a replicated write costs the primary
//!
//! Redis appends each write to its replication buffer and writes a replica's output once
//! per turn of its event loop. kv does the same: [`Replication::feed`] encodes the change
//! straight into the backlog (a buffer reused, no allocation per write), and wakes the
//! replica's sender only if it is idle ([`Replication::wake_senders`]); every write made
//! before the sender runs just accumulates, and it takes them all in one `write()`. The
//! replica reads the stream as a server reads requests (`proto::RequestParser`: one walk,
//! the record a slice of the read buffer), applies what one read brought under one lock,
//! and acknowledges that batch with one `REPLCONF ACK`. Measured with callgrind on the
//! primary (SET -c 50 -P 16 with an async replica): feeding the stream was ~3,100
//! instructions per write, most of it bincode growing a fresh `Vec` byte by byte and a
//! watch channel's wake-up per write.
//!
//! ## Offsets, backlog, partial and full resync
//!
//! Both sides count the stream's bytes: the primary's `master_repl_offset`, the replica's
//! `slave_repl_offset`. A replica connects like a Redis replica does, over RESP on the
//! primary's normal port: `REPLCONF listening-port P`, then `PSYNC <replid> <offset>`.
//! - `+CONTINUE <replid>` (*partial resync*): the primary's [`backlog::Backlog`] still
//!   holds every byte from that offset, so it just streams from there.
//! - `+FULLRESYNC <replid> <offset>` then one bulk string, the *snapshot*: the whole
//!   dataset (TTLs included, as absolute deadlines) taken under the lock at `offset`,
//!   followed by the stream from `offset`. Used for a new replica, a replica of another
//!   history (different replid), or one whose offset the backlog no longer covers.
//!
//! The replica acknowledges (`REPLCONF ACK <offset>`) after applying each batch it reads
//! and once a second: that is what `INFO replication`'s per-replica `offset`, `lag_bytes`
//! and `lag_ms` report, and what `WAIT` and sync mode wait on. A replica process that
//! restarts keeps no replid/offset, so it always full-resyncs (Redis 4+ persists them).
//!
//! ## Sync versus async: consistency against latency
//!
//! - `--replication async` (default, as Redis): the client gets its reply as soon as the
//!   primary applied the write. Fast; a replica may lag, so a read there can be stale, and
//!   a failover can lose the writes that had not reached it yet.
//! - `--replication sync --sync-replicas N --sync-timeout MS`: the reply waits until N
//!   replicas acknowledged an offset at or past the write. Every acknowledged write is on
//!   N replicas (promote one and nothing acknowledged is lost), for one network round trip
//!   more per write. Pipelined and concurrent writes share it, as writes share an fsync
//!   in a group commit: one `REPLCONF ACK <offset>` releases every write up to that
//!   offset, and a write already covered finds out with one atomic load (`Acks::synced`).
//!   A client's batch waits once: its replies are held together behind one gate that
//!   opens when its last write is acknowledged ([`held`]). If they do not acknowledge in
//!   time the client gets `-NOTREPLICATED`: the write *is* applied on the primary, just
//!   not replicated — the honest answer, since it cannot be taken back.
//!
//! `WAIT numreplicas timeout` gives the same guarantee for one client on demand.
//!
//! ## Expiry on replicas
//!
//! A replica never expires a key itself: the primary sends the delete (a `Change::Remove`
//! from its lazy lookup or its sweep), so both copies delete the same key at the same
//! point of the stream. Between the deadline and the delete's arrival is a window where
//! the replica still holds a dead key. It is closed on reads: a replica's lookup checks
//! the deadline against its own clock and treats the key as missing, without deleting it
//! (`Journal::follower`). So a replica never returns a key the primary has expired — up to
//! clock skew between the two machines, since deadlines are absolute wall-clock times (as
//! in Redis).

mod backlog;
mod held;
mod primary;
mod replica;
mod snapshot;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use proto::frame::put_decimal;
use service::CancellationToken;
use tokio::sync::watch;

use crate::codec;
use crate::keyspace::Change;
use crate::lock;
use crate::server::Kv;

pub use backlog::Backlog;
pub(crate) use primary::{COMMANDS, after_write, execute, info};
pub use primary::{Link, ReplSession};

/// `--replication`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Mode {
    /// Reply first; replicas catch up.
    #[default]
    Async,
    /// Reply once `--sync-replicas` replicas acknowledged the write.
    Sync,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Async => "async",
            Mode::Sync => "sync",
        }
    }
}

/// Replication settings from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub sync_replicas: usize,
    pub sync_timeout: Duration,
    pub backlog_size: usize,
    /// `--replicaof HOST:PORT`: start as a replica of this primary.
    pub replicaof: Option<(String, u16)>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Async,
            sync_replicas: 1,
            sync_timeout: Duration::from_millis(1000),
            backlog_size: 1 << 20,
            replicaof: None,
        }
    }
}

/// Parses `--replicaof HOST:PORT`.
pub fn parse_address(text: &str) -> Result<(String, u16), String> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("expected HOST:PORT, got {text}"))?;
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("invalid port in {text}"))?;
    Ok((host.to_string(), port))
}

/// A replica connected to this primary, as `INFO replication` shows it.
#[derive(Debug, Clone)]
struct Follower {
    ip: String,
    port: u16,
    /// The offset it has acknowledged applying.
    ack: u64,
    ack_at: Instant,
}

/// Acknowledgements, shared with the futures of writes waiting for them.
#[derive(Debug)]
pub(crate) struct Acks {
    followers: Mutex<BTreeMap<u64, Follower>>,
    /// Bumped on every acknowledgement and on every change of followers.
    changed: watch::Sender<u64>,
    /// `--sync-replicas`: how many replicas a sync-mode write waits for.
    quorum: usize,
    /// The highest offset `quorum` replicas have all acknowledged, recomputed at every
    /// [`Self::bump`]. One `REPLCONF ACK` releases every write up to its offset, as one
    /// fsync releases every write of a group commit: a pipeline's writes after the first
    /// find themselves acknowledged already with one atomic load (see [`Self::synced`]).
    synced: AtomicU64,
    /// The server's shutdown token (set once it listens): a wait ends with the server.
    /// Kept here so that a sync write's reply holds one `Arc<Acks>` and nothing else
    /// shared (cloning a token takes its lock, on every write).
    shutdown: OnceLock<CancellationToken>,
}

impl Acks {
    fn new(quorum: usize) -> Self {
        Acks {
            followers: Mutex::new(BTreeMap::new()),
            changed: watch::Sender::new(0),
            quorum,
            synced: AtomicU64::new(0),
            shutdown: OnceLock::new(),
        }
    }

    fn followers(&self) -> MutexGuard<'_, BTreeMap<u64, Follower>> {
        lock(&self.followers)
    }

    fn bump(&self) {
        let synced = quorum_offset(&self.followers(), self.quorum);
        self.synced.store(synced, Ordering::Release);
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Have `--sync-replicas` replicas acknowledged `offset`? (The fast path of sync mode's
    /// wait; [`Self::wait`] is the slow one.)
    fn synced(&self, offset: u64) -> bool {
        self.synced.load(Ordering::Acquire) >= offset
    }

    /// How many replicas have acknowledged `offset`.
    fn count(&self, offset: u64) -> usize {
        self.followers()
            .values()
            .filter(|f| f.ack >= offset)
            .count()
    }

    /// Waits until `wanted` replicas acknowledged `offset`, or `timeout` passes (`None`:
    /// no limit), or the server shuts down. Returns how many did.
    ///
    /// Every acknowledgement wakes every waiter (one watch); a sync write's waiter that
    /// is still not covered goes back to sleep after one atomic load, without taking the
    /// followers' lock.
    pub(crate) async fn wait(
        &self,
        offset: u64,
        wanted: usize,
        timeout: Option<Duration>,
    ) -> usize {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        // Borrowed, not cloned: a clone takes the token's lock, once per wait.
        let shutdown = async {
            match self.shutdown.get() {
                Some(token) => token.cancelled().await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(shutdown);
        let mut changed = self.changed.subscribe();
        loop {
            changed.borrow_and_update();
            let enough = if wanted == self.quorum {
                self.synced(offset)
            } else {
                self.count(offset) >= wanted
            };
            if enough {
                return self.count(offset);
            }
            let expired = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = changed.changed() => {}
                _ = expired => return self.count(offset),
                _ = &mut shutdown => return self.count(offset),
            }
        }
    }
}

/// The highest offset that at least `quorum` of `followers` have acknowledged.
fn quorum_offset(followers: &BTreeMap<u64, Follower>, quorum: usize) -> u64 {
    match quorum {
        0 => u64::MAX,
        1 => followers.values().map(|f| f.ack).max().unwrap_or(0),
        _ => {
            let mut acks: Vec<u64> = followers.values().map(|f| f.ack).collect();
            acks.sort_unstable_by(|a, b| b.cmp(a));
            acks.get(quorum - 1).copied().unwrap_or(0)
        }
    }
}

/// The link to our primary, when this server is a replica.
#[derive(Debug)]
pub(crate) struct Upstream {
    host: String,
    port: u16,
    up: std::sync::atomic::AtomicBool,
    /// Bytes of the primary's stream applied here.
    offset: AtomicU64,
    /// Milliseconds since `created` of the last byte received.
    last_io: AtomicU64,
    created: Instant,
    stop: CancellationToken,
}

/// The server's replication state: both roles, since `REPLICAOF` switches between them.
pub struct Replication {
    config: Config,
    /// This history's id: a replica resumes only a stream with the same id.
    replid: Mutex<String>,
    /// `None` until the first replica attaches (no replica, no cost).
    backlog: Mutex<Option<Backlog>>,
    /// Where a backlog created later starts (a promoted replica continues its offset).
    base_offset: AtomicU64,
    /// The backlog's end offset, for the replicas' senders to wait on.
    stream: watch::Sender<u64>,
    /// Set by a replica's sender that found nothing to send and is about to wait: only
    /// then does a write wake it (see [`Self::wake_senders`]).
    senders_waiting: AtomicBool,
    /// Bumped whenever the backlog is replaced: links of the old history must go.
    epoch: AtomicU64,
    acks: Arc<Acks>,
    next_follower: AtomicU64,
    /// Resyncs served: full, and partial (`INFO`'s `sync_full`, `sync_partial_ok`).
    sync_full: AtomicU64,
    sync_partial_ok: AtomicU64,
    upstream: Mutex<Option<Arc<Upstream>>>,
    /// The server itself and its shutdown token, for tasks (set once listening).
    server: OnceLock<(Weak<Kv>, CancellationToken, u16)>,
}

fn new_replid() -> String {
    format!(
        "{:016x}{:016x}{:08x}",
        rand::random::<u64>(),
        rand::random::<u64>(),
        rand::random::<u32>()
    )
}

/// The stream's framing of a change: `*2\r\n$6\r\nCHANGE\r\n$<n>\r\n<record>\r\n`,
/// encoded where it goes: the record's length is measured first (a walk over the
/// change that copies nothing), so the record is encoded straight after its header.
fn frame_change(change: &Change, out: &mut Vec<u8>) {
    out.extend_from_slice(b"*2\r\n$6\r\nCHANGE\r\n$");
    put_decimal(out, codec::change_len(change) as i64);
    out.extend_from_slice(b"\r\n");
    codec::append_change(out, change);
    out.extend_from_slice(b"\r\n");
}

/// The heartbeat in the stream.
const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

impl Replication {
    pub fn new(config: Config) -> Self {
        let quorum = config.sync_replicas;
        Replication {
            config,
            replid: Mutex::new(new_replid()),
            backlog: Mutex::new(None),
            base_offset: AtomicU64::new(0),
            stream: watch::Sender::new(0),
            senders_waiting: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            acks: Arc::new(Acks::new(quorum)),
            next_follower: AtomicU64::new(1),
            sync_full: AtomicU64::new(0),
            sync_partial_ok: AtomicU64::new(0),
            upstream: Mutex::new(None),
            server: OnceLock::new(),
        }
    }

    /// Sync mode: the backlog exists from the start (the server journals from the start
    /// too), so a write made before any replica attached still waits for one.
    pub(crate) fn start_backlog_if_sync(&self) {
        if self.config.mode == Mode::Sync {
            *lock(&self.backlog) = Some(Backlog::new(self.config.backlog_size, 0));
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Called once the server listens: starts the heartbeat, and the link to a primary
    /// if `--replicaof` was given.
    pub fn attach(kv: &Arc<Kv>, shutdown: CancellationToken, port: u16) {
        let this = &kv.replication;
        if this
            .server
            .set((Arc::downgrade(kv), shutdown.clone(), port))
            .is_err()
        {
            return;
        }
        let _ = this.acks.shutdown.set(shutdown.clone());
        tokio::spawn(primary::heartbeat(kv.clone(), shutdown));
        if let Some((host, port)) = this.config.replicaof.clone() {
            replica::follow(kv, host, port);
        }
    }

    /// `master_repl_offset`.
    pub fn offset(&self) -> u64 {
        match &*lock(&self.backlog) {
            Some(b) => b.end(),
            None => self.base_offset.load(Ordering::Relaxed),
        }
    }

    /// Appends a command's changes to the stream. Called by the server with the keyspace
    /// lock held, right where it hands the same changes to persistence, so the stream's
    /// order is the keyspace's order. Returns the offset just past them, or `None` when no
    /// replica ever attached (no backlog).
    pub fn feed(&self, changes: &[Change]) -> Option<u64> {
        let mut guard = lock(&self.backlog);
        let backlog = guard.as_mut()?;
        backlog.append_write(Instant::now(), |out| {
            changes.iter().for_each(|change| frame_change(change, out))
        });
        let end = backlog.end();
        drop(guard);
        self.wake_senders(end);
        Some(end)
    }

    /// Tells the replicas' senders the stream grew to `end`, if one is waiting for that.
    ///
    /// A write wakes the senders only when one of them is idle: while a sender has not
    /// yet run since the last wake, the bytes of every later write simply accumulate in
    /// the backlog, and it takes them all at once when it runs — one `write()` to the
    /// replica for everything the event loop did meanwhile, as Redis writes a replica's
    /// output once per turn of its loop. (A watch's send on every write would cost a
    /// lock and a wake-up per write for nothing.) A sender sets the flag *before* it looks
    /// at the backlog, so a write either lands where it looks or sees the flag.
    pub(crate) fn wake_senders(&self, end: u64) {
        if self.senders_waiting.swap(false, Ordering::AcqRel) {
            self.stream.send_replace(end);
        }
    }

    /// Is this server a replica right now?
    pub fn is_replica(&self) -> bool {
        lock(&self.upstream).is_some()
    }

    pub(crate) fn acks(&self) -> Arc<Acks> {
        self.acks.clone()
    }

    pub(crate) fn shutdown_token(&self) -> CancellationToken {
        self.server
            .get()
            .map(|(_, token, _)| token.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn followers(acks: &[u64]) -> BTreeMap<u64, Follower> {
        acks.iter()
            .enumerate()
            .map(|(i, &ack)| {
                let follower = Follower {
                    ip: "127.0.0.1".into(),
                    port: 0,
                    ack,
                    ack_at: Instant::now(),
                };
                (i as u64, follower)
            })
            .collect()
    }

    #[test]
    fn the_quorum_offset_is_what_enough_replicas_all_have() {
        let three = followers(&[50, 10, 30]);
        assert_eq!(quorum_offset(&three, 1), 50);
        assert_eq!(quorum_offset(&three, 2), 30);
        assert_eq!(quorum_offset(&three, 3), 10);
        // More replicas wanted than connected: nothing is acknowledged by enough of them.
        assert_eq!(quorum_offset(&three, 4), 0);
        assert_eq!(quorum_offset(&followers(&[]), 1), 0);
        assert_eq!(quorum_offset(&followers(&[]), 0), u64::MAX);
    }

    #[test]
    fn frames_carry_the_record_and_its_decimal_length() {
        let change = Change::SwapDb { a: 1, b: 2 };
        let record = codec::encode_change(&change);
        let mut out = b"before".to_vec();
        frame_change(&change, &mut out);
        let mut expected = b"before*2\r\n$6\r\nCHANGE\r\n$".to_vec();
        expected.extend_from_slice(format!("{}\r\n", record.len()).as_bytes());
        expected.extend_from_slice(&record);
        expected.extend_from_slice(b"\r\n");
        assert_eq!(out, expected);
    }
}

//! Wiring: the keyspace behind a lock, persistence, the expiry sweep, INFO and CONFIG.
//!
//! ## One lock, held briefly
//!
//! All 16 databases live in one [`Keyspace`] behind one mutex. A command takes the lock,
//! does its in-memory work (microseconds: no I/O ever happens under it) and releases it.
//! One lock keeps multi-key commands (`MSET`, `RENAME`, `COPY`, `SWAPDB`) atomic without
//! lock ordering, and is what `MULTI`/`EXEC` will need.
//!
//! Like Redis, kv serves every client from one event loop on one thread (see
//! [`crate::start_with_clock`]), so the lock is never contended. It stays because `Kv` is
//! shared (`Arc`) with code Rust cannot prove runs on that thread (the store is loaded on
//! a blocking thread at startup), and an uncontended lock costs two atomic instructions,
//! which also keeps kv correct on a multi-threaded runtime. More threads would
//! parallelise only parsing and socket work, while every command still queues for the one
//! lock and drags the keyspace's cache lines from core to core.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use proto::{Args, CommandError, Frame};
use service::{CancellationToken, Client, CommandSpec, InfoSection, Push, Reply, Server};

use crate::clock::{Anchor, Clock};
use crate::commands::messaging;
use crate::commands::{self, Command};
use crate::events::Events;
use crate::keyspace::{DATABASES, Keyspace, Mutation, Outcome, SWEEP_SAMPLE};
use crate::replication::{self, Replication};
use crate::storage::{Fsync, Storage};
use hub::commands::tracking::Reads;

mod observe;
mod report;
mod units;

/// Per-connection state.
#[derive(Debug, Default)]
pub struct Session {
    /// The database `SELECT` chose.
    pub db: usize,
    /// Journal position of this client's last write not yet known durable.
    unsynced: u64,
    /// Journal position of this client's last write: written to the kernel before its
    /// reply goes out ([`Kv::batch_executed`](service::Server::batch_executed)).
    unwritten: u64,
    /// Replication: a replica's link, or this client's last write offset.
    pub(crate) repl: crate::replication::ReplSession,
    /// `MULTI`'s queue and `WATCH`'s keys (see [`crate::transaction`]).
    pub(crate) tx: crate::transaction::Transaction,
    /// Pub/sub subscriptions and the queue of pushes: messages, keyspace notifications,
    /// invalidations (see [`crate::events`]).
    pub(crate) pubsub: hub::Subscriptions,
    /// `CLIENT TRACKING`'s state (see `hub::tracker`).
    pub(crate) client_cache: hub::ClientCache,
    /// After `MONITOR`: the feed of every command the server runs (see [`crate::monitor`]).
    pub(crate) monitor: Option<crate::monitor::Watching>,
    /// When this client's last command ended, if it was in the batch being served: the
    /// next command's start for the slow log (see [`Kv::observe_start`]).
    lap: Option<Instant>,
    /// Keys this client's own writes invalidated for itself (`CLIENT TRACKING`): pushed
    /// after the command's reply, not before it (see [`Kv::answer`]).
    invalidated: Vec<Bytes>,
    /// The wall clock as read at this batch's first timed command, if the clock can be
    /// anchored: the later commands of the batch tell the time from their start instant
    /// (see [`Kv::command_time`]).
    anchor: Option<Anchor>,
}

/// How far a session's writes reached (journal and replication positions): what a reply
/// after them waits for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Written {
    unsynced: u64,
    unwritten: u64,
    replicated: u64,
}

impl Session {
    /// The session scripts' commands run in. One serves every script (see
    /// [`Session::start_script`]): making and dropping a `Session` per script cost
    /// about 350 instructions and 40 instruction-cache misses.
    pub(crate) fn for_scripts() -> Session {
        Session::default()
    }

    /// A script starts in the caller's database, with none of the previous script's
    /// writes to wait for. Only what a script's commands can change is reset (its
    /// database and its write positions): they cannot subscribe, watch, track, monitor
    /// or be a replica's link (see `commands::scripting::NOT_IN_SCRIPTS`), and nothing
    /// answers through this session, so no reply of it is held for replicas.
    pub(crate) fn start_script(&mut self, db: usize) {
        self.db = db;
        self.unsynced = 0;
        self.unwritten = 0;
        self.repl.written = 0;
    }

    /// Where this session's writes reached.
    pub(crate) fn written(&self) -> Written {
        Written {
            unsynced: self.unsynced,
            unwritten: self.unwritten,
            replicated: self.repl.written,
        }
    }

    /// After a script that reached `script`: its writes are this client's, so its reply
    /// waits for them as after any write.
    pub(crate) fn absorb(&mut self, script: Written) {
        self.unsynced = self.unsynced.max(script.unsynced);
        self.unwritten = self.unwritten.max(script.unwritten);
        self.repl.written = self.repl.written.max(script.replicated);
    }
}

impl AsMut<hub::Subscriptions> for Session {
    fn as_mut(&mut self) -> &mut hub::Subscriptions {
        &mut self.pubsub
    }
}

impl AsRef<hub::Subscriptions> for Session {
    fn as_ref(&self) -> &hub::Subscriptions {
        &self.pubsub
    }
}

impl AsMut<hub::ClientCache> for Session {
    fn as_mut(&mut self) -> &mut hub::ClientCache {
        &mut self.client_cache
    }
}

impl AsRef<hub::ClientCache> for Session {
    fn as_ref(&self) -> &hub::ClientCache {
        &self.client_cache
    }
}

/// The kv server.
pub struct Kv {
    keyspace: Mutex<Keyspace>,
    clock: Arc<dyn Clock>,
    storage: Option<Storage>,
    /// `--maxmemory` (0: no limit); `CONFIG SET maxmemory` changes it.
    maxmemory: AtomicU64,
    dir: Option<PathBuf>,
    started_unix: u64,
    /// Read replicas: the stream fed by [`Self::publish`], or the link to our primary.
    pub(crate) replication: Replication,
    /// Clients blocked in `BLPOP` and friends (see [`crate::blocking`]).
    pub(crate) blocked: crate::blocking::Blocked,
    /// Pub/sub, keyspace notifications and client-side caching (see [`crate::events`]).
    pub(crate) events: Arc<Events>,
    /// The encoding thresholds `OBJECT ENCODING` applies (see [`crate::encoding`]).
    pub(crate) encodings: crate::encoding::Thresholds,
    /// `SLOWLOG` and `LATENCY` (see [`crate::slowlog`]).
    pub(crate) slowlog: crate::slowlog::SlowLog,
    /// `MONITOR`'s clients (see [`crate::monitor`]).
    pub(crate) monitors: crate::monitor::Monitors,
    /// Cancelled by `SHUTDOWN`: stops this server (see [`Self::with_shutdown`]).
    stopping: CancellationToken,
    /// `SHUTDOWN NOSAVE` asked for a stop without the final fold.
    skip_fold: AtomicBool,
    /// `CONFIG SET save`'s value, shown back by `CONFIG GET`. kv's checkpoints follow
    /// the journal's size and `SAVE`, not Redis's save points (see [`crate::storage`]).
    save_points: Mutex<String>,
    /// Lua scripting: the VM and the gate that makes a script atomic (see
    /// [`crate::scripting`]).
    pub(crate) scripts: crate::scripting::Scripts,
    /// While an `EXEC` runs: the time it began, which its commands all see (0: none runs;
    /// see [`Self::now`]).
    frozen_ms: AtomicU64,
    /// While one of kv's data commands runs on the path without a future: the time it
    /// began, told from its start instant (0: none, or the clock cannot be anchored;
    /// see [`Self::command_time`]).
    command_ms: AtomicU64,
}

impl Kv {
    /// Opens the store: in memory only, or loaded from `dir` and persisted there.
    pub fn open(
        dir: Option<PathBuf>,
        fsync: Fsync,
        load_truncated: bool,
        maxmemory: u64,
        clock: Arc<dyn Clock>,
    ) -> Result<Kv, sled::Error> {
        let now = clock.now_ms();
        let mut keyspace = Keyspace::new(dir.is_some());
        let storage = match &dir {
            Some(dir) => Some(Storage::open(
                dir,
                fsync,
                load_truncated,
                &mut keyspace,
                now,
            )?),
            None => None,
        };
        Ok(Kv {
            keyspace: Mutex::new(keyspace),
            clock,
            storage,
            maxmemory: AtomicU64::new(maxmemory),
            dir,
            started_unix: now / 1000,
            replication: Replication::new(replication::Config::default()),
            blocked: crate::blocking::Blocked::default(),
            events: Arc::new(Events::default()),
            encodings: crate::encoding::Thresholds::default(),
            slowlog: crate::slowlog::SlowLog::default(),
            monitors: crate::monitor::Monitors::default(),
            stopping: CancellationToken::new(),
            skip_fold: AtomicBool::new(false),
            save_points: Mutex::new(String::new()),
            scripts: crate::scripting::Scripts::default(),
            frozen_ms: AtomicU64::new(0),
            command_ms: AtomicU64::new(0),
        })
    }

    /// Sets the replication options (before the server starts). Sync mode streams from
    /// the start, so that even the first write waits for its replicas.
    pub fn with_replication(mut self, config: replication::Config) -> Self {
        if config.mode == replication::Mode::Sync {
            self.lock().start_journal();
        }
        self.replication = Replication::new(config);
        self.replication.start_backlog_if_sync();
        self
    }

    /// The time commands see, in Unix milliseconds: the clock's, except while an `EXEC`
    /// runs, when it is the time `EXEC` began (see [`Self::begin`]), and while a data
    /// command runs, when it is the time that command began (see [`Self::command_time`]).
    pub fn now(&self) -> u64 {
        match self.frozen_ms.load(Ordering::Relaxed) {
            0 => match self.command_ms.load(Ordering::Relaxed) {
                0 => self.clock.now_ms(),
                started => started,
            },
            frozen => frozen,
        }
    }

    /// The token that stops this server: `SHUTDOWN` cancels it (before the server starts).
    pub fn with_shutdown(mut self, token: CancellationToken) -> Self {
        self.stopping = token;
        self
    }

    /// `SHUTDOWN`: a checkpoint first if asked, then stop serving. The data is flushed by
    /// [`Server::shutdown`] once the connections are closed.
    pub(crate) async fn stop(&self, leave: crate::commands::Leave) {
        match leave {
            crate::commands::Leave::Save => self.save().await,
            crate::commands::Leave::NoSave => self.skip_fold.store(true, Ordering::Relaxed),
            crate::commands::Leave::Default => {}
        }
        self.stopping.cancel();
    }

    /// Every reply leaves through here: sync mode holds a write's reply until replicas
    /// acknowledged it (see [`replication::after_write`]).
    fn answer(&self, client: &mut Client<Session>, reply: Reply) -> Reply {
        let protocol = client.protocol;
        let reply =
            replication::after_write(&self.replication, &mut client.session.repl, protocol, reply);
        if client.session.invalidated.is_empty() {
            return reply;
        }
        self.invalidate_after(&mut client.session, reply)
    }

    /// The invalidations of a tracking client's own writes, after the reply of the
    /// command that made them, as Redis sends them: a client that cached a value this
    /// reply carries (`MULTI`, `GET k`, `INCR k`, `EXEC`) must hear that it is stale after
    /// it, or it would keep the stale value. A reply the connection writes later (one
    /// waiting for the disk or a replica) cannot take a push behind it: the push is
    /// queued at once then, as before.
    #[cold]
    #[inline(never)]
    fn invalidate_after(&self, session: &mut Session, reply: Reply) -> Reply {
        let keys = std::mem::take(&mut session.invalidated);
        let push = |keys| Frame::Push(vec![Frame::bulk("invalidate"), Frame::bulk_array(keys)]);
        match reply {
            Reply::One(frame) => Reply::Many(vec![frame, push(keys)]),
            Reply::Many(mut frames) => {
                frames.push(push(keys));
                Reply::Many(frames)
            }
            other => {
                if let Some(id) = session.client_cache.id() {
                    self.events.tracker.release(id, keys);
                }
                other
            }
        }
    }

    /// A command queued by `MULTI`, from [`Server::execute_now`]. Out of line, as
    /// [`Self::execute_other_now`], so the data commands' path stays short (see
    /// [`Self::record`]).
    #[inline(never)]
    fn queue_now(&self, client: &mut Client<Session>, args: Args) -> Reply {
        // Queueing is not running: like Redis, the slow log skips it. The command
        // is timed in `EXEC`'s turn, as part of `EXEC` (which reads the clock itself).
        client.session.lap = None;
        let observed = self.monitors.active().then(|| args.clone());
        // (`QUIT` and `RESET` come back: the service runs them.)
        let reply = crate::transaction::queue(self, client, args).unwrap_or_else(Reply::Unhandled);
        self.observe_end(client, None, observed.as_ref(), false);
        reply
    }

    /// Transactions, replication, pub/sub, and the service's own commands, from
    /// [`Server::execute_now`]: these keep their arguments, so the slow log keeps a view
    /// of them (a reference count).
    #[inline(never)]
    fn execute_other_now(&self, client: &mut Client<Session>, args: Args) -> Reply {
        let started = self.observe_start(&mut client.session);
        let observed = (started.is_some() || self.monitors.active()).then(|| args.clone());
        let reply = match crate::transaction::queue(self, client, args) {
            Ok(reply) => reply,
            Err(args) => match replication::execute(self, client, args) {
                Reply::Unhandled(args) => match messaging::execute(self, client, args) {
                    Reply::Unhandled(args) => commands::execute_now(self, client, args),
                    reply => reply,
                },
                reply => reply,
            },
        };
        self.observe_end(client, started, observed.as_ref(), false);
        reply
    }

    fn lock(&self) -> MutexGuard<'_, Keyspace> {
        crate::lock(&self.keyspace)
    }

    /// Sends the journal to replication and storage; call with the lock held so order
    /// is preserved. Returns the position of the last change and the replication offset
    /// just past it (if a replica ever attached), if there were any changes.
    fn publish(&self, ks: &mut Keyspace) -> Option<(u64, Option<u64>)> {
        // No writer: nothing comes back to hold.
        let _ = self.observed(ks, &crate::notify::Plan::default(), None);
        let changes = ks.changes();
        // An `EXEC` publishes its changes once, as one transaction, when it ends.
        if changes.is_empty() || ks.in_transaction() {
            return None;
        }
        let seq = ks.journal().seq();
        let offset = self.replication.feed(changes);
        if let Some(storage) = &self.storage {
            storage.append(changes, seq);
        }
        ks.clear_changes();
        Some((seq, offset))
    }

    /// The write path: every command that changes data comes through here.
    pub fn write(
        &self,
        session: &mut Session,
        mutation: Mutation,
    ) -> Result<Outcome, CommandError> {
        let db = session.db;
        self.write_to(session, db, mutation)
    }

    /// [`Self::write`] against a given database.
    pub fn write_to(
        &self,
        session: &mut Session,
        db: usize,
        mutation: Mutation,
    ) -> Result<Outcome, CommandError> {
        let now = self.now();
        let mut ks = self.lock();
        if let Some(refused) = self.refuses(&ks, true, mutation.may_grow()) {
            return Err(refused);
        }
        let flags = self.events.flags();
        let mut plan = if crate::notify::active(flags) {
            crate::notify::plan(&mutation, db)
        } else {
            crate::notify::Plan::default()
        };
        // `new` events: the keys absent before the write and present after it.
        let absent: Vec<(usize, Bytes)> = if flags & crate::notify::NEW != 0 {
            plan.keys()
                .into_iter()
                .filter(|(db, key)| !ks.exists(*db, key, now))
                .collect()
        } else {
            Vec::new()
        };
        let before = self.storage.as_ref().map(|_| ks.used_memory());
        let outcome = ks.apply(db, mutation, now);
        if let (Some(storage), Some(before)) = (&self.storage, before) {
            // The checkpoint may still hold a large value this write freed.
            let freed = before.saturating_sub(ks.used_memory());
            storage.freed(freed, ks.journal().seq());
        }
        plan.created = absent
            .into_iter()
            .filter(|(db, key)| ks.exists(*db, key, now))
            .collect();
        let writer = session.client_cache.id();
        let own = self.observed(&mut ks, &plan, writer);
        if !own.is_empty() {
            session.invalidated.extend(own);
        }
        if ks.track_ready && !ks.in_transaction() {
            // Clients blocked on a list this write filled are served now, in order.
            crate::blocking::serve(&self.blocked, &mut ks, now);
        }
        if let Some((seq, offset)) = self.publish(&mut ks) {
            session.unsynced = seq;
            session.unwritten = seq;
            session.repl.written = offset.unwrap_or(session.repl.written);
        }
        outcome
    }

    /// Tells [`Events`] what the last command touched (`plan`: the keyspace
    /// notifications it may send; `writer`: its client, for `NOLOOP`). With the lock held,
    /// so notifications and invalidations go out in the order of the changes.
    /// Returns the writer's own invalidations (see [`Events::after`]).
    fn observed(
        &self,
        ks: &mut Keyspace,
        plan: &crate::notify::Plan,
        writer: Option<u64>,
    ) -> Vec<Bytes> {
        let touched = ks.take_touched();
        if touched.is_empty() {
            return Vec::new();
        }
        let replica = ks.is_follower();
        let own = self
            .events
            .after(touched, plan, writer, replica, Instant::now);
        if !self.events.observing() {
            ks.observe(false);
        }
        own
    }

    /// Does the client's command wait for something else by nature (a blocking pop, the
    /// disk: [`Command::waits`]), so that its time is not its cost? A script that waits
    /// waits for itself (run on the VM's thread): the slow log wants it, as Redis's does.
    fn waits(client: &Client<Session>) -> bool {
        client
            .spec()
            .and_then(data_command)
            .is_some_and(Command::must_wait)
    }

    /// Before a tracking client's command: what it reads, for `CLIENT TRACKING`. Not for
    /// a command `MULTI` queues: a queued read is remembered when `EXEC` runs it (see
    /// `transaction::exec`).
    fn reads(client: &Client<Session>, args: &Args) -> Option<Reads> {
        // Most clients do not track: spare them the lookup of the command's keys.
        if !client.session.client_cache.tracking || Self::queues(client, args) {
            return None;
        }
        Reads::before(client, commands::lookup(args.name()), args)
    }

    /// Is this command one `MULTI` queues rather than runs?
    fn queues(client: &Client<Session>, args: &Args) -> bool {
        client.session.tx.queueing() && !matches!(args.name(), "exec" | "discard")
    }

    /// After a tracking client's command: see [`Reads::remember`].
    pub(crate) fn remember(&self, reads: Option<Reads>) {
        if let Some(reads) = reads {
            reads.remember(&self.events.tracker);
        }
    }

    /// Turns on noting what writes touch if notifications or tracking need it (they turn
    /// it off themselves, see [`Self::observed`]).
    pub(crate) fn observe_changes(&self) {
        let on = self.events.observing();
        self.lock().observe(on);
    }

    /// Why a write would be refused now, if it would: this is a replica (`READONLY`), or
    /// memory is over `--maxmemory` and the write may grow it (`OOM`).
    fn refuses(&self, ks: &Keyspace, write: bool, grows: bool) -> Option<CommandError> {
        if write && ks.is_follower() {
            return Some(CommandError::coded(
                "READONLY",
                "You can't write against a read only replica.",
            ));
        }
        let limit = self.maxmemory.load(Ordering::Relaxed);
        if limit > 0 && grows && ks.used_memory() as u64 > limit {
            return Some(CommandError::coded(
                "OOM",
                "command not allowed when used memory > 'maxmemory'.",
            ));
        }
        None
    }

    /// [`Self::refuses`] for a command being queued by `MULTI` (by its flags: `write`,
    /// `denyoom`): Redis refuses it already then, which aborts the transaction. Also for
    /// a write command that may not write at all (`SORT` without `STORE`).
    pub(crate) fn refuses_queued(&self, flags: &[&str]) -> Option<CommandError> {
        let (write, grows) = (flags.contains(&"write"), flags.contains(&"denyoom"));
        if !write && !grows {
            return None;
        }
        self.refuses(&self.lock(), write, grows)
    }

    /// `BGSAVE` inside `EXEC`: starts a flush to disk without waiting for it.
    pub(crate) fn request_save(&self) {
        if let Some(storage) = &self.storage {
            storage.request_save();
        }
    }

    /// A blocked client served by another client's write (see [`crate::blocking`])
    /// waits for durability up to `seq`, the journal position of its pop, like a writer.
    pub(crate) fn served_at(&self, session: &mut Session, seq: u64) {
        session.unsynced = session.unsynced.max(seq);
        session.unwritten = session.unwritten.max(seq);
    }

    /// Runs a read against the keyspace (lazy expiry may still delete keys).
    pub fn read<R>(&self, f: impl FnOnce(&mut Keyspace, u64) -> R) -> R {
        let now = self.now();
        let mut ks = self.lock();
        let result = f(&mut ks, now);
        self.publish(&mut ks);
        result
    }

    /// After a write: under `--fsync always`, waits until it is on disk; otherwise
    /// waits only if the storage writer has fallen far behind.
    async fn settle(&self, session: &mut Session) {
        if session.unsynced == 0 {
            return;
        }
        if let Some(storage) = &self.storage {
            if storage.fsync == Fsync::Always {
                storage.durable(session.unsynced).await;
            } else {
                storage.keep_up(session.unsynced).await;
            }
        }
        session.unsynced = 0;
    }

    /// `SAVE`: flush everything written so far.
    pub async fn save(&self) {
        if let Some(storage) = &self.storage {
            storage.sync().await;
        }
    }

    /// `LASTSAVE`: Unix seconds of the last flush to disk.
    pub fn last_save(&self) -> u64 {
        self.storage
            .as_ref()
            .map_or(self.started_unix, |s| s.progress().last_flush)
    }

    /// The active expiry cycle: ten times a second, sweep each database with keys that
    /// have a TTL, repeating while more than 25% of a sample had expired, for at most
    /// 25 ms per cycle (Redis's budget), releasing the lock between rounds.
    pub async fn expiry_cycle(self: Arc<Self>, shutdown: CancellationToken) {
        const BUDGET: Duration = Duration::from_millis(25);
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let started = Instant::now();
            for db in 0..DATABASES {
                loop {
                    let (examined, expired) = {
                        let now = self.now();
                        let mut ks = self.lock();
                        // A replica deletes only what its primary's stream deletes; a
                        // running script must not see keys vanish under it.
                        if !ks.has_volatile(db) || ks.is_follower() || self.scripts.gate.running() {
                            break;
                        }
                        let result = ks.sweep(db, now, SWEEP_SAMPLE);
                        self.publish(&mut ks);
                        result
                    };
                    if expired * 4 <= examined || started.elapsed() > BUDGET {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
            }
        }
    }
}

/// A data command's start time, held in [`Kv::now`]'s `command_ms` while it runs and
/// let go when it ends however it ends: an early return (it must wait after all) or a
/// panic would otherwise leave every later command, and the expiry sweep, with that time.
struct PinnedTime<'a>(&'a AtomicU64);

impl<'a> PinnedTime<'a> {
    fn pin(slot: &'a AtomicU64, ms: Option<u64>) -> Option<Self> {
        let ms = ms?;
        slot.store(ms, Ordering::Relaxed);
        Some(PinnedTime(slot))
    }
}

impl Drop for PinnedTime<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

/// Every command of kv, as the service looks them up: kv's data commands first.
static ALL: LazyLock<Vec<CommandSpec>> = LazyLock::new(|| {
    let data = commands::TABLE.iter().map(|command| command.spec);
    data.chain(
        [
            replication::COMMANDS,
            crate::transaction::COMMANDS,
            messaging::COMMANDS,
        ]
        .concat(),
    )
    .collect()
});

/// The row of [`commands::TABLE`] behind `spec` (as the service looked it up), if it is
/// one of kv's data commands. The service hands out references into [`ALL`], whose first
/// entries are the table's specs in its order: the row is found by the spec's position,
/// where a lookup by name would hash it again.
pub(crate) fn data_command(spec: &CommandSpec) -> Option<&'static Command> {
    let offset = std::ptr::from_ref(spec)
        .addr()
        .wrapping_sub(ALL.as_ptr().addr());
    commands::TABLE.get(offset / std::mem::size_of::<CommandSpec>())
}

impl Server for Kv {
    type Session = Session;

    /// kv is Redis's architecture, one event loop on a thread of its own, so it writes its
    /// replies the way Redis does: after every ready client has been served.
    const WRITE_AFTER_READS: bool = true;

    /// kv implements what redis-py 8's client-side cache needs (`CLIENT TRACKING`, RESP3
    /// invalidation pushes); the client refuses a server that reports less than 7.4.
    const REDIS_VERSION: &'static str = "7.4.0";
    const HELLO_SERVER: &'static str = "redis";

    fn name(&self) -> &'static str {
        "kv"
    }

    fn commands(&self) -> &'static [CommandSpec] {
        &ALL
    }

    async fn execute(&self, client: &mut Client<Session>, args: Args) -> Reply {
        if let Some(busy) = self.scripts.admit(&args) {
            return self.answer(client, Reply::One(busy));
        }
        if let Some(refused) = messaging::subscribed_mode(client, &args) {
            return self.answer(client, refused);
        }
        let reads = Self::reads(client, &args);
        // This path may wait (a blocking pop, the disk): the command starts its own
        // clock, and the next one will too (see `observe_start`).
        client.session.lap = None;
        let started = self.observe_start(&mut client.session);
        let observed = (started.is_some() || self.monitors.active()).then(|| args.clone());
        let waits = Self::waits(client);
        let reply = match crate::transaction::queue(self, client, args) {
            Ok(reply) => reply,
            Err(args) => match replication::execute(self, client, args) {
                Reply::Unhandled(args) => match messaging::execute(self, client, args) {
                    Reply::Unhandled(args) => commands::execute(self, client, args).await,
                    reply => reply,
                },
                reply => reply,
            },
        };
        self.observe_end(client, started, observed.as_ref(), waits);
        self.remember(reads);
        self.settle(&mut client.session).await;
        client.session.lap = None;
        self.answer(client, reply)
    }

    /// [`Self::execute`] without a future, whenever nothing will wait: only the commands
    /// that wait by nature ([`Command::waits`]) and the writes that must wait for the
    /// disk take the async path. With `--fsync always` that is every command (a write
    /// waits for its fsync). With `everysec` or `no` a write waits only when the journal
    /// writer has fallen behind ([`Storage::caught_up`]); the check looks at this client's
    /// previous write, so a client gets at most one command past the limit before
    /// `settle` makes it wait.
    fn execute_now(&self, client: &mut Client<Session>, args: Args) -> Result<Reply, Args> {
        // While a script runs, nothing else does (see `crate::scripting::gate`).
        if let Some(busy) = self.scripts.admit(&args) {
            return Ok(self.answer(client, Reply::One(busy)));
        }
        let command = client.spec().and_then(data_command);
        if command.is_some_and(Command::must_wait) {
            return Err(args);
        }
        if let Some(storage) = &self.storage
            && (storage.fsync == Fsync::Always || !storage.caught_up(client.session.unsynced))
        {
            return Err(args);
        }
        if let Some(refused) = messaging::subscribed_mode(client, &args) {
            return Ok(self.answer(client, refused));
        }
        let reads = Self::reads(client, &args);
        let reply = if Self::queues(client, &args) {
            self.queue_now(client, args)
        } else if let Some(command) = command {
            // kv's own commands only borrow their arguments: the slow log reads them
            // afterwards, and only if the command was slow (no copy, no reference count).
            let started = self.observe_start(&mut client.session);
            let pinned = PinnedTime::pin(
                &self.command_ms,
                self.command_time(&mut client.session, started),
            );
            let mut args = args;
            let reply = match command.try_now {
                // It may still have to wait: then the waiting path gets the arguments
                // as they came (a clone is a reference count, not a copy).
                Some(attempt) => match attempt(self, &mut client.session, &mut args.clone()) {
                    Some(frame) => Some(Reply::One(frame)),
                    None => return Err(args),
                },
                None => commands::execute_command(self, client, command, &mut args),
            };
            drop(pinned);
            self.observe_end(client, started, Some(&args), false);
            reply.unwrap_or(Reply::Unhandled(args))
        } else {
            self.execute_other_now(client, args)
        };
        if matches!(reply, Reply::Unhandled(_)) {
            // The service runs it next, untimed: the next command starts its own clock.
            client.session.lap = None;
        }
        self.remember(reads);
        Ok(self.answer(client, reply))
    }

    /// Before the batch's replies are written: under `--fsync everysec` and `no`, the
    /// journal records of its writes go to the kernel now, with one `write()` (see
    /// [`Storage::write_through`]). Under `always` each write already waited for its fsync.
    fn batch_executed(&self, session: &mut Session) {
        // The replies are written next, and the client may be slow to take them: the
        // next batch's first command starts its own clock (see `Kv::observe_start`), and
        // anchors the wall clock anew (see `Kv::command_time`).
        session.lap = None;
        session.anchor = None;
        session.pubsub.wakes.wake_all();
        if session.unwritten == 0 {
            return;
        }
        if let Some(storage) = &self.storage
            && storage.fsync != Fsync::Always
        {
            storage.write_through(session.unwritten);
        }
        session.unwritten = 0;
    }

    /// A command refused before it ran (unknown, wrong arity) fails the transaction
    /// being queued, if any: its `EXEC` will answer `EXECABORT`.
    fn refused(&self, session: &mut Session) {
        session.tx.refused();
        // Its error goes to the output: a sync write's held replies stay before it.
        session.repl.seal();
    }

    /// A replica's stream, or this client's pub/sub queue (messages, notifications,
    /// invalidations), whichever has something first.
    async fn next_push(&self, session: &mut Session) -> Push {
        let Session {
            repl,
            pubsub,
            monitor,
            ..
        } = session;
        if let Some(watching) = monitor {
            return tokio::select! {
                push = self.replication.next_push(repl) => push,
                lines = watching.next() => match lines {
                    Some(lines) => Push::Bytes(lines),
                    None => Push::Disconnect("MONITOR output fell too far behind".into()),
                },
            };
        }
        tokio::select! {
            push = self.replication.next_push(repl) => push,
            push = pubsub.next_push() => push,
        }
    }

    fn pending_push(&self, session: &mut Session) -> Option<Bytes> {
        let next = |session: &mut Session| {
            self.replication
                .pending_push(&mut session.repl)
                .or_else(|| session.monitor.as_mut()?.try_next())
                .or_else(|| session.pubsub.pending_push())
        };
        // Sync mode, with this batch's replies held: a push joins them, at its place.
        let Some(gate) = session.repl.open_gate().cloned() else {
            return next(session);
        };
        while let Some(push) = next(session) {
            if !gate.push(&push) {
                return Some(push);
            }
        }
        None
    }

    fn protocol_changed(&self, session: &mut Session, protocol: proto::Protocol) {
        if let Some(subscriber) = &session.pubsub.subscriber {
            subscriber.outbox().set_protocol(protocol);
        }
    }

    fn info(&self) -> Vec<InfoSection> {
        self.info_sections()
    }

    fn config_get(&self) -> Vec<(String, String)> {
        self.config_pairs()
    }

    fn config_set(&self, name: &str, value: &str) -> Option<Result<(), String>> {
        self.set_config(name, value)
    }

    async fn shutdown(&self) {
        if let Some(storage) = &self.storage {
            if self.skip_fold.load(Ordering::Relaxed) {
                storage.close_without_fold().await;
            } else {
                storage.close().await;
            }
        }
    }

    /// `CONFIG RESETSTAT`: kv's own counters (keyspace hits and misses, expired keys),
    /// with the service's.
    fn reset_stats(&self) {
        self.lock().reset_stats();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The commands [`data_command`] sends straight to `commands::execute_command`
    /// are none of the transaction, replication or pub/sub modules' own: those run first
    /// on every other path, and a name in both tables would skip them.
    #[test]
    fn data_commands_are_no_other_modules_commands() {
        let others = [
            replication::COMMANDS,
            crate::transaction::COMMANDS,
            messaging::COMMANDS,
        ];
        for spec in commands::TABLE.iter().map(|command| &command.spec) {
            for other in others.iter().flat_map(|table| table.iter()) {
                assert_ne!(spec.name, other.name, "in two tables");
            }
        }
        // The names those modules' `execute` match on.
        let claimed = "multi exec discard watch unwatch replicaof slaveof replconf psync sync \
                       wait role subscribe psubscribe ssubscribe unsubscribe punsubscribe \
                       sunsubscribe publish spublish pubsub client";
        for name in claimed.split_whitespace() {
            assert!(
                commands::TABLE
                    .iter()
                    .all(|command| command.spec.name != name),
                "{name}"
            );
        }
        // Each of kv's specs, as the service hands it out, finds its own row.
        for spec in ALL.iter() {
            let row = data_command(spec).map(|command| command.spec.name);
            let mine = commands::TABLE.iter().any(|c| c.spec.name == spec.name);
            assert_eq!(row, mine.then_some(spec.name));
        }
        let exec = ALL.iter().find(|spec| spec.name == "exec");
        assert!(exec.is_some_and(|spec| data_command(spec).is_none()));
    }
}

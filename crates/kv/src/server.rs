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
use proto::{Args, CommandError};
use service::{CancellationToken, Client, CommandSpec, InfoSection, Push, Reply, Server};

use crate::clock::Clock;
use crate::commands::messaging;
use crate::commands::{self, Command};
use crate::events::Events;
use crate::keyspace::{DATABASES, Keyspace, Mutation, Outcome, SWEEP_SAMPLE};
use crate::replication::{self, Replication};
use crate::storage::{Fsync, Storage};
use hub::commands::tracking::Reads;

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
    /// runs, when it is the time `EXEC` began (see [`Self::begin`]).
    pub fn now(&self) -> u64 {
        match self.frozen_ms.load(Ordering::Relaxed) {
            0 => self.clock.now_ms(),
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

    /// Before a command: when it started, if the slow log or the latency monitor is on.
    ///
    /// The clock is read once per command, not twice: a command starts where the
    /// previous one of the same batch ended ([`Session::lap`], set by
    /// [`Self::observe_end`]), and only the first command of a batch reads the clock
    /// itself. Pipelined, that is half the clock reads (a clock read is ~20 ns, a tenth
    /// of a pipelined `GET`'s time on kv). The price is that a command is charged with
    /// what the connection did since the previous command ended: encoding that reply
    /// and parsing this request, microseconds. Anything that may take longer breaks the
    /// chain — the end of a batch (its replies are written, the client may be slow), a
    /// command that may wait, one the service runs itself — so its time is never
    /// charged to the next command.
    fn observe_start(&self, session: &mut Session) -> Option<Instant> {
        let lap = session.lap.take();
        self.slowlog
            .enabled()
            .then(|| lap.unwrap_or_else(Instant::now))
    }

    /// After a command: feeds the monitors and the slow log (see [`crate::monitor`],
    /// [`crate::slowlog`]). `started`: from [`Self::observe_start`]; `args`: the
    /// command's arguments, as it left them (only the name and the request are read).
    /// `waited`: the command may have waited (a blocking pop), so its time is not its
    /// cost and the slow log skips it.
    fn observe_end(
        &self,
        client: &mut Client<Session>,
        started: Option<Instant>,
        args: Option<&Args>,
        waited: bool,
    ) {
        let elapsed = started.map(|started| {
            let now = Instant::now();
            client.session.lap = Some(now);
            now.saturating_duration_since(started)
        });
        let Some(args) = args else {
            return;
        };
        let flags = client.spec().map_or(&[][..], |spec| spec.flags);
        let monitor = self.monitors.active()
            && !flags.contains(&"admin")
            && !matches!(args.name(), "auth" | "hello");
        let slow = elapsed.filter(|&elapsed| !waited && self.slowlog.wants(elapsed));
        if monitor || slow.is_some() {
            self.record(client, args, monitor, slow);
        }
    }

    /// [`Self::observe_end`]'s rare part, out of line: a command that every request runs
    /// stays a few cache lines long (kv's hot path touched 3 to 4 times Redis's
    /// instruction-cache lines per command; callgrind, 32 KiB L1i).
    #[cold]
    #[inline(never)]
    fn record(&self, client: &Client<Session>, args: &Args, monitor: bool, slow: Option<Duration>) {
        let words = args.words();
        if monitor {
            self.monitors.feed(client.session.db, client.addr(), &words);
        }
        if let Some(elapsed) = slow {
            let fast = client
                .spec()
                .is_some_and(|spec| spec.flags.contains(&"fast"));
            self.slowlog.record(&words, fast, elapsed, client.addr());
        }
    }

    /// Every reply leaves through here: sync mode holds a write's reply until replicas
    /// acknowledged it (see [`replication::after_write`]).
    fn answer(&self, client: &mut Client<Session>, reply: Reply) -> Reply {
        let protocol = client.protocol;
        replication::after_write(&self.replication, &mut client.session.repl, protocol, reply)
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
        self.observed(ks, &crate::notify::Plan::default(), None);
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
        self.observed(&mut ks, &plan, writer);
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
    fn observed(&self, ks: &mut Keyspace, plan: &crate::notify::Plan, writer: Option<u64>) {
        let touched = ks.take_touched();
        if touched.is_empty() {
            return;
        }
        let replica = ks.is_follower();
        self.events
            .after(touched, plan, writer, replica, Instant::now);
        if !self.events.observing() {
            ks.observe(false);
        }
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

    /// Before a tracking client's command: what it reads, for `CLIENT TRACKING`.
    fn reads(client: &Client<Session>, args: &Args) -> Option<Reads> {
        // Most clients do not track: spare them the lookup of the command's keys.
        if !client.session.client_cache.tracking {
            return None;
        }
        Reads::before(client, commands::lookup(args.name()), args)
    }

    /// After a tracking client's command: see [`Reads::remember`].
    fn remember(&self, reads: Option<Reads>) {
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

    /// `WATCH`: the keys' watches, taken under the lock.
    pub(crate) fn watch(&self, db: usize, keys: &[Bytes]) -> Vec<crate::keyspace::Watch> {
        let now = self.now();
        let mut ks = self.lock();
        keys.iter().map(|key| ks.watch(db, key, now)).collect()
    }

    /// `UNWATCH` (and the end of every `EXEC` or `DISCARD`).
    pub(crate) fn unwatch(&self, watching: Vec<crate::keyspace::Watch>) {
        if !watching.is_empty() {
            self.lock().unwatch(watching);
        }
    }

    /// `EXEC` begins: `false` (and nothing begins) if a watched key changed. Otherwise
    /// the journal holds every change until [`Self::commit`], so that persistence and
    /// replication get the transaction as one unit.
    ///
    /// The clock stops until then too, as in Redis 7: every command of the transaction
    /// sees the time `EXEC` began, so no key expires half-way through it (a `GET` and a
    /// later `TTL` of the same key agree), and the commands read the clock once, not once
    /// each.
    pub(crate) fn begin(&self, watching: Vec<crate::keyspace::Watch>) -> bool {
        let now = self.now();
        let mut ks = self.lock();
        let changed = ks.any_changed(&watching, now);
        ks.unwatch(watching);
        if !changed {
            ks.begin();
            self.frozen_ms.store(now, Ordering::Relaxed);
        }
        !changed
    }

    /// `EXEC` ends: publishes its changes as one transaction, then serves the clients
    /// blocked on lists it filled (after it, as Redis does).
    pub(crate) fn commit(&self, session: &mut Session) {
        let now = self.now();
        let mut ks = self.lock();
        ks.commit();
        self.frozen_ms.store(0, Ordering::Relaxed);
        if ks.track_ready {
            crate::blocking::serve(&self.blocked, &mut ks, now);
        }
        if let Some((seq, offset)) = self.publish(&mut ks) {
            session.unsynced = seq;
            session.unwritten = seq;
            session.repl.written = offset.unwrap_or(session.repl.written);
        }
    }

    /// A script begins: like [`Self::begin`], unless it runs inside an `EXEC`, whose unit
    /// it is part of. `true`: the script's own unit began ([`Self::commit_unit`] ends it).
    ///
    /// The clock stops for the script as for `EXEC` (Redis 7 checks expiry against the
    /// script's start time, its "time snapshot"): a key that exists at the script's first
    /// command exists at its last, and the script's commands read the clock once.
    pub(crate) fn begin_unit(&self) -> bool {
        let now = self.now();
        let mut ks = self.lock();
        if ks.in_transaction() {
            return false;
        }
        ks.begin();
        self.frozen_ms.store(now, Ordering::Relaxed);
        true
    }

    /// A script ends: see [`Self::commit`].
    pub(crate) fn commit_unit(&self, session: &mut Session) {
        self.commit(session);
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
        let queued = client.session.tx.queueing() && !matches!(args.name(), "exec" | "discard");
        let reply = if queued {
            self.queue_now(client, args)
        } else if let Some(command) = command {
            // kv's own commands only borrow their arguments: the slow log reads them
            // afterwards, and only if the command was slow (no copy, no reference count).
            let started = self.observe_start(&mut client.session);
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
        // next batch's first command starts its own clock (see `Kv::observe_start`).
        session.lap = None;
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
        let now = self.now();
        let (used, stats, seq, keyspace) = {
            let ks = self.lock();
            (
                ks.used_memory() as u64,
                ks.stats(),
                ks.journal().seq(),
                ks.keyspace_info(now),
            )
        };
        let maxmemory = self.maxmemory.load(Ordering::Relaxed);
        let (channels, patterns) = self.events.hub.table_sizes();
        let (tracking_clients, tracking_keys, tracking_prefixes) = self
            .events
            .tracker
            .with(|t| ((t.clients(), t.keys(), t.prefixes()), Vec::new()));
        let progress = self.storage.as_ref().map(|s| s.progress());
        let mut keyspace_section = InfoSection::new("keyspace");
        for (db, keys, expires) in keyspace {
            keyspace_section = keyspace_section.field(
                format!("db{db}"),
                format!("keys={keys},expires={expires},avg_ttl=0"),
            );
        }
        vec![
            InfoSection::new("clients")
                .field("blocked_clients", self.blocked.count())
                .field("tracking_clients", tracking_clients),
            InfoSection::new("memory")
                .field("used_memory", used)
                .field("used_memory_human", service::info::human_bytes(used))
                .field("maxmemory", maxmemory)
                .field("maxmemory_human", service::info::human_bytes(maxmemory))
                .field("maxmemory_policy", "noeviction"),
            InfoSection::new("persistence")
                .field("loading", 0)
                .field(
                    "rdb_changes_since_last_save",
                    progress.map_or(0, |p| seq.saturating_sub(p.durable)),
                )
                .field("rdb_last_save_time", self.last_save())
                .field("aof_enabled", u8::from(self.storage.is_some()))
                .field(
                    "infralab_fsync",
                    self.storage.as_ref().map_or("off", |s| s.fsync.name()),
                )
                .field(
                    "infralab_dir",
                    self.dir
                        .as_ref()
                        .map(|d| d.display().to_string())
                        .unwrap_or_default(),
                ),
            InfoSection::new("stats")
                .field("pubsub_channels", channels)
                .field("pubsub_patterns", patterns)
                .field("pubsubshard_channels", self.events.hub.shard_channels())
                .field("tracking_total_keys", tracking_keys)
                .field("tracking_total_items", tracking_keys)
                .field("tracking_total_prefixes", tracking_prefixes)
                .field("keyspace_hits", stats.keyspace_hits)
                .field("keyspace_misses", stats.keyspace_misses)
                .field("expired_keys", stats.expired_keys)
                .field("evicted_keys", 0),
            replication::info(&self.replication),
            keyspace_section,
        ]
    }

    fn config_get(&self) -> Vec<(String, String)> {
        let fsync = self.storage.as_ref().map_or("no", |s| s.fsync.name());
        vec![
            (
                "maxmemory".into(),
                self.maxmemory.load(Ordering::Relaxed).to_string(),
            ),
            ("maxmemory-policy".into(), "noeviction".into()),
            ("databases".into(), DATABASES.to_string()),
            (
                "appendonly".into(),
                if self.storage.is_some() { "yes" } else { "no" }.into(),
            ),
            ("appendfsync".into(), fsync.into()),
            // kv journals every write (`appendonly`) when it has a `--dir`, and folds the
            // journal into its checkpoint by size and on SAVE, not on Redis's save points.
            ("save".into(), crate::lock(&self.save_points).clone()),
            (
                "busy-reply-threshold".into(),
                self.scripts.busy_threshold().as_millis().to_string(),
            ),
            (
                "lua-time-limit".into(),
                self.scripts.busy_threshold().as_millis().to_string(),
            ),
            (
                "notify-keyspace-events".into(),
                crate::notify::format(self.events.flags()),
            ),
            (
                "tracking-table-max-keys".into(),
                self.events
                    .tracker
                    .with(|t| (t.max_keys(), Vec::new()))
                    .to_string(),
            ),
            (
                "client-output-buffer-limit".into(),
                self.events.hub.limits().0.to_string(),
            ),
            (
                "dir".into(),
                self.dir
                    .as_ref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default(),
            ),
        ]
        .into_iter()
        .chain(self.encodings.config_get())
        .chain(self.slowlog.config_get())
        .collect()
    }

    fn config_set(&self, name: &str, value: &str) -> Option<Result<(), String>> {
        if let Some(done) = self
            .encodings
            .config_set(name, value)
            .or_else(|| self.slowlog.config_set(name, value))
        {
            return Some(done);
        }
        match name {
            // Accepted with their kv meaning: persistence is `--dir`, chosen at start.
            "save" => {
                *crate::lock(&self.save_points) = value.to_string();
                Some(Ok(()))
            }
            "appendonly" => Some(match service::settings::yes_no(value) {
                Ok(on) if on == self.storage.is_some() => Ok(()),
                Ok(_) => Err(
                    "kv persists exactly when started with --dir; restart to change it".to_string(),
                ),
                Err(e) => Err(e),
            }),
            "maxmemory" => Some(service::settings::parse_memory(value).map(|n| {
                self.maxmemory.store(n, Ordering::Relaxed);
            })),
            "busy-reply-threshold" | "lua-time-limit" => Some(
                value
                    .parse::<u64>()
                    .map_err(|_| "argument couldn't be parsed into an integer".to_string())
                    .map(|ms| self.scripts.set_busy_threshold(ms)),
            ),
            "notify-keyspace-events" => Some(crate::notify::parse(value).map(|flags| {
                self.events.set_flags(flags);
                self.observe_changes();
            })),
            "tracking-table-max-keys" => Some(
                value
                    .parse::<usize>()
                    .map_err(|_| "argument couldn't be parsed into an integer".to_string())
                    .map(|max| self.events.tracker.with(|t| ((), t.set_max_keys(max)))),
            ),
            "client-output-buffer-limit" => Some(value.parse::<hub::OutputLimit>().map(|limit| {
                let (_, policy) = self.events.hub.limits();
                self.events.hub.set_limits(limit, policy);
            })),
            _ => None,
        }
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

//! A connected client: the state a command may read or change, and the shared record
//! `CLIENT LIST` and `CLIENT KILL` see.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use proto::{Args, Protocol};
use tokio_util::sync::CancellationToken;

use crate::command_table::CommandSpec;
use crate::server::Reply;
use crate::settings::Settings;

/// The service's own commands (`CLIENT`, `CONFIG`, `INFO`, `HELLO`...) bound to the
/// server a connection serves: what [`Client::run_builtin`] calls.
pub(crate) type Builtins<S> = Arc<dyn Fn(&mut Client<S>, Args) -> Reply + Send + Sync>;

/// The connection state a command sees. `session` belongs to the server.
pub struct Client<S> {
    /// The server's per-connection state.
    pub session: S,
    /// RESP2 or RESP3, switched by `HELLO`.
    pub protocol: Protocol,
    pub(crate) authenticated: bool,
    pub(crate) info: Arc<ClientInfo>,
    /// The last command executed and not yet published to [`ClientInfo`]'s metadata
    /// (see [`Client::publish_activity`]).
    pub(crate) last_command: Option<&'static str>,
    /// The table entry of the command being executed (see [`Client::spec`]).
    pub(crate) spec: Option<&'static CommandSpec>,
    builtins: Builtins<S>,
}

impl<S> Client<S> {
    pub(crate) fn new(
        session: S,
        info: Arc<ClientInfo>,
        authenticated: bool,
        builtins: Builtins<S>,
    ) -> Self {
        Client {
            session,
            protocol: Protocol::Resp2,
            authenticated,
            info,
            last_command: None,
            spec: None,
            builtins,
        }
    }

    /// The command table's entry for the command being executed (its flags, keys,
    /// arity), looked up once by the connection before the server sees the command.
    pub fn spec(&self) -> Option<&'static CommandSpec> {
        self.spec
    }

    /// Runs one of the service's connection-level commands (`CLIENT`, `CONFIG`, `INFO`,
    /// `HELLO`, `AUTH`, `COMMAND`, `PING`, `ECHO`...) for this client, now.
    ///
    /// The connection runs these itself when a server hands a command back
    /// ([`Reply::Unhandled`]). A server that runs commands *later* needs to run them in
    /// their turn instead: kv's `EXEC` runs a `MULTI`'s queue, and Redis queues
    /// `CLIENT SETNAME` or `CONFIG GET` like any other command.
    pub fn run_builtin(&mut self, args: Args) -> Reply {
        let builtins = Arc::clone(&self.builtins);
        builtins(self, args)
    }

    /// Publishes the connection's latest command and activity time (`cmd=` and `idle=`
    /// of `CLIENT LIST`). The connection calls it once per batch of pipelined commands,
    /// and before a built-in command that may describe the client: recording them per
    /// command cost a lock and a clock read on every request, for a listing that is
    /// read rarely and shows whole seconds.
    pub(crate) fn publish_activity(&mut self) {
        let Some(command) = self.last_command.take() else {
            return;
        };
        let now = Instant::now();
        let mut meta = self.info.meta();
        meta.last_active = now;
        meta.last_command = command;
    }

    /// The unique id `CLIENT ID` reports.
    pub fn id(&self) -> u64 {
        self.info.id
    }

    pub fn addr(&self) -> SocketAddr {
        self.info.addr
    }

    /// Records the selected database so `CLIENT LIST` shows it (kv's `SELECT`).
    pub fn set_db(&self, db: usize) {
        self.info.meta().db = db;
    }

    /// Records a flag such as `S` (subscribed) or `b` (blocked) for `CLIENT LIST`.
    pub fn set_flags(&self, flags: &'static str) {
        self.info.meta().flags = flags;
    }

    /// A token that closes this connection at once when cancelled, even in the middle
    /// of writing to a client that has stopped reading (a pub/sub subscriber over its
    /// output buffer limit). `CLIENT KILL` and shutdown cancel it too (it is a child of the
    /// kill token), so a client that stops reading cannot hold up either.
    pub fn evict_token(&self) -> CancellationToken {
        self.info.evict.clone()
    }
}

/// What is known about a client, shared between its connection task and the registry.
#[derive(Debug)]
pub struct ClientInfo {
    pub id: u64,
    pub addr: SocketAddr,
    pub local_addr: SocketAddr,
    pub connected_at: Instant,
    /// Cancelled by `CLIENT KILL` (and on shutdown); the connection task then closes.
    /// Cancelling it also cancels [`Self::evict`].
    pub kill: CancellationToken,
    /// This connection's own counters (reads, writes, bytes, commands). Only its task
    /// writes them, so they stay in that core's cache: one shared counter bumped by every
    /// connection on every request would bounce its cache line between cores.
    pub stats: Stats,
    /// Cancelled by the server to drop the client immediately (see [`Client::evict_token`]).
    pub evict: CancellationToken,
    meta: Mutex<ClientMeta>,
}

#[derive(Debug, Clone)]
pub(crate) struct ClientMeta {
    pub name: Option<Bytes>,
    pub lib_name: Option<Bytes>,
    pub lib_ver: Option<Bytes>,
    /// A command table's name (`""` before the first command).
    pub last_command: &'static str,
    pub last_active: Instant,
    pub db: usize,
    pub resp: i64,
    pub flags: &'static str,
}

impl ClientInfo {
    pub(crate) fn meta(&self) -> MutexGuard<'_, ClientMeta> {
        match self.meta.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// One line of `CLIENT LIST` / `CLIENT INFO`, in Redis's `key=value` format.
    pub fn describe(&self) -> String {
        let m = self.meta().clone();
        let text = |b: &Option<Bytes>| {
            b.as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        let now = Instant::now();
        format!(
            "id={} addr={} laddr={} fd=0 name={} age={} idle={} flags={} db={} sub=0 psub=0 \
             ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 \
             omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.local_addr,
            text(&m.name),
            now.duration_since(self.connected_at).as_secs(),
            now.duration_since(m.last_active).as_secs(),
            m.flags,
            m.db,
            if m.last_command.is_empty() {
                "NULL"
            } else {
                m.last_command
            },
            m.resp,
            text(&m.lib_name),
            text(&m.lib_ver),
        )
    }
}

/// Counters for `INFO stats`. Relaxed atomics: they are statistics, not synchronisation.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections_received: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub commands_processed: AtomicU64,
    pub reads_processed: AtomicU64,
    pub writes_processed: AtomicU64,
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
}

impl Stats {
    /// The counters each connection keeps for itself (see [`ClientInfo::stats`]).
    pub const PER_CONNECTION: [fn(&Stats) -> &AtomicU64; 5] = [
        |s| &s.commands_processed,
        |s| &s.reads_processed,
        |s| &s.writes_processed,
        |s| &s.net_input_bytes,
        |s| &s.net_output_bytes,
    ];

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// State shared by the listener, every connection and the built-in commands.
#[derive(Debug)]
pub struct Shared {
    pub settings: Settings,
    pub stats: Stats,
    pub started: Instant,
    pub run_id: String,
    next_id: AtomicU64,
    connected: AtomicUsize,
    clients: Mutex<BTreeMap<u64, Arc<ClientInfo>>>,
}

impl Shared {
    pub fn new(settings: Settings) -> Self {
        Shared {
            settings,
            stats: Stats::default(),
            started: Instant::now(),
            run_id: run_id(),
            next_id: AtomicU64::new(1),
            connected: AtomicUsize::new(0),
            clients: Mutex::new(BTreeMap::new()),
        }
    }

    fn clients(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<ClientInfo>>> {
        match self.clients.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub fn connected_clients(&self) -> usize {
        self.connected.load(Ordering::Relaxed)
    }

    /// Registers a new connection; the returned guard unregisters it when dropped.
    pub(crate) fn register(
        self: &Arc<Self>,
        addr: SocketAddr,
        local_addr: SocketAddr,
        kill: CancellationToken,
    ) -> Registration {
        let now = Instant::now();
        let info = Arc::new(ClientInfo {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            addr,
            local_addr,
            connected_at: now,
            // A child of `kill`: killing (or shutting down) also evicts, so the connection
            // loop watches this one token while it waits, one poll per turn instead of two.
            evict: kill.child_token(),
            kill,
            stats: Stats::default(),
            meta: Mutex::new(ClientMeta {
                name: None,
                lib_name: None,
                lib_ver: None,
                last_command: "",
                last_active: now,
                db: 0,
                resp: 2,
                flags: "N",
            }),
        });
        self.clients().insert(info.id, info.clone());
        Registration {
            shared: self.clone(),
            info,
        }
    }

    /// Reserves a connection slot, or `false` if `maxclients` are connected.
    pub(crate) fn try_reserve_slot(&self) -> bool {
        let max = self.settings.maxclients();
        self.connected
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    pub(crate) fn release_slot(&self) {
        self.connected.fetch_sub(1, Ordering::AcqRel);
    }

    /// A counter's total: closed connections' share plus every live connection's.
    pub fn stat(&self, pick: fn(&Stats) -> &AtomicU64) -> u64 {
        let live: u64 = self
            .clients()
            .values()
            .map(|c| Stats::get(pick(&c.stats)))
            .sum();
        Stats::get(pick(&self.stats)) + live
    }

    /// `CONFIG RESETSTAT`: zero every counter, live connections' included.
    pub fn reset_stats(&self) {
        let s = &self.stats;
        for counter in [&s.connections_received, &s.rejected_connections] {
            counter.store(0, Ordering::Relaxed);
        }
        for pick in Stats::PER_CONNECTION {
            pick(s).store(0, Ordering::Relaxed);
            for c in self.clients().values() {
                pick(&c.stats).store(0, Ordering::Relaxed);
            }
        }
    }

    pub fn client_list(&self) -> Vec<Arc<ClientInfo>> {
        self.clients().values().cloned().collect()
    }
}

/// Unregisters a client when its connection task ends, however it ends.
pub(crate) struct Registration {
    shared: Arc<Shared>,
    pub info: Arc<ClientInfo>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        // Fold the connection's counters into the totals of closed connections.
        self.shared.clients().remove(&self.info.id);
        let (from, to) = (&self.info.stats, &self.shared.stats);
        for pick in Stats::PER_CONNECTION {
            Stats::add(pick(to), Stats::get(pick(from)));
        }
    }
}

/// A 40-hex-digit id for this process run, as `INFO server` reports `run_id`.
fn run_id() -> String {
    let mut out = String::with_capacity(40);
    while out.len() < 40 {
        out.push_str(&format!("{:016x}", random_u64()));
    }
    out.truncate(40);
    out
}

/// 64 unpredictable bits from the standard library's randomly seeded hasher, for ids and
/// keys that must not be guessable (no cryptographic strength is claimed).
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

//! The Lua VM: one Lua 5.1 state on a thread of its own and the script cache; the
//! sandbox scripts run in and the `redis` library they call are built in `sandbox.rs`.
//!
//! Like Redis, kv keeps one Lua state for every script: a script is compiled once into a
//! function (named by the SHA-1 of its body, which is what `EVALSHA` and `SCRIPT LOAD`
//! use) and called with fresh `KEYS` and `ARGV` tables each time.
//!
//! ## What a call costs
//!
//! Every step between Rust and Lua through `mlua` (a table, a string, a `rawset`, a
//! call) takes the state's lock and keeps a reference to what it made, a few hundred
//! instructions each, so an `EVALSHA` is built from as few of them as possible: the
//! script is found with one cache lookup ([`Cached`], hashed by its name's own digits);
//! `KEYS` and `ARGV` are made one step each ([`Lua::create_sequence_from`]; an empty one
//! by the sandbox itself); and one call into the sandbox's `run` installs them and runs
//! the script under the error handler (see `sandbox.rs`). What stays is `mlua`'s price
//! per value crossing over (each argument of `redis.call` and each string of a reply is
//! a reference it keeps and drops), about a third of an `EVALSHA`'s instructions.
//!
//! Some costs are not instructions. `mlua`'s lock (its `send` feature) and each of its
//! references (a weak count up, and at the drop a strong count up and down and the weak
//! one down) are atomic operations, some 20 cycles each even uncontended; so a run holds
//! the lock once for all its steps ([`Vm::run`]), the gate's flags are plain stores
//! ([`Gate`]), and the clock stops for the script as in Redis 7, so it is read once per
//! script, not once per command ([`Kv::begin_unit`](crate::server::Kv::begin_unit)).
//!
//! In figures (callgrind with a 32 KiB L1 instruction cache, `EVALSHA` of
//! `redis.call('INCR', KEYS[1]) return redis.call('GET', KEYS[1])` pipelined 16 deep, per
//! script): kv 19,000-19,300 instructions and 800-820 instruction-cache misses (the
//! upper figures from a run where valgrind's slowness sent 9% of the scripts to the VM's
//! thread), Redis 7.0 19,000 and 380. Of kv's, `KEYS` (and the empty `ARGV`) is 1,550 and the two `redis.call`s'
//! Rust halves 6,200 (`INCR` and `GET` themselves 3,000; the arguments as `mlua` values,
//! the request, the reply made a Lua string the rest). The instructions are Redis's
//! within 2%; the misses are twice Redis's, and they, not the instructions, are why a
//! script costs more CPU time than in Redis: a script's path (tokio, the service, kv's
//! commands, `mlua`'s generic glue, the Lua VM) is larger than the cache, so most lines
//! it touches are fetched again on every script. (Laying the Lua VM's and `mlua`'s hot
//! functions out together, an `EVALSHA` row in `scripts/hot-code-order.sh`, left the
//! misses where they were, 818 before and 831 after: they come from the path's size, not
//! from lines that collide.) Hence the shape of the hot path: a quick script runs without
//! a future (see [`crate::commands::TryNow`]), `redis.call` keeps its rare branches out
//! of line, and one [`Session`] serves every script's commands.
//!
//! ## The sandbox
//!
//! A script must only compute and call commands: it gets Lua's base, `string`, `table`
//! and `math` libraries and nothing that reaches the machine (`os`, `io`, `debug`,
//! `package`, `require`, `loadfile`, `dofile`, `print`). Its globals are read-only, as
//! in Redis 7 (`x = 1` fails with `Attempt to modify a readonly table`; reading an unknown
//! global fails too, which catches typos), so one script cannot leave state behind for the
//! next, and the libraries are read-only views so nobody can replace `redis.call`. The
//! state has a memory limit ([`MEMORY_LIMIT`]) and an instruction hook that stops a
//! script `SCRIPT KILL` asked to stop, or an inline run that outlived its slice (see
//! [`super`]).
//!
//! The state is shared (`mlua`'s `send` feature, behind a mutex) between the event loop,
//! which runs short scripts inline, and the VM's thread, which runs the others; only one
//! of them holds it at a time, and only while a script or a `SCRIPT` job runs.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use bstr::BStr;
use bytes::{Bytes, BytesMut};
use mlua::{ChunkMode, Either, Function, HookTriggers, Lua, LuaOptions, StdLib, Table, Value};
use proto::Frame;

use super::convert;
use super::gate::Gate;
use super::name::{ShaHash, ShaName};
use super::sandbox::sandbox;
use crate::server::{Kv, Session, Written};

/// Bytes the Lua state may allocate, scripts and cache together; past it an allocation
/// fails and the script gets an error ("not enough memory") instead of the server
/// growing without bound.
pub const MEMORY_LIMIT: usize = 64 << 20;

/// Scripts added by `EVAL` (not `SCRIPT LOAD`) kept compiled at most; the oldest goes
/// first, as in Redis 7.4, so an application that builds a new script body per call (a
/// known anti-pattern) cannot fill memory with them.
pub const EVAL_CACHE: usize = 500;

/// The hook runs every this many VM instructions to check for `SCRIPT KILL`.
const HOOK_EVERY: u32 = 10_000;

pub(super) const KILLED: &str = "ERR Script killed by user with SCRIPT KILL...";

/// The error an abandoned inline run stops with (nobody sees it: the script runs again).
pub(super) const ABANDONED: &str = "ERR the inline run outlived its slice";

/// Work for the VM thread.
pub enum Job {
    Eval(Eval),
    /// `SCRIPT LOAD`: the SHA-1, or the compile error.
    Load(Bytes, Sender<Result<String, Frame>>),
    /// `SCRIPT EXISTS`.
    Exists(Vec<Bytes>, Sender<Vec<bool>>),
    /// `SCRIPT FLUSH`.
    Flush(Sender<()>),
}

/// A script to run: `EVAL` (its body) or `EVALSHA` (its name).
pub enum Script {
    Body(Bytes),
    Sha(Bytes),
}

pub struct Eval {
    pub request: Request,
    /// Called with the outcome, on the VM thread.
    pub done: Box<dyn FnOnce(Ran) + Send>,
}

/// What to run.
pub struct Request {
    pub script: Script,
    pub keys: Vec<Bytes>,
    pub argv: Vec<Bytes>,
    /// The caller's database: the script starts in it.
    pub db: usize,
    /// `EVAL_RO`/`EVALSHA_RO`: write commands are refused.
    pub read_only: bool,
}

/// What a script did: its reply, and how far its writes reached (which the caller waits
/// for before replying, like after any write).
pub struct Ran {
    pub reply: Frame,
    pub written: Written,
}

/// What `redis.call` needs while a script runs.
pub(super) struct Context {
    pub(super) kv: Arc<Kv>,
    pub(super) read_only: bool,
    /// `redis.setresp(3)` was called.
    pub(super) resp3: bool,
}

/// Where [`Context`] lives for the state's whole life, filled when a script starts and
/// emptied when it ends; `redis.call` and `redis.setresp` hold a handle to it.
///
/// A plain mutex rather than the Lua state's app data: `app_data_mut` takes the state's
/// lock, borrows its map of app data and looks the type up, about 180 instructions per
/// `redis.call`; an uncontended mutex is one atomic exchange each way (only one thread
/// runs a script at a time).
pub(super) type Slot = Arc<Mutex<Calls>>;

/// What `redis.call` keeps between calls: the running script's context, the session
/// scripts' commands run in (one for all, see [`Session::start_script`]), the gate, and
/// the buffer each command is written into (reused once the previous command has let go
/// of it, so a call allocates none).
pub(super) struct Calls {
    pub(super) context: Option<Context>,
    pub(super) session: Session,
    pub(super) gate: Arc<Gate>,
    pub(super) request: BytesMut,
}

impl Calls {
    fn slot(gate: Arc<Gate>) -> Slot {
        Arc::new(Mutex::new(Calls {
            context: None,
            session: Session::for_scripts(),
            gate,
            request: BytesMut::new(),
        }))
    }
}

/// The one Lua state, shared by the event loop (inline runs) and the VM's thread.
pub type Shared = Arc<Mutex<Vm>>;

/// Starts the VM thread; it ends when the returned sender is dropped (with the `Kv`).
pub fn spawn(kv: Weak<Kv>, vm: Shared) -> std::io::Result<Sender<Job>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("kv-lua".into())
        .spawn(move || serve(&vm, &kv, rx))?;
    Ok(tx)
}

fn serve(vm: &Shared, kv: &Weak<Kv>, jobs: Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        let mut vm = crate::lock(vm);
        match job {
            Job::Eval(eval) => {
                let Some(kv) = kv.upgrade() else { return };
                let done = eval.done;
                let ran = vm.eval(kv, eval.request);
                // The gate first: once the client has the reply, its next command
                // must find the gate open.
                vm.gate.close();
                drop(vm);
                done(ran);
            }
            Job::Load(body, reply) => {
                let _ = reply.send(
                    vm.compile(&body, false)
                        .map(|name| name.as_str().to_owned()),
                );
            }
            Job::Exists(shas, reply) => {
                let found = shas
                    .iter()
                    .map(|sha| ShaName::parse(sha).is_some_and(|n| vm.cache.contains_key(&n)))
                    .collect();
                let _ = reply.send(found);
            }
            Job::Flush(reply) => {
                vm.cache.clear();
                vm.evals.clear();
                vm.collect();
                let _ = reply.send(());
            }
        }
    }
}

pub struct Vm {
    lua: Lua,
    /// The globals scripts see (see the module docs).
    env: Table,
    /// The sandbox's `run(f, KEYS, ARGV)`: installs a call's `KEYS` and `ARGV` and runs
    /// the script under the error handler (`xpcall`), so an error becomes a table with
    /// the line it happened on.
    runner: Function,
    /// The compiled scripts, by name: one lookup per `EVALSHA`.
    cache: HashMap<ShaName, Cached, ShaHash>,
    /// The scripts `EVAL` added, oldest first.
    evals: VecDeque<ShaName>,
    gate: Arc<Gate>,
    slot: Slot,
}

/// A compiled script in the cache.
struct Cached {
    function: Function,
    /// Its last run ended within the inline slice: the event loop runs it itself (see
    /// [`super`]). A `Cell`, so a run updates it through the same lookup that found the
    /// script.
    quick: Cell<bool>,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("scripts", &self.cache.len())
            .field(
                "quick",
                &self.cache.values().filter(|c| c.quick.get()).count(),
            )
            .finish_non_exhaustive()
    }
}

impl Vm {
    pub fn new(gate: Arc<Gate>) -> mlua::Result<Vm> {
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH,
            LuaOptions::default(),
        )?;
        let slot = Calls::slot(gate.clone());
        let (env, runner) = sandbox(&lua, &gate, &slot)?;
        let hook_gate = gate.clone();
        lua.set_hook(
            HookTriggers::new().every_nth_instruction(HOOK_EVERY),
            move |_, _| {
                if hook_gate.killed() {
                    return Err(mlua::Error::RuntimeError(KILLED.into()));
                }
                if hook_gate.outlived() {
                    return Err(mlua::Error::RuntimeError(ABANDONED.into()));
                }
                Ok(mlua::VmState::Continue)
            },
        );
        lua.set_memory_limit(MEMORY_LIMIT)?;
        Ok(Vm {
            lua,
            env,
            runner,
            cache: HashMap::default(),
            evals: VecDeque::new(),
            gate,
            slot,
        })
    }

    /// Compiles `body` (or finds it compiled) into the cache: its name.
    fn compile(&mut self, body: &[u8], by_eval: bool) -> Result<ShaName, Frame> {
        let name = ShaName::of(body);
        if self.cache.contains_key(&name) {
            return Ok(name);
        }
        let function = self
            .lua
            .load(body)
            .set_name("@user_script")
            .set_mode(ChunkMode::Text)
            .set_environment(self.env.clone())
            .into_function()
            .map_err(|e| {
                self.collect();
                let message = match e {
                    mlua::Error::SyntaxError { message, .. } => message,
                    other => other.to_string(),
                };
                Frame::error(format!(
                    "ERR Error compiling script (new function): {message}"
                ))
            })?;
        if by_eval {
            self.evals.push_back(name);
            if self.evals.len() > EVAL_CACHE
                && let Some(old) = self.evals.pop_front()
            {
                self.cache.remove(&old);
            }
        }
        let quick = Cell::new(false);
        self.cache.insert(name, Cached { function, quick });
        Ok(name)
    }

    /// Runs one script (on the VM's thread).
    fn eval(&mut self, kv: Arc<Kv>, request: Request) -> Ran {
        let name = match &request.script {
            Script::Body(body) => self.compile(body, true),
            Script::Sha(sha) => ShaName::parse(sha)
                .ok_or_else(|| Frame::error("NOSCRIPT No matching script. Please use EVAL.")),
        };
        let found = name.and_then(|name| match self.cache.get(&name) {
            Some(cached) => Ok((name, cached)),
            None => Err(Frame::error(
                "NOSCRIPT No matching script. Please use EVAL.",
            )),
        });
        let (name, cached) = match found {
            Ok(found) => found,
            Err(reply) => {
                return Ran {
                    reply,
                    written: Written::default(),
                };
            }
        };
        let started = Instant::now();
        let ran = self.run(kv, &name, &cached.function, &request);
        cached.quick.set(started.elapsed() <= self.gate.slice());
        ran
    }

    /// Runs one script on the event loop, if it is one of the quick ones: `Err` gives the
    /// request back to be handed to the VM's thread (a script not known quick, or an
    /// inline run that outlived `slice` before writing and was abandoned).
    pub fn eval_inline(&mut self, kv: Arc<Kv>, request: Request) -> Result<Ran, Request> {
        let name = match &request.script {
            Script::Body(body) => Some(ShaName::of(body)),
            Script::Sha(sha) => ShaName::parse(sha),
        };
        let Some(name) = name else {
            return Err(request);
        };
        let Some(cached) = self.cache.get(&name).filter(|c| c.quick.get()) else {
            return Err(request);
        };
        let started = Instant::now();
        let slice = self.gate.slice();
        self.gate.open_inline(started);
        let ran = self.run(kv, &name, &cached.function, &request);
        let abandoned = self.gate.abandoned();
        self.gate.close();
        // Whether this run fit in the slice decides where the next one runs.
        cached.quick.set(started.elapsed() <= slice);
        if abandoned {
            return Err(request);
        }
        Ok(ran)
    }

    /// Runs a compiled script in a fresh session of the caller's database.
    ///
    /// Everything is done holding `mlua`'s lock on the state ([`Lua::scope`]): each
    /// `mlua` step takes that lock, and taking it afresh is two atomic operations (a
    /// compare-and-swap in, another out, some 20 cycles each even uncontended, and
    /// invisible in an instruction count), while taking it again on the thread that holds
    /// it is a compare of the thread's id. One `EVALSHA` takes it a dozen times.
    fn run(&self, kv: Arc<Kv>, name: &ShaName, f: &Function, request: &Request) -> Ran {
        let held = self.lua.scope(|_| Ok(self.run_held(kv, name, f, request)));
        held.unwrap_or_else(|e| Ran {
            reply: failure(name.as_str(), &Value::Error(Box::new(e))),
            written: Written::default(),
        })
    }

    /// [`Vm::run`] with `mlua`'s lock held.
    fn run_held(&self, kv: Arc<Kv>, name: &ShaName, f: &Function, request: &Request) -> Ran {
        let db = request.db;
        // The script's writes reach the journal and the replicas as one unit, like
        // `EXEC`'s (unless it runs inside an `EXEC`, which is already one).
        let unit = kv.begin_unit();
        {
            let mut calls = crate::lock(&self.slot);
            calls.session.start_script(db);
            calls.context = Some(Context {
                kv,
                read_only: request.read_only,
                resp3: false,
            });
        }
        let outcome = self.call(f, &request.keys, &request.argv);
        let mut calls = crate::lock(&self.slot);
        let Calls {
            context, session, ..
        } = &mut *calls;
        // Always there: set above, and only taken here.
        let context = context.take();
        let resp3 = context.as_ref().is_some_and(|c| c.resp3);
        if let Some(context) = context
            && unit
        {
            context.kv.commit_unit(session);
        }
        let written = session.written();
        drop(calls);
        let reply = match outcome {
            Ok((true, value)) => convert::to_frame(&value, resp3),
            Ok((false, error)) => failure(name.as_str(), &error),
            Err(e) => failure(name.as_str(), &Value::Error(Box::new(e))),
        };
        if matches!(reply, Frame::Error(_)) {
            self.collect();
        }
        Ran { reply, written }
    }

    /// Runs `f` with its `KEYS` and `ARGV` under the sandbox's `run`: whether it
    /// succeeded, and its value or error.
    fn call(&self, f: &Function, keys: &[Bytes], argv: &[Bytes]) -> mlua::Result<(bool, Value)> {
        let (keys, argv) = unlimited(&self.lua, || {
            Ok::<_, mlua::Error>((self.strings(keys)?, self.strings(argv)?))
        })?;
        self.runner.call::<(bool, Value)>((f, keys, argv))
    }

    /// A failed script (or compilation) may have left garbage up to the memory limit
    /// behind: collect it now. Lua's collector itself allocates a little, so the limit is
    /// lifted while it runs.
    fn collect(&self) {
        let _ = self.lua.set_memory_limit(0);
        let _ = self.lua.gc_collect();
        let _ = self.lua.set_memory_limit(MEMORY_LIMIT);
    }

    /// `KEYS` or `ARGV`: a new table per call, as in Redis (a script may change them),
    /// made in one step; `None` for no words (the sandbox's `run` makes the empty table).
    /// Called with the memory limit lifted (see [`unlimited`]).
    fn strings(&self, words: &[Bytes]) -> mlua::Result<Option<Table>> {
        if words.is_empty() {
            return Ok(None);
        }
        self.lua
            .create_sequence_from(words.iter().map(|w| word(w)))
            .map(Some)
    }
}

/// A word of `KEYS` or `ARGV` as `mlua` pushes it fastest: text (nearly every key and
/// argument) goes straight onto the Lua stack, where bytes (`&BStr`) become a Lua string
/// `mlua` keeps a reference to, and then push and drop that reference: checking the
/// UTF-8 costs a few instructions per byte of a short key, the reference a few hundred.
fn word(w: &[u8]) -> Either<&str, &BStr> {
    match std::str::from_utf8(w) {
        Ok(text) => Either::Left(text),
        Err(_) => Either::Right(BStr::new(w)),
    }
}

/// Runs `f`, which builds Lua values from Rust (a script's `KEYS` and `ARGV`, a
/// command's reply), with the memory limit lifted.
///
/// Under a limit, `mlua` must guard every allocation it makes for Rust against Lua's
/// out-of-memory error (a `longjmp`): each table, string and `rawset` becomes a protected
/// call through a new C closure — most of what an `EVALSHA` cost beyond the script's own
/// work. Without a limit Lua's allocations cannot fail, so `mlua` makes them directly.
/// What is built here is bounded by the request or by a command's reply, as in Redis
/// (whose Lua has no limit at all); the script's own allocations stay limited, and a
/// script over the limit fails at its next one.
pub(super) fn unlimited<R>(lua: &Lua, f: impl FnOnce() -> R) -> R {
    let _ = lua.set_memory_limit(0);
    let result = f();
    let _ = lua.set_memory_limit(MEMORY_LIMIT);
    result
}

/// The reply of a script that failed with `error` (what the error handler made of it):
/// `<err> script: <sha>, on @user_script:<line>.`, Redis 7's wording.
#[cold]
#[inline(never)]
fn failure(sha: &str, error: &Value) -> Frame {
    let Value::Table(t) = error else {
        // Errors the handler never saw: running out of memory, or a failure to start.
        let text = match error {
            Value::String(s) => s.to_string_lossy(),
            Value::Error(e) => e.to_string(),
            _ => "execution failure".to_string(),
        };
        return Frame::error(one_line(format!(
            "ERR Error running script {sha}: {text} (scripts may use up to {} MiB)",
            MEMORY_LIMIT >> 20
        )));
    };
    let err: String = t.raw_get("err").unwrap_or_default();
    let line: Option<i64> = t.raw_get("line").ok();
    let source: Option<String> = t.raw_get("source").ok();
    let mut text = err;
    if let (Some(line), Some(source)) = (line, source) {
        text.push_str(&format!(" script: {sha}, on {source}:{line}."));
    }
    Frame::error(one_line(text))
}

fn one_line(text: String) -> String {
    text.replace(['\r', '\n'], " ")
}

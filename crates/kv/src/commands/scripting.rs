//! `EVAL`, `EVALSHA`, `EVAL_RO`, `EVALSHA_RO`, `SCRIPT`, and the commands a script calls
//! (`redis.call`). The scripting engine itself is [`crate::scripting`].

use std::collections::HashSet;
use std::hash::BuildHasherDefault;
use std::sync::LazyLock;

use bytes::Bytes;
use proto::{Args, CommandError, Frame};

use super::{NameHasher, Result};
use crate::scripting::gate::Gate;
use crate::scripting::vm::{self, Eval, Job, Ran, Script};
use crate::server::{Kv, Session};

/// `EVAL script numkeys key... arg...` and its variants, as they arrive.
pub struct Request {
    script: Script,
    keys: Vec<Bytes>,
    argv: Vec<Bytes>,
    read_only: bool,
}

/// Reads `EVAL`'s arguments (`by_sha`: `EVALSHA`; `read_only`: the `_RO` variants).
pub fn request(a: &mut Args, by_sha: bool, read_only: bool) -> Result<Request> {
    let script = a.next_bytes()?;
    let count = proto::decode::parse_int(&a.next_bytes()?).ok_or(CommandError::NotInteger)?;
    if count < 0 {
        return Err(CommandError::err("Number of keys can't be negative"));
    }
    if count as u64 > a.remaining() as u64 {
        return Err(CommandError::err(
            "Number of keys can't be greater than number of args",
        ));
    }
    let mut keys = Vec::with_capacity(count as usize);
    for _ in 0..count {
        keys.push(a.next_bytes()?);
    }
    Ok(Request {
        script: if by_sha {
            Script::Sha(script)
        } else {
            Script::Body(script)
        },
        keys,
        argv: a.rest(),
        read_only,
    })
}

impl Request {
    /// What the VM runs, in the caller's database.
    fn into_vm(self, s: &Session) -> vm::Request {
        vm::Request {
            script: self.script,
            keys: self.keys,
            argv: self.argv,
            db: s.db,
            read_only: self.read_only,
        }
    }
}

/// Runs a quick script on the event loop (see [`crate::scripting`]): its reply, or the
/// request back to hand to the VM's thread.
fn inline(kv: &Kv, s: &mut Session, r: Request) -> std::result::Result<Frame, vm::Request> {
    let ran = kv.scripts.run_inline(r.into_vm(s))?;
    s.absorb(ran.written);
    Ok(ran.reply)
}

/// `EVAL` on the event loop's path without a future (see
/// [`TryNow`](crate::commands::TryNow)): a quick script's reply, or `None` for
/// one that must go to the VM's thread, which [`eval`] then does. Nothing runs in between
/// (no `await` separates the two), so a run abandoned here and started again there is as
/// atomic as one that began there.
pub fn eval_inline(kv: &Kv, s: &mut Session, r: Request) -> Option<Frame> {
    inline(kv, s, r).ok()
}

/// Hands a script to the VM with the gate closed behind it (see
/// [`crate::scripting::gate`]); `done` gets the outcome.
fn start(kv: &Kv, request: vm::Request, done: Box<dyn FnOnce(Ran) + Send>) -> Result<()> {
    let gate = &kv.scripts.gate;
    gate.open();
    let job = Job::Eval(Eval { request, done });
    if !kv.scripts.send(job) {
        gate.close();
        return Err(CommandError::err("scripting is not running"));
    }
    Ok(())
}

/// `EVAL` from a client: a quick script runs inline; any other is handed to the VM's
/// thread and the event loop waits for it — nothing else runs, so the script is atomic —
/// until `busy-reply-threshold`; past it, this client keeps waiting while the event loop
/// serves the others (`-BUSY`, `SCRIPT KILL`).
pub async fn eval(kv: &Kv, s: &mut Session, r: Request) -> Frame {
    let request = match inline(kv, s, r) {
        Ok(reply) => return reply,
        Err(request) => request,
    };
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    let done = Box::new(move |ran: Ran| {
        let _ = tx.send(ran);
    });
    if let Err(e) = start(kv, request, done) {
        return e.to_frame();
    }
    kv.scripts.gate.wait(Some(kv.scripts.busy_threshold()));
    let ran = match rx.try_recv() {
        Ok(ran) => ran,
        Err(_) => match rx.await {
            Ok(ran) => ran,
            Err(_) => return CommandError::err("the script was lost").to_frame(),
        },
    };
    s.absorb(ran.written);
    ran.reply
}

/// `EVAL` inside `EXEC`: the transaction holds the event loop until the script ends.
pub fn eval_now(kv: &Kv, s: &mut Session, r: Request) -> Frame {
    let request = match inline(kv, s, r) {
        Ok(reply) => return reply,
        Err(request) => request,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let done = Box::new(move |ran: Ran| {
        let _ = tx.send(ran);
    });
    if let Err(e) = start(kv, request, done) {
        return e.to_frame();
    }
    match rx.recv() {
        Ok(ran) => {
            s.absorb(ran.written);
            ran.reply
        }
        Err(_) => CommandError::err("the script was lost").to_frame(),
    }
}

/// `SCRIPT LOAD|EXISTS|FLUSH|KILL|HELP` (the service checked the subcommand and arity).
pub fn script(kv: &Kv, a: &mut Args) -> Result {
    let sub = a.next_str()?.to_ascii_lowercase();
    let scripts = &kv.scripts;
    let lost = || CommandError::err("scripting is not running");
    match sub.as_str() {
        "load" => {
            let (tx, rx) = std::sync::mpsc::channel();
            if !scripts.send(Job::Load(a.next_bytes()?, tx)) {
                return Err(lost());
            }
            match rx.recv().map_err(|_| lost())? {
                Ok(sha) => Ok(Frame::bulk(sha)),
                Err(compile_error) => Ok(compile_error),
            }
        }
        "exists" => {
            let (tx, rx) = std::sync::mpsc::channel();
            if !scripts.send(Job::Exists(a.rest(), tx)) {
                return Err(lost());
            }
            let found = rx.recv().map_err(|_| lost())?;
            Ok(Frame::Array(
                found
                    .into_iter()
                    .map(|f| Frame::Integer(f.into()))
                    .collect(),
            ))
        }
        "flush" => {
            if let Ok(mode) = a.next_bytes()
                && !mode.eq_ignore_ascii_case(b"sync")
                && !mode.eq_ignore_ascii_case(b"async")
            {
                return Err(CommandError::err(
                    "SCRIPT FLUSH only support SYNC|ASYNC option",
                ));
            }
            let (tx, rx) = std::sync::mpsc::channel();
            if !scripts.send(Job::Flush(tx)) {
                return Err(lost());
            }
            rx.recv().map_err(|_| lost())?;
            Ok(Frame::ok())
        }
        "kill" => Ok(scripts.gate.kill()),
        // kv has no Lua debugger (Redis's LDB): only turning it off is accepted.
        "debug" => {
            let mode = a.next_bytes()?;
            if mode.eq_ignore_ascii_case(b"no") {
                Ok(Frame::ok())
            } else if mode.eq_ignore_ascii_case(b"yes") || mode.eq_ignore_ascii_case(b"sync") {
                Err(CommandError::err("kv has no Lua debugger (SCRIPT DEBUG)"))
            } else {
                Err(CommandError::err("Use SCRIPT DEBUG YES/SYNC/NO"))
            }
        }
        _ => Ok(Frame::Array(
            HELP.iter().map(|line| Frame::simple(line)).collect(),
        )),
    }
}

const HELP: &[&str] = &[
    "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DEBUG (YES|SYNC|NO)",
    "    Set the debug mode for subsequent scripts executed.",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the scripts cache.",
    "    * SYNC: Synchronously flush the scripts cache.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
    "HELP",
    "    Prints this help.",
];

/// Commands a script may not call (Redis's `noscript` flag), of those kv has.
const NOT_IN_SCRIPTS: &[&str] = &[
    "eval",
    "evalsha",
    "eval_ro",
    "evalsha_ro",
    "script",
    "multi",
    "exec",
    "discard",
    "watch",
    "unwatch",
    "save",
    "bgsave",
    "monitor",
    "shutdown",
    "blpop",
    "brpop",
    "blmove",
    "brpoplpush",
    "bzpopmin",
    "bzpopmax",
    "blmpop",
    "bzmpop",
    "sync",
    "psync",
    "replicaof",
    "slaveof",
    "subscribe",
    "psubscribe",
    "ssubscribe",
    "unsubscribe",
    "punsubscribe",
    "sunsubscribe",
    "wait",
    "client",
    "hello",
    "auth",
    "monitor",
    "shutdown",
];

/// May a script call `name`? (A set, looked up once per `redis.call`, rather than a scan
/// of [`NOT_IN_SCRIPTS`].)
fn allowed(name: &str) -> bool {
    static NOT_ALLOWED: LazyLock<HashSet<&str, BuildHasherDefault<NameHasher>>> =
        LazyLock::new(|| NOT_IN_SCRIPTS.iter().copied().collect());
    !NOT_ALLOWED.contains(name)
}

/// `redis.call`: runs one of kv's commands in the script's session, checked as Redis
/// checks a script's call.
pub fn call(kv: &Kv, s: &mut Session, mut args: Args, read_only: bool, gate: &Gate) -> Frame {
    if gate.abandoned() {
        // An inline run being moved to the VM's thread: it must not write now.
        return Frame::error("ERR the inline run outlived its slice");
    }
    let name = args.name();
    if !allowed(name) {
        return Frame::error("ERR This Redis command is not allowed from script");
    }
    if name == "ping" {
        return match args.remaining() {
            0 => Frame::simple("PONG"),
            1 => args.next_bytes().map_or(Frame::Null, Frame::Bulk),
            _ => Frame::error("ERR Wrong number of args calling Redis command from script"),
        };
    }
    // One lookup of the row, for its spec and its handler both.
    let Some(row) = super::command(name) else {
        return Frame::error("ERR Unknown Redis command called from script");
    };
    let spec = &row.spec;
    args.set_known_name(spec.name);
    if !spec.arity_ok(args.remaining() + 1) {
        return Frame::error("ERR Wrong number of args calling Redis command from script");
    }
    if spec.flags.contains(&"write") {
        if read_only {
            return Frame::error("ERR Write commands are not allowed from read-only scripts.");
        }
        gate.wrote();
    }
    let a = &mut args;
    let result = match spec.name {
        "lrange" => super::lists::lrange(kv, s, a)
            .map(|encoded| service::Settled::Resp2(encoded).into_frame()),
        _ => super::run(row, kv, s, a, proto::Protocol::Resp2).unwrap_or_else(|| {
            Err(CommandError::err(
                "Unknown Redis command called from script",
            ))
        }),
    };
    result.unwrap_or_else(|e| e.to_frame())
}

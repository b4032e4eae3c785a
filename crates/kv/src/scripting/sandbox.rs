//! The sandbox scripts run in, and the `redis` library they call: the Lua half (the
//! read-only globals, `run`, the libraries' Lua parts, [`SANDBOX`]) and the Rust half
//! (`redis.call` and `redis.pcall`, the error handler, the `pcall` that cannot catch a
//! kill). The state and the script cache they serve are [`super::vm`]'s.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use mlua::{Function, Lua, MultiValue, Table, Value};
use proto::{Args, Frame};

use super::convert;
use super::gate::Gate;
use super::vm::{ABANDONED, Calls, Context, KILLED, MEMORY_LIMIT, Slot, unlimited};

/// A request buffer grown past this by a large command is not kept for the next.
const KEEP_REQUEST: usize = 64 << 10;

/// An error reply `redis.call` raises: the script fails with its text as it is.
#[derive(Debug)]
pub(super) struct ReplyError(String);

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ReplyError {}

/// The error reply inside an error raised from Rust, if it is one.
fn reply_error(e: &mlua::Error) -> Option<&str> {
    match e {
        mlua::Error::ExternalError(inner) => {
            inner.downcast_ref::<ReplyError>().map(|r| r.0.as_str())
        }
        mlua::Error::CallbackError { cause, .. } => reply_error(cause),
        _ => None,
    }
}

/// The message handler a script runs under (Redis's `__redis__err__handler`): turns any
/// error into a `{err = ...}` table and notes the script line it happened on.
fn error_handler(lua: &Lua, error: Value) -> mlua::Result<Table> {
    let t = match error {
        Value::Table(t) if matches!(t.raw_get::<Value>("err"), Ok(Value::String(_))) => t,
        other => {
            let text = match other {
                Value::String(s) => format!("ERR {}", s.to_string_lossy()),
                Value::Error(e) => error_text(&e),
                other => format!("ERR {}", other.to_string().unwrap_or_default()),
            };
            let t = lua.create_table()?;
            t.raw_set("err", text)?;
            t
        }
    };
    // Where the error happened: the first Lua frame that is not the sandbox's own (Redis
    // skips one C frame: `error` or `redis.call`, its library being C).
    let place = (1..64)
        .map_while(|level| lua.inspect_stack(level))
        .find_map(|frame| {
            let source = frame.source();
            let name = source.source?;
            (!matches!(source.what, "C" | "tail") && name != "=sandbox")
                .then(|| (name.into_owned(), frame.curr_line()))
        });
    if let Some((source, line)) = place {
        t.raw_set("source", source)?;
        t.raw_set("line", line)?;
    }
    Ok(t)
}

/// An error raised from Rust (the kill hook, the memory limit) as Redis words it.
fn error_text(e: &mlua::Error) -> String {
    match e {
        mlua::Error::RuntimeError(text) if text.starts_with("ERR ") => text.clone(),
        mlua::Error::RuntimeError(text) => format!("ERR {text}"),
        e if reply_error(e).is_some() => reply_error(e).unwrap_or_default().to_string(),
        mlua::Error::CallbackError { cause, .. } => error_text(cause),
        mlua::Error::MemoryError(_) => format!(
            "ERR not enough memory: scripts may use up to {} MiB",
            MEMORY_LIMIT >> 20
        ),
        other => format!("ERR {other}"),
    }
}

/// A killed script, or an abandoned inline run, must stop whatever catches errors (a
/// `pcall` in a loop would otherwise outlast `SCRIPT KILL`, as Redis's hook also sees
/// to): the error `pcall`, `xpcall` and `coroutine.resume` raise again.
fn stopped(gate: &Gate) -> Option<mlua::Error> {
    if gate.killed() {
        return Some(mlua::Error::RuntimeError(KILLED.into()));
    }
    gate.abandoned()
        .then(|| mlua::Error::RuntimeError(ABANDONED.into()))
}

/// Builds the `redis` library and the read-only globals scripts run with, and the
/// function that runs a script in them (see [`SANDBOX`]).
pub(super) fn sandbox(lua: &Lua, gate: &Arc<Gate>, slot: &Slot) -> mlua::Result<(Table, Function)> {
    // `redis.call` is a Rust function, as in Redis a C one: `return redis.call(...)` is
    // then no Lua tail call, and the error handler still finds the script's line.
    let call_slot = slot.clone();
    let call = lua.create_function(move |lua, words: MultiValue| {
        let reply = redis_call(lua, &call_slot, words)?;
        if let Value::Table(t) = &reply
            && let Ok(Value::String(e)) = t.raw_get::<Value>("err")
        {
            return Err(mlua::Error::external(ReplyError(e.to_string_lossy())));
        }
        Ok(reply)
    })?;
    let pcall_slot = slot.clone();
    let pcall =
        lua.create_function(move |lua, words: MultiValue| redis_call(lua, &pcall_slot, words))?;
    // Redis 7's `pcall`: an error reply caught (from `redis.call`, or `error({err = ...})`)
    // comes back as its text.
    let tidy_gate = gate.clone();
    let tidy = lua.create_function(move |lua, mut results: MultiValue| {
        if let Some(stop) = stopped(&tidy_gate) {
            return Err(stop);
        }
        if let Some(Value::Boolean(false)) = results.front() {
            let text = match results.get(1) {
                Some(Value::Error(e)) => reply_error(e).map(str::to_string),
                Some(Value::Table(t)) => match t.raw_get::<Value>("err") {
                    Ok(Value::String(s)) => Some(s.to_string_lossy()),
                    _ => None,
                },
                _ => None,
            };
            if let Some(text) = text {
                results[1] = Value::String(lua.create_string(text)?);
            }
        }
        Ok(results)
    })?;
    let sha1hex = lua.create_function(|_, s: mlua::String| {
        Ok(sha1_smol::Sha1::from(&s.as_bytes()[..])
            .digest()
            .to_string())
    })?;
    let log = lua.create_function(|_, (level, words): (i64, MultiValue)| {
        let text: Vec<String> = words
            .iter()
            .map(|w| w.to_string().unwrap_or_default())
            .collect();
        let text = text.join(" ");
        match level {
            0 => tracing::debug!(target: "kv::script", "{text}"),
            1 => tracing::info!(target: "kv::script", verbose = true, "{text}"),
            2 => tracing::info!(target: "kv::script", "{text}"),
            3 => tracing::warn!(target: "kv::script", "{text}"),
            _ => return Err(mlua::Error::RuntimeError("Invalid debug level.".into())),
        }
        Ok(())
    })?;
    let resp_slot = slot.clone();
    let setresp = lua.create_function(move |_, version: i64| {
        if version != 2 && version != 3 {
            return Err(mlua::Error::RuntimeError(
                "RESP version must be 2 or 3.".into(),
            ));
        }
        if let Some(context) = crate::lock(&resp_slot).context.as_mut() {
            context.resp3 = version == 3;
        }
        Ok(())
    })?;
    let rethrow_gate = gate.clone();
    let rethrow =
        lua.create_function(move |_, results: MultiValue| match stopped(&rethrow_gate) {
            Some(stop) => Err(stop),
            None => Ok(results),
        })?;
    let handler = lua.create_function(error_handler)?;
    lua.load(SANDBOX)
        .set_name("=sandbox")
        .call((call, pcall, tidy, sha1hex, log, setresp, rethrow, handler))
}

/// The Lua half of the sandbox, run once with the full globals.
const SANDBOX: &str = r#"
local call, pcall_reply, tidy, sha1hex, log, setresp, rethrow, handler = ...
local error, type, tostring, setmetatable, pairs, ipairs, select =
  error, type, tostring, setmetatable, pairs, ipairs, select
local setfenv, loadstring, pcall, xpcall = setfenv, loadstring, pcall, xpcall
local resume = coroutine.resume

local redis = {}
-- redis.call raises a command's error; redis.pcall returns it as {err = ...}.
redis.call = call
redis.pcall = pcall_reply
redis.error_reply = function(msg)
  if type(msg) ~= 'string' then return {err = 'ERR wrong number or type of arguments'} end
  if msg:sub(1, 1) == '-' then msg = msg:sub(2) end
  if not msg:find(' ', 1, true) then msg = 'ERR ' .. msg end
  msg = msg:gsub('[\r\n]+$', '')
  return {err = msg}
end
redis.status_reply = function(msg)
  if type(msg) ~= 'string' then return {err = 'ERR wrong number or type of arguments'} end
  return {ok = msg}
end
redis.sha1hex = function(s)
  if type(s) ~= 'string' and type(s) ~= 'number' then error('wrong number of arguments', 2) end
  return sha1hex(tostring(s))
end
redis.log = function(level, ...)
  if select('#', ...) == 0 then error('redis.log() requires two arguments or more.', 2) end
  if type(level) ~= 'number' then error('First argument must be a number (log level).', 2) end
  log(level, ...)
end
redis.setresp = function(...)
  if select('#', ...) ~= 1 then error('redis.setresp() requires one argument.', 0) end
  setresp(...)
end
-- Redis 7 always replicates a script's effects: these remain for old scripts.
redis.replicate_commands = function() return true end
redis.set_repl = function() end
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL = 0, 1, 2, 2, 3
redis.REDIS_VERSION, redis.REDIS_VERSION_NUM = '7.4.0', 0x070400

local function readonly(t)
  return setmetatable({}, {
    __index = t,
    __newindex = function() error('Attempt to modify a readonly table', 2) end,
    __metatable = false,
  })
end

local removed = {
  loadfile = true, dofile = true, print = true, setfenv = true, getfenv = true,
  newproxy = true, module = true, require = true, gcinfo = true, load = true,
}
local visible = {}
for name, value in pairs(_G) do
  if not removed[name] then visible[name] = value end
end
local co = {}
for name, value in pairs(coroutine) do co[name] = value end
co.resume = function(...) return rethrow(resume(...)) end
coroutine = co
for _, name in ipairs({'string', 'table', 'math', 'coroutine'}) do
  visible[name] = readonly(_G[name])
end
visible.redis = readonly(redis)
visible.pcall = function(...) return tidy(pcall(...)) end
visible.xpcall = function(...) return rethrow(xpcall(...)) end

-- A global the script reads (`redis`, `tonumber`...) is found in `visible` by the VM
-- itself, with no Lua call per lookup; only a name `visible` lacks reaches the function.
setmetatable(visible, {
  __index = function(_, name)
    error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
  end,
  __metatable = false,
})
local env = setmetatable({}, {
  __index = visible,
  __newindex = function() error('Attempt to modify a readonly table', 2) end,
  __metatable = false,
})
visible._G = env
-- Source text only (bytecode can break out of any sandbox), run with the same globals.
visible.loadstring = function(s, name)
  if type(s) == 'string' and s:byte(1) == 27 then
    return nil, 'attempt to load a binary chunk'
  end
  local f, e = loadstring(s, name)
  if f then setfenv(f, env) end
  return f, e
end

-- One script call: its KEYS and ARGV (fresh tables; nil for an empty one, made here,
-- where an empty table costs less than one made from Rust) become globals, and the
-- script runs under the error handler. One call from Rust per script, where setting
-- each global from Rust and calling xpcall would be three.
--
-- KEYS and ARGV live in `visible`, beside the libraries: read-only to the script, as in
-- Redis 7 (`KEYS = nil` fails), and set here with two plain table stores, where two
-- `rawset`s into `env` were two C calls (about 430 instructions per EVALSHA).
local function run(f, keys, argv)
  visible.KEYS = keys or {}
  visible.ARGV = argv or {}
  return xpcall(f, handler)
end
return env, run
"#;

/// `redis.call`/`redis.pcall`'s Rust half: runs the command and returns its reply, an
/// error reply as `{err = ...}` (the Lua half raises it for `redis.call`).
///
/// Kept to what every call runs: the rare paths (a number argument, an error) are
/// functions of their own, out of line, so the common path spans fewer cache lines (a
/// script's path through kv, `mlua` and Lua is larger than the instruction cache, so
/// each line it touches is likely a miss).
fn redis_call(lua: &Lua, slot: &Slot, words: MultiValue) -> mlua::Result<Value> {
    if words.is_empty() {
        return fail(
            lua,
            "ERR Please specify at least one argument for this redis lib call",
        );
    }
    let mut calls = crate::lock(slot);
    let Calls {
        context,
        session,
        gate,
        request,
    } = &mut *calls;
    // The command in request form, as a client would have sent it: one buffer, not a
    // copy per word.
    request.reserve(64);
    request.put_u8(b'*');
    proto::frame::put_decimal(request, words.len() as i64);
    request.put_slice(b"\r\n");
    let first = request.len();
    for word in &words {
        match word {
            Value::String(s) => put_word(request, &s.as_bytes()),
            other => {
                if !put_number(request, other) {
                    request.clear();
                    return fail(
                        lua,
                        "ERR Lua redis lib command arguments must be strings or integers",
                    );
                }
            }
        }
    }
    let args = Args::from_request(request.split().freeze(), first, words.len());
    if request.capacity() > KEEP_REQUEST {
        *request = BytesMut::new();
    }
    drop(words);
    let Some(Context {
        kv,
        read_only,
        resp3,
    }) = context.as_mut()
    else {
        return fail(lua, "ERR redis.call outside a script");
    };
    let reply = crate::commands::scripting::call(kv, session, args, *read_only, gate);
    let resp3 = *resp3;
    drop(calls);
    match reply {
        // A number makes no Lua object: no limit to lift.
        Frame::Integer(n) => Ok(Value::Number(n as f64)),
        reply => unlimited(lua, || convert::to_lua(lua, reply, resp3)),
    }
}

/// A number argument as a word of the request (`false` for anything else, which no
/// command takes). Redis writes a number with `%.17g`: `3` is "3", `0.1` is
/// "0.10000000000000001".
#[cold]
#[inline(never)]
fn put_number(request: &mut BytesMut, word: &Value) -> bool {
    match word {
        Value::Integer(n) => put_word(request, n.to_string().as_bytes()),
        Value::Number(n) => put_word(request, proto::frame::format_double(*n).as_bytes()),
        _ => return false,
    }
    true
}

/// `redis.call`'s error reply `{err = text}` (raised by the Lua half of `redis.call`).
#[cold]
#[inline(never)]
fn fail(lua: &Lua, text: &str) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set("err", text)?;
    Ok(Value::Table(t))
}

/// One bulk string of a request.
fn put_word(request: &mut BytesMut, word: &[u8]) {
    request.reserve(word.len() + 16);
    request.put_u8(b'$');
    proto::frame::put_decimal(request, word.len() as i64);
    request.put_slice(b"\r\n");
    request.put_slice(word);
    request.put_slice(b"\r\n");
}

//! RESP commands → engine calls → reply frames, one module per family:
//! [`strings`] (GET, SET, MGET, MSET, INCR...), [`keys`] (DEL, EXISTS, EXPIRE, TTL,
//! KEYS, SCAN...), and [`cache`] (WARM, DBSIZE, FLUSHALL).

pub mod cache;
pub mod keys;
pub mod strings;

use bytes::Bytes;
use proto::{Args, CommandError, Frame};
use service::{CommandSpec, Reply};

use crate::layer::CacheLayer;

/// Every command the cache implements; the service checks arity before `execute`.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("get", 2, &["readonly", "fast"], "string", "Returns the string value of a key (reading through to the origin on a miss).").keys(1, 1, 1).syntax("key"),
    CommandSpec::new("set", -3, &["write", "denyoom"], "string", "Sets the string value of a key, with an optional TTL (the default TTL otherwise).").keys(1, 1, 1).syntax("key value [NX|XX] [GET] [EX seconds|PX milliseconds|EXAT unix-time-seconds|PXAT unix-time-milliseconds|KEEPTTL]"),
    CommandSpec::new("setex", 4, &["write", "denyoom"], "string", "Sets the string value and expiration time of a key.").keys(1, 1, 1).syntax("key seconds value"),
    CommandSpec::new("psetex", 4, &["write", "denyoom"], "string", "Sets the string value and expiration time in milliseconds of a key.").keys(1, 1, 1).syntax("key milliseconds value"),
    CommandSpec::new("setnx", 3, &["write", "denyoom", "fast"], "string", "Sets the string value of a key only when the key doesn't exist.").keys(1, 1, 1).syntax("key value"),
    CommandSpec::new("mget", -2, &["readonly", "fast"], "string", "Atomically returns the string values of one or more keys.").keys(1, -1, 1).syntax("key [key ...]"),
    CommandSpec::new("mset", -3, &["write", "denyoom"], "string", "Atomically creates or modifies the string values of one or more keys.").keys(1, -1, 2).syntax("key value [key value ...]"),
    CommandSpec::new("incr", 2, &["write", "denyoom", "fast"], "string", "Increments the integer value of a key by one.").keys(1, 1, 1).syntax("key"),
    CommandSpec::new("decr", 2, &["write", "denyoom", "fast"], "string", "Decrements the integer value of a key by one.").keys(1, 1, 1).syntax("key"),
    CommandSpec::new("incrby", 3, &["write", "denyoom", "fast"], "string", "Increments the integer value of a key by a number.").keys(1, 1, 1).syntax("key increment"),
    CommandSpec::new("decrby", 3, &["write", "denyoom", "fast"], "string", "Decrements a number from the integer value of a key.").keys(1, 1, 1).syntax("key decrement"),
    CommandSpec::new("del", -2, &["write"], "generic", "Deletes one or more keys.").keys(1, -1, 1).syntax("key [key ...]"),
    CommandSpec::new("unlink", -2, &["write", "fast"], "generic", "Deletes one or more keys.").keys(1, -1, 1).syntax("key [key ...]"),
    CommandSpec::new("exists", -2, &["readonly", "fast"], "generic", "Determines whether one or more keys exist in the cache.").keys(1, -1, 1).syntax("key [key ...]"),
    CommandSpec::new("type", 2, &["readonly", "fast"], "generic", "Determines the type of value stored at a key.").keys(1, 1, 1).syntax("key"),
    CommandSpec::new("expire", -3, &["write", "fast"], "generic", "Sets the expiration time of a key in seconds.").keys(1, 1, 1).syntax("key seconds [NX|XX|GT|LT]"),
    CommandSpec::new("pexpire", -3, &["write", "fast"], "generic", "Sets the expiration time of a key in milliseconds.").keys(1, 1, 1).syntax("key milliseconds [NX|XX|GT|LT]"),
    CommandSpec::new("expireat", -3, &["write", "fast"], "generic", "Sets the expiration time of a key to a Unix timestamp.").keys(1, 1, 1).syntax("key unix-time-seconds [NX|XX|GT|LT]"),
    CommandSpec::new("pexpireat", -3, &["write", "fast"], "generic", "Sets the expiration time of a key to a Unix milliseconds timestamp.").keys(1, 1, 1).syntax("key unix-time-milliseconds [NX|XX|GT|LT]"),
    CommandSpec::new("ttl", 2, &["readonly", "fast"], "generic", "Returns the expiration time in seconds of a key.").keys(1, 1, 1).syntax("key"),
    CommandSpec::new("pttl", 2, &["readonly", "fast"], "generic", "Returns the expiration time in milliseconds of a key.").keys(1, 1, 1).syntax("key"),
    CommandSpec::new("persist", 2, &["write", "fast"], "generic", "Removes the expiration time of a key.").keys(1, 1, 1).syntax("key"),
    CommandSpec::new("keys", 2, &["readonly"], "generic", "Returns all key names that match a pattern.").syntax("pattern"),
    CommandSpec::new("scan", -2, &["readonly"], "generic", "Iterates over the key names in the cache.").syntax("cursor [MATCH pattern] [COUNT count] [TYPE type]"),
    CommandSpec::new("dbsize", 1, &["readonly", "fast"], "server", "Returns the number of keys in the cache."),
    CommandSpec::new("flushall", -1, &["write"], "server", "Removes all keys from the cache (never from the origin).").syntax("[ASYNC|SYNC]"),
    CommandSpec::new("flushdb", -1, &["write"], "server", "Removes all keys from the cache (never from the origin).").syntax("[ASYNC|SYNC]"),
    CommandSpec::new("warm", -2, &["write", "denyoom"], "cache", "Loads keys from the origin ahead of demand; returns how many the origin had.").keys(1, -1, 1).syntax("key [key ...]"),
];

/// Runs one command, waiting for the origin where it has to (a read-through, a
/// write-through, `WARM`); whatever never waits is [`execute_now`]'s.
pub async fn execute(server: &CacheLayer, mut args: Args) -> Reply {
    let result = match args.name() {
        "get" => strings::get(server, &mut args).await,
        "set" => strings::set(server, &mut args).await,
        "setex" | "psetex" => strings::setex(server, &mut args).await,
        "setnx" => strings::setnx(server, &mut args).await,
        "mget" => strings::mget(server, &mut args).await,
        "mset" => strings::mset(server, &mut args).await,
        "incr" | "decr" | "incrby" | "decrby" => strings::incr(server, &mut args).await,
        "del" | "unlink" => keys::del(server, &mut args).await,
        "warm" => cache::warm(server, &mut args).await,
        _ => return execute_now(server, args),
    };
    reply(result)
}

/// Whether `name` runs without waiting, so the connection can call [`execute_now`]
/// straight from its loop and build no future for it. The TTL, key-space and flush
/// commands never reach the origin; `GET`, `MGET` and `SET` do only when there is one
/// (a read-through on a miss, a write-through first). The rest of the writes are rarer
/// and keep the one path that forwards them.
pub fn runs_now(server: &CacheLayer, name: &str) -> bool {
    match name {
        "get" | "mget" | "set" => server.origin().is_none(),
        "exists" | "type" | "expire" | "pexpire" | "expireat" | "pexpireat" | "ttl" | "pttl"
        | "persist" | "keys" | "scan" | "dbsize" | "flushall" | "flushdb" => true,
        _ => false,
    }
}

/// Runs a command that [`runs_now`] says never waits (a synchronous call: no future).
pub fn execute_now(server: &CacheLayer, mut args: Args) -> Reply {
    let result = match args.name() {
        "get" => strings::get_now(server, &mut args),
        "mget" => strings::mget_now(server, &mut args),
        "set" => strings::set_now(server, &mut args),
        "exists" => keys::exists(server, &mut args),
        "type" => keys::key_type(server, &mut args),
        "expire" | "pexpire" | "expireat" | "pexpireat" => keys::expire(server, &mut args),
        "ttl" | "pttl" => keys::ttl(server, &mut args),
        "persist" => keys::persist(server, &mut args),
        "keys" => keys::keys(server, &mut args),
        "scan" => keys::scan(server, &mut args),
        "dbsize" => cache::dbsize(server, &mut args),
        "flushall" | "flushdb" => cache::flushall(server, &mut args),
        _ => return Reply::Unhandled(args),
    };
    reply(result)
}

fn reply(result: CommandResult) -> Reply {
    match result {
        Ok(frame) => Reply::One(frame),
        Err(e) => Reply::One(e.to_frame()),
    }
}

/// The request as the client sent it (name and arguments), for forwarding to the origin.
/// Taken before parsing consumes the arguments.
pub(crate) fn words(args: &Args) -> Vec<Bytes> {
    std::iter::once(Bytes::copy_from_slice(args.raw_name()))
        .chain(args.peek_bytes())
        .collect()
}

pub(crate) type CommandResult = Result<Frame, CommandError>;

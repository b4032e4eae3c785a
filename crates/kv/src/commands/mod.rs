//! RESP commands: parse the arguments, call the engine, shape the reply.
//!
//! One module per command family, as Redis groups them. Each command is a function from
//! its arguments to a reply frame; writes build a [`crate::keyspace::Mutation`] and hand
//! it to [`Kv::write`], reads run a closure against the keyspace with [`Kv::read`].

mod expiry;
mod keys;
mod strings;

use bytes::Bytes;
use proto::{Args, CommandError, Frame};
use service::{Client, CommandSpec, Reply};

use crate::keyspace::{DATABASES, Outcome};
use crate::server::{Kv, Session};

/// What a command function returns.
type Result<T = Frame> = std::result::Result<T, CommandError>;

const W: &[&str] = &["write"];
const WF: &[&str] = &["write", "fast"];
const WD: &[&str] = &["write", "denyoom"];
const WDF: &[&str] = &["write", "denyoom", "fast"];
const R: &[&str] = &["readonly"];
const RF: &[&str] = &["readonly", "fast"];

const fn spec(
    name: &'static str,
    arity: i64,
    flags: &'static [&'static str],
    group: &'static str,
    summary: &'static str,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, group, summary)
}

/// Every command kv implements, for `COMMAND` and the arity check.
pub static TABLE: &[CommandSpec] = &[
    // strings
    spec("get", 2, RF, "string", "Returns the string value of a key.").keys(1, 1, 1),
    spec(
        "set",
        -3,
        WD,
        "string",
        "Sets the string value of a key, with options.",
    )
    .keys(1, 1, 1)
    .syntax("key value [NX|XX] [GET] [EX seconds|PX ms|EXAT ts|PXAT ts|KEEPTTL]"),
    spec(
        "setnx",
        3,
        WDF,
        "string",
        "Sets a key only if it does not exist.",
    )
    .keys(1, 1, 1),
    spec(
        "setex",
        4,
        WD,
        "string",
        "Sets a key with a TTL in seconds.",
    )
    .keys(1, 1, 1),
    spec(
        "psetex",
        4,
        WD,
        "string",
        "Sets a key with a TTL in milliseconds.",
    )
    .keys(1, 1, 1),
    spec(
        "getset",
        3,
        WDF,
        "string",
        "Sets a key and returns its old value.",
    )
    .keys(1, 1, 1),
    spec(
        "getdel",
        2,
        WF,
        "string",
        "Returns a key's value and deletes it.",
    )
    .keys(1, 1, 1),
    spec(
        "getex",
        -2,
        WF,
        "string",
        "Returns a key's value and changes its TTL.",
    )
    .keys(1, 1, 1)
    .syntax("key [EX seconds|PX ms|EXAT ts|PXAT ts|PERSIST]"),
    spec(
        "mget",
        -2,
        RF,
        "string",
        "Returns the values of several keys.",
    )
    .keys(1, -1, 1),
    spec("mset", -3, WD, "string", "Sets several keys.").keys(1, -1, 2),
    spec(
        "msetnx",
        -3,
        WD,
        "string",
        "Sets several keys only if none exists.",
    )
    .keys(1, -1, 2),
    spec("append", 3, WDF, "string", "Appends to a string.").keys(1, 1, 1),
    spec("strlen", 2, RF, "string", "Returns the length of a string.").keys(1, 1, 1),
    spec("getrange", 4, R, "string", "Returns a substring.").keys(1, 1, 1),
    spec("setrange", 4, WD, "string", "Overwrites part of a string.").keys(1, 1, 1),
    spec("incr", 2, WDF, "string", "Increments an integer by one.").keys(1, 1, 1),
    spec("incrby", 3, WDF, "string", "Increments an integer.").keys(1, 1, 1),
    spec("decr", 2, WDF, "string", "Decrements an integer by one.").keys(1, 1, 1),
    spec("decrby", 3, WDF, "string", "Decrements an integer.").keys(1, 1, 1),
    spec("incrbyfloat", 3, WDF, "string", "Increments a float.").keys(1, 1, 1),
    // keys
    spec("del", -2, W, "generic", "Deletes keys.").keys(1, -1, 1),
    spec("unlink", -2, WF, "generic", "Deletes keys.").keys(1, -1, 1),
    spec(
        "exists",
        -2,
        RF,
        "generic",
        "Counts existing keys (repeats count).",
    )
    .keys(1, -1, 1),
    spec(
        "type",
        2,
        RF,
        "generic",
        "Returns the type of a key's value.",
    )
    .keys(1, 1, 1),
    spec("rename", 3, W, "generic", "Renames a key.").keys(1, 2, 1),
    spec(
        "renamenx",
        3,
        WF,
        "generic",
        "Renames a key if the new name is free.",
    )
    .keys(1, 2, 1),
    spec(
        "keys",
        2,
        R,
        "generic",
        "Returns the keys matching a pattern.",
    ),
    spec("scan", -2, R, "generic", "Iterates over the keys.")
        .syntax("cursor [MATCH pattern] [COUNT count] [TYPE type]"),
    spec("randomkey", 1, R, "generic", "Returns a random key."),
    spec("dbsize", 1, RF, "server", "Returns the number of keys."),
    spec(
        "flushdb",
        -1,
        W,
        "server",
        "Deletes every key of the database.",
    ),
    spec(
        "flushall",
        -1,
        W,
        "server",
        "Deletes every key of every database.",
    ),
    spec(
        "select",
        2,
        &["fast"],
        "connection",
        "Changes the selected database.",
    ),
    spec("swapdb", 3, WF, "server", "Swaps two databases."),
    spec("touch", -2, RF, "generic", "Counts existing keys.").keys(1, -1, 1),
    spec("copy", -3, WD, "generic", "Copies a key.")
        .keys(1, 2, 1)
        .syntax("source destination [DB db] [REPLACE]"),
    spec("dump", 2, R, "generic", "Serializes a key's value.").keys(1, 1, 1),
    spec(
        "restore",
        -4,
        WD,
        "generic",
        "Creates a key from a DUMP payload.",
    )
    .keys(1, 1, 1)
    .syntax("key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f]"),
    // expiry
    spec("expire", -3, WF, "generic", "Sets a TTL in seconds.").keys(1, 1, 1),
    spec("pexpire", -3, WF, "generic", "Sets a TTL in milliseconds.").keys(1, 1, 1),
    spec("expireat", -3, WF, "generic", "Sets an expiry Unix time.").keys(1, 1, 1),
    spec(
        "pexpireat",
        -3,
        WF,
        "generic",
        "Sets an expiry Unix time in ms.",
    )
    .keys(1, 1, 1),
    spec("ttl", 2, RF, "generic", "Returns the TTL in seconds.").keys(1, 1, 1),
    spec("pttl", 2, RF, "generic", "Returns the TTL in milliseconds.").keys(1, 1, 1),
    spec("persist", 2, WF, "generic", "Removes a key's TTL.").keys(1, 1, 1),
    spec(
        "expiretime",
        2,
        RF,
        "generic",
        "Returns the expiry Unix time.",
    )
    .keys(1, 1, 1),
    spec(
        "pexpiretime",
        2,
        RF,
        "generic",
        "Returns the expiry Unix time in ms.",
    )
    .keys(1, 1, 1),
    // server
    spec("time", 1, &["fast"], "server", "Returns the server time."),
    spec(
        "save",
        1,
        &["admin"],
        "server",
        "Flushes the dataset to disk.",
    ),
    spec(
        "bgsave",
        -1,
        &["admin"],
        "server",
        "Flushes the dataset to disk.",
    ),
    spec(
        "lastsave",
        1,
        &["fast"],
        "server",
        "Unix time of the last flush to disk.",
    ),
];

/// Runs one command, or hands it back to the service if it is not a kv command.
pub async fn execute(kv: &Kv, client: &mut Client<Session>, mut args: Args) -> Reply {
    let a = &mut args;
    let s = &mut client.session;
    let result = match a.name() {
        "get" => strings::get(kv, s, a),
        "set" => strings::set(kv, s, a),
        "setnx" => strings::setnx(kv, s, a),
        "setex" => strings::setex(kv, s, a, 1000),
        "psetex" => strings::setex(kv, s, a, 1),
        "getset" => strings::getset(kv, s, a),
        "getdel" => strings::getdel(kv, s, a),
        "getex" => strings::getex(kv, s, a),
        "mget" => strings::mget(kv, s, a),
        "mset" => strings::mset(kv, s, a, false),
        "msetnx" => strings::mset(kv, s, a, true),
        "append" => strings::append(kv, s, a),
        "strlen" => strings::strlen(kv, s, a),
        "getrange" => strings::getrange(kv, s, a),
        "setrange" => strings::setrange(kv, s, a),
        "incr" => strings::incr(kv, s, a, Some(1)),
        "decr" => strings::incr(kv, s, a, Some(-1)),
        "incrby" => strings::incr(kv, s, a, None),
        "decrby" => strings::decrby(kv, s, a),
        "incrbyfloat" => strings::incrbyfloat(kv, s, a),
        "del" | "unlink" => keys::del(kv, s, a),
        "exists" | "touch" => keys::exists(kv, s, a),
        "type" => keys::type_of(kv, s, a),
        "rename" => keys::rename(kv, s, a, false),
        "renamenx" => keys::rename(kv, s, a, true),
        "keys" => keys::keys(kv, s, a),
        "scan" => keys::scan(kv, s, a),
        "randomkey" => keys::randomkey(kv, s),
        "dbsize" => Ok(Frame::Integer(
            kv.read(|ks, now| ks.dbsize(s.db, now)) as i64
        )),
        "flushdb" => keys::flush(kv, s, a, false),
        "flushall" => keys::flush(kv, s, a, true),
        "select" => match db_index(a.next_bytes()) {
            Ok(db) => {
                s.db = db;
                client.set_db(db);
                Ok(Frame::ok())
            }
            Err(e) => Err(e),
        },
        "swapdb" => keys::swapdb(kv, s, a),
        "copy" => keys::copy(kv, s, a),
        "dump" => keys::dump(kv, s, a),
        "restore" => keys::restore(kv, s, a),
        "expire" => expiry::expire(kv, s, a, 1000, false),
        "pexpire" => expiry::expire(kv, s, a, 1, false),
        "expireat" => expiry::expire(kv, s, a, 1000, true),
        "pexpireat" => expiry::expire(kv, s, a, 1, true),
        "ttl" => expiry::ttl(kv, s, a, expiry::TtlView::Seconds),
        "pttl" => expiry::ttl(kv, s, a, expiry::TtlView::Millis),
        "persist" => expiry::persist(kv, s, a),
        "expiretime" => expiry::ttl(kv, s, a, expiry::TtlView::UnixSeconds),
        "pexpiretime" => expiry::ttl(kv, s, a, expiry::TtlView::UnixMillis),
        "time" => Ok(time()),
        "save" => {
            kv.save().await;
            Ok(Frame::ok())
        }
        "bgsave" => {
            kv.save().await;
            Ok(Frame::simple("Background saving started"))
        }
        "lastsave" => Ok(Frame::Integer(kv.last_save() as i64)),
        _ => return Reply::Unhandled(args),
    };
    match result {
        Ok(frame) => Reply::One(frame),
        Err(e) => Reply::One(e.to_frame()),
    }
}

/// An engine outcome as a reply frame.
fn reply(outcome: Outcome) -> Frame {
    match outcome {
        Outcome::Ok => Frame::ok(),
        Outcome::Nil => Frame::Null,
        Outcome::Integer(n) => Frame::Integer(n),
        Outcome::Bulk(b) => Frame::Bulk(b),
    }
}

/// The next argument as an integer, parsed as strictly as Redis's `string2ll` (no
/// leading zeros, no `-0`), which is stricter than `Args::next_int`.
fn next_int(args: &mut Args) -> Result<i64> {
    crate::keyspace::parse_integer(&args.next_bytes()?).ok_or(CommandError::NotInteger)
}

/// A database number argument (`SELECT`, `COPY ... DB`): Redis's two errors.
fn db_index(arg: Result<Bytes>) -> Result<usize> {
    let n = crate::keyspace::parse_integer(&arg?).ok_or(CommandError::NotInteger)?;
    let n = i32::try_from(n).map_err(|_| {
        CommandError::err("value is out of range, value must between -2147483648 and 2147483647")
    })?;
    if !(0..DATABASES as i32).contains(&n) {
        return Err(CommandError::err("DB index is out of range"));
    }
    Ok(n as usize)
}

/// `TIME`: Unix seconds and microseconds, as two bulk strings.
fn time() -> Frame {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Frame::bulk_array([
        Bytes::from(now.as_secs().to_string()),
        Bytes::from(now.subsec_micros().to_string()),
    ])
}

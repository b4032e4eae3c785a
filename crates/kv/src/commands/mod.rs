//! RESP commands: parse the arguments, call the engine, shape the reply.
//!
//! One module per command family, as Redis groups them. Each command is a function from
//! its arguments to a reply frame, named beside the command in [`TABLE`]; writes build a
//! [`crate::keyspace::Mutation`] and hand it to [`Kv::write`], reads run a closure against
//! the keyspace with [`Kv::read`].

mod admin;
mod bits;
mod collections;
mod command;
mod expiry;
mod geo;
mod hashes;
mod hyperloglog;
mod keys;
mod lcs;
mod lists;
pub(crate) mod messaging;
mod object;
mod pops;
pub(crate) mod scripting;
mod sets;
mod sort;
mod strings;
mod zalgebra;
mod zsets;

pub(crate) use admin::Leave;
use command::spec;
pub use command::{Command, Run, TryNow};
pub(crate) use lists::side;
pub(crate) use pops::now as blocking_pop_now;
pub(crate) use zsets::score_frame;
// The service's command-table hash (FNV-1a), for `lookup`'s table and the set of commands
// scripts may not call: both are fixed when built, so a name a client sends can only
// miss, and SipHash's defence against chosen keys would cost a few hundred instructions
// per lookup — one per command, and one more per `redis.call`.
pub(crate) use service::command_table::NameHasher;

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::LazyLock;

use bytes::Bytes;
use proto::{Args, CommandError, Frame, Protocol};
use service::{Client, CommandSpec, Reply};

use crate::keyspace::{DATABASES, Outcome};
use crate::server::{Kv, Session};
use crate::types::ops::Algebra::{Diff, Inter, Union};
use geo::Form;
use zsets::By;

/// What a command function returns.
type Result<T = Frame> = std::result::Result<T, CommandError>;

const W: &[&str] = &["write"];
const WF: &[&str] = &["write", "fast"];
const WD: &[&str] = &["write", "denyoom"];
/// Blocking commands: the connection watches for the client hanging up while they wait,
/// so a disconnected client is unblocked (and never handed an element) as in Redis.
const WB: &[&str] = &["write", "blocking"];
const WDB: &[&str] = &["write", "denyoom", "blocking"];
const WFB: &[&str] = &["write", "fast", "blocking"];
const WDF: &[&str] = &["write", "denyoom", "fast"];
const R: &[&str] = &["readonly"];
const RF: &[&str] = &["readonly", "fast"];
const EVAL: &[&str] = &["noscript", "stale", "may_replicate", "no_mandatory_keys"];
const EVAL_RO: &[&str] = &["noscript", "stale", "readonly", "no_mandatory_keys"];

/// Every command kv implements: what `COMMAND` reports and the connection checks (name,
/// arity, flags, keys), then the handler that runs it (see [`Command`]). `.runs(f)`:
/// `f(kv, session, args)`; `.shaped(f)`: also the client's protocol; `.on_client(f)`: the
/// whole client; `.waits()`: run on the waiting path, [`execute`].
pub static TABLE: &[Command] = &[
    // strings
    spec("get", 2, RF, "string", "Returns the string value of a key.")
        .keys(1, 1, 1)
        .runs(strings::get),
    spec(
        "set",
        -3,
        WD,
        "string",
        "Sets the string value of a key, with options.",
    )
    .keys(1, 1, 1)
    .syntax("key value [NX|XX] [GET] [EX seconds|PX ms|EXAT ts|PXAT ts|KEEPTTL]")
    .runs(strings::set),
    spec(
        "setnx",
        3,
        WDF,
        "string",
        "Sets a key only if it does not exist.",
    )
    .keys(1, 1, 1)
    .runs(strings::setnx),
    spec(
        "setex",
        4,
        WD,
        "string",
        "Sets a key with a TTL in seconds.",
    )
    .keys(1, 1, 1)
    .runs(|kv, s, a| strings::setex(kv, s, a, 1000)),
    spec(
        "psetex",
        4,
        WD,
        "string",
        "Sets a key with a TTL in milliseconds.",
    )
    .keys(1, 1, 1)
    .runs(|kv, s, a| strings::setex(kv, s, a, 1)),
    spec(
        "getset",
        3,
        WDF,
        "string",
        "Sets a key and returns its old value.",
    )
    .keys(1, 1, 1)
    .runs(strings::getset),
    spec(
        "getdel",
        2,
        WF,
        "string",
        "Returns a key's value and deletes it.",
    )
    .keys(1, 1, 1)
    .runs(strings::getdel),
    spec(
        "getex",
        -2,
        WF,
        "string",
        "Returns a key's value and changes its TTL.",
    )
    .keys(1, 1, 1)
    .syntax("key [EX seconds|PX ms|EXAT ts|PXAT ts|PERSIST]")
    .runs(strings::getex),
    spec(
        "mget",
        -2,
        RF,
        "string",
        "Returns the values of several keys.",
    )
    .keys(1, -1, 1)
    .runs(strings::mget),
    spec("mset", -3, WD, "string", "Sets several keys.")
        .keys(1, -1, 2)
        .runs(|kv, s, a| strings::mset(kv, s, a, false)),
    spec(
        "msetnx",
        -3,
        WD,
        "string",
        "Sets several keys only if none exists.",
    )
    .keys(1, -1, 2)
    .runs(|kv, s, a| strings::mset(kv, s, a, true)),
    spec("append", 3, WDF, "string", "Appends to a string.").keys(1, 1, 1).runs(strings::append),
    spec("strlen", 2, RF, "string", "Returns the length of a string.")
        .keys(1, 1, 1)
        .runs(strings::strlen),
    spec("getrange", 4, R, "string", "Returns a substring.").keys(1, 1, 1).runs(strings::getrange),
    spec("setrange", 4, WD, "string", "Overwrites part of a string.")
        .keys(1, 1, 1)
        .runs(strings::setrange),
    spec("incr", 2, WDF, "string", "Increments an integer by one.")
        .keys(1, 1, 1)
        .runs(|kv, s, a| strings::incr(kv, s, a, Some(1))),
    spec("incrby", 3, WDF, "string", "Increments an integer.")
        .keys(1, 1, 1)
        .runs(|kv, s, a| strings::incr(kv, s, a, None)),
    spec("decr", 2, WDF, "string", "Decrements an integer by one.")
        .keys(1, 1, 1)
        .runs(|kv, s, a| strings::incr(kv, s, a, Some(-1))),
    spec("decrby", 3, WDF, "string", "Decrements an integer.").keys(1, 1, 1).runs(strings::decrby),
    spec("incrbyfloat", 3, WDF, "string", "Increments a float.")
        .keys(1, 1, 1)
        .runs(strings::incrbyfloat),
    spec("substr", 4, R, "string", "Returns a substring (GETRANGE).")
        .keys(1, 1, 1)
        .runs(strings::getrange),
    // bitmaps and HyperLogLog: strings read bit by bit (see crate::types::bitmap)
    spec("setbit", 4, WD, "bitmap", "Sets or clears a bit.").keys(1, 1, 1).runs(bits::setbit),
    spec("getbit", 3, RF, "bitmap", "Returns a bit.").keys(1, 1, 1).runs(bits::getbit),
    spec("bitcount", -2, R, "bitmap", "Counts set bits.")
        .keys(1, 1, 1)
        .syntax("key [start end [BYTE|BIT]]")
        .runs(bits::bitcount),
    spec(
        "bitpos",
        -3,
        R,
        "bitmap",
        "Finds the first set or clear bit.",
    )
    .keys(1, 1, 1)
    .syntax("key bit [start [end [BYTE|BIT]]]")
    .runs(bits::bitpos),
    spec("bitop", -4, WD, "bitmap", "Combines strings bitwise.").keys(2, -1, 1).runs(bits::bitop),
    spec(
        "bitfield",
        -2,
        WD,
        "bitmap",
        "Reads and writes integer fields.",
    )
    .keys(1, 1, 1)
    .runs(|kv, s, a| bits::bitfield(kv, s, a, false)),
    spec("bitfield_ro", -2, RF, "bitmap", "Reads integer fields.")
        .keys(1, 1, 1)
        .runs(|kv, s, a| bits::bitfield(kv, s, a, true)),
    spec(
        "pfadd",
        -2,
        WDF,
        "hyperloglog",
        "Adds elements to a HyperLogLog.",
    )
    .keys(1, 1, 1)
    .runs(hyperloglog::pfadd),
    spec(
        "pfcount",
        -2,
        R,
        "hyperloglog",
        "Estimates distinct elements.",
    )
    .keys(1, -1, 1)
    .runs(hyperloglog::pfcount),
    spec("pfmerge", -2, WD, "hyperloglog", "Merges HyperLogLogs.")
        .keys(1, -1, 1)
        .runs(hyperloglog::pfmerge),
    // keys
    spec("del", -2, W, "generic", "Deletes keys.").keys(1, -1, 1).runs(keys::del),
    spec("unlink", -2, WF, "generic", "Deletes keys.").keys(1, -1, 1).runs(keys::del),
    spec(
        "exists",
        -2,
        RF,
        "generic",
        "Counts existing keys (repeats count).",
    )
    .keys(1, -1, 1)
    .runs(keys::exists),
    spec(
        "type",
        2,
        RF,
        "generic",
        "Returns the type of a key's value.",
    )
    .keys(1, 1, 1)
    .runs(keys::type_of),
    spec("rename", 3, W, "generic", "Renames a key.")
        .keys(1, 2, 1)
        .runs(|kv, s, a| keys::rename(kv, s, a, false)),
    spec(
        "renamenx",
        3,
        WF,
        "generic",
        "Renames a key if the new name is free.",
    )
    .keys(1, 2, 1)
    .runs(|kv, s, a| keys::rename(kv, s, a, true)),
    spec(
        "keys",
        2,
        R,
        "generic",
        "Returns the keys matching a pattern.",
    )
    .runs(keys::keys),
    spec("scan", -2, R, "generic", "Iterates over the keys.")
        .syntax("cursor [MATCH pattern] [COUNT count] [TYPE type]")
        .runs(keys::scan),
    spec("randomkey", 1, R, "generic", "Returns a random key.")
        .runs(|kv, s, _| keys::randomkey(kv, s)),
    spec("dbsize", 1, RF, "server", "Returns the number of keys.").runs(dbsize),
    spec(
        "flushdb",
        -1,
        W,
        "server",
        "Deletes every key of the database.",
    )
    .runs(|kv, s, a| keys::flush(kv, s, a, false)),
    spec(
        "flushall",
        -1,
        W,
        "server",
        "Deletes every key of every database.",
    )
    .runs(|kv, s, a| keys::flush(kv, s, a, true)),
    spec(
        "select",
        2,
        &["fast"],
        "connection",
        "Changes the selected database.",
    )
    .runs(select),
    spec("swapdb", 3, WF, "server", "Swaps two databases.").runs(keys::swapdb),
    spec("touch", -2, RF, "generic", "Counts existing keys.").keys(1, -1, 1).runs(keys::exists),
    spec("copy", -3, WD, "generic", "Copies a key.")
        .keys(1, 2, 1)
        .syntax("source destination [DB db] [REPLACE]")
        .runs(keys::copy),
    spec("move", 3, WF, "generic", "Moves a key to another database.")
        .keys(1, 1, 1)
        .runs(keys::move_key),
    spec("object", -2, R, "generic", "Inspects a key's value: encoding, references.")
        .subcommands(&[("encoding", 3), ("freq", 3), ("idletime", 3), ("refcount", 3), ("help", 2)])
        .runs(object::object),
    spec("memory", -2, R, "server", "Reports memory use.")
        .subcommands(&[
            ("usage", -3),
            ("stats", 2),
            ("doctor", 2),
            ("malloc-stats", 2),
            ("purge", 2),
            ("help", 2),
        ])
        .runs(object::memory),
    spec("slowlog", -2, &["admin"], "server", "Shows or resets the slow log.")
        .subcommands(&[("get", -2), ("len", 2), ("reset", 2), ("help", 2)])
        .runs(|kv, _, a| admin::slowlog(kv, a)),
    spec("latency", -2, &["admin"], "server", "Shows or resets latency events.")
        .subcommands(&[("latest", 2), ("reset", -2), ("help", 2)])
        .runs(|kv, _, a| admin::latency(kv, a)),
    spec("monitor", 1, &["admin"], "server", "Streams every command the server runs.")
        .runs(|kv, s, _| admin::monitor(kv, s)),
    spec("shutdown", -1, &["admin"], "server", "Stops the server.")
        .syntax("[NOSAVE|SAVE] [NOW] [FORCE] [ABORT]")
        .waits(),
    spec("dump", 2, R, "generic", "Serializes a key's value.").keys(1, 1, 1).runs(keys::dump),
    spec(
        "restore",
        -4,
        WD,
        "generic",
        "Creates a key from a DUMP payload.",
    )
    .keys(1, 1, 1)
    .syntax("key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f]")
    .runs(keys::restore),
    // expiry
    spec("expire", -3, WF, "generic", "Sets a TTL in seconds.")
        .keys(1, 1, 1)
        .runs(|kv, s, a| expiry::expire(kv, s, a, 1000, false)),
    spec("pexpire", -3, WF, "generic", "Sets a TTL in milliseconds.")
        .keys(1, 1, 1)
        .runs(|kv, s, a| expiry::expire(kv, s, a, 1, false)),
    spec("expireat", -3, WF, "generic", "Sets an expiry Unix time.")
        .keys(1, 1, 1)
        .runs(|kv, s, a| expiry::expire(kv, s, a, 1000, true)),
    spec(
        "pexpireat",
        -3,
        WF,
        "generic",
        "Sets an expiry Unix time in ms.",
    )
    .keys(1, 1, 1)
    .runs(|kv, s, a| expiry::expire(kv, s, a, 1, true)),
    spec("ttl", 2, RF, "generic", "Returns the TTL in seconds.")
        .keys(1, 1, 1)
        .runs(|kv, s, a| expiry::ttl(kv, s, a, expiry::TtlView::Seconds)),
    spec("pttl", 2, RF, "generic", "Returns the TTL in milliseconds.")
        .keys(1, 1, 1)
        .runs(|kv, s, a| expiry::ttl(kv, s, a, expiry::TtlView::Millis)),
    spec("persist", 2, WF, "generic", "Removes a key's TTL.").keys(1, 1, 1).runs(expiry::persist),
    spec(
        "expiretime",
        2,
        RF,
        "generic",
        "Returns the expiry Unix time.",
    )
    .keys(1, 1, 1)
    .runs(|kv, s, a| expiry::ttl(kv, s, a, expiry::TtlView::UnixSeconds)),
    spec(
        "pexpiretime",
        2,
        RF,
        "generic",
        "Returns the expiry Unix time in ms.",
    )
    .keys(1, 1, 1)
    .runs(|kv, s, a| expiry::ttl(kv, s, a, expiry::TtlView::UnixMillis)),
    // server
    spec("time", 1, &["fast"], "server", "Returns the server time.").runs(|_, _, _| Ok(time())),
    spec(
        "save",
        1,
        &["admin"],
        "server",
        "Flushes the dataset to disk.",
    )
    .waits(),
    spec(
        "bgsave",
        -1,
        &["admin"],
        "server",
        "Flushes the dataset to disk.",
    )
    .waits(),
    spec(
        "lastsave",
        1,
        &["fast"],
        "server",
        "Unix time of the last flush to disk.",
    )
    .runs(|kv, _, _| Ok(Frame::Integer(kv.last_save() as i64))),
    // hashes, lists, sets, sorted sets (see crate::types)
    spec("hset", -4, WDF, "hash", "Sets fields of a hash.")
        .keys(1, 1, 1)
        .runs(|kv, s, a| hashes::hset(kv, s, a, false)),
    spec(
        "hmset",
        -4,
        WDF,
        "hash",
        "Sets fields of a hash (answers OK).",
    )
    .keys(1, 1, 1)
    .runs(|kv, s, a| hashes::hset(kv, s, a, true)),
    spec(
        "hsetnx",
        4,
        WDF,
        "hash",
        "Sets a field only if it does not exist.",
    )
    .keys(1, 1, 1)
    .runs(hashes::hsetnx),
    spec("hget", 3, RF, "hash", "Returns a field's value.").keys(1, 1, 1).runs(hashes::hget),
    spec("hmget", -3, RF, "hash", "Returns several fields' values.")
        .keys(1, 1, 1)
        .runs(hashes::hmget),
    spec("hgetall", 2, R, "hash", "Returns every field and value.")
        .keys(1, 1, 1)
        .runs(|kv, s, a| hashes::hgetall(kv, s, a, true, true)),
    spec("hkeys", 2, R, "hash", "Returns every field.")
        .keys(1, 1, 1)
        .runs(|kv, s, a| hashes::hgetall(kv, s, a, true, false)),
    spec("hvals", 2, R, "hash", "Returns every value.")
        .keys(1, 1, 1)
        .runs(|kv, s, a| hashes::hgetall(kv, s, a, false, true)),
    spec("hdel", -3, WF, "hash", "Deletes fields.").keys(1, 1, 1).runs(hashes::hdel),
    spec("hexists", 3, RF, "hash", "Does a field exist?").keys(1, 1, 1).runs(hashes::hexists),
    spec("hlen", 2, RF, "hash", "Returns the number of fields.").keys(1, 1, 1).runs(hashes::hlen),
    spec(
        "hstrlen",
        3,
        RF,
        "hash",
        "Returns the length of a field's value.",
    )
    .keys(1, 1, 1)
    .runs(hashes::hstrlen),
    spec("hincrby", 4, WDF, "hash", "Increments an integer field.")
        .keys(1, 1, 1)
        .runs(hashes::hincrby),
    spec("hincrbyfloat", 4, WDF, "hash", "Increments a float field.")
        .keys(1, 1, 1)
        .runs(hashes::hincrbyfloat),
    spec("hscan", -3, R, "hash", "Iterates over fields and values.")
        .keys(1, 1, 1)
        .runs(hashes::hscan),
    spec("hrandfield", -2, R, "hash", "Returns random fields.")
        .keys(1, 1, 1)
        .runs(hashes::hrandfield),
    spec("lpush", -3, WDF, "list", "Prepends elements.")
        .keys(1, 1, 1)
        .runs(|kv, s, a| lists::push(kv, s, a, true, false)),
    spec("rpush", -3, WDF, "list", "Appends elements.")
        .keys(1, 1, 1)
        .runs(|kv, s, a| lists::push(kv, s, a, false, false)),
    spec(
        "lpushx",
        -3,
        WDF,
        "list",
        "Prepends elements to an existing list.",
    )
    .keys(1, 1, 1)
    .runs(|kv, s, a| lists::push(kv, s, a, true, true)),
    spec(
        "rpushx",
        -3,
        WDF,
        "list",
        "Appends elements to an existing list.",
    )
    .keys(1, 1, 1)
    .runs(|kv, s, a| lists::push(kv, s, a, false, true)),
    spec(
        "lpop",
        -2,
        WF,
        "list",
        "Removes and returns the first elements.",
    )
    .keys(1, 1, 1)
    .runs(|kv, s, a| lists::pop(kv, s, a, true)),
    spec(
        "rpop",
        -2,
        WF,
        "list",
        "Removes and returns the last elements.",
    )
    .keys(1, 1, 1)
    .runs(|kv, s, a| lists::pop(kv, s, a, false)),
    spec("llen", 2, RF, "list", "Returns the length of a list.").keys(1, 1, 1).runs(lists::llen),
    spec("lrange", 4, R, "list", "Returns a range of elements.").keys(1, 1, 1).on_client(lrange),
    spec("lindex", 3, R, "list", "Returns the element at an index.")
        .keys(1, 1, 1)
        .runs(lists::lindex),
    spec("lset", 4, WD, "list", "Sets the element at an index.").keys(1, 1, 1).runs(lists::lset),
    spec(
        "linsert",
        5,
        WD,
        "list",
        "Inserts before or after an element.",
    )
    .keys(1, 1, 1)
    .runs(lists::linsert),
    spec("lrem", 4, W, "list", "Removes occurrences of an element.")
        .keys(1, 1, 1)
        .runs(lists::lrem),
    spec("ltrim", 4, W, "list", "Keeps only a range of elements.").keys(1, 1, 1).runs(lists::ltrim),
    spec(
        "lpos",
        -3,
        R,
        "list",
        "Returns the index of matching elements.",
    )
    .keys(1, 1, 1)
    .runs(lists::lpos),
    spec(
        "lmove",
        5,
        WD,
        "list",
        "Pops from one list and pushes onto another.",
    )
    .keys(1, 2, 1)
    .runs(|kv, s, a| lists::lmove(kv, s, a, false)),
    spec(
        "rpoplpush",
        3,
        WD,
        "list",
        "Pops the last element and pushes it onto another list.",
    )
    .keys(1, 2, 1)
    .runs(|kv, s, a| lists::lmove(kv, s, a, true)),
    spec(
        "blpop",
        -3,
        WB,
        "list",
        "Pops the first element, waiting for one.",
    )
    .keys(1, -2, 1)
    .waits(),
    spec(
        "brpop",
        -3,
        WB,
        "list",
        "Pops the last element, waiting for one.",
    )
    .keys(1, -2, 1)
    .waits(),
    spec("blmove", 6, WDB, "list", "LMOVE, waiting for an element.").keys(1, 2, 1).waits(),
    spec(
        "brpoplpush",
        4,
        WDB,
        "list",
        "RPOPLPUSH, waiting for an element.",
    )
    .keys(1, 2, 1)
    .waits(),
    spec("sadd", -3, WDF, "set", "Adds members.").keys(1, 1, 1).runs(sets::sadd),
    spec("srem", -3, WF, "set", "Removes members.").keys(1, 1, 1).runs(sets::srem),
    spec("sismember", 3, RF, "set", "Is this a member?").keys(1, 1, 1).runs(sets::sismember),
    spec("smismember", -3, RF, "set", "Are these members?").keys(1, 1, 1).runs(sets::smismember),
    spec("smembers", 2, R, "set", "Returns every member.").keys(1, 1, 1).runs(sets::smembers),
    spec("scard", 2, RF, "set", "Returns the number of members.").keys(1, 1, 1).runs(sets::scard),
    spec("spop", -2, WF, "set", "Removes and returns random members.")
        .keys(1, 1, 1)
        .runs(sets::spop),
    spec("srandmember", -2, R, "set", "Returns random members.")
        .keys(1, 1, 1)
        .runs(sets::srandmember),
    spec("sinter", -2, R, "set", "Intersects sets.")
        .keys(1, -1, 1)
        .runs(|kv, s, a| sets::algebra(kv, s, a, Inter)),
    spec("sunion", -2, R, "set", "Unites sets.")
        .keys(1, -1, 1)
        .runs(|kv, s, a| sets::algebra(kv, s, a, Union)),
    spec("sdiff", -2, R, "set", "Subtracts sets.")
        .keys(1, -1, 1)
        .runs(|kv, s, a| sets::algebra(kv, s, a, Diff)),
    spec(
        "sinterstore",
        -3,
        WD,
        "set",
        "Stores the intersection of sets.",
    )
    .keys(1, -1, 1)
    .runs(|kv, s, a| sets::store(kv, s, a, Inter)),
    spec("sunionstore", -3, WD, "set", "Stores the union of sets.")
        .keys(1, -1, 1)
        .runs(|kv, s, a| sets::store(kv, s, a, Union)),
    spec(
        "sdiffstore",
        -3,
        WD,
        "set",
        "Stores the difference of sets.",
    )
    .keys(1, -1, 1)
    .runs(|kv, s, a| sets::store(kv, s, a, Diff)),
    spec("smove", 4, WF, "set", "Moves a member to another set.").keys(1, 2, 1).runs(sets::smove),
    spec("sscan", -3, R, "set", "Iterates over members.").keys(1, 1, 1).runs(sets::sscan),
    spec(
        "zadd",
        -4,
        WDF,
        "sorted-set",
        "Adds members or updates their scores.",
    )
    .keys(1, 1, 1)
    .runs(zsets::zadd),
    spec(
        "zincrby",
        4,
        WDF,
        "sorted-set",
        "Increments a member's score.",
    )
    .keys(1, 1, 1)
    .runs(zsets::zincrby),
    spec("zscore", 3, RF, "sorted-set", "Returns a member's score.")
        .keys(1, 1, 1)
        .runs(zsets::zscore),
    spec(
        "zmscore",
        -3,
        RF,
        "sorted-set",
        "Returns several members' scores.",
    )
    .keys(1, 1, 1)
    .runs(zsets::zmscore),
    spec(
        "zcard",
        2,
        RF,
        "sorted-set",
        "Returns the number of members.",
    )
    .keys(1, 1, 1)
    .runs(zsets::zcard),
    spec(
        "zcount",
        4,
        RF,
        "sorted-set",
        "Counts members within a score range.",
    )
    .keys(1, 1, 1)
    .runs(zsets::zcount),
    spec(
        "zlexcount",
        4,
        RF,
        "sorted-set",
        "Counts members within a lexicographic range.",
    )
    .keys(1, 1, 1)
    .runs(zsets::zlexcount),
    spec(
        "zrank",
        3,
        RF,
        "sorted-set",
        "Returns a member's rank, lowest score first.",
    )
    .keys(1, 1, 1)
    .runs(|kv, s, a| zsets::zrank(kv, s, a, false)),
    spec(
        "zrevrank",
        3,
        RF,
        "sorted-set",
        "Returns a member's rank, highest score first.",
    )
    .keys(1, 1, 1)
    .runs(|kv, s, a| zsets::zrank(kv, s, a, true)),
    spec(
        "zrange",
        -4,
        R,
        "sorted-set",
        "Returns members by rank, score or lex range.",
    )
    .keys(1, 1, 1)
    .runs(|kv, s, a| zsets::zrange(kv, s, a, None, None)),
    spec(
        "zrangebyscore",
        -4,
        R,
        "sorted-set",
        "Returns members within a score range.",
    )
    .keys(1, 1, 1)
    .runs(|kv, s, a| zsets::zrange(kv, s, a, Some(By::Score), Some(false))),
    spec(
        "zrevrangebyscore",
        -4,
        R,
        "sorted-set",
        "Returns members within a score range, highest first.",
    )
    .keys(1, 1, 1)
    .runs(|kv, s, a| zsets::zrange(kv, s, a, Some(By::Score), Some(true))),
    spec(
        "zrangebylex",
        -4,
        R,
        "sorted-set",
        "Returns members within a lexicographic range.",
    )
    .keys(1, 1, 1)
    .runs(|kv, s, a| zsets::zrange(kv, s, a, Some(By::Lex), Some(false))),
    spec(
        "zrevrangebylex",
        -4,
        R,
        "sorted-set",
        "Returns members within a lexicographic range, reversed.",
    )
    .keys(1, 1, 1)
    .runs(|kv, s, a| zsets::zrange(kv, s, a, Some(By::Lex), Some(true))),
    spec(
        "zrevrange",
        -4,
        R,
        "sorted-set",
        "Returns members by rank, highest first.",
    )
    .keys(1, 1, 1)
    .runs(|kv, s, a| zsets::zrange(kv, s, a, Some(By::Rank), Some(true))),
    spec("zrem", -3, WF, "sorted-set", "Removes members.").keys(1, 1, 1).runs(zsets::zrem),
    spec(
        "zremrangebyrank",
        4,
        W,
        "sorted-set",
        "Removes members within a rank range.",
    )
    .keys(1, 1, 1)
    .runs(zsets::zremrangebyrank),
    spec(
        "zremrangebyscore",
        4,
        W,
        "sorted-set",
        "Removes members within a score range.",
    )
    .keys(1, 1, 1)
    .runs(zsets::zremrangebyscore),
    spec(
        "zpopmin",
        -2,
        WF,
        "sorted-set",
        "Removes and returns the lowest-scored members.",
    )
    .keys(1, 1, 1)
    .runs(|kv, s, a| zsets::zpop(kv, s, a, false)),
    spec(
        "zpopmax",
        -2,
        WF,
        "sorted-set",
        "Removes and returns the highest-scored members.",
    )
    .keys(1, 1, 1)
    .runs(|kv, s, a| zsets::zpop(kv, s, a, true)),
    spec(
        "zrandmember",
        -2,
        R,
        "sorted-set",
        "Returns random members.",
    )
    .keys(1, 1, 1)
    .runs(zsets::zrandmember),
    // scripting (see crate::scripting)
    spec("eval", -3, EVAL, "scripting", "Runs a Lua script.")
        .on_client(eval_now)
        .tries_now(eval_inline),
    spec(
        "evalsha",
        -3,
        EVAL,
        "scripting",
        "Runs a cached Lua script.",
    )
    .on_client(eval_now)
    .tries_now(eval_inline),
    spec(
        "eval_ro",
        -3,
        EVAL_RO,
        "scripting",
        "Runs a read-only Lua script.",
    )
    .on_client(eval_now)
    .tries_now(eval_inline),
    spec(
        "evalsha_ro",
        -3,
        EVAL_RO,
        "scripting",
        "Runs a cached read-only Lua script.",
    )
    .on_client(eval_now)
    .tries_now(eval_inline),
    spec(
        "script",
        -2,
        &["noscript"],
        "scripting",
        "Manages the Lua script cache.",
    )
    .subcommands(&[
        ("load", 3),
        ("exists", -3),
        ("flush", -2),
        ("kill", 2),
        ("debug", 3),
        ("help", 2),
    ])
    .on_client(|kv, _, a| Reply::One(scripting::script(kv, a).unwrap_or_else(|e| e.to_frame()))),
    spec(
        "zscan",
        -3,
        R,
        "sorted-set",
        "Iterates over members and scores.",
    )
    .keys(1, 1, 1)
    .runs(zsets::zscan),
    // LCS, geo sets (sorted sets of geohashes), sorted-set algebra and STORE forms
    spec("lcs", -3, R, "string", "Longest common subsequence.").keys(1, 2, 1).runs(lcs::lcs),
    spec("geoadd", -5, WD, "geo", "Adds places to a geo set.").keys(1, 1, 1).runs(geo::geoadd),
    spec("geopos", -2, R, "geo", "Returns members' positions.").keys(1, 1, 1).shaped(geo::geopos),
    spec("geodist", -4, R, "geo", "Distance between two members.").keys(1, 1, 1).runs(geo::geodist),
    spec("geohash", -2, R, "geo", "Members' geohash strings.").keys(1, 1, 1).runs(geo::geohash),
    spec("geosearch", -7, R, "geo", "Members inside a circle or box.")
        .keys(1, 1, 1)
        .shaped(|kv, s, a, p| geo::search(kv, s, a, Form::Search, p)),
    spec("geosearchstore", -8, WD, "geo", "Stores a GEOSEARCH.")
        .keys(1, 2, 1)
        .shaped(|kv, s, a, p| geo::search(kv, s, a, Form::SearchStore, p)),
    spec("georadius", -6, WD, "geo", "Members near a point.")
        .keys(1, 1, 1)
        .shaped(|kv, s, a, p| geo::search(kv, s, a, Form::Radius { read_only: false }, p)),
    spec("georadius_ro", -6, R, "geo", "Members near a point.")
        .keys(1, 1, 1)
        .shaped(|kv, s, a, p| geo::search(kv, s, a, Form::Radius { read_only: true }, p)),
    spec("georadiusbymember", -5, WD, "geo", "Members near a member.")
        .keys(1, 1, 1)
        .shaped(|kv, s, a, p| geo::search(kv, s, a, Form::ByMember { read_only: false }, p)),
    spec(
        "georadiusbymember_ro",
        -5,
        R,
        "geo",
        "Members near a member.",
    )
    .keys(1, 1, 1)
    .shaped(|kv, s, a, p| geo::search(kv, s, a, Form::ByMember { read_only: true }, p)),
    spec("zunion", -3, R, "sorted-set", "Union of sorted sets.")
        .runs(|kv, s, a| zalgebra::combine(kv, s, a, Union)),
    spec(
        "zinter",
        -3,
        R,
        "sorted-set",
        "Intersection of sorted sets.",
    )
    .runs(|kv, s, a| zalgebra::combine(kv, s, a, Inter)),
    spec("zdiff", -3, R, "sorted-set", "Difference of sorted sets.")
        .runs(|kv, s, a| zalgebra::combine(kv, s, a, Diff)),
    spec("zunionstore", -4, WD, "sorted-set", "Stores a union.")
        .keys(1, 1, 1)
        .runs(|kv, s, a| zalgebra::store(kv, s, a, Union)),
    spec(
        "zinterstore",
        -4,
        WD,
        "sorted-set",
        "Stores an intersection.",
    )
    .keys(1, 1, 1)
    .runs(|kv, s, a| zalgebra::store(kv, s, a, Inter)),
    spec("zdiffstore", -4, WD, "sorted-set", "Stores a difference.")
        .keys(1, 1, 1)
        .runs(|kv, s, a| zalgebra::store(kv, s, a, Diff)),
    spec(
        "zintercard",
        -3,
        R,
        "sorted-set",
        "Size of an intersection.",
    )
    .runs(zalgebra::zintercard),
    spec("sintercard", -3, R, "set", "Size of a set intersection.").runs(zalgebra::sintercard),
    spec("zrangestore", -5, WD, "sorted-set", "Stores a ZRANGE.")
        .keys(1, 2, 1)
        .runs(zalgebra::zrangestore),
    spec("zremrangebylex", 4, W, "sorted-set", "Removes a lex range.")
        .keys(1, 1, 1)
        .runs(zalgebra::zremrangebylex),
    // multi-key and blocking pops (see pops.rs, crate::blocking)
    spec("lmpop", -4, W, "list", "Pops elements from the first non-empty list.")
        .syntax("numkeys key [key ...] LEFT|RIGHT [COUNT count]")
        .runs(|kv, s, a| pops::mpop(kv, s, a, false)),
    spec("blmpop", -5, WB, "list", "Pops from the first non-empty list, or waits.")
        .syntax("timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]")
        .waits(),
    spec("zmpop", -4, W, "sorted-set", "Pops members from the first non-empty sorted set.")
        .syntax("numkeys key [key ...] MIN|MAX [COUNT count]")
        .runs(|kv, s, a| pops::mpop(kv, s, a, true)),
    spec("bzmpop", -5, WB, "sorted-set", "Pops from the first non-empty sorted set, or waits.")
        .syntax("timeout numkeys key [key ...] MIN|MAX [COUNT count]")
        .waits(),
    spec("bzpopmin", -3, WFB, "sorted-set", "Pops the lowest-scored member, or waits.")
        .keys(1, -2, 1)
        .waits(),
    spec("bzpopmax", -3, WFB, "sorted-set", "Pops the highest-scored member, or waits.")
        .keys(1, -2, 1)
        .waits(),
    spec("sort", -2, WD, "generic", "Sorts a list, set or sorted set, maybe by other keys.")
        .keys(1, 1, 1)
        .syntax("key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC] [ALPHA] [STORE destination]")
        .runs(|kv, s, a| sort::sort(kv, s, a, false)),
    spec("sort_ro", -2, R, "generic", "Sorts a list, set or sorted set (read-only SORT).")
        .keys(1, 1, 1)
        .syntax("key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC] [ALPHA]")
        .runs(|kv, s, a| sort::sort(kv, s, a, true)),
];

/// Runs one command, or hands it back to the service if it is not a kv command. The
/// commands that may wait ([`Command::waits`]) are named here; every other one runs to
/// completion in [`execute_now`].
pub async fn execute(kv: &Kv, client: &mut Client<Session>, mut args: Args) -> Reply {
    let a = &mut args;
    let s = &mut client.session;
    let frame = match a.name() {
        "save" => {
            kv.save().await;
            Frame::ok()
        }
        "bgsave" => {
            kv.save().await;
            Frame::simple("Background saving started")
        }
        "blpop" => crate::blocking::bpop(kv, s, a, true).await,
        "brpop" => crate::blocking::bpop(kv, s, a, false).await,
        "blmove" => crate::blocking::bmove(kv, s, a, false).await,
        "brpoplpush" => crate::blocking::bmove(kv, s, a, true).await,
        "shutdown" => return admin::shutdown(kv, a).await,
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" => match eval_request(a) {
            Ok(request) => scripting::eval(kv, s, request).await,
            Err(e) => e.to_frame(),
        },
        _ => match pops::wait(kv, s, a).await {
            Some(frame) => frame,
            None => return execute_now(kv, client, args),
        },
    };
    Reply::One(frame)
}

/// Runs a command that does not wait, found by name, or hands it back to the service if
/// it is not a kv command. Not `async`: the service calls it straight from its
/// connection loop (`Server::execute_now`), so a `GET` builds and polls no future.
pub fn execute_now(kv: &Kv, client: &mut Client<Session>, mut args: Args) -> Reply {
    execute_now_borrowed(kv, client, &mut args).unwrap_or(Reply::Unhandled(args))
}

/// [`execute_now`] on borrowed arguments (`None`: not a kv command): the caller keeps
/// them, for the slow log (see `Kv::observe_end`).
pub fn execute_now_borrowed(kv: &Kv, client: &mut Client<Session>, a: &mut Args) -> Option<Reply> {
    execute_command(kv, client, command(a.name())?, a)
}

/// Runs `command` (its table row, already found) on borrowed arguments; `None`: it runs
/// only elsewhere ([`Run::Elsewhere`]).
pub fn execute_command(
    kv: &Kv,
    client: &mut Client<Session>,
    command: &Command,
    a: &mut Args,
) -> Option<Reply> {
    let result = match command.run {
        Run::Session(handler) => {
            let db = client.session.db;
            let result = handler(kv, &mut client.session, a);
            if client.session.db != db {
                // `SELECT`: CLIENT LIST shows the database a client is in.
                client.set_db(client.session.db);
            }
            result
        }
        Run::Shaped(handler) => handler(kv, &mut client.session, a, client.protocol),
        Run::Client(handler) => return Some(handler(kv, client, a)),
        Run::Elsewhere => return None,
    };
    Some(Reply::One(result.unwrap_or_else(|e| e.to_frame())))
}

/// `EVAL` and its variants inside `EXEC` (elsewhere they wait, see [`execute`]).
fn eval_now(kv: &Kv, client: &mut Client<Session>, a: &mut Args) -> Reply {
    let s = &mut client.session;
    eval_request(a)
        .map_or_else(|e| e.to_frame(), |r| scripting::eval_now(kv, s, r))
        .into()
}

/// `LRANGE`'s reply is encoded as it is read, straight from the list.
fn lrange(kv: &Kv, client: &mut Client<Session>, a: &mut Args) -> Reply {
    lists::lrange(kv, &mut client.session, a).map_or_else(|e| e.to_frame().into(), Reply::Encoded)
}

/// `EVAL` and its variants on the path without a future: a quick script's reply (see
/// [`TryNow`]).
fn eval_inline(kv: &Kv, s: &mut Session, a: &mut Args) -> Option<Frame> {
    match eval_request(a) {
        Ok(request) => scripting::eval_inline(kv, s, request),
        Err(e) => Some(e.to_frame()),
    }
}

/// `EVAL`'s arguments, by the variant's name.
fn eval_request(a: &mut Args) -> Result<scripting::Request> {
    let name = a.name();
    let (by_sha, read_only) = (name.starts_with("evalsha"), name.ends_with("_ro"));
    scripting::request(a, by_sha, read_only)
}

/// A command's table row, by lowercase name: one hash probe, for the callers that
/// have only a name (a queued command in `EXEC`, a script's `redis.call`).
pub(crate) fn command(name: &str) -> Option<&'static Command> {
    type ByName = HashMap<&'static str, &'static Command, BuildHasherDefault<NameHasher>>;
    static BY_NAME: LazyLock<ByName> =
        LazyLock::new(|| TABLE.iter().map(|c| (c.spec.name, c)).collect());
    BY_NAME.get(name).copied()
}

/// A command's table entry, by lowercase name.
pub(crate) fn lookup(name: &str) -> Option<&'static CommandSpec> {
    command(name).map(|c| &c.spec)
}

/// Runs one of kv's commands that needs only the session (`None`: not one of them):
/// what a client's command and a script's `redis.call` both come to. `row`: the
/// command's row, which the caller has looked up already.
fn run(
    row: &Command,
    kv: &Kv,
    s: &mut Session,
    a: &mut Args,
    protocol: Protocol,
) -> Option<Result> {
    match row.run {
        Run::Session(handler) => Some(handler(kv, s, a)),
        Run::Shaped(handler) => Some(handler(kv, s, a, protocol)),
        Run::Client(_) | Run::Elsewhere => None,
    }
}

/// `SELECT index`: this session's database from now on.
fn select(_: &Kv, s: &mut Session, a: &mut Args) -> Result {
    s.db = db_index(a.next_bytes())?;
    Ok(Frame::ok())
}

/// `DBSIZE`: the number of keys in the session's database.
fn dbsize(kv: &Kv, s: &mut Session, _: &mut Args) -> Result {
    Ok(Frame::Integer(
        kv.read(|ks, now| ks.dbsize(s.db, now)) as i64
    ))
}

/// An engine outcome as a reply frame.
pub(crate) fn reply(outcome: Outcome) -> Frame {
    match outcome {
        Outcome::Ok => Frame::ok(),
        Outcome::Nil => Frame::Null,
        Outcome::Integer(n) => Frame::Integer(n),
        Outcome::Bulk(b) => Frame::Bulk(b),
        Outcome::Array(items) => Frame::Array(items.into_iter().map(reply).collect()),
        Outcome::NullArray => Frame::NullArray,
        Outcome::Score(score) => zsets::score_frame(score),
        Outcome::Members(members) => Frame::Set(members.into_iter().map(Frame::Bulk).collect()),
        Outcome::Scored(pairs) => Frame::Pairs(
            pairs
                .into_iter()
                .map(|(m, score)| (Frame::Bulk(m), zsets::score_frame(score)))
                .collect(),
        ),
    }
}

/// A database number argument (`SELECT`, `COPY ... DB`): Redis's two errors.
fn db_index(arg: Result<Bytes>) -> Result<usize> {
    let n = proto::decode::parse_int(&arg?).ok_or(CommandError::NotInteger)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A row with no handler here must be one of the commands [`execute`] runs on the
    /// waiting path; any other would answer "unknown command" while `COMMAND` lists it.
    #[test]
    fn every_command_runs_somewhere() {
        for row in TABLE {
            assert!(
                row.waits || !matches!(row.run, Run::Elsewhere),
                "{} has no handler",
                row.spec.name
            );
        }
    }

    /// Names are unique, and each is found by name as the row it is.
    #[test]
    fn each_name_finds_its_row() {
        for row in TABLE {
            let found = command(row.spec.name).map(std::ptr::from_ref);
            assert_eq!(found, Some(std::ptr::from_ref(row)), "{}", row.spec.name);
        }
        assert!(command("nosuchcommand").is_none());
    }
}

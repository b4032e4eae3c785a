//! RESP commands: parse the arguments, call the engine, shape the reply.
//!
//! One module per command family, as Redis groups them. Each command is a function from
//! its arguments to a reply frame; writes build a [`crate::keyspace::Mutation`] and hand
//! it to [`Kv::write`], reads run a closure against the keyspace with [`Kv::read`].

mod admin;
mod bits;
mod collections;
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
    spec("substr", 4, R, "string", "Returns a substring (GETRANGE).").keys(1, 1, 1),
    // bitmaps and HyperLogLog: strings read bit by bit (see crate::types::bitmap)
    spec("setbit", 4, WD, "bitmap", "Sets or clears a bit.").keys(1, 1, 1),
    spec("getbit", 3, RF, "bitmap", "Returns a bit.").keys(1, 1, 1),
    spec("bitcount", -2, R, "bitmap", "Counts set bits.")
        .keys(1, 1, 1)
        .syntax("key [start end [BYTE|BIT]]"),
    spec(
        "bitpos",
        -3,
        R,
        "bitmap",
        "Finds the first set or clear bit.",
    )
    .keys(1, 1, 1)
    .syntax("key bit [start [end [BYTE|BIT]]]"),
    spec("bitop", -4, WD, "bitmap", "Combines strings bitwise.").keys(2, -1, 1),
    spec(
        "bitfield",
        -2,
        WD,
        "bitmap",
        "Reads and writes integer fields.",
    )
    .keys(1, 1, 1),
    spec("bitfield_ro", -2, RF, "bitmap", "Reads integer fields.").keys(1, 1, 1),
    spec(
        "pfadd",
        -2,
        WDF,
        "hyperloglog",
        "Adds elements to a HyperLogLog.",
    )
    .keys(1, 1, 1),
    spec(
        "pfcount",
        -2,
        R,
        "hyperloglog",
        "Estimates distinct elements.",
    )
    .keys(1, -1, 1),
    spec("pfmerge", -2, WD, "hyperloglog", "Merges HyperLogLogs.").keys(1, -1, 1),
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
    spec("move", 3, WF, "generic", "Moves a key to another database.").keys(1, 1, 1),
    spec("object", -2, R, "generic", "Inspects a key's value: encoding, references.")
        .subcommands(&[("encoding", 3), ("freq", 3), ("idletime", 3), ("refcount", 3), ("help", 2)]),
    spec("memory", -2, R, "server", "Reports memory use.")
        .subcommands(&[
            ("usage", -3),
            ("stats", 2),
            ("doctor", 2),
            ("malloc-stats", 2),
            ("purge", 2),
            ("help", 2),
        ]),
    spec("slowlog", -2, &["admin"], "server", "Shows or resets the slow log.")
        .subcommands(&[("get", -2), ("len", 2), ("reset", 2), ("help", 2)]),
    spec("latency", -2, &["admin"], "server", "Shows or resets latency events.")
        .subcommands(&[("latest", 2), ("reset", -2), ("help", 2)]),
    spec("monitor", 1, &["admin"], "server", "Streams every command the server runs."),
    spec("shutdown", -1, &["admin"], "server", "Stops the server.")
        .syntax("[NOSAVE|SAVE] [NOW] [FORCE] [ABORT]"),
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
    // hashes, lists, sets, sorted sets (see crate::types)
    spec("hset", -4, WDF, "hash", "Sets fields of a hash.").keys(1, 1, 1),
    spec(
        "hmset",
        -4,
        WDF,
        "hash",
        "Sets fields of a hash (answers OK).",
    )
    .keys(1, 1, 1),
    spec(
        "hsetnx",
        4,
        WDF,
        "hash",
        "Sets a field only if it does not exist.",
    )
    .keys(1, 1, 1),
    spec("hget", 3, RF, "hash", "Returns a field's value.").keys(1, 1, 1),
    spec("hmget", -3, RF, "hash", "Returns several fields' values.").keys(1, 1, 1),
    spec("hgetall", 2, R, "hash", "Returns every field and value.").keys(1, 1, 1),
    spec("hkeys", 2, R, "hash", "Returns every field.").keys(1, 1, 1),
    spec("hvals", 2, R, "hash", "Returns every value.").keys(1, 1, 1),
    spec("hdel", -3, WF, "hash", "Deletes fields.").keys(1, 1, 1),
    spec("hexists", 3, RF, "hash", "Does a field exist?").keys(1, 1, 1),
    spec("hlen", 2, RF, "hash", "Returns the number of fields.").keys(1, 1, 1),
    spec(
        "hstrlen",
        3,
        RF,
        "hash",
        "Returns the length of a field's value.",
    )
    .keys(1, 1, 1),
    spec("hincrby", 4, WDF, "hash", "Increments an integer field.").keys(1, 1, 1),
    spec("hincrbyfloat", 4, WDF, "hash", "Increments a float field.").keys(1, 1, 1),
    spec("hscan", -3, R, "hash", "Iterates over fields and values.").keys(1, 1, 1),
    spec("hrandfield", -2, R, "hash", "Returns random fields.").keys(1, 1, 1),
    spec("lpush", -3, WDF, "list", "Prepends elements.").keys(1, 1, 1),
    spec("rpush", -3, WDF, "list", "Appends elements.").keys(1, 1, 1),
    spec(
        "lpushx",
        -3,
        WDF,
        "list",
        "Prepends elements to an existing list.",
    )
    .keys(1, 1, 1),
    spec(
        "rpushx",
        -3,
        WDF,
        "list",
        "Appends elements to an existing list.",
    )
    .keys(1, 1, 1),
    spec(
        "lpop",
        -2,
        WF,
        "list",
        "Removes and returns the first elements.",
    )
    .keys(1, 1, 1),
    spec(
        "rpop",
        -2,
        WF,
        "list",
        "Removes and returns the last elements.",
    )
    .keys(1, 1, 1),
    spec("llen", 2, RF, "list", "Returns the length of a list.").keys(1, 1, 1),
    spec("lrange", 4, R, "list", "Returns a range of elements.").keys(1, 1, 1),
    spec("lindex", 3, R, "list", "Returns the element at an index.").keys(1, 1, 1),
    spec("lset", 4, WD, "list", "Sets the element at an index.").keys(1, 1, 1),
    spec(
        "linsert",
        5,
        WD,
        "list",
        "Inserts before or after an element.",
    )
    .keys(1, 1, 1),
    spec("lrem", 4, W, "list", "Removes occurrences of an element.").keys(1, 1, 1),
    spec("ltrim", 4, W, "list", "Keeps only a range of elements.").keys(1, 1, 1),
    spec(
        "lpos",
        -3,
        R,
        "list",
        "Returns the index of matching elements.",
    )
    .keys(1, 1, 1),
    spec(
        "lmove",
        5,
        WD,
        "list",
        "Pops from one list and pushes onto another.",
    )
    .keys(1, 2, 1),
    spec(
        "rpoplpush",
        3,
        WD,
        "list",
        "Pops the last element and pushes it onto another list.",
    )
    .keys(1, 2, 1),
    spec(
        "blpop",
        -3,
        WB,
        "list",
        "Pops the first element, waiting for one.",
    )
    .keys(1, -2, 1),
    spec(
        "brpop",
        -3,
        WB,
        "list",
        "Pops the last element, waiting for one.",
    )
    .keys(1, -2, 1),
    spec("blmove", 6, WDB, "list", "LMOVE, waiting for an element.").keys(1, 2, 1),
    spec(
        "brpoplpush",
        4,
        WDB,
        "list",
        "RPOPLPUSH, waiting for an element.",
    )
    .keys(1, 2, 1),
    spec("sadd", -3, WDF, "set", "Adds members.").keys(1, 1, 1),
    spec("srem", -3, WF, "set", "Removes members.").keys(1, 1, 1),
    spec("sismember", 3, RF, "set", "Is this a member?").keys(1, 1, 1),
    spec("smismember", -3, RF, "set", "Are these members?").keys(1, 1, 1),
    spec("smembers", 2, R, "set", "Returns every member.").keys(1, 1, 1),
    spec("scard", 2, RF, "set", "Returns the number of members.").keys(1, 1, 1),
    spec("spop", -2, WF, "set", "Removes and returns random members.").keys(1, 1, 1),
    spec("srandmember", -2, R, "set", "Returns random members.").keys(1, 1, 1),
    spec("sinter", -2, R, "set", "Intersects sets.").keys(1, -1, 1),
    spec("sunion", -2, R, "set", "Unites sets.").keys(1, -1, 1),
    spec("sdiff", -2, R, "set", "Subtracts sets.").keys(1, -1, 1),
    spec(
        "sinterstore",
        -3,
        WD,
        "set",
        "Stores the intersection of sets.",
    )
    .keys(1, -1, 1),
    spec("sunionstore", -3, WD, "set", "Stores the union of sets.").keys(1, -1, 1),
    spec(
        "sdiffstore",
        -3,
        WD,
        "set",
        "Stores the difference of sets.",
    )
    .keys(1, -1, 1),
    spec("smove", 4, WF, "set", "Moves a member to another set.").keys(1, 2, 1),
    spec("sscan", -3, R, "set", "Iterates over members.").keys(1, 1, 1),
    spec(
        "zadd",
        -4,
        WDF,
        "sorted-set",
        "Adds members or updates their scores.",
    )
    .keys(1, 1, 1),
    spec(
        "zincrby",
        4,
        WDF,
        "sorted-set",
        "Increments a member's score.",
    )
    .keys(1, 1, 1),
    spec("zscore", 3, RF, "sorted-set", "Returns a member's score.").keys(1, 1, 1),
    spec(
        "zmscore",
        -3,
        RF,
        "sorted-set",
        "Returns several members' scores.",
    )
    .keys(1, 1, 1),
    spec(
        "zcard",
        2,
        RF,
        "sorted-set",
        "Returns the number of members.",
    )
    .keys(1, 1, 1),
    spec(
        "zcount",
        4,
        RF,
        "sorted-set",
        "Counts members within a score range.",
    )
    .keys(1, 1, 1),
    spec(
        "zlexcount",
        4,
        RF,
        "sorted-set",
        "Counts members within a lexicographic range.",
    )
    .keys(1, 1, 1),
    spec(
        "zrank",
        3,
        RF,
        "sorted-set",
        "Returns a member's rank, lowest score first.",
    )
    .keys(1, 1, 1),
    spec(
        "zrevrank",
        3,
        RF,
        "sorted-set",
        "Returns a member's rank, highest score first.",
    )
    .keys(1, 1, 1),
    spec(
        "zrange",
        -4,
        R,
        "sorted-set",
        "Returns members by rank, score or lex range.",
    )
    .keys(1, 1, 1),
    spec(
        "zrangebyscore",
        -4,
        R,
        "sorted-set",
        "Returns members within a score range.",
    )
    .keys(1, 1, 1),
    spec(
        "zrevrangebyscore",
        -4,
        R,
        "sorted-set",
        "Returns members within a score range, highest first.",
    )
    .keys(1, 1, 1),
    spec(
        "zrangebylex",
        -4,
        R,
        "sorted-set",
        "Returns members within a lexicographic range.",
    )
    .keys(1, 1, 1),
    spec(
        "zrevrangebylex",
        -4,
        R,
        "sorted-set",
        "Returns members within a lexicographic range, reversed.",
    )
    .keys(1, 1, 1),
    spec(
        "zrevrange",
        -4,
        R,
        "sorted-set",
        "Returns members by rank, highest first.",
    )
    .keys(1, 1, 1),
    spec("zrem", -3, WF, "sorted-set", "Removes members.").keys(1, 1, 1),
    spec(
        "zremrangebyrank",
        4,
        W,
        "sorted-set",
        "Removes members within a rank range.",
    )
    .keys(1, 1, 1),
    spec(
        "zremrangebyscore",
        4,
        W,
        "sorted-set",
        "Removes members within a score range.",
    )
    .keys(1, 1, 1),
    spec(
        "zpopmin",
        -2,
        WF,
        "sorted-set",
        "Removes and returns the lowest-scored members.",
    )
    .keys(1, 1, 1),
    spec(
        "zpopmax",
        -2,
        WF,
        "sorted-set",
        "Removes and returns the highest-scored members.",
    )
    .keys(1, 1, 1),
    spec(
        "zrandmember",
        -2,
        R,
        "sorted-set",
        "Returns random members.",
    )
    .keys(1, 1, 1),
    // scripting (see crate::scripting)
    spec("eval", -3, EVAL, "scripting", "Runs a Lua script."),
    spec(
        "evalsha",
        -3,
        EVAL,
        "scripting",
        "Runs a cached Lua script.",
    ),
    spec(
        "eval_ro",
        -3,
        EVAL_RO,
        "scripting",
        "Runs a read-only Lua script.",
    ),
    spec(
        "evalsha_ro",
        -3,
        EVAL_RO,
        "scripting",
        "Runs a cached read-only Lua script.",
    ),
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
    ]),
    spec(
        "zscan",
        -3,
        R,
        "sorted-set",
        "Iterates over members and scores.",
    )
    .keys(1, 1, 1),
    // LCS, geo sets (sorted sets of geohashes), sorted-set algebra and STORE forms
    spec("lcs", -3, R, "string", "Longest common subsequence.").keys(1, 2, 1),
    spec("geoadd", -5, WD, "geo", "Adds places to a geo set.").keys(1, 1, 1),
    spec("geopos", -2, R, "geo", "Returns members' positions.").keys(1, 1, 1),
    spec("geodist", -4, R, "geo", "Distance between two members.").keys(1, 1, 1),
    spec("geohash", -2, R, "geo", "Members' geohash strings.").keys(1, 1, 1),
    spec("geosearch", -7, R, "geo", "Members inside a circle or box.").keys(1, 1, 1),
    spec("geosearchstore", -8, WD, "geo", "Stores a GEOSEARCH.").keys(1, 2, 1),
    spec("georadius", -6, WD, "geo", "Members near a point.").keys(1, 1, 1),
    spec("georadius_ro", -6, R, "geo", "Members near a point.").keys(1, 1, 1),
    spec("georadiusbymember", -5, WD, "geo", "Members near a member.").keys(1, 1, 1),
    spec(
        "georadiusbymember_ro",
        -5,
        R,
        "geo",
        "Members near a member.",
    )
    .keys(1, 1, 1),
    spec("zunion", -3, R, "sorted-set", "Union of sorted sets."),
    spec(
        "zinter",
        -3,
        R,
        "sorted-set",
        "Intersection of sorted sets.",
    ),
    spec("zdiff", -3, R, "sorted-set", "Difference of sorted sets."),
    spec("zunionstore", -4, WD, "sorted-set", "Stores a union.").keys(1, 1, 1),
    spec(
        "zinterstore",
        -4,
        WD,
        "sorted-set",
        "Stores an intersection.",
    )
    .keys(1, 1, 1),
    spec("zdiffstore", -4, WD, "sorted-set", "Stores a difference.").keys(1, 1, 1),
    spec(
        "zintercard",
        -3,
        R,
        "sorted-set",
        "Size of an intersection.",
    ),
    spec("sintercard", -3, R, "set", "Size of a set intersection."),
    spec("zrangestore", -5, WD, "sorted-set", "Stores a ZRANGE.").keys(1, 2, 1),
    spec("zremrangebylex", 4, W, "sorted-set", "Removes a lex range.").keys(1, 1, 1),
    // multi-key and blocking pops (see pops.rs, crate::blocking)
    spec("lmpop", -4, W, "list", "Pops elements from the first non-empty list.")
        .syntax("numkeys key [key ...] LEFT|RIGHT [COUNT count]"),
    spec("blmpop", -5, WB, "list", "Pops from the first non-empty list, or waits.")
        .syntax("timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]"),
    spec("zmpop", -4, W, "sorted-set", "Pops members from the first non-empty sorted set.")
        .syntax("numkeys key [key ...] MIN|MAX [COUNT count]"),
    spec("bzmpop", -5, WB, "sorted-set", "Pops from the first non-empty sorted set, or waits.")
        .syntax("timeout numkeys key [key ...] MIN|MAX [COUNT count]"),
    spec("bzpopmin", -3, WFB, "sorted-set", "Pops the lowest-scored member, or waits.")
        .keys(1, -2, 1),
    spec("bzpopmax", -3, WFB, "sorted-set", "Pops the highest-scored member, or waits.")
        .keys(1, -2, 1),
    spec("sort", -2, WD, "generic", "Sorts a list, set or sorted set, maybe by other keys.")
        .keys(1, 1, 1)
        .syntax("key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC] [ALPHA] [STORE destination]"),
    spec("sort_ro", -2, R, "generic", "Sorts a list, set or sorted set (read-only SORT).")
        .keys(1, 1, 1)
        .syntax("key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC] [ALPHA]"),
];

/// Does this command wait (`SAVE` for the disk, the blocking pops for a push)? Only these
/// need [`execute`]; every other command runs to completion in [`execute_now`].
pub fn waits(name: &str) -> bool {
    matches!(
        name,
        "save"
            | "bgsave"
            | "blpop"
            | "brpop"
            | "blmove"
            | "brpoplpush"
            | "blmpop"
            | "bzmpop"
            | "bzpopmin"
            | "bzpopmax"
            | "shutdown"
            | "eval"
            | "evalsha"
            | "eval_ro"
            | "evalsha_ro"
    )
}

/// Runs one command, or hands it back to the service if it is not a kv command.
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

/// Runs a command that does not wait (see [`waits`]), or hands it back to the service if
/// it is not a kv command. Not `async`: the service calls it straight from its
/// connection loop (`Server::execute_now`), so a `GET` builds and polls no future.
pub fn execute_now(kv: &Kv, client: &mut Client<Session>, mut args: Args) -> Reply {
    execute_now_borrowed(kv, client, &mut args).unwrap_or(Reply::Unhandled(args))
}

/// [`execute_now`] on borrowed arguments (`None`: not a kv command): the caller keeps
/// them, for the slow log (see `Kv::observe_end`).
pub fn execute_now_borrowed(kv: &Kv, client: &mut Client<Session>, a: &mut Args) -> Option<Reply> {
    let protocol = client.protocol;
    let s = &mut client.session;
    let result = match a.name() {
        "lrange" => {
            return Some(
                lists::lrange(kv, s, a).map_or_else(|e| e.to_frame().into(), Reply::Encoded),
            );
        }
        "select" => {
            let selected = run(kv, s, a, protocol);
            client.set_db(client.session.db);
            selected
        }
        // Inside `EXEC` (elsewhere `EVAL` waits, see `execute`).
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" => {
            Some(eval_request(a).map(|r| scripting::eval_now(kv, s, r)))
        }
        "script" => Some(scripting::script(kv, a)),
        _ => run(kv, s, a, protocol),
    };
    Some(Reply::One(match result? {
        Ok(frame) => frame,
        Err(e) => e.to_frame(),
    }))
}

/// `EVAL`'s arguments, by the variant's name.
fn eval_request(a: &mut Args) -> Result<scripting::Request> {
    let name = a.name();
    let (by_sha, read_only) = (name.starts_with("evalsha"), name.ends_with("_ro"));
    scripting::request(a, by_sha, read_only)
}

/// A command's table entry, by lowercase name.
pub(crate) fn lookup(name: &str) -> Option<&'static CommandSpec> {
    type ByName = HashMap<&'static str, &'static CommandSpec, BuildHasherDefault<NameHasher>>;
    static BY_NAME: LazyLock<ByName> =
        LazyLock::new(|| TABLE.iter().map(|s| (s.name, s)).collect());
    BY_NAME.get(name).copied()
}

/// Runs one of kv's commands that needs only the session (`None`: not one of them):
/// what a client's command and a script's `redis.call` both come to.
fn run(kv: &Kv, s: &mut Session, a: &mut Args, protocol: Protocol) -> Option<Result> {
    Some(match a.name() {
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
        "select" => db_index(a.next_bytes()).map(|db| {
            s.db = db;
            Frame::ok()
        }),
        "swapdb" => keys::swapdb(kv, s, a),
        "copy" => keys::copy(kv, s, a),
        "move" => keys::move_key(kv, s, a),
        "slowlog" => admin::slowlog(kv, a),
        "latency" => admin::latency(kv, a),
        "monitor" => admin::monitor(kv, s),
        "object" => object::object(kv, s, a),
        "memory" => object::memory(kv, s, a),
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
        "lastsave" => Ok(Frame::Integer(kv.last_save() as i64)),
        _ => {
            // The short table first: a `match` on names compares them one by one, and
            // the collections' seventy names cost a bitmap command ~150 instructions.
            return bitwise(kv, s, a)
                .or_else(|| collection(kv, s, a))
                .or_else(|| derived(kv, s, a, protocol));
        }
    })
}

/// The hash, list, set and sorted-set commands (`None`: not one of them).
fn collection(kv: &Kv, s: &mut Session, a: &mut Args) -> Option<Result> {
    use crate::types::ops::Algebra;
    use zsets::By;
    Some(match a.name() {
        "hset" => hashes::hset(kv, s, a, false),
        "hmset" => hashes::hset(kv, s, a, true),
        "hsetnx" => hashes::hsetnx(kv, s, a),
        "hget" => hashes::hget(kv, s, a),
        "hmget" => hashes::hmget(kv, s, a),
        "hgetall" => hashes::hgetall(kv, s, a, true, true),
        "hkeys" => hashes::hgetall(kv, s, a, true, false),
        "hvals" => hashes::hgetall(kv, s, a, false, true),
        "hdel" => hashes::hdel(kv, s, a),
        "hexists" => hashes::hexists(kv, s, a),
        "hlen" => hashes::hlen(kv, s, a),
        "hstrlen" => hashes::hstrlen(kv, s, a),
        "hincrby" => hashes::hincrby(kv, s, a),
        "hincrbyfloat" => hashes::hincrbyfloat(kv, s, a),
        "hscan" => hashes::hscan(kv, s, a),
        "hrandfield" => hashes::hrandfield(kv, s, a),
        "lpush" => lists::push(kv, s, a, true, false),
        "rpush" => lists::push(kv, s, a, false, false),
        "lpushx" => lists::push(kv, s, a, true, true),
        "rpushx" => lists::push(kv, s, a, false, true),
        "lpop" => lists::pop(kv, s, a, true),
        "rpop" => lists::pop(kv, s, a, false),
        "llen" => lists::llen(kv, s, a),
        "lindex" => lists::lindex(kv, s, a),
        "lset" => lists::lset(kv, s, a),
        "linsert" => lists::linsert(kv, s, a),
        "lrem" => lists::lrem(kv, s, a),
        "ltrim" => lists::ltrim(kv, s, a),
        "lpos" => lists::lpos(kv, s, a),
        "lmove" => lists::lmove(kv, s, a, false),
        "rpoplpush" => lists::lmove(kv, s, a, true),
        "sadd" => sets::sadd(kv, s, a),
        "srem" => sets::srem(kv, s, a),
        "sismember" => sets::sismember(kv, s, a),
        "smismember" => sets::smismember(kv, s, a),
        "smembers" => sets::smembers(kv, s, a),
        "scard" => sets::scard(kv, s, a),
        "spop" => sets::spop(kv, s, a),
        "srandmember" => sets::srandmember(kv, s, a),
        "sinter" => sets::algebra(kv, s, a, Algebra::Inter),
        "sunion" => sets::algebra(kv, s, a, Algebra::Union),
        "sdiff" => sets::algebra(kv, s, a, Algebra::Diff),
        "sinterstore" => sets::store(kv, s, a, Algebra::Inter),
        "sunionstore" => sets::store(kv, s, a, Algebra::Union),
        "sdiffstore" => sets::store(kv, s, a, Algebra::Diff),
        "smove" => sets::smove(kv, s, a),
        "sscan" => sets::sscan(kv, s, a),
        "zadd" => zsets::zadd(kv, s, a),
        "zincrby" => zsets::zincrby(kv, s, a),
        "zscore" => zsets::zscore(kv, s, a),
        "zmscore" => zsets::zmscore(kv, s, a),
        "zcard" => zsets::zcard(kv, s, a),
        "zcount" => zsets::zcount(kv, s, a),
        "zlexcount" => zsets::zlexcount(kv, s, a),
        "zrank" => zsets::zrank(kv, s, a, false),
        "zrevrank" => zsets::zrank(kv, s, a, true),
        "zrange" => zsets::zrange(kv, s, a, None, None),
        "zrangebyscore" => zsets::zrange(kv, s, a, Some(By::Score), Some(false)),
        "zrevrangebyscore" => zsets::zrange(kv, s, a, Some(By::Score), Some(true)),
        "zrangebylex" => zsets::zrange(kv, s, a, Some(By::Lex), Some(false)),
        "zrevrangebylex" => zsets::zrange(kv, s, a, Some(By::Lex), Some(true)),
        "zrevrange" => zsets::zrange(kv, s, a, Some(By::Rank), Some(true)),
        "zrem" => zsets::zrem(kv, s, a),
        "zremrangebyrank" => zsets::zremrangebyrank(kv, s, a),
        "zremrangebyscore" => zsets::zremrangebyscore(kv, s, a),
        "zpopmin" => zsets::zpop(kv, s, a, false),
        "zpopmax" => zsets::zpop(kv, s, a, true),
        "zrandmember" => zsets::zrandmember(kv, s, a),
        "zscan" => zsets::zscan(kv, s, a),
        "lmpop" => pops::mpop(kv, s, a, false),
        "zmpop" => pops::mpop(kv, s, a, true),
        "sort" => sort::sort(kv, s, a, false),
        "sort_ro" => sort::sort(kv, s, a, true),
        _ => return None,
    })
}

/// The bitmap and HyperLogLog commands, and SUBSTR (`None`: not one of them).
fn bitwise(kv: &Kv, s: &mut Session, a: &mut Args) -> Option<Result> {
    Some(match a.name() {
        "substr" => strings::getrange(kv, s, a),
        "setbit" => bits::setbit(kv, s, a),
        "getbit" => bits::getbit(kv, s, a),
        "bitcount" => bits::bitcount(kv, s, a),
        "bitpos" => bits::bitpos(kv, s, a),
        "bitop" => bits::bitop(kv, s, a),
        "bitfield" => bits::bitfield(kv, s, a, false),
        "bitfield_ro" => bits::bitfield(kv, s, a, true),
        "pfadd" => hyperloglog::pfadd(kv, s, a),
        "pfcount" => hyperloglog::pfcount(kv, s, a),
        "pfmerge" => hyperloglog::pfmerge(kv, s, a),
        _ => return None,
    })
}

/// LCS, the geo commands and the sorted-set algebra (`None`: not one of them).
fn derived(kv: &Kv, s: &mut Session, a: &mut Args, protocol: Protocol) -> Option<Result> {
    use crate::types::ops::Algebra::{Diff, Inter, Union};
    use geo::Form;
    Some(match a.name() {
        "lcs" => lcs::lcs(kv, s, a),
        "geoadd" => geo::geoadd(kv, s, a),
        "geopos" => geo::geopos(kv, s, a, protocol),
        "geodist" => geo::geodist(kv, s, a),
        "geohash" => geo::geohash(kv, s, a),
        "geosearch" => geo::search(kv, s, a, Form::Search, protocol),
        "geosearchstore" => geo::search(kv, s, a, Form::SearchStore, protocol),
        "georadius" | "georadius_ro" => {
            let read_only = a.name() == "georadius_ro";
            geo::search(kv, s, a, Form::Radius { read_only }, protocol)
        }
        "georadiusbymember" | "georadiusbymember_ro" => {
            let read_only = a.name() == "georadiusbymember_ro";
            geo::search(kv, s, a, Form::ByMember { read_only }, protocol)
        }
        "zunion" => zalgebra::combine(kv, s, a, Union),
        "zinter" => zalgebra::combine(kv, s, a, Inter),
        "zdiff" => zalgebra::combine(kv, s, a, Diff),
        "zunionstore" => zalgebra::store(kv, s, a, Union),
        "zinterstore" => zalgebra::store(kv, s, a, Inter),
        "zdiffstore" => zalgebra::store(kv, s, a, Diff),
        "zintercard" => zalgebra::zintercard(kv, s, a),
        "sintercard" => zalgebra::sintercard(kv, s, a),
        "zrangestore" => zalgebra::zrangestore(kv, s, a),
        "zremrangebylex" => zalgebra::zremrangebylex(kv, s, a),
        _ => return None,
    })
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

//! Every command the router knows, with its key positions (as Redis's `COMMAND` reports
//! them) — the key positions are how a proxy finds what to hash.

use service::CommandSpec;

const fn read(name: &'static str, arity: i64, first: i64, last: i64, step: i64) -> CommandSpec {
    CommandSpec::new(
        name,
        arity,
        &["readonly"],
        "keyspace",
        "Routed to the key's shard.",
    )
    .keys(first, last, step)
}

const fn write(name: &'static str, arity: i64, first: i64, last: i64, step: i64) -> CommandSpec {
    CommandSpec::new(
        name,
        arity,
        &["write"],
        "keyspace",
        "Routed to the key's shard.",
    )
    .keys(first, last, step)
}

const fn refused(name: &'static str, arity: i64) -> CommandSpec {
    CommandSpec::new(
        name,
        arity,
        &[],
        "router",
        "Not served by the router (see ROUTER HELP).",
    )
}

/// Routed by key: one key, or several that must share a shard.
pub static COMMANDS: &[CommandSpec] = &[
    // strings
    read("get", 2, 1, 1, 1),
    write("set", -3, 1, 1, 1),
    write("setnx", 3, 1, 1, 1),
    write("setex", 4, 1, 1, 1),
    write("psetex", 4, 1, 1, 1),
    write("getset", 3, 1, 1, 1),
    write("getdel", 2, 1, 1, 1),
    write("getex", -2, 1, 1, 1),
    write("append", 3, 1, 1, 1),
    read("strlen", 2, 1, 1, 1),
    write("incr", 2, 1, 1, 1),
    write("decr", 2, 1, 1, 1),
    write("incrby", 3, 1, 1, 1),
    write("decrby", 3, 1, 1, 1),
    write("incrbyfloat", 3, 1, 1, 1),
    read("getrange", 4, 1, 1, 1),
    read("substr", 4, 1, 1, 1),
    write("setrange", 4, 1, 1, 1),
    write("msetnx", -3, 1, -1, 2),
    // split across shards and merged (see commands::multikey)
    read("mget", -2, 1, -1, 1),
    write("mset", -3, 1, -1, 2),
    write("del", -2, 1, -1, 1),
    write("unlink", -2, 1, -1, 1),
    read("exists", -2, 1, -1, 1),
    read("touch", -2, 1, -1, 1),
    // generic
    read("type", 2, 1, 1, 1),
    write("expire", -3, 1, 1, 1),
    write("pexpire", -3, 1, 1, 1),
    write("expireat", -3, 1, 1, 1),
    write("pexpireat", -3, 1, 1, 1),
    read("ttl", 2, 1, 1, 1),
    read("pttl", 2, 1, 1, 1),
    read("expiretime", 2, 1, 1, 1),
    read("pexpiretime", 2, 1, 1, 1),
    write("persist", 2, 1, 1, 1),
    write("rename", 3, 1, 2, 1),
    write("renamenx", 3, 1, 2, 1),
    write("copy", -3, 1, 2, 1),
    read("dump", 2, 1, 1, 1),
    write("restore", -4, 1, 1, 1),
    read("object", -3, 2, 2, 1),
    // hashes
    write("hset", -4, 1, 1, 1),
    write("hsetnx", 4, 1, 1, 1),
    write("hmset", -4, 1, 1, 1),
    read("hget", 3, 1, 1, 1),
    read("hmget", -3, 1, 1, 1),
    write("hdel", -3, 1, 1, 1),
    read("hexists", 3, 1, 1, 1),
    read("hlen", 2, 1, 1, 1),
    read("hgetall", 2, 1, 1, 1),
    read("hkeys", 2, 1, 1, 1),
    read("hvals", 2, 1, 1, 1),
    write("hincrby", 4, 1, 1, 1),
    write("hincrbyfloat", 4, 1, 1, 1),
    read("hstrlen", 3, 1, 1, 1),
    read("hrandfield", -2, 1, 1, 1),
    read("hscan", -3, 1, 1, 1),
    // lists
    write("lpush", -3, 1, 1, 1),
    write("rpush", -3, 1, 1, 1),
    write("lpushx", -3, 1, 1, 1),
    write("rpushx", -3, 1, 1, 1),
    write("lpop", -2, 1, 1, 1),
    write("rpop", -2, 1, 1, 1),
    read("llen", 2, 1, 1, 1),
    read("lrange", 4, 1, 1, 1),
    read("lindex", 3, 1, 1, 1),
    write("lset", 4, 1, 1, 1),
    write("lrem", 4, 1, 1, 1),
    write("ltrim", 4, 1, 1, 1),
    write("linsert", 5, 1, 1, 1),
    read("lpos", -3, 1, 1, 1),
    write("rpoplpush", 3, 1, 2, 1),
    write("lmove", 5, 1, 2, 1),
    // sets
    write("sadd", -3, 1, 1, 1),
    write("srem", -3, 1, 1, 1),
    read("smembers", 2, 1, 1, 1),
    read("sismember", 3, 1, 1, 1),
    read("smismember", -3, 1, 1, 1),
    read("scard", 2, 1, 1, 1),
    write("spop", -2, 1, 1, 1),
    read("srandmember", -2, 1, 1, 1),
    write("smove", 4, 1, 2, 1),
    read("sinter", -2, 1, -1, 1),
    read("sunion", -2, 1, -1, 1),
    read("sdiff", -2, 1, -1, 1),
    write("sinterstore", -3, 1, -1, 1),
    write("sunionstore", -3, 1, -1, 1),
    write("sdiffstore", -3, 1, -1, 1),
    read("sscan", -3, 1, 1, 1),
    // sorted sets
    write("zadd", -4, 1, 1, 1),
    write("zrem", -3, 1, 1, 1),
    read("zscore", 3, 1, 1, 1),
    read("zmscore", -3, 1, 1, 1),
    write("zincrby", 4, 1, 1, 1),
    read("zcard", 2, 1, 1, 1),
    read("zcount", 4, 1, 1, 1),
    read("zlexcount", 4, 1, 1, 1),
    read("zrank", -3, 1, 1, 1),
    read("zrevrank", -3, 1, 1, 1),
    read("zrange", -4, 1, 1, 1),
    read("zrevrange", -4, 1, 1, 1),
    read("zrangebyscore", -4, 1, 1, 1),
    read("zrevrangebyscore", -4, 1, 1, 1),
    read("zrangebylex", -4, 1, 1, 1),
    read("zrevrangebylex", -4, 1, 1, 1),
    read("zrandmember", -2, 1, 1, 1),
    write("zpopmin", -2, 1, 1, 1),
    write("zpopmax", -2, 1, 1, 1),
    write("zremrangebyscore", 4, 1, 1, 1),
    write("zremrangebyrank", 4, 1, 1, 1),
    read("zscan", -3, 1, 1, 1),
    // every shard at once (see commands::fanout); INFO overrides the built-in
    CommandSpec::new("flushall", -1, &["write"], "server", "Empties every shard."),
    CommandSpec::new("flushdb", -1, &["write"], "server", "Empties every shard."),
    CommandSpec::new(
        "dbsize",
        1,
        &["readonly"],
        "server",
        "Keys on all shards together.",
    ),
    CommandSpec::new(
        "info",
        -1,
        &["stale"],
        "server",
        "Router and aggregated shard info.",
    ),
    CommandSpec::new(
        "router",
        -2,
        &["admin"],
        "router",
        "SHARDOF key | SHARDS | STATS | RELOAD | HELP",
    )
    .syntax("SHARDOF|SHARDS|STATS|RELOAD|HELP [key]"),
    // answered with an explanation instead of being proxied (see commands::refusal)
    refused("keys", 2),
    refused("scan", -2),
    refused("randomkey", 1),
    refused("multi", 1),
    refused("exec", 1),
    refused("discard", 1),
    refused("watch", -2),
    refused("unwatch", 1),
    refused("blpop", -3),
    refused("brpop", -3),
    refused("brpoplpush", 4),
    refused("blmove", 6),
    refused("blmpop", -5),
    refused("bzpopmin", -3),
    refused("bzpopmax", -3),
    refused("bzmpop", -5),
    refused("subscribe", -2),
    refused("psubscribe", -2),
    refused("ssubscribe", -2),
    refused("publish", 3),
    refused("eval", -3),
    refused("evalsha", -3),
    refused("fcall", -3),
    refused("move", 3),
    refused("swapdb", 3),
    refused("wait", 3),
    refused("migrate", -6),
    refused("sync", 1),
    refused("psync", -3),
    refused("replicaof", 3),
    refused("slaveof", 3),
    refused("monitor", 1),
    refused("save", 1),
    refused("bgsave", -1),
    refused("bgrewriteaof", 1),
    refused("shutdown", -1),
    refused("zunionstore", -4),
    refused("zinterstore", -4),
    refused("zdiffstore", -4),
    refused("sintercard", -3),
    refused("lmpop", -4),
    refused("zmpop", -4),
];

/// Why a refused command is not proxied.
pub fn refusal(name: &str) -> String {
    let why = match name {
        "keys" | "scan" | "randomkey" => {
            "spans every shard; run it against each shard (ROUTER SHARDS lists them)"
        }
        "multi" | "exec" | "discard" | "watch" | "unwatch" => {
            "transactions cannot span shards through this proxy"
        }
        "eval" | "evalsha" | "fcall" => "scripts are not proxied",
        "subscribe" | "psubscribe" | "ssubscribe" | "publish" => {
            "pub/sub is not sharded; use the pubsub server"
        }
        "move" | "swapdb" => "the router serves database 0 only",
        "zunionstore" | "zinterstore" | "zdiffstore" | "sintercard" | "lmpop" | "zmpop" => {
            "commands with a key count are not proxied"
        }
        b if b.starts_with('b') => "blocking commands would hold a shared backend connection",
        _ => "it is a per-server administrative command; send it to a shard directly",
    };
    format!("ERR '{name}' is not supported by the shard router: {why}")
}

/// The keys of a request, by the spec's positions (`words` excludes the command name).
/// An iterator, not a vector: routing a GET allocates nothing to find its key.
pub fn keys<'a, 'w>(
    spec: &CommandSpec,
    words: &'a [&'w [u8]],
) -> impl Iterator<Item = &'w [u8]> + use<'a, 'w> {
    let argc = words.len() as i64 + 1;
    let (first, last) = if spec.first_key <= 0 {
        (1, 0)
    } else if spec.last_key < 0 {
        (spec.first_key, argc + spec.last_key)
    } else {
        (spec.first_key, spec.last_key.min(argc - 1))
    };
    let step = spec.step.max(1) as usize;
    (first.max(1)..=last.max(0))
        .step_by(step)
        .filter_map(move |i| words.get((i - 1) as usize).copied())
}

//! Looking at a key's value rather than its contents: `OBJECT ENCODING|FREQ|IDLETIME|
//! REFCOUNT|HELP` and `MEMORY USAGE|STATS|DOCTOR|HELP`.

use bytes::Bytes;
use proto::{Args, CommandError, Frame};

use super::Result;
use crate::server::{Kv, Session};
use crate::value::Value;

/// Redis shares one object for each small integer (0..10000) among every key that holds
/// it, and reports that object's reference count as "immortal".
const SHARED_REFCOUNT: i64 = i32::MAX as i64;

/// A `HELP` subcommand's reply: one status line per line of text, as Redis answers.
pub(super) fn help(lines: &[&'static str]) -> Frame {
    Frame::Array(lines.iter().map(|&l| Frame::simple(l)).collect())
}

/// Runs `f` on the key's value; a null reply if the key is missing.
fn with_value(kv: &Kv, s: &Session, key: &Bytes, f: impl FnOnce(&Value) -> Result) -> Result {
    kv.read(|ks, now| ks.peek(s.db, key, now).map_or(Ok(Frame::Null), f))
}

pub fn object(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let sub = args.next_keyword().unwrap_or_default();
    if sub == "HELP" {
        return Ok(help(&[
            "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "ENCODING <key>",
            "    Return the kind of internal representation used in order to store the value",
            "    associated with a <key>.",
            "FREQ <key>",
            "    Return the access frequency index of the <key>. The returned integer is",
            "    proportional to the logarithm of the recent access frequency of the key.",
            "IDLETIME <key>",
            "    Return the idle time of the <key>, that is the approximated number of",
            "    seconds elapsed since the last access to the key.",
            "REFCOUNT <key>",
            "    Return the number of references of the value associated with the specified",
            "    <key>.",
            "HELP",
            "    Prints this help.",
        ]));
    }
    let key = args.next_bytes()?;
    match sub.as_str() {
        "ENCODING" => with_value(kv, s, &key, |v| Ok(Frame::bulk(kv.encodings.name(v)))),
        "REFCOUNT" => with_value(kv, s, &key, |v| {
            let shared = matches!(v, Value::String(b)
                if proto::decode::parse_int(b).is_some_and(|n| (0..10_000).contains(&n)
                    && n.to_string().as_bytes() == &b[..]));
            Ok(Frame::Integer(if shared { SHARED_REFCOUNT } else { 1 }))
        }),
        // kv keeps no per-key access clock (its only policy is noeviction): a key is
        // reported as just used, as a fresh key is in Redis.
        "IDLETIME" => with_value(kv, s, &key, |_| Ok(Frame::Integer(0))),
        "FREQ" => with_value(kv, s, &key, |_| {
            Err(CommandError::err(
                "An LFU maxmemory policy is not selected, access frequency not tracked. \
                 Please note that when switching between policies at runtime LRU and LFU \
                 data will take some time to adjust.",
            ))
        }),
        _ => Err(CommandError::err(format!(
            "unknown subcommand '{}'. Try OBJECT HELP.",
            sub.to_ascii_lowercase()
        ))),
    }
}

pub fn memory(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let sub = args.next_keyword().unwrap_or_default();
    match sub.as_str() {
        "USAGE" => {
            let key = args.next_bytes()?;
            match (args.next_keyword().as_deref(), args.remaining()) {
                (None, _) => {}
                (Some("SAMPLES"), 1) => {
                    args.next_int()?;
                }
                _ => return Err(CommandError::Syntax),
            }
            // The estimate kv keeps for `used_memory`: payload, element and key overheads.
            let usage = kv.read(|ks, now| ks.memory_usage(s.db, &key, now));
            Ok(usage.map_or(Frame::Null, |n| Frame::Integer(n as i64)))
        }
        "STATS" => {
            let (used, keys) = kv.read(|ks, now| {
                let keys: usize = ks.keyspace_info(now).iter().map(|(_, k, _)| k).sum();
                (ks.used_memory(), keys)
            });
            Ok(Frame::Map(vec![
                (Frame::bulk("total.allocated"), Frame::Integer(used as i64)),
                (Frame::bulk("keys.count"), Frame::Integer(keys as i64)),
                (
                    Frame::bulk("keys.bytes-per-key"),
                    Frame::Integer(used.checked_div(keys).unwrap_or(0) as i64),
                ),
                (Frame::bulk("dataset.bytes"), Frame::Integer(used as i64)),
            ]))
        }
        "DOCTOR" => Ok(Frame::Verbatim {
            format: *b"txt",
            text: Bytes::from_static(
                b"Hi Sam, I can't find any memory issue in your instance. \
                  I can only account for what occurs on this base.",
            ),
        }),
        "HELP" => Ok(help(&[
            "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "DOCTOR",
            "    Return memory problems reports.",
            "MALLOC-STATS",
            "    Return internal statistics report from the memory allocator.",
            "PURGE",
            "    Attempt to purge dirty pages for reclamation by the allocator.",
            "STATS",
            "    Return information about the memory usage of the server.",
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value. Nested values are",
            "    sampled up to <count> times (default: 5, 0 means sample all).",
            "HELP",
            "    Prints this help.",
        ])),
        "MALLOC-STATS" => Ok(Frame::bulk("Stats not supported for the current allocator")),
        "PURGE" => Ok(Frame::ok()),
        _ => Err(CommandError::err(format!(
            "unknown subcommand '{}'. Try MEMORY HELP.",
            sub.to_ascii_lowercase()
        ))),
    }
}

//! Keyspace notifications: every change, published as a pub/sub message.
//!
//! "Event-based cache invalidation" in one feature: a cache (or any program) subscribes to
//! the database's own change feed instead of polling it. With `CONFIG SET
//! notify-keyspace-events KEA`, `SET user:1 x` in database 0 publishes
//!
//! - `set` on `__keyspace@0__:user:1` (K, the *key-space* channel: "what happened to this
//!   key?"), and
//! - `user:1` on `__keyevent@0__:set` (E, the *key-event* channel: "which keys had this
//!   happen?").
//!
//! The other letters choose classes of events: `g` generic (`del`, `expire`, `rename_from`,
//! ...), `$` strings, `l` lists, `s` sets, `h` hashes, `z` sorted sets, `x` expired (a key
//! removed because its deadline passed, found by a lookup or by the background sweep), `e`
//! evicted, `t` streams, `d` modules, `m` key misses (`keymiss`: a read found no key), `n`
//! new keys (`new`: a write created the key); `A` is `g$lshzxetd`.
//! Messages are fire-and-forget like every pub/sub message: a subscriber that is not
//! connected when a key changes never hears of it.
//!
//! An event is planned from the write before it runs ([`plan`]) and sent only if the write
//! really touched the key ([`Planned::fires`]): `SET k v NX` on a present key, or `LPOP` on
//! a missing one, changes nothing and announces nothing, as in Redis.

use std::fmt::Write as _;

use bytes::Bytes;

use crate::keyspace::{Mutation, Touch, Ttl};
use crate::types::bitwrite::BitWrite;
use crate::types::ops::{Algebra, Op};
use crate::types::zstore::ZStore;

/// `notify-keyspace-events`, as bits (Redis's `NOTIFY_*` values).
pub type Flags = u32;

pub const KEYSPACE: Flags = 1 << 0;
pub const KEYEVENT: Flags = 1 << 1;
pub const GENERIC: Flags = 1 << 2;
pub const STRING: Flags = 1 << 3;
pub const LIST: Flags = 1 << 4;
pub const SET: Flags = 1 << 5;
pub const HASH: Flags = 1 << 6;
pub const ZSET: Flags = 1 << 7;
pub const EXPIRED: Flags = 1 << 8;
pub const EVICTED: Flags = 1 << 9;
pub const STREAM: Flags = 1 << 10;
pub const KEY_MISS: Flags = 1 << 11;
pub const MODULE: Flags = 1 << 12;
pub const NEW: Flags = 1 << 13;
/// `A`: every class but key misses and new keys.
pub const ALL: Flags =
    GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// The letters, in the order `CONFIG GET` writes them.
const LETTERS: &[(char, Flags)] = &[
    ('g', GENERIC),
    ('$', STRING),
    ('l', LIST),
    ('s', SET),
    ('h', HASH),
    ('z', ZSET),
    ('x', EXPIRED),
    ('e', EVICTED),
    ('t', STREAM),
    ('d', MODULE),
    ('n', NEW),
];

/// Parses `notify-keyspace-events` (`""` turns notifications off).
pub fn parse(text: &str) -> Result<Flags, String> {
    let mut flags = 0;
    for c in text.chars() {
        flags |= match c {
            'A' => ALL,
            'K' => KEYSPACE,
            'E' => KEYEVENT,
            'm' => KEY_MISS,
            _ => LETTERS
                .iter()
                .find(|(l, _)| *l == c)
                .map(|(_, f)| *f)
                .ok_or("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.")?,
        };
    }
    Ok(flags)
}

/// The flags as `CONFIG GET notify-keyspace-events` shows them (Redis's order).
pub fn format(flags: Flags) -> String {
    let mut text = String::new();
    if flags & ALL == ALL {
        text.push('A');
    }
    for (letter, flag) in LETTERS {
        if flags & flag != 0 && (flags & ALL != ALL || flag & ALL == 0) {
            text.push(*letter);
        }
    }
    for (letter, flag) in [('K', KEYSPACE), ('E', KEYEVENT), ('m', KEY_MISS)] {
        if flags & flag != 0 {
            text.push(letter);
        }
    }
    text
}

/// Are any events published at all? (A class without K or E, or K/E without a class,
/// publishes nothing.)
pub fn active(flags: Flags) -> bool {
    flags & (KEYSPACE | KEYEVENT) != 0 && flags & !(KEYSPACE | KEYEVENT) != 0
}

/// When a planned event fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// The write touched the key (changed or removed it).
    Touched,
    /// The key is still there after the write touched it.
    Kept,
    /// The write removed the key.
    Removed,
}

/// One event a write may cause.
#[derive(Debug, Clone)]
pub struct Planned {
    pub class: Flags,
    pub event: &'static str,
    pub db: usize,
    pub key: Bytes,
    pub when: When,
}

impl Planned {
    /// Did the write do what this event announces? `touched` is what it touched (keys
    /// removed by expiry do not count: they have their own `expired` event).
    pub fn fires(&self, touched: &[Touch]) -> bool {
        let mut last = None;
        for t in touched {
            if let Touch::Key {
                db,
                key,
                removed,
                expired: false,
            } = t
                && *db == self.db
                && *key == self.key
            {
                last = Some(*removed);
                if *removed && self.when == When::Removed {
                    return true;
                }
            }
        }
        match (self.when, last) {
            (When::Touched, Some(_)) => true,
            (When::Kept, Some(removed)) => !removed,
            _ => false,
        }
    }
}

/// What a write may announce: its events, and the keys it created (`new`, class `n`:
/// found absent before the write and present after it, see [`Plan::created`]).
#[derive(Debug, Default)]
pub struct Plan {
    pub events: Vec<Planned>,
    pub created: Vec<(usize, Bytes)>,
    /// Redis announces the new keys before all the events (`RENAME`, whose target is
    /// added before the source is deleted), not each before its key's first event.
    pub new_first: bool,
    /// A write's plan: the keys its lookups miss are no `keymiss` (Redis reports misses
    /// of reads only). [`Plan::default`] is a read's.
    pub write: bool,
}

impl Plan {
    /// The keys the events name (each once): the candidates for `new`.
    pub fn keys(&self) -> Vec<(usize, Bytes)> {
        let mut keys: Vec<(usize, Bytes)> = Vec::new();
        for p in &self.events {
            if !keys.iter().any(|(db, k)| *db == p.db && *k == p.key) {
                keys.push((p.db, p.key.clone()));
            }
        }
        keys
    }

    /// The announcements, in Redis's order: `(class, event, db, key)` for each event that
    /// fired, with `new` before the first event of a key the write created.
    pub fn fired(&self, touched: &[Touch]) -> Vec<(Flags, &'static str, usize, Bytes)> {
        let mut out = Vec::new();
        let mut announced: Vec<&(usize, Bytes)> = Vec::new();
        if self.new_first {
            for created in &self.created {
                out.push((NEW, "new", created.0, created.1.clone()));
                announced.push(created);
            }
        }
        for p in self.events.iter().filter(|p| p.fires(touched)) {
            if let Some(created) = self
                .created
                .iter()
                .find(|(db, k)| *db == p.db && *k == p.key)
                && !announced.contains(&created)
            {
                out.push((NEW, "new", p.db, p.key.clone()));
                announced.push(created);
            }
            out.push((p.class, p.event, p.db, p.key.clone()));
        }
        out
    }
}

/// The events `mutation` (against database `db`) may cause, in the order Redis sends them.
pub fn plan(mutation: &Mutation, db: usize) -> Plan {
    Plan {
        new_first: matches!(mutation, Mutation::Rename { .. }),
        events: events(mutation, db),
        created: Vec::new(),
        write: true,
    }
}

fn events(mutation: &Mutation, db: usize) -> Vec<Planned> {
    let mut out = Vec::new();
    let mut add = |class, event, key: &Bytes, when| {
        out.push(Planned {
            class,
            event,
            db,
            key: key.clone(),
            when,
        })
    };
    use When::*;
    match mutation {
        Mutation::Set { key, ttl, .. } => {
            add(STRING, "set", key, Touched);
            if let Ttl::At(_) = ttl {
                add(GENERIC, "expire", key, Kept);
            }
        }
        Mutation::Append { key, .. } => add(STRING, "append", key, Touched),
        Mutation::SetRange { key, .. } => add(STRING, "setrange", key, Touched),
        Mutation::IncrBy { key, .. } => add(STRING, "incrby", key, Touched),
        Mutation::IncrByFloat { key, .. } => add(STRING, "incrbyfloat", key, Touched),
        Mutation::GetDel { key } => add(GENERIC, "del", key, Removed),
        Mutation::GetEx { key, ttl } => match ttl {
            Ttl::At(_) => {
                add(GENERIC, "expire", key, Kept);
                add(GENERIC, "del", key, Removed);
            }
            Ttl::Clear => add(GENERIC, "persist", key, Kept),
            Ttl::Keep => {}
        },
        Mutation::MSet { pairs, .. } => {
            for (key, _) in pairs {
                add(STRING, "set", key, Touched);
            }
        }
        Mutation::Del { keys } => {
            for key in keys {
                add(GENERIC, "del", key, Removed);
            }
        }
        Mutation::Rename { from, to, .. } => {
            add(GENERIC, "rename_from", from, Removed);
            add(GENERIC, "rename_to", to, Kept);
        }
        Mutation::Copy { to, to_db, .. } => out.push(Planned {
            class: GENERIC,
            event: "copy_to",
            db: *to_db,
            key: to.clone(),
            when: Kept,
        }),
        Mutation::Move { key, to_db } => {
            add(GENERIC, "move_from", key, Removed);
            out.push(Planned {
                class: GENERIC,
                event: "move_to",
                db: *to_db,
                key: key.clone(),
                when: Kept,
            });
        }
        Mutation::Expire { key, .. } => {
            add(GENERIC, "expire", key, Kept);
            add(GENERIC, "del", key, Removed);
        }
        Mutation::Persist { key } => add(GENERIC, "persist", key, Kept),
        Mutation::Restore { key, .. } => add(GENERIC, "restore", key, Kept),
        Mutation::FlushDb | Mutation::FlushAll | Mutation::SwapDb { .. } => {}
        Mutation::Collection(op) => collection(op, &mut add),
        Mutation::Bits(write) => match write {
            BitWrite::SetBit { key, .. } | BitWrite::BitField { key, .. } => {
                add(STRING, "setbit", key, Touched)
            }
            BitWrite::BitOp { dest, .. } => {
                add(STRING, "set", dest, Kept);
                add(GENERIC, "del", dest, Removed);
            }
            BitWrite::PfAdd { key, .. } => add(STRING, "pfadd", key, Touched),
            BitWrite::PfMerge { dest, .. } => add(STRING, "pfadd", dest, Touched),
            BitWrite::PfCount { .. } => {}
        },
        Mutation::ZStore(op) => zstore(op, &mut add),
    }
    out
}

/// The events of a hash, list, set or sorted-set write: its own event, then `del` if it
/// left the collection empty (Redis deletes an empty collection's key).
fn collection(op: &Op, add: &mut impl FnMut(Flags, &'static str, &Bytes, When)) {
    use When::*;
    let side = |left: bool, l: &'static str, r: &'static str| if left { l } else { r };
    fn emptied(
        add: &mut impl FnMut(Flags, &'static str, &Bytes, When),
        class: Flags,
        event: &'static str,
        key: &Bytes,
    ) {
        add(class, event, key, When::Touched);
        add(GENERIC, "del", key, When::Removed);
    }
    match op {
        Op::HSet { key, .. } => add(HASH, "hset", key, Kept),
        Op::HDel { key, .. } => emptied(add, HASH, "hdel", key),
        Op::HIncrBy { key, .. } => add(HASH, "hincrby", key, Kept),
        Op::HIncrByFloat { key, .. } => add(HASH, "hincrbyfloat", key, Kept),
        Op::Push { key, left, .. } => add(LIST, side(*left, "lpush", "rpush"), key, Kept),
        Op::Pop { key, left, .. } => emptied(add, LIST, side(*left, "lpop", "rpop"), key),
        Op::LSet { key, .. } => add(LIST, "lset", key, Kept),
        Op::LInsert { key, .. } => add(LIST, "linsert", key, Kept),
        Op::LRem { key, .. } => emptied(add, LIST, "lrem", key),
        Op::LTrim { key, .. } => emptied(add, LIST, "ltrim", key),
        Op::LMove {
            from,
            to,
            from_left,
            to_left,
        } => {
            // Redis pushes (and announces the push) before it announces the pop.
            add(LIST, side(*to_left, "lpush", "rpush"), to, Kept);
            emptied(add, LIST, side(*from_left, "lpop", "rpop"), from);
        }
        Op::SAdd { key, .. } => add(SET, "sadd", key, Kept),
        Op::SRem { key, .. } => emptied(add, SET, "srem", key),
        Op::SPop { key, .. } => emptied(add, SET, "spop", key),
        Op::SMove { from, to, .. } => {
            emptied(add, SET, "srem", from);
            add(SET, "sadd", to, Kept);
        }
        Op::ListStore { dest, .. } => {
            add(LIST, "sortstore", dest, Kept);
            add(GENERIC, "del", dest, Removed);
        }
        Op::SStore { dest, algebra, .. } => {
            let event = match algebra {
                Algebra::Inter => "sinterstore",
                Algebra::Union => "sunionstore",
                Algebra::Diff => "sdiffstore",
            };
            add(SET, event, dest, Kept);
            add(GENERIC, "del", dest, Removed);
        }
        Op::ZAdd { key, flags, .. } => {
            add(ZSET, if flags.incr { "zincr" } else { "zadd" }, key, Kept)
        }
        Op::ZRem { key, .. } => emptied(add, ZSET, "zrem", key),
        Op::ZRemRangeByRank { key, .. } => emptied(add, ZSET, "zremrangebyrank", key),
        Op::ZRemRangeByScore { key, .. } => emptied(add, ZSET, "zremrangebyscore", key),
        Op::ZPop { key, max, .. } => emptied(add, ZSET, side(*max, "zpopmax", "zpopmin"), key),
    }
}

/// The events of a sorted-set STORE form (`del` instead when the result is empty) or
/// of `ZREMRANGEBYLEX`.
fn zstore(op: &ZStore, add: &mut impl FnMut(Flags, &'static str, &Bytes, When)) {
    let (dest, event) = match op {
        ZStore::RemRangeByLex { key, .. } => {
            add(ZSET, "zremrangebylex", key, When::Touched);
            add(GENERIC, "del", key, When::Removed);
            return;
        }
        ZStore::Combine { dest, combine } => (
            dest,
            match combine.algebra {
                Algebra::Inter => "zinterstore",
                Algebra::Union => "zunionstore",
                Algebra::Diff => "zdiffstore",
            },
        ),
        ZStore::Range { dest, .. } => (dest, "zrangestore"),
        ZStore::Geo { dest, search, .. } => (
            dest,
            if *search {
                "geosearchstore"
            } else {
                "georadiusstore"
            },
        ),
    };
    add(ZSET, event, dest, When::Kept);
    add(GENERIC, "del", dest, When::Removed);
}

/// The two channels of an event: `__keyspace@<db>__:<key>` (message: the event) and
/// `__keyevent@<db>__:<event>` (message: the key), each only if its letter is on.
pub fn channels(flags: Flags, db: usize, event: &str, key: &Bytes) -> Vec<(Bytes, Bytes)> {
    let mut out = Vec::with_capacity(2);
    if flags & KEYSPACE != 0 {
        let mut channel = format!("__keyspace@{db}__:").into_bytes();
        channel.extend_from_slice(key);
        out.push((
            Bytes::from(channel),
            Bytes::copy_from_slice(event.as_bytes()),
        ));
    }
    if flags & KEYEVENT != 0 {
        let mut channel = String::new();
        let _ = write!(channel, "__keyevent@{db}__:{event}");
        out.push((Bytes::from(channel), Bytes::copy_from_slice(key)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip_as_redis_writes_them() {
        assert_eq!(format(parse("KEA").unwrap()), "AKE");
        assert_eq!(format(parse("Elg$").unwrap()), "g$lE");
        assert_eq!(format(parse("").unwrap()), "");
        assert!(parse("Kq").is_err());
        assert!(!active(parse("K").unwrap()));
        assert!(!active(parse("g$").unwrap()));
        assert!(active(parse("Kx").unwrap()));
    }

    #[test]
    fn an_event_fires_only_if_the_write_did_it() {
        let key = Bytes::from_static(b"k");
        let del = &plan(
            &Mutation::Del {
                keys: vec![key.clone()],
            },
            0,
        )
        .events[0];
        let removed = Touch::Key {
            db: 0,
            key: key.clone(),
            removed: true,
            expired: false,
        };
        let expired = Touch::Key {
            db: 0,
            key: key.clone(),
            removed: true,
            expired: true,
        };
        assert!(del.fires(std::slice::from_ref(&removed)));
        assert!(!del.fires(&[]), "DEL of a missing key announces nothing");
        assert!(
            !del.fires(&[expired]),
            "an expired key is not deleted by DEL"
        );
        let mut other_db = removed.clone();
        if let Touch::Key { db, .. } = &mut other_db {
            *db = 1;
        }
        assert!(!del.fires(&[other_db]));
    }

    #[test]
    fn new_comes_before_a_created_keys_first_event_or_before_all_for_rename() {
        let b = |s: &'static str| Bytes::from_static(s.as_bytes());
        let touched = |keys: &[&'static str]| -> Vec<Touch> {
            keys.iter()
                .map(|k| Touch::Key {
                    db: 0,
                    key: b(k),
                    removed: false,
                    expired: false,
                })
                .collect()
        };
        let mut mset = plan(
            &Mutation::MSet {
                pairs: vec![(b("a"), b("1")), (b("b"), b("2"))],
                only_if_none_exist: false,
            },
            0,
        );
        mset.created = vec![(0, b("b"))];
        let names = |p: &Plan, t: &[Touch]| -> Vec<String> {
            p.fired(t)
                .into_iter()
                .map(|(_, e, _, k)| format!("{e} {}", String::from_utf8_lossy(&k)))
                .collect()
        };
        assert_eq!(
            names(&mset, &touched(&["a", "b"])),
            ["set a", "new b", "set b"]
        );
        let mut rename = plan(
            &Mutation::Rename {
                from: b("a"),
                to: b("c"),
                only_if_absent: false,
            },
            0,
        );
        rename.created = vec![(0, b("c"))];
        let mut t = touched(&["c"]);
        t.push(Touch::Key {
            db: 0,
            key: b("a"),
            removed: true,
            expired: false,
        });
        assert_eq!(
            names(&rename, &t),
            ["new c", "rename_from a", "rename_to c"]
        );
    }

    #[test]
    fn channel_names() {
        let both = channels(
            KEYSPACE | KEYEVENT | ALL,
            3,
            "set",
            &Bytes::from_static(b"a:b"),
        );
        assert_eq!(
            both,
            vec![
                (
                    Bytes::from_static(b"__keyspace@3__:a:b"),
                    Bytes::from_static(b"set")
                ),
                (
                    Bytes::from_static(b"__keyevent@3__:set"),
                    Bytes::from_static(b"a:b")
                ),
            ]
        );
    }
}

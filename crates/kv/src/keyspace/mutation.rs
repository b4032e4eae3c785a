//! The write path: [`Mutation`], every way the keyspace can change, and
//! [`Keyspace::apply`], the one function that makes those changes.

use bytes::{Bytes, BytesMut};
use proto::CommandError;

use super::{Change, DATABASES, Db, Keyspace, MAX_STRING, live_in};
use crate::value::{Entry, SmallBytes, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Always,
    /// NX: only if the key does not exist.
    IfAbsent,
    /// XX: only if it does.
    IfPresent,
}

/// What a write does to the key's TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// Leave it (`KEEPTTL`, `INCR`, `GETEX` without options).
    Keep,
    /// Remove it (a plain `SET`, `GETEX PERSIST`).
    Clear,
    /// Expire at this Unix millisecond (relative times are made absolute before `apply`).
    At(u64),
}

/// `EXPIRE`'s NX/XX/GT/LT. Redis lets XX combine with GT or LT; the parser rejects the
/// other combinations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExpireCondition {
    /// Only if the key has no TTL.
    pub nx: bool,
    /// Only if it has one.
    pub xx: bool,
    /// Only if the new deadline is later (no TTL counts as infinitely late).
    pub gt: bool,
    /// Only if the new deadline is earlier.
    pub lt: bool,
}

impl ExpireCondition {
    /// May a key whose deadline is `current` get the deadline `at`?
    pub fn allows(self, current: Option<u64>, at: u64) -> bool {
        !(self.nx && current.is_some()
            || self.xx && current.is_none()
            || self.gt && current.is_none_or(|cur| at <= cur)
            || self.lt && current.is_some_and(|cur| at >= cur))
    }
}

/// Every way the keyspace can change. Times are absolute, so applying the same mutation
/// at the same `now` always has the same effect (what a replica or a log replay needs).
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    /// SET and its family (SETNX, SETEX, PSETEX, GETSET). `get`: reply with the old value.
    Set {
        key: Bytes,
        value: Bytes,
        condition: Condition,
        ttl: Ttl,
        get: bool,
    },
    Append {
        key: Bytes,
        value: Bytes,
    },
    SetRange {
        key: Bytes,
        offset: usize,
        value: Bytes,
    },
    IncrBy {
        key: Bytes,
        delta: i64,
    },
    IncrByFloat {
        key: Bytes,
        delta: f64,
    },
    GetDel {
        key: Bytes,
    },
    GetEx {
        key: Bytes,
        ttl: Ttl,
    },
    /// MSET, or MSETNX with `only_if_none_exist`.
    MSet {
        pairs: Vec<(Bytes, Bytes)>,
        only_if_none_exist: bool,
    },
    Del {
        keys: Vec<Bytes>,
    },
    Rename {
        from: Bytes,
        to: Bytes,
        only_if_absent: bool,
    },
    Copy {
        from: Bytes,
        to: Bytes,
        to_db: usize,
        replace: bool,
    },
    /// MOVE: the key, with its TTL, to another database, unless it exists there.
    Move {
        key: Bytes,
        to_db: usize,
    },
    /// EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT: a deadline at or before `now` deletes the key.
    Expire {
        key: Bytes,
        at: u64,
        condition: ExpireCondition,
    },
    Persist {
        key: Bytes,
    },
    Restore {
        key: Bytes,
        value: Value,
        expires_at: Option<u64>,
        replace: bool,
    },
    FlushDb,
    FlushAll,
    SwapDb {
        a: usize,
        b: usize,
    },
    /// A write to hashes, lists, sets or sorted sets (see [`crate::types::ops`]).
    Collection(crate::types::ops::Op),
    /// A bitmap or HyperLogLog write (see [`crate::types::bitwrite`]).
    Bits(crate::types::bitwrite::BitWrite),
    /// A sorted-set STORE form or `ZREMRANGEBYLEX` (see [`crate::types::zstore`]).
    ZStore(crate::types::zstore::ZStore),
}

impl Mutation {
    /// Can this write grow memory? Those are refused over `--maxmemory` (Redis's
    /// `denyoom` commands); deletes and TTL changes are always allowed.
    pub fn may_grow(&self) -> bool {
        matches!(
            self,
            Mutation::Set { .. }
                | Mutation::Append { .. }
                | Mutation::SetRange { .. }
                | Mutation::IncrBy { .. }
                | Mutation::IncrByFloat { .. }
                | Mutation::MSet { .. }
                | Mutation::Copy { .. }
                | Mutation::Restore { .. }
        ) || matches!(self, Mutation::Collection(op) if op.may_grow())
            || matches!(self, Mutation::Bits(op) if op.may_grow())
            || matches!(self, Mutation::ZStore(op) if op.may_grow())
    }
}

/// What a mutation answers, before it becomes a reply frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Ok,
    Nil,
    Integer(i64),
    Bulk(Bytes),
    /// A list of answers (`LPOP key 3`, `ZPOPMIN key`).
    Array(Vec<Outcome>),
    /// No list at all (`LPOP key 3` on a missing key; RESP2 `*-1`).
    NullArray,
    /// A sorted-set score (`ZADD ... INCR`): a double in RESP3.
    Score(f64),
    /// Distinct members (`SPOP key count`): a set in RESP3.
    Members(Vec<Bytes>),
    /// Members with their scores (`ZPOPMIN key count`): [member, score] pairs in RESP3.
    Scored(Vec<(Bytes, f64)>),
}

fn not_integer() -> CommandError {
    CommandError::NotInteger
}

fn too_long() -> CommandError {
    CommandError::err("string exceeds maximum allowed size (proto-max-bulk-len)")
}

/// Formats a float as Redis's `INCRBYFLOAT` does: plain decimal, no exponent, no
/// trailing zeros (`10.5`, `3000`).
pub fn format_float(v: f64) -> String {
    // Rust's `Display` is the shortest text that parses back to the same f64, and never
    // uses an exponent.
    let text = format!("{v}");
    if text == "-0" { "0".into() } else { text }
}

impl Keyspace {
    // ----- the write path --------------------------------------------------------------

    /// Applies one mutation to database `db` at time `now`. The only way the keyspace
    /// changes; every change it makes is journaled.
    pub fn apply(
        &mut self,
        db: usize,
        mutation: Mutation,
        now: u64,
    ) -> Result<Outcome, CommandError> {
        match mutation {
            Mutation::Set {
                key,
                value,
                condition,
                ttl,
                get,
            } => self.set(db, key, value, condition, ttl, get, now),
            Mutation::Append { key, value } => {
                let mut buf = match self.live(db, &key, now) {
                    Some(entry) => {
                        let old = entry.value.as_string()?;
                        if old.len() + value.len() > MAX_STRING {
                            return Err(too_long());
                        }
                        let mut buf = BytesMut::with_capacity(old.len() + value.len());
                        buf.extend_from_slice(old);
                        buf
                    }
                    None => BytesMut::with_capacity(value.len()),
                };
                buf.extend_from_slice(&value);
                let len = buf.len() as i64;
                self.update_string(db, key, buf.freeze(), now);
                Ok(Outcome::Integer(len))
            }
            Mutation::SetRange { key, offset, value } => {
                let old = match self.live(db, &key, now) {
                    Some(entry) => entry.value.as_string()?.clone(),
                    None if value.is_empty() => return Ok(Outcome::Integer(0)),
                    None => SmallBytes::default(),
                };
                if value.is_empty() {
                    return Ok(Outcome::Integer(old.len() as i64));
                }
                let end = offset.checked_add(value.len()).filter(|&e| e <= MAX_STRING);
                let Some(end) = end else {
                    return Err(too_long());
                };
                let mut buf = BytesMut::from(&old[..]);
                if buf.len() < end {
                    buf.resize(end, 0);
                }
                buf[offset..end].copy_from_slice(&value);
                let len = buf.len() as i64;
                self.update_string(db, key, buf.freeze(), now);
                Ok(Outcome::Integer(len))
            }
            Mutation::IncrBy { key, delta } => {
                let current = match self.live(db, &key, now) {
                    Some(entry) => proto::decode::parse_int(entry.value.as_string()?)
                        .ok_or_else(not_integer)?,
                    None => 0,
                };
                let next = current
                    .checked_add(delta)
                    .ok_or_else(|| CommandError::err("increment or decrement would overflow"))?;
                self.update_string(db, key, Bytes::from(next.to_string()), now);
                Ok(Outcome::Integer(next))
            }
            Mutation::IncrByFloat { key, delta } => {
                let current = match self.live(db, &key, now) {
                    Some(entry) => proto::args::parse_f64(entry.value.as_string()?)
                        .ok_or(CommandError::NotFloat)?,
                    None => 0.0,
                };
                let next = current + delta;
                if !next.is_finite() {
                    return Err(CommandError::err("increment would produce NaN or Infinity"));
                }
                let text = Bytes::from(format_float(next));
                self.update_string(db, key, text.clone(), now);
                Ok(Outcome::Bulk(text))
            }
            Mutation::GetDel { key } => {
                let Some(entry) = self.lookup_read(db, &key, now) else {
                    return Ok(Outcome::Nil);
                };
                let value = entry.value.as_string()?.to_bytes();
                self.remove(db, &key);
                Ok(Outcome::Bulk(value))
            }
            Mutation::GetEx { key, ttl } => {
                let Some(entry) = self.lookup_read(db, &key, now) else {
                    return Ok(Outcome::Nil);
                };
                let value = entry.value.as_string()?.to_bytes();
                match ttl {
                    Ttl::Keep => {}
                    Ttl::At(at) if at <= now => {
                        self.remove(db, &key);
                    }
                    Ttl::At(at) => self.set_deadline(db, &key, Some(at), now),
                    Ttl::Clear => self.set_deadline(db, &key, None, now),
                }
                Ok(Outcome::Bulk(value))
            }
            Mutation::MSet {
                pairs,
                only_if_none_exist,
            } => {
                if only_if_none_exist && pairs.iter().any(|(k, _)| self.exists(db, k, now)) {
                    return Ok(Outcome::Integer(0));
                }
                for (key, value) in pairs {
                    self.store_string(db, &key, &value, None);
                }
                Ok(if only_if_none_exist {
                    Outcome::Integer(1)
                } else {
                    Outcome::Ok
                })
            }
            Mutation::Del { keys } => {
                let mut removed = 0;
                for key in &keys {
                    if self.exists(db, key, now) {
                        self.remove(db, key);
                        removed += 1;
                    }
                }
                Ok(Outcome::Integer(removed))
            }
            Mutation::Rename {
                from,
                to,
                only_if_absent,
            } => {
                if !self.exists(db, &from, now) {
                    return Err(CommandError::err("no such key"));
                }
                if from == to {
                    return Ok(if only_if_absent {
                        Outcome::Integer(0)
                    } else {
                        Outcome::Ok
                    });
                }
                if only_if_absent && self.exists(db, &to, now) {
                    return Ok(Outcome::Integer(0));
                }
                if let Some(entry) = self.remove(db, &from) {
                    self.store(db, to, entry);
                }
                Ok(if only_if_absent {
                    Outcome::Integer(1)
                } else {
                    Outcome::Ok
                })
            }
            Mutation::Copy {
                from,
                to,
                to_db,
                replace,
            } => {
                if db == to_db && from == to {
                    return Err(CommandError::err(
                        "source and destination objects are the same",
                    ));
                }
                let Some(entry) = self.live(db, &from, now).cloned() else {
                    return Ok(Outcome::Integer(0));
                };
                if self.exists(to_db, &to, now) {
                    if !replace {
                        return Ok(Outcome::Integer(0));
                    }
                    self.remove(to_db, &to);
                }
                self.store(to_db, to, entry);
                Ok(Outcome::Integer(1))
            }
            Mutation::Move { key, to_db } => {
                if db == to_db {
                    return Err(CommandError::err(
                        "source and destination objects are the same",
                    ));
                }
                if !self.exists(db, &key, now) || self.exists(to_db, &key, now) {
                    return Ok(Outcome::Integer(0));
                }
                let Some(entry) = self.remove(db, &key) else {
                    return Ok(Outcome::Integer(0));
                };
                self.store(to_db, key, entry);
                Ok(Outcome::Integer(1))
            }
            Mutation::Expire { key, at, condition } => {
                let Some(entry) = self.live(db, &key, now) else {
                    return Ok(Outcome::Integer(0));
                };
                let allowed = condition.allows(entry.expires_at, at);
                if !allowed {
                    return Ok(Outcome::Integer(0));
                }
                if at <= now {
                    self.remove(db, &key);
                } else {
                    self.set_deadline(db, &key, Some(at), now);
                }
                Ok(Outcome::Integer(1))
            }
            Mutation::Persist { key } => {
                let has_ttl = self
                    .live(db, &key, now)
                    .is_some_and(|e| e.expires_at.is_some());
                if has_ttl {
                    self.set_deadline(db, &key, None, now);
                }
                Ok(Outcome::Integer(i64::from(has_ttl)))
            }
            Mutation::Restore {
                key,
                value,
                expires_at,
                replace,
            } => {
                let exists = self.exists(db, &key, now);
                if exists && !replace {
                    return Err(CommandError::coded(
                        "BUSYKEY",
                        "Target key name already exists.",
                    ));
                }
                if expires_at.is_some_and(|at| at <= now) {
                    // Already expired: restoring it means deleting what was there.
                    if exists {
                        self.remove(db, &key);
                    }
                    return Ok(Outcome::Ok);
                }
                self.store(db, key, Entry::new(value, expires_at));
                Ok(Outcome::Ok)
            }
            Mutation::FlushDb => {
                self.touch_databases(db, None, now);
                self.dbs[db] = Db::default();
                self.journal.push(Change::FlushDb { db });
                Ok(Outcome::Ok)
            }
            Mutation::FlushAll => {
                (0..DATABASES).for_each(|d| self.touch_databases(d, None, now));
                self.dbs.iter_mut().for_each(|d| *d = Db::default());
                self.journal.push(Change::FlushAll);
                Ok(Outcome::Ok)
            }
            Mutation::SwapDb { a, b } => {
                self.touch_databases(a, Some(b), now);
                self.touch_databases(b, Some(a), now);
                self.dbs.swap(a, b);
                self.journal.push(Change::SwapDb { a, b });
                Ok(Outcome::Ok)
            }
            Mutation::Collection(op) => crate::types::ops::apply(self, db, op, now),
            Mutation::Bits(op) => crate::types::bitwrite::apply(self, db, op, now),
            Mutation::ZStore(op) => crate::types::zstore::apply(self, db, op, now),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn set(
        &mut self,
        db: usize,
        key: Bytes,
        value: Bytes,
        condition: Condition,
        ttl: Ttl,
        get: bool,
        now: u64,
    ) -> Result<Outcome, CommandError> {
        let Keyspace {
            dbs,
            journal,
            stats,
            ..
        } = self;
        let d = &mut dbs[db];
        let mut found = live_in(d, db, journal, stats, &key, now);
        let (old_value, old_deadline) = match &found {
            Some(entry) if get => (Some(entry.value.as_string()?.to_bytes()), entry.expires_at),
            Some(entry) => (Some(Bytes::new()), entry.expires_at),
            None => (None, None),
        };
        let exists = old_value.is_some();
        let go = match condition {
            Condition::Always => true,
            Condition::IfAbsent => !exists,
            Condition::IfPresent => exists,
        };
        let reply = |old: Option<Bytes>| match (get, old) {
            (true, Some(v)) => Outcome::Bulk(v),
            (true, None) => Outcome::Nil,
            (false, _) if go => Outcome::Ok,
            (false, _) => Outcome::Nil,
        };
        if !go {
            return Ok(reply(old_value));
        }
        let expires_at = match ttl {
            Ttl::Keep => old_deadline,
            Ttl::Clear => None,
            Ttl::At(at) if at <= now => {
                // Redis: a SET whose deadline has already passed deletes the key.
                self.remove(db, &key);
                return Ok(reply(old_value));
            }
            Ttl::At(at) => Some(at),
        };
        // Overwriting a live key (the usual SET of a hot key): change the entry the
        // lookup above found, in place. Storing it anew would descend the map a second
        // time to find the same node. Its key and place in the map stay as they are.
        if let Some(entry) = found.take() {
            let before = entry.value.memory();
            entry.value = Value::String(SmallBytes::copy(&value));
            entry.expires_at = expires_at;
            let after = entry.value.memory();
            d.used = (d.used + after).saturating_sub(before);
            if old_deadline.is_some() || expires_at.is_some() {
                d.set_deadline(&key, expires_at);
            }
            if journal.recording() {
                // The request's key and value: the change is encoded before the
                // command returns (see `store_string`).
                let entry = Entry::new(Value::String(SmallBytes::view(&value)), expires_at);
                journal.push(Change::Put { db, key, entry });
            }
            return Ok(reply(old_value));
        }
        self.store_string(db, &key, &value, expires_at);
        Ok(reply(old_value))
    }

    /// Replaces a string's bytes, keeping its TTL (APPEND, SETRANGE, INCR...).
    fn update_string(&mut self, db: usize, key: Bytes, value: Bytes, now: u64) {
        let Keyspace {
            dbs,
            journal,
            stats,
            ..
        } = self;
        let d = &mut dbs[db];
        let Some(entry) = live_in(d, db, journal, stats, &key, now) else {
            self.store(db, key, Entry::new(Value::String(value.into()), None));
            return;
        };
        // The key is there (a counter's second `INCR` onwards): change its value in
        // place. Storing a whole new entry would copy the key again, insert into the
        // map a second time and drop the old entry: about 1,100 of an `INCR`'s 4,200
        // instructions. The deadline and the key's place in the map stay as they are.
        let before = entry.value.memory();
        entry.value = Value::String(value.into());
        let after = entry.value.memory();
        if journal.recording() {
            let entry = entry.clone();
            // The request's key: the change is encoded before the command returns.
            journal.push(Change::Put { db, key, entry });
        }
        d.used = (d.used + after).saturating_sub(before);
    }

    /// Changes a live key's deadline: O(1) whatever the key holds, and journaled as the
    /// deadline alone ([`Change::Expire`]).
    fn set_deadline(&mut self, db: usize, key: &Bytes, deadline: Option<u64>, now: u64) {
        if self.live(db, key, now).is_some() {
            self.dbs[db].set_deadline(key, deadline);
            self.journal.push(Change::Expire {
                db,
                key: key.clone(),
                at: deadline,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::TtlState;
    use super::*;
    use crate::keyspace::testing::{b, set};
    use crate::keyspace::*;

    /// `INCR` on an existing key changes its value in place: the result must be what
    /// storing the new value from scratch would give (TTL, memory estimate, journal).
    #[test]
    fn updating_a_string_in_place_equals_storing_it_afresh() {
        let mut ks = Keyspace::new(true);
        set(&mut ks, "n", "9", Ttl::At(5_000), 0);
        let incr = Mutation::IncrBy {
            key: b("n"),
            delta: 1,
        };
        assert_eq!(ks.apply(0, incr, 1), Ok(Outcome::Integer(10)));
        let mut fresh = Keyspace::new(true);
        set(&mut fresh, "n", "10", Ttl::At(5_000), 0);
        assert_eq!(ks.get(0, &b("n"), 1), Ok(Some(b("10"))));
        assert_eq!(ks.ttl(0, &b("n"), 1), TtlState::At(5_000));
        assert_eq!(ks.used_memory(), fresh.used_memory());
        let (changes, _) = ks.drain_changes();
        let (expected, _) = fresh.drain_changes();
        assert_eq!(changes.last(), expected.last());
        // Past its deadline the key is gone: the increment starts from zero, no TTL.
        let incr = Mutation::IncrBy {
            key: b("n"),
            delta: 1,
        };
        assert_eq!(ks.apply(0, incr, 5_000), Ok(Outcome::Integer(1)));
        assert_eq!(ks.ttl(0, &b("n"), 5_000), TtlState::Persistent);
    }

    /// `SET` over a live key changes the entry its lookup found, in place: value, TTL,
    /// TTL index, memory estimate and journal must be what a fresh store would give,
    /// and the value a copy, never a view into the request.
    #[test]
    fn set_over_a_live_key_equals_storing_it_afresh() {
        let request = Bytes::from(b"kvalue-two".to_vec());
        let mut ks = Keyspace::new(true);
        set(&mut ks, "k", "one", Ttl::Clear, 0);
        let steps = [
            (Ttl::At(5_000), TtlState::At(5_000), 1),
            (Ttl::At(7_000), TtlState::At(7_000), 1),
            (Ttl::Keep, TtlState::At(7_000), 1),
            (Ttl::Clear, TtlState::Persistent, 0),
        ];
        for (ttl, expect, volatile) in steps {
            let m = Mutation::Set {
                key: request.slice(0..1),
                value: request.slice(1..),
                condition: Condition::Always,
                ttl,
                get: false,
            };
            assert_eq!(ks.apply(0, m, 1), Ok(Outcome::Ok));
            let mut fresh = Keyspace::new(true);
            let fresh_ttl = match expect {
                TtlState::At(at) => Ttl::At(at),
                _ => Ttl::Clear,
            };
            set(&mut fresh, "k", "value-two", fresh_ttl, 1);
            let value = ks.get(0, &b("k"), 1).unwrap().unwrap();
            assert_eq!(value, b("value-two"));
            assert!(!request.as_ptr_range().contains(&value.as_ptr()));
            assert_eq!(ks.ttl(0, &b("k"), 1), expect);
            assert_eq!(ks.keyspace_info(1), vec![(0, 1, volatile)]);
            assert_eq!(ks.used_memory(), fresh.used_memory());
            let (changes, _) = ks.drain_changes();
            let (expected, _) = fresh.drain_changes();
            assert_eq!(changes.last(), expected.last());
        }
    }

    /// `SET` and `MSET` get their key and value as views into the connection's read
    /// buffer. The journal may borrow them (it is drained before the command returns),
    /// but the map must hold copies: a view would pin the whole buffer for the key's life.
    #[test]
    fn stored_strings_never_hold_the_request_buffer() {
        let request = Bytes::from(b"key1value1key2value2".to_vec());
        let inside = |b: &Bytes| request.as_ptr_range().contains(&b.as_ptr());
        let mut ks = Keyspace::new(true);
        let set = Mutation::Set {
            key: request.slice(0..4),
            value: request.slice(4..10),
            condition: Condition::Always,
            ttl: Ttl::At(9_000),
            get: false,
        };
        assert_eq!(ks.apply(0, set, 0), Ok(Outcome::Ok));
        let mset = Mutation::MSet {
            pairs: vec![
                (request.slice(0..4), request.slice(10..14)),
                (request.slice(10..14), request.slice(14..20)),
            ],
            only_if_none_exist: false,
        };
        assert_eq!(ks.apply(0, mset, 1), Ok(Outcome::Ok));
        let (changes, _) = ks.drain_changes();
        assert_eq!(changes.len(), 3);
        let mut keys = ks.keys(0, b"*", 1);
        keys.sort();
        assert_eq!(keys, vec![b("key1"), b("key2")]);
        for key in &keys {
            assert!(!inside(key), "the map holds a view of the request");
            let value = ks.get(0, key, 1).unwrap().unwrap();
            assert!(!inside(&value), "the map holds a view of the request");
        }
        assert_eq!(ks.get(0, &b("key1"), 1), Ok(Some(b("key2"))));
        // MSET clears the TTL SET gave.
        assert_eq!(ks.ttl(0, &b("key1"), 1), TtlState::Persistent);
        assert_eq!(ks.keyspace_info(1), vec![(0, 2, 0)]);
    }

    /// Overwriting in place must keep the TTL index and the memory estimate exactly as
    /// a fresh store would: a deadline that goes, one that comes, one that changes.
    #[test]
    fn overwriting_a_key_keeps_the_ttl_index_and_memory_in_step() {
        let mut ks = Keyspace::new(false);
        set(&mut ks, "k", "short", Ttl::At(5_000), 0);
        set(&mut ks, "k", "a longer value", Ttl::Clear, 1);
        assert_eq!(ks.ttl(0, &b("k"), 1), TtlState::Persistent);
        assert_eq!(ks.keyspace_info(1), vec![(0, 1, 0)]);
        set(&mut ks, "k", "v", Ttl::At(7_000), 2);
        set(&mut ks, "k", "v2", Ttl::At(9_000), 3);
        assert_eq!(ks.ttl(0, &b("k"), 3), TtlState::At(9_000));
        assert_eq!(ks.keyspace_info(3), vec![(0, 1, 1)]);
        let mut fresh = Keyspace::new(false);
        set(&mut fresh, "k", "v2", Ttl::At(9_000), 3);
        assert_eq!(ks.used_memory(), fresh.used_memory());
        // The old deadline (7,000) no longer expires it; the new one does.
        assert_eq!(ks.get(0, &b("k"), 8_000), Ok(Some(b("v2"))));
        assert_eq!(ks.get(0, &b("k"), 9_000), Ok(None));
    }

    #[test]
    fn expire_conditions_follow_redis() {
        let mut ks = Keyspace::new(false);
        set(&mut ks, "k", "v", Ttl::Clear, 0);
        let expire = |at, condition| Mutation::Expire {
            key: b("k"),
            at,
            condition,
        };
        let xx = ExpireCondition {
            xx: true,
            ..Default::default()
        };
        let gt = ExpireCondition {
            gt: true,
            ..Default::default()
        };
        let lt = ExpireCondition {
            lt: true,
            ..Default::default()
        };
        let nx = ExpireCondition {
            nx: true,
            ..Default::default()
        };
        let xx_lt = ExpireCondition {
            xx: true,
            lt: true,
            ..Default::default()
        };
        assert_eq!(ks.apply(0, expire(500, xx), 0), Ok(Outcome::Integer(0)));
        assert_eq!(ks.apply(0, expire(500, gt), 0), Ok(Outcome::Integer(0)));
        assert_eq!(ks.apply(0, expire(500, xx_lt), 0), Ok(Outcome::Integer(0)));
        assert_eq!(ks.apply(0, expire(500, lt), 0), Ok(Outcome::Integer(1)));
        assert_eq!(ks.apply(0, expire(400, gt), 0), Ok(Outcome::Integer(0)));
        assert_eq!(ks.apply(0, expire(600, gt), 0), Ok(Outcome::Integer(1)));
        assert_eq!(ks.apply(0, expire(700, nx), 0), Ok(Outcome::Integer(0)));
        assert_eq!(ks.ttl(0, &b("k"), 0), TtlState::At(600));
        // A deadline in the past deletes.
        assert_eq!(
            ks.apply(0, expire(5, Default::default()), 10),
            Ok(Outcome::Integer(1))
        );
        assert_eq!(ks.ttl(0, &b("k"), 10), TtlState::Missing);
    }

    #[test]
    fn numbers_follow_redis() {
        let mut ks = Keyspace::new(false);
        set(&mut ks, "n", "9223372036854775806", Ttl::Clear, 0);
        let incr = |delta| Mutation::IncrBy { key: b("n"), delta };
        assert_eq!(ks.apply(0, incr(1), 0), Ok(Outcome::Integer(i64::MAX)));
        assert_eq!(
            ks.apply(0, incr(1), 0).unwrap_err().to_string(),
            "ERR increment or decrement would overflow"
        );
        set(&mut ks, "f", "10.5", Ttl::Clear, 0);
        let incrf = |delta| Mutation::IncrByFloat { key: b("f"), delta };
        assert_eq!(ks.apply(0, incrf(0.1), 0), Ok(Outcome::Bulk(b("10.6"))));
        assert_eq!(ks.apply(0, incrf(5.0e3), 0), Ok(Outcome::Bulk(b("5010.6"))));
        assert_eq!(format_float(3.0e3), "3000");
        assert_eq!(proto::decode::parse_int(b"0"), Some(0));
        assert_eq!(proto::decode::parse_int(b"-12"), Some(-12));
        for bad in [&b"010"[..], b"-0", b"+1", b" 1", b"", b"-"] {
            assert_eq!(proto::decode::parse_int(bad), None);
        }
        assert!(ks.apply(0, incrf(f64::INFINITY), 0).is_err());
    }
}

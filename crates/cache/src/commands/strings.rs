//! GET, SET (NX/XX/GET/EX/PX/EXAT/PXAT/KEEPTTL), SETEX, PSETEX, SETNX, MGET, MSET,
//! INCR/DECR/INCRBY/DECRBY.
//!
//! Reads go through [`CacheLayer::read`] (read-through on a miss when there is an
//! origin). Writes in write-through mode are first sent verbatim to the origin; the cache
//! mirrors them only once the origin has accepted them.

use bytes::Bytes;
use proto::decode::parse_int;
use proto::{Args, CommandError, Frame};

use super::{CommandResult, words};
use crate::layer::{CacheLayer, now_ms};
use crate::store::Lookup;

pub async fn get(server: &CacheLayer, args: &mut Args) -> CommandResult {
    let key = args.next_bytes()?;
    args.finish()?;
    Ok(server.read(&key).await?.map_or(Frame::Null, Frame::Bulk))
}

/// `GET` answered from memory alone (no origin to read through to).
pub fn get_now(server: &CacheLayer, args: &mut Args) -> CommandResult {
    let key = args.next_bytes()?;
    args.finish()?;
    Ok(match server.store().get(&key, now_ms()) {
        Lookup::Hit(value) => Frame::Bulk(value),
        Lookup::NegativeHit | Lookup::Miss => Frame::Null,
    })
}

/// `MGET` answered from memory alone, under one lock.
pub fn mget_now(server: &CacheLayer, args: &mut Args) -> CommandResult {
    let now = now_ms();
    let mut store = server.store();
    let values = args
        .rest()
        .iter()
        .map(|key| match store.get(key, now) {
            Lookup::Hit(value) => Frame::Bulk(value),
            Lookup::NegativeHit | Lookup::Miss => Frame::Null,
        })
        .collect();
    Ok(Frame::Array(values))
}

pub async fn mget(server: &CacheLayer, args: &mut Args) -> CommandResult {
    let keys = args.rest();
    let mut values = Vec::with_capacity(keys.len());
    for key in keys {
        values.push(server.read(&key).await?.map_or(Frame::Null, Frame::Bulk));
    }
    Ok(Frame::Array(values))
}

/// Which TTL a write gives its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    /// None given: `--default-ttl` (if set).
    Default,
    /// KEEPTTL: whatever the key had.
    Keep,
    /// An absolute unix time in milliseconds.
    At(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Condition {
    Always,
    IfAbsent,
    IfPresent,
}

/// What the origin's reply to a forwarded write means for the cached copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mirror {
    /// Not in write-through mode: the cache decides alone.
    Local,
    /// The origin applied the write: apply it here unconditionally.
    Apply,
    /// The origin did not apply it (NX/XX not met): leave the cache alone.
    Skip,
    /// Cannot tell from the reply: drop the cached copy, the next read fetches it.
    Drop,
}

fn invalid_expire(command: &str) -> CommandError {
    CommandError::err(format!("invalid expire time in '{command}' command"))
}

/// `amount` in `unit_ms` from now (or absolute, for EXAT/PXAT) as unix milliseconds.
fn expiry_at(
    amount: i64,
    unit_ms: u64,
    absolute: bool,
    now: u64,
    command: &str,
) -> Result<u64, CommandError> {
    if amount <= 0 {
        return Err(invalid_expire(command));
    }
    let ms = (amount as u64)
        .checked_mul(unit_ms)
        .ok_or_else(|| invalid_expire(command))?;
    if absolute {
        Ok(ms)
    } else {
        now.checked_add(ms).ok_or_else(|| invalid_expire(command))
    }
}

/// How a write applies to the cached copy.
#[derive(Debug, Clone, Copy)]
struct Rule {
    condition: Condition,
    expiry: Expiry,
    mirror: Mirror,
    /// The caller wants the previous value (SET ... GET).
    want_old: bool,
}

impl Rule {
    fn plain(expiry: Expiry, mirror: Mirror) -> Rule {
        Rule {
            condition: Condition::Always,
            expiry,
            mirror,
            want_old: false,
        }
    }
}

/// Writes `value` under `rule`, as the cache part of SET and friends. Returns whether it
/// was written and, if asked for, the previous value. The common case (a plain SET) does
/// not look the key up twice.
fn apply(
    server: &CacheLayer,
    key: Bytes,
    value: Bytes,
    rule: Rule,
    now: u64,
) -> Result<(bool, Option<Bytes>), CommandError> {
    let mut store = server.store();
    let needs_old = rule.want_old
        || rule.expiry == Expiry::Keep
        || (rule.mirror == Mirror::Local && rule.condition != Condition::Always);
    let old = if needs_old {
        store
            .peek_value(&key, now)
            .map(|e| (e.value(), e.expires_at()))
    } else {
        None
    };
    let old_value = old.as_ref().and_then(|(v, _)| v.clone());
    match rule.mirror {
        Mirror::Skip => return Ok((false, old_value)),
        Mirror::Drop => {
            store.remove(&key, now);
            return Ok((false, old_value));
        }
        Mirror::Apply => {}
        Mirror::Local => {
            let blocked = match rule.condition {
                Condition::Always => false,
                Condition::IfAbsent => old.is_some(),
                Condition::IfPresent => old.is_none(),
            };
            if blocked {
                return Ok((false, old_value));
            }
        }
    }
    let expires_at = match rule.expiry {
        Expiry::At(at) => Some(at),
        Expiry::Keep if old.is_some() => old.and_then(|(_, at)| at),
        Expiry::Keep | Expiry::Default => server.default_expiry(now),
    };
    store.put(&key, Some(&value), expires_at, now)?;
    Ok((true, old_value))
}

/// `SET`'s arguments, parsed: everything but the origin's say.
struct SetRequest {
    key: Bytes,
    value: Bytes,
    condition: Condition,
    expiry: Expiry,
    get: bool,
    now: u64,
}

impl SetRequest {
    fn parse(args: &mut Args) -> Result<SetRequest, CommandError> {
        let key = args.next_bytes()?;
        let value = args.next_bytes()?;
        let now = now_ms();
        let mut condition = Condition::Always;
        let mut expiry = Expiry::Default;
        let mut get = false;
        while let Some(option) = args.next_keyword() {
            let unit = match option.as_str() {
                "NX" | "XX" if condition == Condition::Always => {
                    condition = if option == "NX" {
                        Condition::IfAbsent
                    } else {
                        Condition::IfPresent
                    };
                    continue;
                }
                "GET" if !get => {
                    get = true;
                    continue;
                }
                "KEEPTTL" if expiry == Expiry::Default => {
                    expiry = Expiry::Keep;
                    continue;
                }
                "EX" => (1000, false),
                "PX" => (1, false),
                "EXAT" => (1000, true),
                "PXAT" => (1, true),
                _ => return Err(CommandError::Syntax),
            };
            if expiry != Expiry::Default {
                return Err(CommandError::Syntax);
            }
            let amount = args.next_int().map_err(|e| match e {
                CommandError::WrongArity(_) => CommandError::Syntax,
                other => other,
            })?;
            expiry = Expiry::At(expiry_at(amount, unit.0, unit.1, now, "set")?);
        }
        Ok(SetRequest {
            key,
            value,
            condition,
            expiry,
            get,
            now,
        })
    }

    /// The write to the cache, once `origin` (the origin's reply in write-through mode,
    /// `None` otherwise) says how to mirror it.
    fn apply(self, server: &CacheLayer, origin: Option<Frame>) -> CommandResult {
        let get = self.get;
        let mirror = match origin {
            None => Mirror::Local,
            Some(Frame::Null) if !get => Mirror::Skip,
            Some(_) if get && self.condition != Condition::Always => Mirror::Drop,
            Some(_) => Mirror::Apply,
        };
        let rule = Rule {
            condition: self.condition,
            expiry: self.expiry,
            mirror,
            want_old: get,
        };
        let (written, old) = apply(server, self.key, self.value, rule, self.now)?;
        Ok(match (get, written) {
            (true, _) => old.map_or(Frame::Null, Frame::Bulk),
            (false, true) => Frame::ok(),
            (false, false) if mirror == Mirror::Drop => Frame::ok(),
            (false, false) => Frame::Null,
        })
    }
}

pub async fn set(server: &CacheLayer, args: &mut Args) -> CommandResult {
    let forward = server.writes_through().then(|| words(args));
    let request = SetRequest::parse(args)?;
    let origin = server.write_through(forward).await?;
    request.apply(server, origin)
}

/// `SET` when nothing is written through: no origin to wait for.
pub fn set_now(server: &CacheLayer, args: &mut Args) -> CommandResult {
    SetRequest::parse(args)?.apply(server, None)
}

pub async fn setex(server: &CacheLayer, args: &mut Args) -> CommandResult {
    let forward = server.writes_through().then(|| words(args));
    let command = args.name().to_string();
    let unit = if command == "setex" { 1000 } else { 1 };
    let key = args.next_bytes()?;
    let amount = args.next_int()?;
    let value = args.next_bytes()?;
    args.finish()?;
    let now = now_ms();
    let at = expiry_at(amount, unit, false, now, &command)?;
    let mirror = match server.write_through(forward).await? {
        None => Mirror::Local,
        Some(_) => Mirror::Apply,
    };
    apply(server, key, value, Rule::plain(Expiry::At(at), mirror), now)?;
    Ok(Frame::ok())
}

pub async fn setnx(server: &CacheLayer, args: &mut Args) -> CommandResult {
    let forward = server.writes_through().then(|| words(args));
    let key = args.next_bytes()?;
    let value = args.next_bytes()?;
    args.finish()?;
    let mirror = match server.write_through(forward).await? {
        None => Mirror::Local,
        Some(Frame::Integer(1)) => Mirror::Apply,
        Some(_) => Mirror::Skip,
    };
    let rule = Rule {
        condition: Condition::IfAbsent,
        ..Rule::plain(Expiry::Default, mirror)
    };
    let (written, _) = apply(server, key, value, rule, now_ms())?;
    Ok(Frame::Integer(i64::from(written)))
}

pub async fn mset(server: &CacheLayer, args: &mut Args) -> CommandResult {
    let forward = server.writes_through().then(|| words(args));
    let pairs = args.rest();
    if !pairs.len().is_multiple_of(2) {
        return Err(args.wrong_arity());
    }
    let mirror = match server.write_through(forward).await? {
        None => Mirror::Local,
        Some(_) => Mirror::Apply,
    };
    let now = now_ms();
    {
        // All or nothing under noeviction: refuse before writing any of the pairs.
        let store = server.store();
        if store.policy() == crate::policy::PolicyKind::NoEviction && store.maxmemory() > 0 {
            let needed: u64 = pairs
                .chunks(2)
                .map(|kv| crate::memory::entry_size(kv[0].len(), kv[1].len()))
                .sum();
            if store.used_memory() + needed > store.maxmemory() {
                return Err(crate::store::Oom.into());
            }
        }
    }
    for kv in pairs.chunks(2) {
        apply(
            server,
            kv[0].clone(),
            kv[1].clone(),
            Rule::plain(Expiry::Default, mirror),
            now,
        )?;
    }
    Ok(Frame::ok())
}

pub async fn incr(server: &CacheLayer, args: &mut Args) -> CommandResult {
    let forward = server.writes_through().then(|| words(args));
    let command = args.name().to_string();
    let key = args.next_bytes()?;
    let delta = match command.as_str() {
        "incr" => 1,
        "decr" => -1,
        "incrby" => args.next_int()?,
        _ => args
            .next_int()?
            .checked_neg()
            .ok_or_else(|| CommandError::err("decrement would overflow"))?,
    };
    args.finish()?;
    if let Some(reply) = server.write_through(forward).await? {
        // The origin holds the counter; the cache mirrors the result.
        let Frame::Integer(n) = reply else {
            return Err(CommandError::err(format!(
                "origin sent an unexpected reply to {command}: {reply:?}"
            )));
        };
        let now = now_ms();
        apply(
            server,
            key,
            Bytes::from(n.to_string()),
            Rule::plain(Expiry::Keep, Mirror::Apply),
            now,
        )?;
        return Ok(Frame::Integer(n));
    }
    if server.origin().is_some() && server.store().peek(&key, now_ms()).is_none() {
        // Read-through first: the counter may live at the origin.
        server.read(&key).await?;
    }
    let now = now_ms();
    let mut store = server.store();
    let (current, expires_at) = match store.peek_value(&key, now) {
        Some(entry) => (
            entry
                .value_bytes()
                .and_then(parse_int)
                .ok_or(CommandError::NotInteger)?,
            entry.expires_at(),
        ),
        None => (0, server.default_expiry(now)),
    };
    let new = current
        .checked_add(delta)
        .ok_or_else(|| CommandError::err("increment or decrement would overflow"))?;
    store.put(&key, Some(new.to_string().as_bytes()), expires_at, now)?;
    Ok(Frame::Integer(new))
}

//! EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT, TTL, PTTL, PERSIST, EXPIRETIME, PEXPIRETIME, and
//! the expiry options SET and GETEX share.
//!
//! Relative times become absolute deadlines here, before the engine sees them, with
//! Redis's overflow checks: the engine stores and replicates only absolute times.

use bytes::Bytes;
use proto::{Args, CommandError, Frame};

use super::{Result, reply};
use crate::keyspace::{ExpireCondition, Mutation, Ttl, TtlState};
use crate::server::{Kv, Session};

fn invalid_expire(cmd: &str) -> CommandError {
    CommandError::err(format!("invalid expire time in '{cmd}' command"))
}

/// The expiry and condition options of `SET` and `GETEX`.
#[derive(Debug, Default)]
pub(super) struct WriteOptions {
    pub nx: bool,
    pub xx: bool,
    pub get: bool,
    pub keepttl: bool,
    pub persist: bool,
    /// EX/PX/EXAT/PXAT and its unparsed argument.
    expire: Option<(&'static str, Bytes)>,
}

impl WriteOptions {
    /// Parses the options as Redis's `parseExtendedStringArgumentsOrReply`: conflicting
    /// options and unknown words are a syntax error; a repeated option is allowed.
    /// `set`: SET's options (NX, XX, GET, KEEPTTL); otherwise GETEX's (PERSIST).
    pub fn parse(args: &mut Args, set: bool) -> Result<WriteOptions> {
        let mut o = WriteOptions::default();
        while let Some(word) = args.next_keyword() {
            let expire_kind = o.expire.as_ref().map(|(k, _)| *k);
            let other_expire = |kind: &str| expire_kind.is_some_and(|k| k != kind);
            match word.as_str() {
                "NX" if set && !o.xx => o.nx = true,
                "XX" if set && !o.nx => o.xx = true,
                "GET" if set => o.get = true,
                "KEEPTTL" if set && expire_kind.is_none() => o.keepttl = true,
                "PERSIST" if !set && expire_kind.is_none() => o.persist = true,
                kind @ ("EX" | "PX" | "EXAT" | "PXAT")
                    if !o.keepttl && !o.persist && !other_expire(kind) && !args.is_empty() =>
                {
                    let kind = match kind {
                        "EX" => "EX",
                        "PX" => "PX",
                        "EXAT" => "EXAT",
                        _ => "PXAT",
                    };
                    o.expire = Some((kind, args.next_bytes()?));
                }
                _ => return Err(CommandError::Syntax),
            }
        }
        Ok(o)
    }

    /// What the write does to the TTL, given the default when no option says. The clock
    /// is read only for a relative time (EX, PX): a plain `SET` does not pay for it.
    pub fn ttl(&self, default: Ttl, kv: &Kv, cmd: &str) -> Result<Ttl> {
        if self.persist {
            return Ok(Ttl::Clear);
        }
        if self.keepttl {
            return Ok(Ttl::Keep);
        }
        match &self.expire {
            None => Ok(default),
            Some((kind, arg)) => {
                let (unit, relative) = match *kind {
                    "EX" => (1000, true),
                    "PX" => (1, true),
                    "EXAT" => (1000, false),
                    _ => (1, false),
                };
                let amount = proto::decode::parse_int(arg).ok_or(CommandError::NotInteger)?;
                let now = if relative { kv.now() } else { 0 };
                set_deadline(amount, unit, relative, now, cmd)
            }
        }
    }
}

/// Redis's `getExpireMillisecondsOrReply`: a positive amount of `unit` milliseconds,
/// relative to `now` or absolute.
pub(super) fn set_deadline(
    amount: i64,
    unit: i64,
    relative: bool,
    now: u64,
    cmd: &str,
) -> Result<Ttl> {
    if amount <= 0 || amount > i64::MAX / unit {
        return Err(invalid_expire(cmd));
    }
    let mut ms = amount * unit;
    if relative {
        ms = ms
            .checked_add(now as i64)
            .ok_or_else(|| invalid_expire(cmd))?;
    }
    Ok(Ttl::At(ms as u64))
}

/// `EXPIRE key seconds [NX|XX|GT|LT]` and its three siblings. `unit`: milliseconds per
/// unit of the argument; `absolute`: a Unix time rather than a duration.
pub fn expire(kv: &Kv, s: &mut Session, args: &mut Args, unit: i64, absolute: bool) -> Result {
    let key = args.next_bytes()?;
    let when = args.next_bytes()?;
    let mut condition = ExpireCondition::default();
    for word in args.rest() {
        match word.to_ascii_uppercase().as_slice() {
            b"NX" => condition.nx = true,
            b"XX" => condition.xx = true,
            b"GT" => condition.gt = true,
            b"LT" => condition.lt = true,
            _ => {
                return Err(CommandError::err(format!(
                    "Unsupported option {}",
                    String::from_utf8_lossy(&word)
                )));
            }
        }
    }
    if condition.nx && (condition.xx || condition.gt || condition.lt) {
        return Err(CommandError::err(
            "NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if condition.gt && condition.lt {
        return Err(CommandError::err(
            "GT and LT options at the same time are not compatible",
        ));
    }
    let when = proto::decode::parse_int(&when).ok_or(CommandError::NotInteger)?;
    // Redis's overflow checks; a negative result is a deadline in the past (delete).
    let invalid = || invalid_expire(args.name());
    let mut ms = when.checked_mul(unit).ok_or_else(invalid)?;
    if !absolute {
        ms = ms.checked_add(kv.now() as i64).ok_or_else(invalid)?;
    }
    let at = ms.max(0) as u64;
    kv.write(s, Mutation::Expire { key, at, condition })
        .map(reply)
}

/// How `TTL`-like commands show a deadline.
#[derive(Debug, Clone, Copy)]
pub enum TtlView {
    /// `TTL`: seconds left, rounded.
    Seconds,
    /// `PTTL`: milliseconds left.
    Millis,
    /// `EXPIRETIME`: Unix seconds, rounded as `TTL` is.
    UnixSeconds,
    /// `PEXPIRETIME`: Unix milliseconds.
    UnixMillis,
}

/// `TTL`, `PTTL`, `EXPIRETIME`, `PEXPIRETIME`: -2 for a missing key, -1 without a TTL.
pub fn ttl(kv: &Kv, s: &mut Session, args: &mut Args, view: TtlView) -> Result {
    let key = args.next_bytes()?;
    let (state, now) = kv.read(|ks, now| (ks.ttl(s.db, &key, now), now));
    let n = match state {
        TtlState::Missing => -2,
        TtlState::Persistent => -1,
        TtlState::At(at) => {
            let left = at.saturating_sub(now);
            (match view {
                TtlView::Seconds => left.saturating_add(500) / 1000,
                TtlView::Millis => left,
                TtlView::UnixSeconds => at.saturating_add(500) / 1000,
                TtlView::UnixMillis => at,
            }) as i64
        }
    };
    Ok(Frame::Integer(n))
}

/// `PERSIST key`.
pub fn persist(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    kv.write(s, Mutation::Persist { key }).map(reply)
}

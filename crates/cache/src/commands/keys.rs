//! DEL/UNLINK, EXISTS, TYPE, EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT, TTL/PTTL, PERSIST, KEYS,
//! SCAN. Everything here is local to the cache except DEL in write-through mode, which
//! deletes at the origin first. A TTL is the cache's own business: EXPIRE does not reach
//! the origin.

use proto::{Args, CommandError, Frame};

use super::{CommandResult, words};
use crate::layer::{CacheLayer, now_ms};

pub async fn del(server: &CacheLayer, args: &mut Args) -> CommandResult {
    let forward = server.writes_through().then(|| words(args));
    let keys = args.rest();
    let origin_reply = server.write_through(forward).await?;
    server.note_delete();
    let now = now_ms();
    let mut store = server.store();
    let mut removed = 0;
    for key in &keys {
        removed += i64::from(store.remove(key, now));
    }
    // In write-through mode the origin's count is the truth (the cache may not hold all).
    Ok(match origin_reply {
        Some(Frame::Integer(n)) => Frame::Integer(n),
        _ => Frame::Integer(removed),
    })
}

pub fn exists(server: &CacheLayer, args: &mut Args) -> CommandResult {
    let now = now_ms();
    let mut store = server.store();
    let found = args
        .rest()
        .iter()
        .filter(|key| store.peek_value(key, now).is_some())
        .count();
    Ok(Frame::Integer(found as i64))
}

pub fn key_type(server: &CacheLayer, args: &mut Args) -> CommandResult {
    let key = args.next_bytes()?;
    let exists = server.store().peek_value(&key, now_ms()).is_some();
    Ok(Frame::simple(if exists { "string" } else { "none" }))
}

/// EXPIRE key amount [NX|XX|GT|LT] and its millisecond / absolute variants.
pub fn expire(server: &CacheLayer, args: &mut Args) -> CommandResult {
    let command = args.name().to_string();
    let key = args.next_bytes()?;
    let amount = args.next_int()?;
    let mut condition: Option<String> = None;
    while let Some(option) = args.next_keyword() {
        match option.as_str() {
            "NX" | "XX" | "GT" | "LT" => {
                if let Some(previous) = &condition {
                    let both = |a: &str, b: &str| {
                        (previous == a && option == b) || (previous == b && option == a)
                    };
                    if both("GT", "LT") {
                        return Err(CommandError::err(
                            "GT and LT options at the same time are not compatible",
                        ));
                    }
                    return Err(CommandError::err(
                        "NX and XX, GT or LT options at the same time are not compatible",
                    ));
                }
                condition = Some(option);
            }
            _ => return Err(CommandError::err(format!("Unsupported option {option}"))),
        }
    }
    let now = now_ms();
    let invalid = || CommandError::err(format!("invalid expire time in '{command}' command"));
    let (unit, absolute) = match command.as_str() {
        "expire" => (1000, false),
        "pexpire" => (1, false),
        "expireat" => (1000, true),
        _ => (1, true),
    };
    let scaled = amount.checked_mul(unit).ok_or_else(invalid)?;
    let at = if absolute {
        scaled
    } else {
        scaled.checked_add(now as i64).ok_or_else(invalid)?
    };
    let mut store = server.store();
    let Some(entry) = store.peek_value(&key, now) else {
        return Ok(Frame::Integer(0));
    };
    let current = entry.expires_at();
    let allowed = match condition.as_deref() {
        Some("NX") => current.is_none(),
        Some("XX") => current.is_some(),
        // No TTL counts as an infinite one.
        Some("GT") => current.is_some_and(|c| at > c as i64),
        Some("LT") => current.is_none_or(|c| at < c as i64),
        _ => true,
    };
    if !allowed {
        return Ok(Frame::Integer(0));
    }
    if at <= now as i64 {
        // A time in the past deletes the key, as in Redis.
        store.remove(&key, now);
    } else {
        store.set_expiry(&key, Some(at as u64), now);
    }
    Ok(Frame::Integer(1))
}

pub fn ttl(server: &CacheLayer, args: &mut Args) -> CommandResult {
    let millis = args.name() == "pttl";
    let key = args.next_bytes()?;
    let now = now_ms();
    let mut store = server.store();
    Ok(Frame::Integer(match store.peek_value(&key, now) {
        None => -2,
        Some(entry) => match entry.expires_at() {
            None => -1,
            Some(at) if millis => (at - now) as i64,
            // Rounded to the nearest second, as Redis does.
            Some(at) => ((at - now + 500) / 1000) as i64,
        },
    }))
}

pub fn persist(server: &CacheLayer, args: &mut Args) -> CommandResult {
    let key = args.next_bytes()?;
    let now = now_ms();
    let mut store = server.store();
    let has_ttl = store
        .peek_value(&key, now)
        .is_some_and(|e| e.expires_at().is_some());
    if has_ttl {
        store.set_expiry(&key, None, now);
    }
    Ok(Frame::Integer(i64::from(has_ttl)))
}

pub fn keys(server: &CacheLayer, args: &mut Args) -> CommandResult {
    let pattern = args.next_bytes()?;
    Ok(Frame::bulk_array(server.store().keys(&pattern, now_ms())))
}

/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type].
pub fn scan(server: &CacheLayer, args: &mut Args) -> CommandResult {
    let cursor_text = args.next_bytes()?;
    let cursor: u64 = std::str::from_utf8(&cursor_text)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| CommandError::err("invalid cursor"))?;
    let mut pattern = None;
    let mut count = 10;
    let mut only_strings = true;
    while let Some(option) = args.next_keyword() {
        match option.as_str() {
            "MATCH" => pattern = Some(args.next_bytes().map_err(|_| CommandError::Syntax)?),
            "COUNT" => {
                count = args.next_int().map_err(|e| match e {
                    CommandError::WrongArity(_) => CommandError::Syntax,
                    other => other,
                })?;
                if count < 1 {
                    return Err(CommandError::Syntax);
                }
            }
            "TYPE" => {
                let kind = args.next_bytes().map_err(|_| CommandError::Syntax)?;
                only_strings = kind.eq_ignore_ascii_case(b"string");
            }
            _ => return Err(CommandError::Syntax),
        }
    }
    let (next, keys) = server
        .store()
        .scan(cursor, count as usize, pattern.as_deref(), now_ms());
    Ok(Frame::Array(vec![
        Frame::bulk(next.to_string()),
        Frame::bulk_array(if only_strings { keys } else { Vec::new() }),
    ]))
}

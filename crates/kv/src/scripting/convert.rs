//! Redis's conversion rules between Lua values and RESP replies, both ways.
//!
//! A script sees a command's reply as Lua values and its own return value becomes the
//! client's reply. Lua has one number type (a double) and tables instead of arrays, so the
//! rules lose information on purpose, exactly as Redis documents them:
//!
//! | RESP (a command's reply)   | Lua                        | RESP (the script's reply)      |
//! |----------------------------|----------------------------|--------------------------------|
//! | integer                    | number                     | integer (a number *truncated*) |
//! | bulk string                | string                     | bulk string                    |
//! | array                      | table (1..n)               | array, up to the first `nil`   |
//! | status `+OK`               | `{ok = "OK"}`              | status                         |
//! | error                      | `{err = "ERR ..."}`        | error                          |
//! | null                       | `false`                    | null (`false` and `nil` too)   |
//! |                            | `true`                     | integer 1                      |
//!
//! After `redis.setresp(3)` the RESP3 types come through as well: null as `nil`, a map as
//! `{map = {...}}`, a set as `{set = {member = true}}`, a double as `{double = n}`, a
//! boolean as a boolean.

use bytes::Bytes;
use mlua::{Lua, Table, Value};
use proto::Frame;

/// Nesting deeper than this in a script's reply is cut off (a table may even contain
/// itself).
const MAX_DEPTH: usize = 256;

/// A command's reply as the Lua value a script sees (`resp3`: after `redis.setresp(3)`).
pub fn to_lua(lua: &Lua, frame: Frame, resp3: bool) -> mlua::Result<Value> {
    Ok(match frame {
        Frame::Integer(n) => Value::Number(n as f64),
        Frame::Bulk(b) => Value::String(lua.create_string(&b)?),
        Frame::Simple(s) => single(lua, "ok", Value::String(lua.create_string(&s)?))?,
        Frame::Error(e) => single(lua, "err", Value::String(lua.create_string(&e)?))?,
        Frame::Null | Frame::NullArray if resp3 => Value::Nil,
        Frame::Null | Frame::NullArray => Value::Boolean(false),
        Frame::Array(items) | Frame::Set(items) | Frame::Push(items) if !resp3 => {
            sequence(lua, items, false)?
        }
        Frame::Array(items) | Frame::Push(items) => sequence(lua, items, true)?,
        Frame::Set(items) => {
            let set = lua.create_table()?;
            for item in items {
                set.raw_set(to_lua(lua, item, true)?, true)?;
            }
            single(lua, "set", Value::Table(set))?
        }
        Frame::Map(pairs) if resp3 => {
            let map = lua.create_table()?;
            for (k, v) in pairs {
                map.raw_set(to_lua(lua, k, true)?, to_lua(lua, v, true)?)?;
            }
            single(lua, "map", Value::Table(map))?
        }
        Frame::Pairs(pairs) if resp3 => {
            let t = lua.create_table()?;
            for (i, (a, b)) in pairs.into_iter().enumerate() {
                t.raw_set(i + 1, sequence(lua, vec![a, b], true)?)?;
            }
            Value::Table(t)
        }
        Frame::Map(pairs) | Frame::Pairs(pairs) => sequence(
            lua,
            pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
            resp3,
        )?,
        Frame::Double(d) if resp3 => single(lua, "double", Value::Number(d))?,
        Frame::Double(d) => Value::String(lua.create_string(proto::frame::format_double(d))?),
        Frame::Boolean(b) if resp3 => Value::Boolean(b),
        Frame::Boolean(b) => Value::Number(f64::from(u8::from(b))),
        Frame::BigNumber(n) => Value::String(lua.create_string(&n)?),
        Frame::Verbatim { text, .. } => Value::String(lua.create_string(&text)?),
    })
}

fn single(lua: &Lua, field: &str, value: Value) -> mlua::Result<Value> {
    let t = lua.create_table_with_capacity(0, 1)?;
    t.raw_set(field, value)?;
    Ok(Value::Table(t))
}

fn sequence(lua: &Lua, items: Vec<Frame>, resp3: bool) -> mlua::Result<Value> {
    let t = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, item) in items.into_iter().enumerate() {
        t.raw_set(i + 1, to_lua(lua, item, resp3)?)?;
    }
    Ok(Value::Table(t))
}

/// A script's return value as the client's reply (`resp3`: after `redis.setresp(3)`,
/// where `true`/`false` are RESP3 booleans).
pub fn to_frame(value: &Value, resp3: bool) -> Frame {
    to_frame_at(value, resp3, 0)
}

fn to_frame_at(value: &Value, resp3: bool, depth: usize) -> Frame {
    match value {
        Value::String(s) => Frame::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Integer(n) => Frame::Integer(*n),
        Value::Number(n) => Frame::Integer(truncate(*n)),
        Value::Boolean(true) if resp3 => Frame::Boolean(true),
        Value::Boolean(false) if resp3 => Frame::Boolean(false),
        Value::Boolean(true) => Frame::Integer(1),
        Value::Table(t) if depth < MAX_DEPTH => table_frame(t, resp3, depth),
        _ => Frame::Null,
    }
}

/// Redis's `(long long)` cast of a double: toward zero; out of range (and NaN) it is what
/// x86 gives, the smallest integer.
fn truncate(n: f64) -> i64 {
    // 2^63: the first double past i64::MAX.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if !(-LIMIT..LIMIT).contains(&n) {
        return i64::MIN;
    }
    n as i64
}

fn table_frame(t: &Table, resp3: bool, depth: usize) -> Frame {
    if let Ok(Value::String(e)) = t.raw_get::<Value>("err") {
        return Frame::Error(Bytes::from(one_line(&e.as_bytes())));
    }
    if let Ok(Value::String(ok)) = t.raw_get::<Value>("ok") {
        return Frame::Simple(Bytes::from(one_line(&ok.as_bytes())));
    }
    if let Ok(Value::Number(d)) = t.raw_get::<Value>("double") {
        return Frame::Double(d);
    }
    if let Ok(Value::Table(map)) = t.raw_get::<Value>("map") {
        let pairs = map
            .pairs::<Value, Value>()
            .filter_map(Result::ok)
            .map(|(k, v)| {
                (
                    to_frame_at(&k, resp3, depth + 1),
                    to_frame_at(&v, resp3, depth + 1),
                )
            })
            .collect();
        return Frame::Map(pairs);
    }
    if let Ok(Value::Table(set)) = t.raw_get::<Value>("set") {
        let members = set
            .pairs::<Value, Value>()
            .filter_map(Result::ok)
            .map(|(k, _)| to_frame_at(&k, resp3, depth + 1))
            .collect();
        return Frame::Set(members);
    }
    let mut items = Vec::new();
    for i in 1.. {
        match t.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => items.push(to_frame_at(&v, resp3, depth + 1)),
        }
    }
    Frame::Array(items)
}

/// Status and error replies are one line: Redis turns CR and LF into spaces.
fn one_line(text: &[u8]) -> Vec<u8> {
    text.iter()
        .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_lose_what_redis_loses() {
        let lua = Lua::new();
        let t: Table = lua
            .load("return {1, 2.9, 'x', false, nil, 5}")
            .eval()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            to_frame(&Value::Table(t), false),
            Frame::Array(vec![
                Frame::Integer(1),
                Frame::Integer(2),
                Frame::Bulk("x".into()),
                Frame::Null
            ])
        );
        let v = to_lua(&lua, Frame::Null, false).unwrap_or(Value::Nil);
        assert_eq!(v, Value::Boolean(false));
    }
}

//! Reading the few reply shapes the demos need.

use proto::Frame;
use service::BoxError;

/// An integer reply, or an error naming what was expected.
pub fn int(frame: &Frame, what: &str) -> Result<i64, BoxError> {
    match frame {
        Frame::Integer(n) => Ok(*n),
        other => Err(format!("{what}: expected an integer, got {}", super::show(other)).into()),
    }
}

/// A string reply's bytes as text, `None` for nil.
pub fn text(frame: &Frame) -> Option<String> {
    frame
        .as_bytes()
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

/// Fails on an error reply, naming the step.
pub fn check(frame: Frame, what: &str) -> Result<Frame, BoxError> {
    match frame {
        Frame::Error(e) => Err(format!("{what}: {}", String::from_utf8_lossy(&e)).into()),
        other => Ok(other),
    }
}

/// A field of a map reply (RESP3 map, or RESP2's flat `key value ...` array).
pub fn field<'a>(frame: &'a Frame, name: &str) -> Option<&'a Frame> {
    match frame {
        Frame::Map(pairs) => pairs
            .iter()
            .find(|(k, _)| k.as_bytes().is_some_and(|k| k.as_ref() == name.as_bytes()))
            .map(|(_, v)| v),
        Frame::Array(items) => items
            .chunks(2)
            .find(|pair| {
                pair[0]
                    .as_bytes()
                    .is_some_and(|k| k.as_ref() == name.as_bytes())
            })
            .and_then(|pair| pair.get(1)),
        _ => None,
    }
}

/// A numeric field of an INFO reply (`name:value` lines).
pub fn info_field(info: &Frame, name: &str) -> Option<f64> {
    let text = text(info)?;
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key == name).then(|| value.trim().parse().ok()).flatten()
    })
}

/// A command as owned words (the client takes anything that becomes `Bytes`, and only
/// `'static` text does by reference).
pub fn words(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|w| (*w).to_owned()).collect()
}

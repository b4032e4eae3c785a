//! `LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]`: the longest common
//! subsequence of two strings (see [`crate::types::lcs`]).

use bytes::Bytes;
use proto::{Args, CommandError, Frame};

use super::Result;
use crate::server::{Kv, Session};
use crate::types::lcs;
use crate::value::Value;

pub fn lcs(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let (k1, k2) = (args.next_bytes()?, args.next_bytes()?);
    // Both values are read under one lock, then compared outside it: the O(n·m) work
    // does not hold up other clients.
    let (a, b) = kv.read(|ks, now| -> Result<(Bytes, Bytes)> {
        let mut string = |key: &Bytes| match ks.value(s.db, key, now) {
            None => Ok(Bytes::new()),
            Some(Value::String(b)) => Ok(b.to_bytes()),
            Some(_) => Err(CommandError::err(
                "The specified keys must contain string values",
            )),
        };
        Ok((string(&k1)?, string(&k2)?))
    })?;
    let (mut idx, mut len, mut with_len, mut min_len) = (false, false, false, 0usize);
    let rest = args.rest();
    let mut words = rest.iter();
    while let Some(word) = words.next() {
        match word.to_ascii_uppercase().as_slice() {
            b"IDX" => idx = true,
            b"LEN" => len = true,
            b"WITHMATCHLEN" => with_len = true,
            b"MINMATCHLEN" if words.len() > 0 => {
                let n = words
                    .next()
                    .and_then(|w| proto::decode::parse_int(w))
                    .ok_or(CommandError::NotInteger)?;
                min_len = usize::try_from(n).unwrap_or(0);
            }
            _ => return Err(CommandError::Syntax),
        }
    }
    if idx && len {
        return Err(CommandError::err(
            "If you want both the length and indexes, please just use IDX.",
        ));
    }
    let answer = lcs::lcs(&a, &b, idx || !len, min_len)?;
    if !idx {
        return Ok(if len {
            Frame::Integer(answer.len as i64)
        } else {
            Frame::Bulk(Bytes::from(answer.text))
        });
    }
    let pair = |(x, y): (usize, usize)| Frame::Array(vec![int(x), int(y)]);
    let matches = answer
        .runs
        .into_iter()
        .map(|run| {
            let mut item = vec![pair(run.a), pair(run.b)];
            if with_len {
                item.push(int(run.len));
            }
            Frame::Array(item)
        })
        .collect();
    Ok(Frame::Map(vec![
        (
            Frame::Bulk(Bytes::from_static(b"matches")),
            Frame::Array(matches),
        ),
        (Frame::Bulk(Bytes::from_static(b"len")), int(answer.len)),
    ]))
}

fn int(n: usize) -> Frame {
    Frame::Integer(n as i64)
}

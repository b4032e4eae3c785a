//! Sorted-set commands: ZADD, ZINCRBY, ZSCORE, ZMSCORE, ZCARD, ZCOUNT, ZLEXCOUNT,
//! ZRANK, ZREVRANK, ZRANGE (BYSCORE/BYLEX/REV/LIMIT/WITHSCORES) and its older forms
//! (ZRANGEBYSCORE, ZREVRANGEBYSCORE, ZRANGEBYLEX, ZREVRANGEBYLEX, ZREVRANGE), ZREM,
//! ZREMRANGEBYRANK, ZREMRANGEBYSCORE, ZPOPMIN, ZPOPMAX, ZRANDMEMBER, ZSCAN.

use bytes::Bytes;
use proto::{Args, CommandError, Frame};

use super::Result;
use super::collections::{positive_count, random_count, read, scan_args, scan_reply, write};
use crate::server::{Kv, Session};
use crate::types::ops::{Op, ZAddFlags};
use crate::types::zset::{LexBound, Range, ScoreBound, ZSet, format_score, reply_score, select};
use crate::types::{random_entries, scan_slots};
use crate::value::Value;

fn with_zset<R>(
    kv: &Kv,
    s: &Session,
    key: &Bytes,
    f: impl FnOnce(Option<&ZSet>) -> R,
) -> Result<R> {
    read(kv, s, key, |v| v.map(Value::as_zset).transpose().map(f))
}

/// A score in a reply: a double (RESP3 `,2.5`; RESP2 `$3 2.5`, see `proto::frame`).
pub(crate) fn score_frame(score: f64) -> Frame {
    Frame::Double(reply_score(score))
}

/// Members `WITHSCORES`: [member, score] pairs (flat in RESP2).
fn scored<'a>(items: impl Iterator<Item = (&'a Bytes, f64)>) -> Frame {
    Frame::Pairs(
        items
            .map(|(m, score)| (Frame::Bulk(m.clone()), score_frame(score)))
            .collect(),
    )
}

fn parse_score(b: &[u8]) -> Result<f64> {
    proto::args::parse_f64(b).ok_or(CommandError::NotFloat)
}

fn score_bound(b: &[u8]) -> Result<ScoreBound> {
    ScoreBound::parse(b).ok_or_else(|| CommandError::err("min or max is not a float"))
}

pub(super) fn lex_bound(b: &Bytes) -> Result<LexBound> {
    LexBound::parse(b).ok_or_else(|| CommandError::err("min or max not valid string range item"))
}

/// `ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]`.
pub fn zadd(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let mut flags = ZAddFlags::default();
    let mut rest = args.rest();
    let mut options = 0;
    for word in &rest {
        let flag = match word.to_ascii_uppercase().as_slice() {
            b"NX" => &mut flags.nx,
            b"XX" => &mut flags.xx,
            b"GT" => &mut flags.gt,
            b"LT" => &mut flags.lt,
            b"CH" => &mut flags.ch,
            b"INCR" => &mut flags.incr,
            _ => break,
        };
        *flag = true;
        options += 1;
    }
    let elements = rest.split_off(options);
    if elements.is_empty() || !elements.len().is_multiple_of(2) {
        return Err(CommandError::Syntax);
    }
    if flags.nx && flags.xx {
        return Err(CommandError::err(
            "XX and NX options at the same time are not compatible",
        ));
    }
    if u8::from(flags.gt) + u8::from(flags.lt) + u8::from(flags.nx) > 1 {
        return Err(CommandError::err(
            "GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if flags.incr && elements.len() > 2 {
        return Err(CommandError::err(
            "INCR option supports a single increment-element pair",
        ));
    }
    let mut pairs = Vec::with_capacity(elements.len() / 2);
    for pair in elements.chunks(2) {
        pairs.push((parse_score(&pair[0])?, pair[1].clone()));
    }
    write(kv, s, Op::ZAdd { key, flags, pairs })
}

/// `ZINCRBY key increment member`: `ZADD key INCR increment member`.
pub fn zincrby(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let delta = parse_score(&args.next_bytes()?)?;
    let member = args.next_bytes()?;
    let flags = ZAddFlags {
        incr: true,
        ..ZAddFlags::default()
    };
    let pairs = vec![(delta, member)];
    write(kv, s, Op::ZAdd { key, flags, pairs })
}

pub fn zscore(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let (key, member) = (args.next_bytes()?, args.next_bytes()?);
    with_zset(kv, s, &key, |z| {
        z.and_then(|z| z.score(&member))
            .map_or(Frame::Null, score_frame)
    })
}

pub fn zmscore(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let members = args.rest();
    with_zset(kv, s, &key, |z| {
        Frame::Array(
            members
                .iter()
                .map(|m| z.and_then(|z| z.score(m)).map_or(Frame::Null, score_frame))
                .collect(),
        )
    })
}

pub fn zcard(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    with_zset(kv, s, &key, |z| {
        Frame::Integer(z.map_or(0, ZSet::len) as i64)
    })
}

/// `ZCOUNT key min max`: two O(log n) rank lookups.
pub fn zcount(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let (min, max) = (
        score_bound(&args.next_bytes()?)?,
        score_bound(&args.next_bytes()?)?,
    );
    with_zset(kv, s, &key, |z| {
        Frame::Integer(z.map_or(0, |z| {
            let upto = z.order().count_below(|score, _| max.within_max(score));
            let below = z.order().count_below(|score, _| min.below_min(score));
            upto.saturating_sub(below)
        }) as i64)
    })
}

/// `ZLEXCOUNT key min max`.
pub fn zlexcount(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let (min, max) = (
        lex_bound(&args.next_bytes()?)?,
        lex_bound(&args.next_bytes()?)?,
    );
    with_zset(kv, s, &key, |z| {
        Frame::Integer(z.map_or(0, |z| {
            let upto = z.order().count_below(|_, m| max.within_max(m));
            let below = z.order().count_below(|_, m| min.below_min(m));
            upto.saturating_sub(below)
        }) as i64)
    })
}

/// `ZRANK`/`ZREVRANK key member`.
pub fn zrank(kv: &Kv, s: &mut Session, args: &mut Args, rev: bool) -> Result {
    let (key, member) = (args.next_bytes()?, args.next_bytes()?);
    with_zset(kv, s, &key, |z| {
        z.and_then(|z| z.rank(&member, rev))
            .map_or(Frame::Null, |r| Frame::Integer(r as i64))
    })
}

/// What a range selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Rank,
    Score,
    Lex,
}

/// The `ZRANGE` family, parsed as Redis's `zrangeGenericCommand` does: `by`/`rev` fixed
/// by the older commands, chosen by options for `ZRANGE`.
pub fn zrange(
    kv: &Kv,
    s: &mut Session,
    args: &mut Args,
    by: Option<By>,
    rev: Option<bool>,
) -> Result {
    let q = range_query(args, by, rev, false)?;
    with_zset(kv, s, &q.key, |z| {
        let items = z
            .map(|z| select(z, &q.range, q.rev, q.offset, q.limit))
            .unwrap_or_default();
        if q.withscores {
            scored(items.into_iter().map(|(score, m)| (m, score)))
        } else {
            Frame::Array(
                items
                    .into_iter()
                    .map(|(_, m)| Frame::Bulk(m.clone()))
                    .collect(),
            )
        }
    })
}

/// A parsed `ZRANGE`/`ZRANGESTORE`: `key min max [BYSCORE|BYLEX] [REV] [LIMIT o c]
/// [WITHSCORES]` (no WITHSCORES when storing).
pub(super) struct RangeQuery {
    pub key: Bytes,
    pub range: Range,
    pub rev: bool,
    pub offset: i64,
    pub limit: i64,
    pub withscores: bool,
}

pub(super) fn range_query(
    args: &mut Args,
    by: Option<By>,
    rev: Option<bool>,
    store: bool,
) -> Result<RangeQuery> {
    let key = args.next_bytes()?;
    let (mut start, mut stop) = (args.next_bytes()?, args.next_bytes()?);
    let (mut by_opt, mut rev_opt) = (by, rev);
    let (mut withscores, mut offset, mut limit) = (false, 0i64, -1i64);
    let rest = args.rest();
    let mut i = 0;
    while i < rest.len() {
        let left = rest.len() - i - 1;
        match rest[i].to_ascii_uppercase().as_slice() {
            b"WITHSCORES" if !store => withscores = true,
            b"LIMIT" if left >= 2 => {
                offset = super::collections::int_arg(&rest[i + 1])?;
                limit = super::collections::int_arg(&rest[i + 2])?;
                i += 2;
            }
            b"REV" if rev_opt.is_none() => rev_opt = Some(true),
            b"BYLEX" if by_opt.is_none() => by_opt = Some(By::Lex),
            b"BYSCORE" if by_opt.is_none() => by_opt = Some(By::Score),
            _ => return Err(CommandError::Syntax),
        }
        i += 1;
    }
    let by = by_opt.unwrap_or(By::Rank);
    let rev = rev_opt.unwrap_or(false);
    if withscores && by == By::Lex {
        return Err(CommandError::err(
            "syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    if by == By::Rank && (offset != 0 || limit != -1) {
        return Err(CommandError::err(
            "syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if rev && by != By::Rank {
        // Reverse ranges by score or lex are written max first.
        std::mem::swap(&mut start, &mut stop);
    }
    let range = match by {
        By::Rank => Range::Rank(
            super::collections::int_arg(&start)?,
            super::collections::int_arg(&stop)?,
        ),
        By::Score => Range::Score(score_bound(&start)?, score_bound(&stop)?),
        By::Lex => Range::Lex(lex_bound(&start)?, lex_bound(&stop)?),
    };
    Ok(RangeQuery {
        key,
        range,
        rev,
        offset,
        limit,
        withscores,
    })
}

pub fn zrem(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let members = args.rest();
    write(kv, s, Op::ZRem { key, members })
}

pub fn zremrangebyrank(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let (start, stop) = (args.next_int()?, args.next_int()?);
    write(kv, s, Op::ZRemRangeByRank { key, start, stop })
}

pub fn zremrangebyscore(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let (min, max) = (
        score_bound(&args.next_bytes()?)?,
        score_bound(&args.next_bytes()?)?,
    );
    write(kv, s, Op::ZRemRangeByScore { key, min, max })
}

/// `ZPOPMIN`/`ZPOPMAX key [count]`.
pub fn zpop(kv: &Kv, s: &mut Session, args: &mut Args, max: bool) -> Result {
    let key = args.next_bytes()?;
    let count = positive_count(args)?;
    write(kv, s, Op::ZPop { key, max, count })
}

/// `ZRANDMEMBER key [count [WITHSCORES]]`.
pub fn zrandmember(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let count = if args.is_empty() {
        None
    } else {
        Some(random_count(args)?)
    };
    let withscores = args.next_flag("WITHSCORES");
    if !args.is_empty() {
        return Err(CommandError::Syntax);
    }
    with_zset(kv, s, &key, |z| match count {
        None => z
            .and_then(|z| {
                random_entries(z.slots(), 1)
                    .first()
                    .map(|(m, _)| (*m).clone())
            })
            .map_or(Frame::Null, Frame::Bulk),
        Some(count) => {
            let picked = z
                .map(|z| random_entries(z.slots(), count))
                .unwrap_or_default();
            if withscores {
                scored(picked.into_iter().map(|(m, &score)| (m, score)))
            } else {
                Frame::Array(
                    picked
                        .into_iter()
                        .map(|(m, _)| Frame::Bulk(m.clone()))
                        .collect(),
                )
            }
        }
    })
}

pub fn zscan(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let scan = scan_args(args)?;
    with_zset(kv, s, &key, |z| {
        let mut items = Vec::new();
        let cursor = z.map_or(0, |z| {
            scan_slots(
                z.slots(),
                scan.cursor,
                scan.count,
                scan.pattern.as_deref(),
                |m, &score| {
                    items.push(m.clone());
                    items.push(Bytes::from(format_score(score)));
                },
            )
        });
        scan_reply(cursor, items)
    })
}

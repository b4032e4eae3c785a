//! Sorted-set algebra and STORE forms: ZUNION, ZINTER, ZDIFF and their STORE forms,
//! ZINTERCARD, SINTERCARD, ZRANGESTORE, ZREMRANGEBYLEX (the engine is
//! [`crate::types::zstore`]).

use bytes::Bytes;
use proto::{Args, CommandError, Frame};

use super::Result;
use super::zsets::{lex_bound, range_query, score_frame};
use crate::keyspace::Mutation;
use crate::server::{Kv, Session};
use crate::types::ops::{Algebra, combine as combine_sets};
use crate::types::zstore::{self, Aggregate, Combine, ZStore};

fn write(kv: &Kv, s: &mut Session, op: ZStore) -> Result {
    kv.write(s, Mutation::ZStore(op)).map(super::reply)
}

/// A `LIMIT` argument: Redis's `getPositiveLongFromObjectOrReply`.
fn limit_arg(b: &[u8]) -> Result<usize> {
    proto::decode::parse_int(b)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| CommandError::err("LIMIT can't be negative"))
}

/// What follows `numkeys key...` in the family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// `ZUNION`/`ZINTER`/`ZDIFF`: WITHSCORES allowed.
    Reply,
    /// The STORE forms.
    Store,
    /// `ZINTERCARD`: only LIMIT.
    Card,
}

/// Parses `numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]
/// [LIMIT n]` as Redis's `zunionInterDiffGenericCommand`: which options are accepted
/// depends on the command. Returns the request, WITHSCORES and LIMIT.
///
/// Redis looks the keys up before reading the options, so a wrong type is reported
/// before a bad option: on an option error the keys' types are checked first.
fn parse(
    kv: &Kv,
    s: &Session,
    args: &mut Args,
    algebra: Algebra,
    form: Form,
) -> Result<(Combine, bool, usize)> {
    let name = args.name().to_string();
    let n = args.next_int()?;
    if n < 1 {
        return Err(CommandError::err(format!(
            "at least 1 input key is needed for '{name}' command"
        )));
    }
    let words = args.rest();
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    if n > words.len() {
        return Err(CommandError::Syntax);
    }
    let keys = words[..n].to_vec();
    let options = options(&words[n..], n, algebra, form);
    let (weights, aggregate, withscores, limit) = match options {
        Ok(parsed) => parsed,
        Err(e) => {
            kv.read(|ks, now| zstore::check_inputs(ks, s.db, &keys, now))?;
            return Err(e);
        }
    };
    let combine = Combine {
        keys,
        weights,
        aggregate,
        algebra,
    };
    Ok((combine, withscores, limit))
}

type Options = (Vec<f64>, Aggregate, bool, usize);

fn options(opts: &[Bytes], n: usize, algebra: Algebra, form: Form) -> Result<Options> {
    let mut weights = vec![1.0; n];
    let (mut aggregate, mut withscores, mut limit) = (Aggregate::Sum, false, 0);
    let algebraic = algebra != Algebra::Diff && form != Form::Card;
    let mut i = 0;
    while i < opts.len() {
        let remaining = opts.len() - i;
        match opts[i].to_ascii_lowercase().as_slice() {
            b"weights" if algebraic && remaining > n => {
                for (w, text) in weights.iter_mut().zip(&opts[i + 1..=i + n]) {
                    *w = proto::args::parse_f64(text)
                        .ok_or_else(|| CommandError::err("weight value is not a float"))?;
                }
                i += n;
            }
            b"aggregate" if algebraic && remaining >= 2 => {
                aggregate = match opts[i + 1].to_ascii_lowercase().as_slice() {
                    b"sum" => Aggregate::Sum,
                    b"min" => Aggregate::Min,
                    b"max" => Aggregate::Max,
                    _ => return Err(CommandError::Syntax),
                };
                i += 1;
            }
            b"withscores" if form == Form::Reply => withscores = true,
            b"limit" if form == Form::Card && remaining >= 2 => {
                limit = limit_arg(&opts[i + 1])?;
                i += 1;
            }
            _ => return Err(CommandError::Syntax),
        }
        i += 1;
    }
    Ok((weights, aggregate, withscores, limit))
}

/// `ZUNION`/`ZINTER`/`ZDIFF numkeys key... [WEIGHTS ...] [AGGREGATE ...] [WITHSCORES]`.
pub fn combine(kv: &Kv, s: &mut Session, args: &mut Args, algebra: Algebra) -> Result {
    let (c, withscores, _) = parse(kv, s, args, algebra, Form::Reply)?;
    let z = kv.read(|ks, now| zstore::combine(ks, s.db, &c, now))?;
    let items = z.order().iter_from(0, false);
    Ok(if withscores {
        Frame::Pairs(
            items
                .map(|(score, m)| (Frame::Bulk(m.clone()), score_frame(score)))
                .collect(),
        )
    } else {
        Frame::Array(items.map(|(_, m)| Frame::Bulk(m.clone())).collect())
    })
}

/// `ZUNIONSTORE`/`ZINTERSTORE`/`ZDIFFSTORE destination numkeys key... [...]`.
pub fn store(kv: &Kv, s: &mut Session, args: &mut Args, algebra: Algebra) -> Result {
    let dest = args.next_bytes()?;
    let (combine, _, _) = parse(kv, s, args, algebra, Form::Store)?;
    write(kv, s, ZStore::Combine { dest, combine })
}

/// `ZINTERCARD numkeys key... [LIMIT limit]`.
pub fn zintercard(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let (c, _, limit) = parse(kv, s, args, Algebra::Inter, Form::Card)?;
    let n = kv.read(|ks, now| zstore::inter_card(ks, s.db, &c.keys, limit, now))?;
    Ok(Frame::Integer(n as i64))
}

/// `SINTERCARD numkeys key... [LIMIT limit]`: the size of a set intersection.
pub fn sintercard(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let n = proto::decode::parse_int(&args.next_bytes()?)
        .filter(|&n| n >= 1)
        .ok_or_else(|| CommandError::err("numkeys should be greater than 0"))?;
    let words = args.rest();
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    if n > words.len() {
        return Err(CommandError::err(
            "Number of keys can't be greater than number of args",
        ));
    }
    let mut limit = 0;
    let mut opts = words[n..].iter();
    while let Some(word) = opts.next() {
        match (word.eq_ignore_ascii_case(b"limit"), opts.next()) {
            (true, Some(value)) => limit = limit_arg(value)?,
            _ => return Err(CommandError::Syntax),
        }
    }
    let members = kv.read(|ks, now| combine_sets(ks, s.db, &words[..n], Algebra::Inter, now))?;
    let card = if limit > 0 {
        members.len().min(limit)
    } else {
        members.len()
    };
    Ok(Frame::Integer(card as i64))
}

/// `ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]`.
pub fn zrangestore(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let dest = args.next_bytes()?;
    let q = range_query(args, None, None, true)?;
    write(
        kv,
        s,
        ZStore::Range {
            dest,
            src: q.key,
            range: q.range,
            rev: q.rev,
            offset: q.offset,
            limit: q.limit,
        },
    )
}

/// `ZREMRANGEBYLEX key min max`.
pub fn zremrangebylex(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let (min, max) = (
        lex_bound(&args.next_bytes()?)?,
        lex_bound(&args.next_bytes()?)?,
    );
    write(kv, s, ZStore::RemRangeByLex { key, min, max })
}

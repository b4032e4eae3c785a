//! Geo commands: GEOADD, GEOPOS, GEODIST, GEOHASH, GEOSEARCH, GEOSEARCHSTORE, GEORADIUS,
//! GEORADIUSBYMEMBER and their `_RO` forms.
//!
//! A geo set is a sorted set whose scores are 52-bit geohashes ([`crate::types::geohash`]):
//! `GEOADD` is a `ZADD` of computed scores, the reads decode scores back to positions,
//! and the searches scan a few score ranges ([`crate::types::geo`]). Arguments are read in
//! Redis's order (the key's type first, a centre member as soon as it is named), so the
//! same bad request gets the same error.

use bytes::Bytes;
use proto::{Args, CommandError, Frame, Protocol};

use super::Result;
use super::collections::{read, write};
use crate::keyspace::{Keyspace, Mutation};
use crate::server::{Kv, Session};
use crate::types::geo::{Center, Found, Order, Query, no_member};
use crate::types::geohash::{self, Extent};
use crate::types::ops::{Op, ZAddFlags};
use crate::types::zset::ZSet;
use crate::types::zstore::ZStore;
use crate::value::Value;

/// The sorted set under `key` (`None`: missing), `WRONGTYPE` for another type.
fn zset_of<'a>(
    ks: &'a mut Keyspace,
    s: &Session,
    key: &Bytes,
    now: u64,
) -> Result<Option<&'a ZSet>> {
    ks.value(s.db, key, now).map(Value::as_zset).transpose()
}

fn float(b: &[u8]) -> Result<f64> {
    proto::args::parse_f64(b).ok_or(CommandError::NotFloat)
}

/// A longitude and latitude argument pair, checked against the indexable area.
fn lon_lat(lon: &[u8], lat: &[u8]) -> Result<(f64, f64)> {
    let (lon, lat) = (float(lon)?, float(lat)?);
    if !geohash::valid(lon, lat) {
        return Err(CommandError::err(format!(
            "invalid longitude,latitude pair {lon:.6},{lat:.6}"
        )));
    }
    Ok((lon, lat))
}

/// Metres per unit.
fn unit(b: &[u8]) -> Result<f64> {
    match b.to_ascii_lowercase().as_slice() {
        b"m" => Ok(1.0),
        b"km" => Ok(1000.0),
        b"ft" => Ok(0.3048),
        b"mi" => Ok(1609.34),
        _ => Err(CommandError::err(
            "unsupported unit provided. please use M, KM, FT, MI",
        )),
    }
}

/// `<radius> <unit>`.
fn radius(r: &[u8], u: &[u8]) -> Result<(Extent, f64)> {
    let r = proto::args::parse_f64(r).ok_or_else(|| CommandError::err("need numeric radius"))?;
    if r < 0.0 {
        return Err(CommandError::err("radius cannot be negative"));
    }
    Ok((Extent::Radius(r), unit(u)?))
}

/// `<width> <height> <unit>`.
fn bybox(w: &[u8], h: &[u8], u: &[u8]) -> Result<(Extent, f64)> {
    let width = proto::args::parse_f64(w).ok_or_else(|| CommandError::err("need numeric width"))?;
    let height =
        proto::args::parse_f64(h).ok_or_else(|| CommandError::err("need numeric height"))?;
    if width < 0.0 || height < 0.0 {
        return Err(CommandError::err("height or width cannot be negative"));
    }
    Ok((Extent::Box { width, height }, unit(u)?))
}

/// A coordinate as Redis replies it (`addReplyHumanLongDouble`): the value with 17
/// decimals, trailing zeros trimmed; a bulk string in RESP2, a double of that text in
/// RESP3 (so tiny values lose digits there too, as Redis's do).
fn coordinate(v: f64, protocol: Protocol) -> Frame {
    let text = format!("{v:.17}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    match protocol {
        Protocol::Resp3 => Frame::Double(text.parse().unwrap_or(v)),
        _ => Frame::Bulk(Bytes::copy_from_slice(text.as_bytes())),
    }
}

fn position_frame(score: f64, protocol: Protocol) -> Frame {
    let (lon, lat) = geohash::position(score);
    Frame::Array(vec![coordinate(lon, protocol), coordinate(lat, protocol)])
}

/// A distance as Redis replies it: a bulk string with four decimals.
fn distance_frame(d: f64) -> Frame {
    Frame::Bulk(Bytes::from(format!("{d:.4}")))
}

/// `GEOADD key [NX|XX] [CH] longitude latitude member [...]`: a `ZADD` of geohashes.
pub fn geoadd(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let key = args.next_bytes()?;
    let rest = args.rest();
    let mut flags = ZAddFlags::default();
    let mut first = 0;
    for word in &rest {
        match word.to_ascii_uppercase().as_slice() {
            b"NX" => flags.nx = true,
            b"XX" => flags.xx = true,
            b"CH" => flags.ch = true,
            _ => break,
        }
        first += 1;
    }
    let triples = &rest[first..];
    if !triples.len().is_multiple_of(3) || flags.nx && flags.xx || triples.is_empty() {
        return Err(CommandError::Syntax);
    }
    let mut pairs = Vec::with_capacity(triples.len() / 3);
    for t in triples.chunks(3) {
        let (lon, lat) = lon_lat(&t[0], &t[1])?;
        let score = geohash::score(lon, lat).ok_or(CommandError::Syntax)?;
        pairs.push((score, t[2].clone()));
    }
    write(kv, s, Op::ZAdd { key, flags, pairs })
}

/// One reply per member named after the key, from its score (`None`: no such member or
/// no such key): what GEOPOS and GEOHASH share.
fn per_member(
    kv: &Kv,
    s: &Session,
    args: &mut Args,
    reply: impl Fn(Option<f64>) -> Frame,
) -> Result {
    let key = args.next_bytes()?;
    let members = args.rest();
    read(kv, s, &key, |v| {
        let z = v.map(Value::as_zset).transpose()?;
        Ok(Frame::Array(
            members
                .iter()
                .map(|m| reply(z.and_then(|z| z.score(m))))
                .collect(),
        ))
    })
}

/// `GEOPOS key member...`: `[longitude, latitude]` per member, a null for a missing one.
pub fn geopos(kv: &Kv, s: &mut Session, args: &mut Args, protocol: Protocol) -> Result {
    per_member(kv, s, args, |score| {
        score.map_or(Frame::NullArray, |score| position_frame(score, protocol))
    })
}

/// `GEODIST key member1 member2 [M|KM|FT|MI]`.
pub fn geodist(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    let (key, a, b) = (args.next_bytes()?, args.next_bytes()?, args.next_bytes()?);
    let to_metres = match args.remaining() {
        0 => 1.0,
        1 => unit(&args.next_bytes()?)?,
        _ => return Err(CommandError::Syntax),
    };
    read(kv, s, &key, |v| {
        let Some(z) = v.map(Value::as_zset).transpose()? else {
            return Ok(Frame::Null);
        };
        Ok(match (z.score(&a), z.score(&b)) {
            (Some(sa), Some(sb)) => {
                let ((lon1, lat1), (lon2, lat2)) = (geohash::position(sa), geohash::position(sb));
                distance_frame(geohash::distance(lon1, lat1, lon2, lat2) / to_metres)
            }
            _ => Frame::Null,
        })
    })
}

/// `GEOHASH key member...`: standard 11-character geohash strings.
pub fn geohash(kv: &Kv, s: &mut Session, args: &mut Args) -> Result {
    per_member(kv, s, args, |score| {
        score.map_or(Frame::Null, |score| {
            Frame::Bulk(Bytes::copy_from_slice(&geohash::geohash_string(score)))
        })
    })
}

/// Which search command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `GEORADIUS key lon lat radius unit ...` (`read_only`: the `_RO` form, no STORE).
    Radius { read_only: bool },
    /// `GEORADIUSBYMEMBER key member radius unit ...`.
    ByMember { read_only: bool },
    /// `GEOSEARCH key FROMMEMBER|FROMLONLAT ... BYRADIUS|BYBOX ...`.
    Search,
    /// `GEOSEARCHSTORE dest key ...`.
    SearchStore,
}

/// A parsed search: the query, how to reply, where to store.
struct Parsed {
    src: Bytes,
    /// `None`: the source key is missing.
    query: Option<Query>,
    with_dist: bool,
    with_hash: bool,
    with_coord: bool,
    /// Destination and STOREDIST.
    store: Option<(Bytes, bool)>,
}

/// Parses a search as Redis's `georadiusGeneric` does, in its order: the source's type,
/// then the fixed arguments, then the options (a FROMMEMBER member is looked up when
/// read). `z` is the source (`None`: missing).
fn parse(kind: Form, name: &[u8], words: &[Bytes], z: Option<&ZSet>) -> Result<Parsed> {
    // The fixed arguments (the arity check has counted them; a script may not have).
    let fixed = match kind {
        Form::Radius { .. } => 5,
        Form::ByMember { .. } => 4,
        Form::Search => 1,
        Form::SearchStore => 2,
    };
    if words.len() < fixed {
        return Err(CommandError::Syntax);
    }
    let is_search = matches!(kind, Form::Search | Form::SearchStore);
    let src_at = if kind == Form::SearchStore { 1 } else { 0 };
    let src = words.get(src_at).cloned().unwrap_or_default();
    let mut center = None;
    let mut shape = None;
    let mut store = (kind == Form::SearchStore).then(|| (words[0].clone(), false));
    match kind {
        Form::Radius { .. } => {
            let (lon, lat) = lon_lat(&words[1], &words[2])?;
            center = Some(Center::LonLat(lon, lat));
            shape = Some(radius(&words[3], &words[4])?);
        }
        Form::ByMember { .. } => {
            if let Some(z) = z {
                let member = words[1].clone();
                z.score(&member).ok_or_else(no_member)?;
                center = Some(Center::Member(member));
                shape = Some(radius(&words[2], &words[3])?);
            }
        }
        Form::Search | Form::SearchStore => {}
    }
    let can_store = matches!(
        kind,
        Form::Radius { read_only: false } | Form::ByMember { read_only: false }
    );
    let (mut with_dist, mut with_hash, mut with_coord) = (false, false, false);
    let (mut order, mut count, mut any) = (Order::Unsorted, 0usize, false);
    let (mut from_member, mut from_lonlat, mut by_radius, mut by_box) =
        (false, false, false, false);
    let opts = &words[fixed..];
    let mut i = 0;
    while i < opts.len() {
        let left = opts.len() - i - 1;
        match opts[i].to_ascii_lowercase().as_slice() {
            b"withdist" => with_dist = true,
            b"withhash" => with_hash = true,
            b"withcoord" => with_coord = true,
            b"any" => any = true,
            b"asc" => order = Order::Asc,
            b"desc" => order = Order::Desc,
            b"count" if left >= 1 => {
                let n = proto::decode::parse_int(&opts[i + 1]).ok_or(CommandError::NotInteger)?;
                if n <= 0 {
                    return Err(CommandError::err("COUNT must be > 0"));
                }
                count = usize::try_from(n).unwrap_or(usize::MAX);
                i += 1;
            }
            b"store" if left >= 1 && can_store => {
                store = Some((opts[i + 1].clone(), false));
                i += 1;
            }
            b"storedist" if left >= 1 && can_store => {
                store = Some((opts[i + 1].clone(), true));
                i += 1;
            }
            b"storedist" if kind == Form::SearchStore => {
                store = store.map(|(dest, _)| (dest, true));
            }
            b"frommember" if left >= 1 && is_search && !from_lonlat => {
                if let Some(z) = z {
                    let member = opts[i + 1].clone();
                    z.score(&member).ok_or_else(no_member)?;
                    center = Some(Center::Member(member));
                }
                from_member = true;
                i += 1;
            }
            b"fromlonlat" if left >= 2 && is_search && !from_member => {
                let (lon, lat) = lon_lat(&opts[i + 1], &opts[i + 2])?;
                center = Some(Center::LonLat(lon, lat));
                from_lonlat = true;
                i += 2;
            }
            b"byradius" if left >= 2 && is_search && !by_box => {
                shape = Some(radius(&opts[i + 1], &opts[i + 2])?);
                by_radius = true;
                i += 2;
            }
            b"bybox" if left >= 3 && is_search && !by_radius => {
                shape = Some(bybox(&opts[i + 1], &opts[i + 2], &opts[i + 3])?);
                by_box = true;
                i += 3;
            }
            _ => return Err(CommandError::Syntax),
        }
        i += 1;
    }
    if store.is_some() && (with_dist || with_hash || with_coord) {
        let what = if kind == Form::SearchStore {
            "GEOSEARCHSTORE"
        } else {
            "STORE option in GEORADIUS"
        };
        return Err(CommandError::err(format!(
            "{what} is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        )));
    }
    let name = String::from_utf8_lossy(name);
    if is_search && !(from_member || from_lonlat) {
        return Err(CommandError::err(format!(
            "exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
        )));
    }
    if is_search && !(by_radius || by_box) {
        return Err(CommandError::err(format!(
            "exactly one of BYRADIUS and BYBOX can be specified for {name}"
        )));
    }
    if any && count == 0 {
        return Err(CommandError::err(
            "the ANY argument requires COUNT argument",
        ));
    }
    let query = match (z, center, shape) {
        (Some(_), Some(center), Some((extent, unit))) => Some(Query {
            center,
            extent,
            unit,
            order,
            count,
            any,
        }),
        _ => None,
    };
    Ok(Parsed {
        src,
        query,
        with_dist,
        with_hash,
        with_coord,
        store,
    })
}

/// One result of a search without STORE: the member, or an array of the member and
/// what was asked for, in Redis's order (distance, hash, coordinates).
fn found_frame(f: Found, p: &Parsed, protocol: Protocol) -> Frame {
    if !(p.with_dist || p.with_hash || p.with_coord) {
        return Frame::Bulk(f.member);
    }
    let mut item = vec![Frame::Bulk(f.member)];
    if p.with_dist {
        item.push(distance_frame(f.dist));
    }
    if p.with_hash {
        item.push(Frame::Integer(f.score as i64));
    }
    if p.with_coord {
        item.push(Frame::Array(vec![
            coordinate(f.lon, protocol),
            coordinate(f.lat, protocol),
        ]));
    }
    Frame::Array(item)
}

/// What a search's read decided: the reply, or a STORE to perform.
enum Next {
    Reply(Frame),
    Store(ZStore),
}

/// `GEOSEARCH`, `GEOSEARCHSTORE`, `GEORADIUS[_RO]`, `GEORADIUSBYMEMBER[_RO]`.
///
/// The search runs under one read of the keyspace; a STORE form then goes down the
/// write path as a [`ZStore::Geo`], which searches again inside the write (so the stored
/// result is the set as it is when stored) and journals the destination's new record.
pub fn search(kv: &Kv, s: &mut Session, args: &mut Args, kind: Form, protocol: Protocol) -> Result {
    let name = args.raw_name().to_vec();
    let words = args.rest();
    let src = words
        .get(usize::from(kind == Form::SearchStore))
        .cloned()
        .unwrap_or_default();
    let next = kv.read(|ks, now| -> Result<Next> {
        let z = zset_of(ks, s, &src, now)?;
        let p = parse(kind, &name, &words, z)?;
        if let Some((dest, dist)) = p.store.clone() {
            // `query` is `None` when the source is missing: the destination is deleted.
            return Ok(Next::Store(ZStore::Geo {
                dest,
                src: p.src,
                query: p.query,
                dist,
                search: kind == Form::SearchStore,
            }));
        }
        let (Some(query), Some(z)) = (&p.query, z) else {
            return Ok(Next::Reply(Frame::Array(Vec::new())));
        };
        let found = query.run(z)?;
        Ok(Next::Reply(Frame::Array(
            found
                .into_iter()
                .map(|f| found_frame(f, &p, protocol))
                .collect(),
        )))
    })?;
    match next {
        Next::Reply(frame) => Ok(frame),
        Next::Store(op) => kv.write(s, Mutation::ZStore(op)).map(super::reply),
    }
}

//! Blocking pops: `BLPOP`, `BRPOP`, `BLMOVE`, `BRPOPLPUSH`, `BLMPOP` on lists and
//! `BZPOPMIN`, `BZPOPMAX`, `BZMPOP` on sorted sets (their parsing is in
//! `commands::pops`). A priority queue is a sorted set popped by the lowest score; a
//! work queue is a list: both wait here the same way.
//!
//! A client that finds every list empty is *registered* as a waiter on each of its keys
//! (a FIFO queue per key) and sleeps. Registration happens under the keyspace lock, after
//! checking the lists are still empty, so no push can slip in between.
//!
//! A push does not wake the waiters to let them race for the element (the fastest would
//! win, not the first). As in Redis, the writer serves them itself: after any write that
//! added elements to a list or sorted set somebody waits on, still under the same lock, [`serve`] pops
//! on behalf of the waiters of that list, oldest first, through the normal write path (so
//! the pop is journaled, persisted and replicated like any other), and hands each its
//! reply over a oneshot channel. A client blocked first is served first, and an element
//! is never handed to two clients.
//!
//! A waiter stops waiting when its timeout passes (reply: a null array, `*-1`) or when the
//! server shuts down (same reply); it unregisters under the lock, so a reply that arrives
//! at the same moment is still delivered rather than lost.
//!
//! A client that hangs up while blocked is unblocked, as Redis does: these commands are
//! flagged `blocking`, so the connection watches the socket while they wait and drops the
//! wait when the peer closes. Dropping it drops the waiter's channel, and `serve` skips a
//! waiter whose channel is closed, so the element stays in the list for the next client.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use proto::{Args, CommandError, Frame};
use service::CancellationToken;
use tokio::sync::oneshot;

use crate::keyspace::{Keyspace, Mutation, Outcome};
use crate::server::{Kv, Session};
use crate::types::ops::{self, Op};
use crate::value::Value;

/// What a waiter does with the first elements it gets.
#[derive(Debug, Clone)]
pub enum Action {
    /// `BLPOP`/`BRPOP`: pop from this end and reply `[key, element]`.
    Pop { left: bool },
    /// `BLMOVE`/`BRPOPLPUSH`: pop from `from_left`'s end, push onto `to`, reply the element.
    Move {
        to: Bytes,
        from_left: bool,
        to_left: bool,
    },
    /// `BZPOPMIN`/`BZPOPMAX`: pop the lowest (highest) member, reply `[key, member, score]`.
    ZPop { max: bool },
    /// `LMPOP`/`BLMPOP` (`zset: false`, `end`: left) and `ZMPOP`/`BZMPOP` (`zset: true`,
    /// `end`: max): pop up to `count` elements, reply `[key, [element...]]`.
    MPop { zset: bool, end: bool, count: usize },
}

impl Action {
    fn op(&self, key: Bytes) -> Op {
        match self {
            Action::Pop { left } => Op::Pop {
                key,
                left: *left,
                count: None,
            },
            Action::Move {
                to,
                from_left,
                to_left,
            } => Op::LMove {
                from: key,
                to: to.clone(),
                from_left: *from_left,
                to_left: *to_left,
            },
            Action::ZPop { max } => Op::ZPop {
                key,
                max: *max,
                count: None,
            },
            Action::MPop {
                zset: false,
                end,
                count,
            } => Op::Pop {
                key,
                left: *end,
                count: Some(*count),
            },
            Action::MPop {
                zset: true,
                end,
                count,
            } => Op::ZPop {
                key,
                max: *end,
                count: Some(*count),
            },
        }
    }

    /// Does this action take from sorted sets (else lists)?
    fn wants_zset(&self) -> bool {
        matches!(self, Action::ZPop { .. } | Action::MPop { zset: true, .. })
    }

    /// Can this action take from `value` now? `WRONGTYPE` if it holds the other kind.
    fn can_take(&self, value: &Value) -> Result<bool, CommandError> {
        if self.wants_zset() {
            value.as_zset().map(|z| !z.is_empty())
        } else {
            value.as_list().map(|l| !l.is_empty())
        }
    }

    /// The reply once the op ran on `key`; `None` if there was nothing to take.
    fn reply(&self, key: &Bytes, outcome: Result<Outcome, CommandError>) -> Option<Frame> {
        let key = || Frame::Bulk(key.clone());
        match (self, outcome) {
            (_, Err(e)) => Some(e.to_frame()),
            (Action::Pop { .. }, Ok(Outcome::Bulk(v))) => {
                Some(Frame::Array(vec![key(), Frame::Bulk(v)]))
            }
            (Action::Move { .. }, Ok(Outcome::Bulk(v))) => Some(Frame::Bulk(v)),
            (Action::ZPop { .. }, Ok(Outcome::Array(mut pair))) if pair.len() == 2 => {
                let score = crate::commands::reply(pair.pop()?);
                let member = crate::commands::reply(pair.pop()?);
                Some(Frame::Array(vec![key(), member, score]))
            }
            (Action::MPop { .. }, Ok(Outcome::Array(items))) if !items.is_empty() => {
                let items = items.into_iter().map(crate::commands::reply).collect();
                Some(Frame::Array(vec![key(), Frame::Array(items)]))
            }
            (Action::MPop { .. }, Ok(Outcome::Scored(pairs))) if !pairs.is_empty() => {
                let pairs = pairs
                    .into_iter()
                    .map(|(m, score)| {
                        Frame::Array(vec![Frame::Bulk(m), crate::commands::score_frame(score)])
                    })
                    .collect();
                Some(Frame::Array(vec![key(), Frame::Array(pairs)]))
            }
            _ => None,
        }
    }
}

/// What a served waiter receives: its reply and the journal position of its pop.
type Served = (Frame, u64);

struct Waiter {
    db: usize,
    keys: Vec<Bytes>,
    action: Action,
    tx: oneshot::Sender<Served>,
}

#[derive(Default)]
struct Waiters {
    next_id: u64,
    /// Per (db, key): waiter ids in the order they blocked.
    queues: HashMap<(usize, Bytes), VecDeque<u64>>,
    clients: HashMap<u64, Waiter>,
}

impl Waiters {
    fn unregister(&mut self, id: u64) -> Option<Waiter> {
        let waiter = self.clients.remove(&id)?;
        for key in &waiter.keys {
            let slot = (waiter.db, key.clone());
            if let Some(queue) = self.queues.get_mut(&slot) {
                queue.retain(|&w| w != id);
                if queue.is_empty() {
                    self.queues.remove(&slot);
                }
            }
        }
        Some(waiter)
    }
}

/// The registry of blocked clients (one per server). Lock order: the keyspace first,
/// then this.
#[derive(Default)]
pub struct Blocked {
    waiters: Mutex<Waiters>,
    /// Cancelled at shutdown: every blocked client answers at once.
    stop: CancellationToken,
}

impl Blocked {
    fn lock(&self) -> MutexGuard<'_, Waiters> {
        crate::lock(&self.waiters)
    }

    /// Ends every wait (server shutdown).
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Clients blocked right now (`INFO clients` `blocked_clients`).
    pub fn count(&self) -> usize {
        self.lock().clients.len()
    }
}

/// Serves the clients blocked on lists that the last write filled. Called by the write
/// path with the keyspace lock held, right after the write. See the module docs.
pub fn serve(blocked: &Blocked, ks: &mut Keyspace, now: u64) {
    let mut w = blocked.lock();
    loop {
        let ready = ks.take_ready();
        if ready.is_empty() {
            break;
        }
        for (db, key) in ready {
            let slot = (db, key.clone());
            // Waiters for the other kind of key (a `BZPOPMIN` on what is now a list) stay
            // queued, in their place, as in Redis.
            let mut skipped = 0;
            while let Some(&id) = w.queues.get(&slot).and_then(|q| q.get(skipped)) {
                let takes = match (w.clients.get(&id), ks.peek(db, &key, now)) {
                    (Some(waiter), Some(value)) => waiter.action.can_take(value),
                    _ => Ok(false),
                };
                match takes {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(_) => {
                        skipped += 1;
                        continue;
                    }
                }
                let Some(waiter) = w.unregister(id) else {
                    break;
                };
                if waiter.tx.is_closed() {
                    continue; // its connection is gone
                }
                let outcome = ops::apply(ks, db, waiter.action.op(key.clone()), now);
                if let Some(frame) = waiter.action.reply(&key, outcome) {
                    let _ = waiter.tx.send((frame, ks.journal().seq()));
                }
            }
        }
    }
    ks.track_ready = !w.clients.is_empty();
}

/// Unregisters a waiter when its wait ends for any reason but being served.
struct Registration<'a> {
    kv: &'a Kv,
    id: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.kv.read(|ks, _| {
            let mut w = self.kv.blocked.lock();
            w.unregister(self.id);
            ks.track_ready = !w.clients.is_empty();
        });
    }
}

/// What a blocking command asks for: the lists to watch, how long, and what to do.
pub(crate) type Request = (Vec<Bytes>, Option<Duration>, Action);

/// `BLPOP`/`BRPOP key... timeout`.
pub async fn bpop(kv: &Kv, s: &mut Session, args: &mut Args, left: bool) -> Frame {
    match parse_pop(args, left) {
        Ok((keys, timeout, action)) => block(kv, s, keys, timeout, action).await,
        Err(e) => e.to_frame(),
    }
}

/// `BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout` and
/// `BRPOPLPUSH source destination timeout`.
pub async fn bmove(kv: &Kv, s: &mut Session, args: &mut Args, brpoplpush: bool) -> Frame {
    match parse_move(args, brpoplpush) {
        Ok((keys, timeout, action)) => block(kv, s, keys, timeout, action).await,
        Err(e) => e.to_frame(),
    }
}

/// `BLPOP`/`BRPOP` inside `EXEC`: a transaction never waits, so, as in Redis, it pops
/// now or answers a null array, as if the timeout had passed.
pub fn bpop_now(kv: &Kv, s: &mut Session, args: &mut Args, left: bool) -> Frame {
    match parse_pop(args, left) {
        Ok((keys, _, action)) => serve_now(kv, s, &keys, &action).unwrap_or(Frame::NullArray),
        Err(e) => e.to_frame(),
    }
}

/// `BLMOVE`/`BRPOPLPUSH` inside `EXEC`: moves now or answers a null (Redis's reply).
pub fn bmove_now(kv: &Kv, s: &mut Session, args: &mut Args, brpoplpush: bool) -> Frame {
    match parse_move(args, brpoplpush) {
        Ok((keys, _, action)) => serve_now(kv, s, &keys, &action).unwrap_or(Frame::Null),
        Err(e) => e.to_frame(),
    }
}

fn parse_pop(args: &mut Args, left: bool) -> Result<Request, CommandError> {
    keys_then_timeout(args, Action::Pop { left })
}

/// `key... timeout` (`BLPOP`, `BRPOP`, `BZPOPMIN`, `BZPOPMAX`).
pub(crate) fn keys_then_timeout(args: &mut Args, action: Action) -> Result<Request, CommandError> {
    let mut keys = args.rest();
    match keys.pop().map(|t| parse_timeout(&t)) {
        Some(timeout) => Ok((keys, timeout?, action)),
        None => Err(args.wrong_arity()),
    }
}

fn parse_move(args: &mut Args, brpoplpush: bool) -> Result<Request, CommandError> {
    let (from, to) = (args.next_bytes()?, args.next_bytes()?);
    let (from_left, to_left) = if brpoplpush {
        (false, true)
    } else {
        (crate::commands::side(args)?, crate::commands::side(args)?)
    };
    let timeout = parse_timeout(&args.next_bytes()?)?;
    let action = Action::Move {
        to,
        from_left,
        to_left,
    };
    Ok((vec![from], timeout, action))
}

/// A timeout in seconds, fractions allowed; 0 waits forever.
///
/// Redis turns a timeout into a deadline in Unix milliseconds and refuses one whose
/// deadline would not fit in 64 bits ("timeout is out of range"); so does kv, counting
/// the Unix time as at most 2^42 ms (the year 2109), so that the check needs no clock.
pub(crate) fn parse_timeout(text: &[u8]) -> Result<Option<Duration>, CommandError> {
    const LATEST_DEADLINE_MS: f64 = (i64::MAX - (1 << 42)) as f64;
    let secs = proto::args::parse_f64(text)
        .filter(|s| s.is_finite())
        .ok_or_else(|| CommandError::err("timeout is not a float or out of range"))?;
    if secs < 0.0 {
        return Err(CommandError::err("timeout is negative"));
    }
    if secs * 1000.0 > LATEST_DEADLINE_MS {
        return Err(CommandError::err("timeout is out of range"));
    }
    Ok((secs > 0.0).then(|| Duration::from_secs_f64(secs)))
}

/// Serves from the first non-empty list in argument order, now; `None` if all are empty.
///
/// The keys are looked at under one lock, not one lock (and one clock reading) per key:
/// a poller of several empty queues (`LMPOP 2 q1 q2 LEFT`) is what this mostly serves.
pub(crate) fn serve_now(
    kv: &Kv,
    s: &mut Session,
    keys: &[Bytes],
    action: &Action,
) -> Option<Frame> {
    let db = s.db;
    let mut from = 0;
    loop {
        let first = kv.read(|ks, now| {
            keys.iter().enumerate().skip(from).find_map(|(i, key)| {
                match ks.value(db, key, now).map(|v| action.can_take(v)) {
                    None | Some(Ok(false)) => None,
                    Some(Err(e)) => Some(Err(e)),
                    Some(Ok(true)) => Some(Ok(i)),
                }
            })
        })?;
        let i = match first {
            Ok(i) => i,
            Err(e) => return Some(e.to_frame()),
        };
        let key = &keys[i];
        let outcome = kv.write(s, Mutation::Collection(action.op(key.clone())));
        if let Some(frame) = action.reply(key, outcome) {
            return Some(frame);
        }
        // Emptied by another client between the look and the pop: on to the next key.
        from = i + 1;
    }
}

/// Serves from the first non-empty list now, or waits. See the module docs.
pub(crate) async fn block(
    kv: &Kv,
    s: &mut Session,
    keys: Vec<Bytes>,
    timeout: Option<Duration>,
    action: Action,
) -> Frame {
    let db = s.db;
    let rx = loop {
        if let Some(frame) = serve_now(kv, s, &keys, &action) {
            return frame;
        }
        // All empty: register, unless something arrived meanwhile (then try again).
        let registered = kv.read(|ks, now| {
            if keys.iter().any(|k| ks.peek(db, k, now).is_some()) {
                return None;
            }
            let mut w = kv.blocked.lock();
            w.next_id += 1;
            let id = w.next_id;
            let (tx, rx) = oneshot::channel();
            // Own copies: the request's bytes live in the connection's read buffer.
            let owned: Vec<Bytes> = keys.iter().map(crate::types::own).collect();
            for key in &owned {
                w.queues.entry((db, key.clone())).or_default().push_back(id);
            }
            let waiter = Waiter {
                db,
                keys: owned,
                action: action.clone(),
                tx,
            };
            w.clients.insert(id, waiter);
            ks.track_ready = true;
            Some((id, rx))
        });
        if let Some(found) = registered {
            break found;
        }
    };
    let (id, mut rx) = rx;
    let registration = Registration { kv, id };
    let expired = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let served = tokio::select! {
        served = &mut rx => served.ok(),
        () = expired => None,
        () = kv.blocked.stop.cancelled() => None,
    };
    // Unregister (under the lock), then look once more: a reply sent just before is
    // delivered, not dropped.
    drop(registration);
    match served.or_else(|| rx.try_recv().ok()) {
        Some((frame, seq)) => {
            kv.served_at(s, seq);
            frame
        }
        None => Frame::NullArray,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_is_a_deadline_that_fits_in_64_bit_milliseconds() {
        let parse = |text: &str| parse_timeout(text.as_bytes()).map_err(|e| e.to_frame());
        assert_eq!(parse("0"), Ok(None));
        assert_eq!(parse("0.5"), Ok(Some(Duration::from_millis(500))));
        assert_eq!(
            parse("100000000000"),
            Ok(Some(Duration::from_secs(100_000_000_000)))
        );
        for huge in ["1e20", "1e300", "1e17"] {
            assert_eq!(
                parse(huge),
                Err(proto::Frame::error("ERR timeout is out of range")),
                "{huge}"
            );
        }
        assert_eq!(
            parse("-1"),
            Err(proto::Frame::error("ERR timeout is negative"))
        );
        for bad in ["inf", "nan", "x"] {
            assert_eq!(
                parse(bad),
                Err(proto::Frame::error(
                    "ERR timeout is not a float or out of range"
                )),
                "{bad}"
            );
        }
    }
}

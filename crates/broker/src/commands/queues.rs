//! QCREATE, QSTATS, QPEEK, QLIST, QPURGE, QDEL, QREDRIVE: queues as a whole.

use std::sync::Arc;

use proto::{Args, CommandError, Frame};

use super::messages::MAX_DELAY;
use super::{count, field, integer, millis, queue_name};
use crate::shared_engine::SharedEngine;
use crate::visibility::MAX_VISIBILITY;

/// The longest RETENTION: 14 days, as SQS.
const MAX_RETENTION: u64 = 14 * 24 * 60 * 60 * 1000;

/// The largest MAXSIZE: 512 MiB, the largest bulk string a client can send.
const MAX_MESSAGE_SIZE: u64 = 512 * 1024 * 1024;

/// `QCREATE queue [VISIBILITY ms] [MAXDELIVERIES n] [DEADLETTER queue] [RETENTION ms]
/// [MAXSIZE bytes] [DELAY ms]` → OK. Attributes not given keep their value (or default).
pub(super) async fn create(
    inner: &Arc<SharedEngine>,
    args: &mut Args,
) -> Result<Frame, CommandError> {
    let queue = queue_name(args)?;
    let mut visibility = None;
    let mut max_deliveries = None;
    let mut dead_letter = None;
    let mut retention = None;
    let mut max_size = None;
    let mut delay = None;
    while let Some(option) = args.next_keyword() {
        match option.as_str() {
            "VISIBILITY" => visibility = Some(millis(args, "VISIBILITY", MAX_VISIBILITY)?),
            "MAXDELIVERIES" => {
                // 0 turns dead-lettering off.
                max_deliveries = Some(match args.next_int()? {
                    0 => None,
                    n => Some(u32::try_from(n).map_err(|_| {
                        CommandError::err("MAXDELIVERIES must be between 0 and 4294967295")
                    })?),
                })
            }
            "DEADLETTER" => dead_letter = Some(queue_name(args)?),
            "RETENTION" => retention = Some(millis(args, "RETENTION", MAX_RETENTION)?),
            "MAXSIZE" => max_size = Some(millis(args, "MAXSIZE", MAX_MESSAGE_SIZE)?),
            "DELAY" => delay = Some(millis(args, "DELAY", MAX_DELAY)?),
            _ => return Err(CommandError::Syntax),
        }
    }
    if retention == Some(0) {
        return Err(CommandError::err("RETENTION must be positive"));
    }
    inner
        .write(|engine, _| {
            engine.configure(&queue, |c| {
                c.visibility = visibility.unwrap_or(c.visibility);
                c.max_deliveries = max_deliveries.unwrap_or(c.max_deliveries);
                c.dead_letter = dead_letter.or(c.dead_letter.take());
                c.retention = retention.unwrap_or(c.retention);
                c.max_size = max_size.unwrap_or(c.max_size);
                c.delay = delay.unwrap_or(c.delay);
            })
        })
        .await?;
    Ok(Frame::ok())
}

/// `QSTATS queue` → a map of counts and attributes.
pub(super) fn stats(inner: &Arc<SharedEngine>, args: &mut Args) -> Result<Frame, CommandError> {
    let queue = queue_name(args)?;
    let s = inner.run(|engine, now| engine.stats(&queue, now))?;
    let c = s.counters;
    let optional = |v: Option<Frame>| v.unwrap_or(Frame::Null);
    Ok(Frame::Map(vec![
        field("ready", integer(s.ready)),
        field("inflight", integer(s.in_flight)),
        field("delayed", integer(s.delayed)),
        field("sent", integer(c.sent)),
        field("received", integer(c.received)),
        field("redelivered", integer(c.redelivered)),
        field("acked", integer(c.acked)),
        field("nacked", integer(c.nacked)),
        field("timedout", integer(c.timed_out)),
        field("released", integer(c.released)),
        field("deadlettered", integer(c.dead_lettered)),
        field("expired", integer(c.expired)),
        field("purged", integer(c.purged)),
        field("visibility", integer(s.config.visibility)),
        field(
            "maxdeliveries",
            optional(s.config.max_deliveries.map(integer)),
        ),
        field(
            "deadletter",
            optional(s.config.max_deliveries.map(|_| {
                Frame::Bulk(
                    s.config
                        .dead_letter
                        .clone()
                        .unwrap_or_else(|| crate::dead_letter::default_dead_letter_queue(&queue)),
                )
            })),
        ),
        field("retention", integer(s.config.retention)),
        field("maxsize", integer(s.config.max_size)),
        field("delay", integer(s.config.delay)),
    ]))
}

/// `QPEEK queue [COUNT n]` → the next ready messages: `id`, `body`, `deliveries`,
/// `priority` (and `origin` for dead letters).
pub(super) fn peek(inner: &Arc<SharedEngine>, args: &mut Args) -> Result<Frame, CommandError> {
    let queue = queue_name(args)?;
    let mut n = 1;
    while let Some(option) = args.next_keyword() {
        match option.as_str() {
            "COUNT" => n = count(args, 1000)?,
            _ => return Err(CommandError::Syntax),
        }
    }
    let messages = inner.run(|engine, now| engine.peek(&queue, n, now))?;
    Ok(Frame::Array(
        messages
            .into_iter()
            .map(|m| {
                let mut fields = vec![
                    field("id", integer(m.id)),
                    field("body", Frame::Bulk(m.payload)),
                    field("deliveries", integer(m.deliveries)),
                    field("priority", integer(m.priority)),
                ];
                if let Some(origin) = m.origin {
                    fields.push(field("origin", Frame::Bulk(origin)));
                }
                Frame::Map(fields)
            })
            .collect(),
    ))
}

/// `QLIST [pattern]` → queue names, sorted.
pub(super) fn list(inner: &Arc<SharedEngine>, args: &mut Args) -> Result<Frame, CommandError> {
    let pattern = if args.is_empty() {
        None
    } else {
        Some(args.next_bytes()?)
    };
    args.finish()?;
    inner
        .run(|engine, _| {
            Ok(engine
                .names()
                .filter(|name| {
                    pattern
                        .as_ref()
                        .is_none_or(|p| proto::glob::glob_match(p, name))
                })
                .map(|name| Frame::Bulk(name.clone()))
                .collect())
        })
        .map(Frame::Array)
        .map_err(Into::into)
}

/// `QPURGE queue` → how many messages were deleted.
pub(super) async fn purge(
    inner: &Arc<SharedEngine>,
    args: &mut Args,
) -> Result<Frame, CommandError> {
    let queue = queue_name(args)?;
    let n = inner.write(|engine, now| engine.purge(&queue, now)).await?;
    Ok(integer(n))
}

/// `QDEL queue` → 1 if it existed, else 0.
pub(super) async fn delete(
    inner: &Arc<SharedEngine>,
    args: &mut Args,
) -> Result<Frame, CommandError> {
    let queue = queue_name(args)?;
    let existed = inner.write(|engine, _| engine.delete(&queue)).await?;
    inner.forget_waker(&queue);
    Ok(integer(existed as i64))
}

/// `QREDRIVE dead-letter-queue [COUNT n]` → how many messages went back.
pub(super) async fn redrive(
    inner: &Arc<SharedEngine>,
    args: &mut Args,
) -> Result<Frame, CommandError> {
    let queue = queue_name(args)?;
    let mut n = usize::MAX;
    while let Some(option) = args.next_keyword() {
        match option.as_str() {
            "COUNT" => n = count(args, usize::MAX)?,
            _ => return Err(CommandError::Syntax),
        }
    }
    let moved = inner
        .write(|engine, now| engine.redrive(&queue, n, now))
        .await?;
    Ok(integer(moved))
}

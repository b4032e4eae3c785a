//! QSEND, QSENDBATCH, QRECV: messages in and out.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use proto::{Args, CommandError, Frame};
use tokio::time::Instant;

use super::{count, field, integer, millis, queue_name};
use crate::consumer::Session;
use crate::engine::SendOptions;
use crate::queue::Delivery;
use crate::shared_engine::{SharedEngine, Wait};
use crate::visibility::MAX_VISIBILITY;

/// The longest DELAY (14 days, SQS's longest retention: a message delayed longer would
/// expire before anyone could receive it).
pub(super) const MAX_DELAY: u64 = 14 * 24 * 60 * 60 * 1000;

/// Most messages one QRECV may return.
const MAX_RECEIVE: usize = 1000;

/// The longest BLOCK (a day; 0 means for ever).
const MAX_BLOCK: u64 = 24 * 60 * 60 * 1000;

/// `QSEND queue payload [DELAY ms] [PRIORITY n]` → the message id.
pub(super) async fn send(
    inner: &Arc<SharedEngine>,
    args: &mut Args,
) -> Result<Frame, CommandError> {
    let queue = queue_name(args)?;
    let payload = Bytes::copy_from_slice(&args.next_bytes()?);
    let mut options = SendOptions::default();
    while let Some(option) = args.next_keyword() {
        match option.as_str() {
            "DELAY" => options.delay = Some(millis(args, "DELAY", MAX_DELAY)?),
            "PRIORITY" => {
                options.priority = u32::try_from(args.next_int()?)
                    .map_err(|_| CommandError::err("PRIORITY must be between 0 and 4294967295"))?
            }
            _ => return Err(CommandError::Syntax),
        }
    }
    let id = inner
        .write(|engine, now| engine.send(&queue, payload, options, now))
        .await?;
    Ok(integer(id))
}

/// `QSENDBATCH queue payload [payload ...]` → the ids, in order.
pub(super) async fn send_batch(
    inner: &Arc<SharedEngine>,
    args: &mut Args,
) -> Result<Frame, CommandError> {
    let queue = queue_name(args)?;
    let payloads = args
        .rest()
        .iter()
        .map(|p| Bytes::copy_from_slice(p))
        .collect();
    let ids = inner
        .write(|engine, now| engine.send_batch(&queue, payloads, SendOptions::default(), now))
        .await?;
    Ok(Frame::Array(ids.into_iter().map(integer).collect()))
}

/// `QRECV queue [COUNT n] [VISIBILITY ms] [BLOCK ms]` → an array of messages, each
/// `id`, `receipt`, `body`, `deliveries` (empty when none came).
pub(super) async fn receive(
    inner: &Arc<SharedEngine>,
    session: &mut Session,
    args: &mut Args,
) -> Result<Frame, CommandError> {
    let queue = queue_name(args)?;
    let mut max = 1;
    let mut visibility = None;
    let mut wait = Wait::No;
    while let Some(option) = args.next_keyword() {
        match option.as_str() {
            "COUNT" => max = count(args, MAX_RECEIVE)?,
            "VISIBILITY" => visibility = Some(millis(args, "VISIBILITY", MAX_VISIBILITY)?),
            "BLOCK" => {
                wait = match millis(args, "timeout", MAX_BLOCK)? {
                    0 => Wait::Forever,
                    ms => Wait::Until(Instant::now() + Duration::from_millis(ms)),
                }
            }
            _ => return Err(CommandError::Syntax),
        }
    }
    let deliveries = inner.receive(&queue, max, visibility, wait).await?;
    session.hold(inner, &queue, &deliveries);
    Ok(Frame::Array(deliveries.into_iter().map(delivery).collect()))
}

fn delivery(d: Delivery) -> Frame {
    Frame::Map(vec![
        field("id", integer(d.id)),
        field("receipt", Frame::bulk(d.receipt.to_string())),
        field("body", Frame::Bulk(d.payload)),
        field("deliveries", integer(d.deliveries)),
    ])
}

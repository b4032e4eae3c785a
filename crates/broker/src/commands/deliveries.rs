//! QACK, QNACK, QEXTEND: what a consumer does with a receipt.

use std::sync::Arc;

use proto::{Args, CommandError, Frame};

use super::messages::MAX_DELAY;
use super::{millis, queue_name, receipt};
use crate::consumer::Session;
use crate::shared_engine::SharedEngine;
use crate::visibility::MAX_VISIBILITY;

/// `QACK queue receipt` → OK once the deletion is durable.
pub(super) async fn ack(
    inner: &Arc<SharedEngine>,
    session: &mut Session,
    args: &mut Args,
) -> Result<Frame, CommandError> {
    let queue = queue_name(args)?;
    let receipt = receipt(args)?;
    inner
        .write(|engine, now| engine.ack(&queue, &receipt, now))
        .await?;
    session.done(&receipt);
    Ok(Frame::ok())
}

/// `QNACK queue receipt [DELAY ms]` → OK.
pub(super) async fn nack(
    inner: &Arc<SharedEngine>,
    session: &mut Session,
    args: &mut Args,
) -> Result<Frame, CommandError> {
    let queue = queue_name(args)?;
    let receipt = receipt(args)?;
    let mut delay = 0;
    while let Some(option) = args.next_keyword() {
        match option.as_str() {
            "DELAY" => delay = millis(args, "DELAY", MAX_DELAY)?,
            _ => return Err(CommandError::Syntax),
        }
    }
    inner
        .write(|engine, now| engine.nack(&queue, &receipt, delay, now))
        .await?;
    session.done(&receipt);
    Ok(Frame::ok())
}

/// `QEXTEND queue receipt ms` → OK.
pub(super) async fn extend(
    inner: &Arc<SharedEngine>,
    args: &mut Args,
) -> Result<Frame, CommandError> {
    let queue = queue_name(args)?;
    let receipt = receipt(args)?;
    let timeout = millis(args, "timeout", MAX_VISIBILITY)?;
    inner
        .write(|engine, now| engine.extend(&queue, &receipt, timeout, now))
        .await?;
    Ok(Frame::ok())
}

//! Consumers that vanish: a consumer's connection remembers the receipts it holds; when
//! the connection closes those deliveries are released at once (`--on-disconnect
//! release`, the default, as a RabbitMQ channel closing) or left to their visibility
//! timeout (`keep`, as SQS).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use clap::ValueEnum;
use tracing::warn;

use crate::message::MessageId;
use crate::queue::Delivery;
use crate::receipt::Receipt;
use crate::shared_engine::SharedEngine;

/// `--on-disconnect`: what happens to a consumer's in-flight messages when its connection
/// closes (and to every in-flight message when the broker restarts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnDisconnect {
    /// Visible again at once: the consumer is gone, so is its work.
    Release,
    /// Left to their visibility timeout, as SQS (whose consumers have no connection).
    Keep,
}

/// Per connection: the deliveries this consumer holds, released if it goes away.
#[derive(Default)]
pub struct Session {
    consumer: Option<Consumer>,
}

struct Consumer {
    inner: Arc<SharedEngine>,
    held: HashMap<MessageId, (Bytes, Receipt)>,
    /// Prune stale entries when `held` grows past this.
    prune_at: usize,
}

impl Session {
    pub(crate) fn hold(
        &mut self,
        inner: &Arc<SharedEngine>,
        queue: &Bytes,
        deliveries: &[Delivery],
    ) {
        let consumer = self.consumer.get_or_insert_with(|| Consumer {
            inner: inner.clone(),
            held: HashMap::new(),
            prune_at: 1024,
        });
        for d in deliveries {
            consumer.held.insert(d.id, (queue.clone(), d.receipt));
        }
        if consumer.held.len() > consumer.prune_at {
            // Deliveries that expired (and went to other consumers) are no longer ours.
            let _ = consumer.inner.run(|engine, now| {
                consumer
                    .held
                    .retain(|_, (queue, receipt)| engine.is_current(queue, receipt, now));
                Ok(())
            });
            consumer.prune_at = (consumer.held.len() * 2).max(1024);
        }
    }

    pub(crate) fn done(&mut self, receipt: &Receipt) {
        if let Some(consumer) = &mut self.consumer {
            consumer.held.remove(&receipt.message);
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if self.held.is_empty() || self.inner.on_disconnect == OnDisconnect::Keep {
            return;
        }
        let held: Vec<(Bytes, Receipt)> = self.held.drain().map(|(_, held)| held).collect();
        if let Err(e) = self.inner.run(|engine, now| engine.release(&held, now)) {
            warn!("broker: releasing a closed connection's messages failed: {e:?}");
        }
    }
}

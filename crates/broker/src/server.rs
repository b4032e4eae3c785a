//! Wiring: the [`SharedEngine`] as a RESP server (its commands, INFO, CONFIG, the final
//! flush on shutdown), and the background sweep.

use std::sync::Arc;
use std::time::Duration;

use proto::Args;
use service::{Client, CommandSpec, InfoSection, Reply, Server};
use tracing::warn;

use crate::commands;
use crate::consumer::{OnDisconnect, Session};
use crate::shared_engine::SharedEngine;

/// The broker as a [`Server`]: every connection's commands run against `inner`.
pub struct Broker {
    pub(crate) inner: Arc<SharedEngine>,
    /// The sweep and the other protocols' listeners (beanstalkd, SQS): the RESP server's
    /// shutdown waits for them, so that once it has stopped nothing holds the store any
    /// more (a restart in the same process can open it).
    pub(crate) background: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Server for Broker {
    type Session = Session;

    fn name(&self) -> &'static str {
        "broker"
    }

    fn commands(&self) -> &'static [CommandSpec] {
        commands::COMMANDS
    }

    async fn execute(&self, client: &mut Client<Session>, args: Args) -> Reply {
        commands::execute(&self.inner, &mut client.session, args).await
    }

    /// Before the batch's replies go out: the redo log's records reach the kernel
    /// (`--fsync everysec` and `no`; see [`crate::redo`]).
    fn batch_executed(&self, _session: &mut Session) {
        self.inner.write_redo();
    }

    fn info(&self) -> Vec<InfoSection> {
        let (queues, messages) = self.inner.totals();
        vec![
            InfoSection::new("broker")
                .field("queues", queues)
                .field("messages", messages)
                .field("fsync", self.inner.fsync.as_str())
                .field(
                    "on_disconnect",
                    on_disconnect_name(self.inner.on_disconnect),
                ),
        ]
    }

    fn config_get(&self) -> Vec<(String, String)> {
        vec![
            ("fsync".into(), self.inner.fsync.as_str().into()),
            (
                "on-disconnect".into(),
                on_disconnect_name(self.inner.on_disconnect).into(),
            ),
        ]
    }

    async fn shutdown(&self) {
        let background = std::mem::take(&mut *crate::store::lock(&self.background));
        for task in background {
            if let Err(e) = task.await {
                warn!("broker: a background task failed: {e}");
            }
        }
        if let Err(e) = self.inner.flush().await {
            warn!("broker: final flush failed: {e:?}");
        }
    }
}

fn on_disconnect_name(policy: OnDisconnect) -> &'static str {
    match policy {
        OnDisconnect::Release => "release",
        OnDisconnect::Keep => "keep",
    }
}

/// The background sweep: applies retention and lease expiry to queues nobody touches,
/// then writes what is pending (see [`crate::store`]).
pub(crate) async fn sweep(inner: Arc<SharedEngine>, every: Duration) {
    let mut second = 0;
    loop {
        second += 1;
        tokio::select! {
            _ = inner.shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(e) = inner.run(|engine, now| engine.tick_all(now)) {
            warn!("broker: sweep failed: {e:?}");
        }
        if let Err(e) = inner.background_flush(second).await {
            warn!("broker: flush failed: {e:?}");
        }
    }
}

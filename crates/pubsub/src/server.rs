//! Wiring: the hub behind the service's connection loop.
//!
//! The service runs one task per connection. For a subscriber that task also waits on
//! [`Server::next_push`]: whenever the subscriber's queue has messages, the task takes a
//! batch and writes it, so each subscriber drains at its own speed on its own task while
//! publishers only ever append to queues.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use proto::{Args, Protocol};
use service::{Client, CommandSpec, InfoSection, Push, Reply, Server};

use hub::commands;
use hub::{Hub, OutputLimit, SlowPolicy};

/// A connection's pub/sub state (see [`hub::Subscriptions`]).
pub type Session = hub::Subscriptions;

/// The pub/sub server.
#[derive(Debug)]
pub struct PubSub {
    hub: Arc<Hub>,
}

impl PubSub {
    pub fn new(limit: OutputLimit, policy: SlowPolicy) -> Self {
        PubSub {
            hub: Arc::new(Hub::new(limit, policy)),
        }
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }
}

impl Server for PubSub {
    type Session = Session;

    fn name(&self) -> &'static str {
        "pubsub"
    }

    fn commands(&self) -> &'static [CommandSpec] {
        commands::COMMANDS
    }

    async fn execute(&self, client: &mut Client<Session>, args: Args) -> Reply {
        commands::execute(&self.hub, client, args)
    }

    async fn next_push(&self, session: &mut Session) -> Push {
        session.next_push().await
    }

    fn pending_push(&self, session: &mut Session) -> Option<Bytes> {
        session.pending_push()
    }

    fn batch_executed(&self, session: &mut Session) {
        session.wakes.wake_all();
    }

    fn protocol_changed(&self, session: &mut Session, protocol: Protocol) {
        if let Some(subscriber) = &session.subscriber {
            subscriber.outbox().set_protocol(protocol);
        }
    }

    fn info(&self) -> Vec<InfoSection> {
        let s = &self.hub.stats;
        let (channels, patterns) = self.hub.table_sizes();
        let (limit, policy) = self.hub.limits();
        let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        vec![
            InfoSection::new("memory")
                .field("pubsub_queued_bytes", self.hub.queued_bytes())
                .field(
                    "pubsub_queue_peak_bytes",
                    s.queues.peak.load(Ordering::Relaxed),
                ),
            InfoSection::new("stats")
                .field("pubsub_channels", channels)
                .field("pubsub_patterns", patterns)
                .field("pubsubshard_channels", self.hub.shard_channels())
                .field("subscribers", self.hub.subscribers())
                .field(
                    "client_output_buffer_limit_disconnections",
                    get(&s.slow_disconnects),
                ),
            InfoSection::new("pubsub")
                .field("published_messages", get(&s.published))
                .field("delivered_messages", get(&s.delivered))
                .field("written_messages", get(&s.queues.sent))
                .field("dropped_messages", get(&s.dropped))
                .field("slow_subscriber_disconnections", get(&s.slow_disconnects))
                .field("slow_consumer_policy", policy.name())
                .field("client_output_buffer_limit", limit),
        ]
    }

    fn config_get(&self) -> Vec<(String, String)> {
        let (limit, policy) = self.hub.limits();
        vec![
            ("client-output-buffer-limit".into(), limit.to_string()),
            ("slow-consumer-policy".into(), policy.name().into()),
        ]
    }

    fn config_set(&self, name: &str, value: &str) -> Option<Result<(), String>> {
        let (limit, policy) = self.hub.limits();
        Some(match name {
            "client-output-buffer-limit" => value
                .parse::<OutputLimit>()
                .map(|limit| self.hub.set_limits(limit, policy)),
            "slow-consumer-policy" => SlowPolicy::parse(value)
                .map(|policy| self.hub.set_limits(limit, policy))
                .ok_or_else(|| "expected disconnect, drop-oldest or drop-newest".to_string()),
            _ => return None,
        })
    }
}

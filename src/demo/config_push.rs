//! `config-push`: a config service publishes one update; ten servers subscribed to the
//! channel receive it at once (push: one hop, nothing stored). A slow server cannot keep a
//! subscription open and keep up, so it sits behind the bridge: the bridge subscribes to
//! `config.*` and appends every message to a broker queue, which the slow server drains at
//! its own pace — the hybrid of pub/sub and a queue.

use std::fmt;
use std::time::{Duration, Instant};

use proto::Frame;
use service::{BoxError, RespClient};

use super::reply::{check, field, int, text, words};
use super::{Against, Endpoints, Lab, Trace, lab, show};

/// The channel the update goes to; the bridge's pattern is `config.*`.
const CHANNEL: &str = "config.app";
/// The queue the bridge fills.
const QUEUE: &str = "config-updates";
/// Subscribed servers.
const SERVERS: usize = 10;

/// What the config-push demo observed.
#[derive(Debug, Clone)]
pub struct ConfigPushOutcome {
    /// PUBLISH's reply: subscriptions that received the update (the ten and the bridge).
    pub receivers: i64,
    /// How many of the ten subscribed servers received it.
    pub servers_updated: usize,
    /// The slowest of them, from the PUBLISH.
    pub slowest_push_ms: f64,
    /// Whether the slow server found the update in the queue.
    pub slow_server_got_it: bool,
    /// Older messages the slow server drained before it (earlier runs, against compose).
    pub older_messages: usize,
}

impl fmt::Display for ConfigPushOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "config-push: PUBLISH reached {} subscriptions; {}/{SERVERS} servers updated within \
             {:.2} ms; the slow server {} from the queue",
            self.receivers,
            self.servers_updated,
            self.slowest_push_ms,
            if self.slow_server_got_it {
                "read it"
            } else {
                "did NOT find it"
            }
        )
    }
}

/// Runs the scenario.
pub async fn run(against: Against, trace: &mut Trace) -> Result<ConfigPushOutcome, BoxError> {
    let setup = async |lab: &mut Lab, trace: &mut Trace| {
        trace.section(
            "Starting a pub/sub server, a broker, and a bridge (config.* → queue config-updates)",
        );
        let pubsub = lab.pubsub().await?;
        let broker = lab.broker(&[]).await?;
        lab.bridge(&pubsub, "config.*", &broker, QUEUE);
        Ok(Endpoints {
            pubsub,
            broker,
            ..Endpoints::from_env()
        })
    };
    lab::run_against(against, "config-push", trace, setup, scenario).await
}

async fn scenario(ends: &Endpoints, trace: &mut Trace) -> Result<ConfigPushOutcome, BoxError> {
    let update = format!("feature.search=on rev={}", lab::run_id());
    let mut config = RespClient::connect(&ends.pubsub).await?;

    trace.section("1. The bridge and ten servers subscribe");
    // The bridge connects on its own schedule: wait until its pattern subscription exists.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let numpat = int(
            &check(config.call(["PUBSUB", "NUMPAT"]).await?, "PUBSUB NUMPAT")?,
            "NUMPAT",
        )?;
        if numpat > 0 {
            trace
                .call(&mut config, "config", "pubsub", &["PUBSUB", "NUMPAT"])
                .await?;
            trace.note("the bridge's PSUBSCRIBE config.* is in place");
            break;
        }
        if Instant::now() > deadline {
            return Err(
                "no bridge subscribed to the pub/sub server within 10 s (is the bridge running?)"
                    .into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut servers = Vec::new();
    for n in 1..=SERVERS {
        let mut client = RespClient::connect(&ends.pubsub).await?;
        let start = Instant::now();
        let confirmation = check(client.call(["SUBSCRIBE", CHANNEL]).await?, "SUBSCRIBE")?;
        if n == 1 || n == SERVERS {
            trace.step(
                start.elapsed(),
                &format!("server-{n}"),
                "pubsub",
                &format!("SUBSCRIBE {CHANNEL}"),
                &show(&confirmation),
            );
        } else if n == 2 {
            trace.note("...");
        }
        servers.push(client);
    }

    trace.section("2. The config service publishes one update");
    let published_at = Instant::now();
    let receivers = int(
        &check(
            trace
                .call(
                    &mut config,
                    "config",
                    "pubsub",
                    &["PUBLISH", CHANNEL, &update],
                )
                .await?,
            "PUBLISH",
        )?,
        "PUBLISH",
    )?;
    trace.note(format!(
        "{receivers} subscriptions got it: the {SERVERS} servers and the bridge"
    ));

    let mut updated = 0;
    let mut slowest = Duration::ZERO;
    for (i, server) in servers.iter_mut().enumerate() {
        let message = tokio::time::timeout(Duration::from_secs(5), server.read_reply()).await;
        let took = published_at.elapsed();
        let Ok(Ok(Frame::Array(parts))) = message else {
            trace.note(format!("server-{} received nothing", i + 1));
            continue;
        };
        if parts.get(2).and_then(text).as_deref() == Some(update.as_str()) {
            updated += 1;
            slowest = slowest.max(took);
            trace.step(
                took,
                "pubsub",
                &format!("server-{}", i + 1),
                "push",
                &show(&Frame::Array(parts)),
            );
        }
    }
    trace.note("every subscribed server has the new config; the pub/sub server kept no copy");

    trace.section("3. The slow server drains the queue behind the bridge, at its own pace");
    let mut slow = RespClient::connect(&ends.broker).await?;
    let mut older = 0;
    let mut got_it = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !got_it && Instant::now() < deadline {
        let reply = check(
            trace
                .call(
                    &mut slow,
                    "slow-server",
                    "broker",
                    &["QRECV", QUEUE, "COUNT", "100", "BLOCK", "2000"],
                )
                .await?,
            "QRECV",
        )?;
        let Frame::Array(messages) = reply else {
            continue;
        };
        for message in &messages {
            let body = field(message, "body").and_then(text).unwrap_or_default();
            let receipt = field(message, "receipt").and_then(text).unwrap_or_default();
            slow.call(words(&["QACK", QUEUE, &receipt])).await?;
            if body == update {
                got_it = true;
            } else if !got_it {
                older += 1;
            }
        }
    }
    if older > 0 {
        trace.note(format!(
            "({older} older updates were queued before this one: the queue keeps them until acked)"
        ));
    }
    trace.note(if got_it {
        "the slow server read the update from the queue and acknowledged it"
    } else {
        "the update did not reach the queue within 10 s"
    });

    Ok(ConfigPushOutcome {
        receivers,
        servers_updated: updated,
        slowest_push_ms: slowest.as_secs_f64() * 1000.0,
        slow_server_got_it: got_it,
        older_messages: older,
    })
}

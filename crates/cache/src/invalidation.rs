//! # Event-based invalidation: the origin's owner tells the cache what changed
//!
//! TTLs bound how stale a cached value can get; events make it fresh sooner. The writer
//! publishes the key it changed on a pub/sub channel (`PUBLISH invalidations user:42`,
//! on Redis or infralab's pubsub server); every cache subscribed to it deletes that key,
//! and the next read fetches the new value. One message names one key (the whole payload,
//! binary-safe).
//!
//! Pub/sub is at-most-once: messages published while the subscription is down are lost.
//! So after a *re*connection the cache cannot know what it missed, and it flushes itself
//! — a cold cache is slower, a stale one is wrong. Reconnection backs off from 100 ms to
//! 2 s, and the task ends when the server shuts down.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use proto::Frame;
use service::{CancellationToken, RespClient};
use tracing::{info, warn};

use crate::layer::CacheLayer;

/// `HOST:PORT/CHANNEL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelAddr {
    pub addr: String,
    pub channel: String,
}

impl std::str::FromStr for ChannelAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('/') {
            Some((addr, channel)) if !addr.is_empty() && !channel.is_empty() => Ok(ChannelAddr {
                addr: addr.to_string(),
                channel: channel.to_string(),
            }),
            _ => Err(format!("expected HOST:PORT/CHANNEL, got {s:?}")),
        }
    }
}

/// Subscribes to `source` until `shutdown`, deleting every key published on it.
pub async fn run(server: Arc<CacheLayer>, source: ChannelAddr, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    let mut first = true;
    loop {
        let session = subscribe_and_apply(&server, &source, &mut first, &mut backoff);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            result = session => {
                if let Err(e) = result {
                    warn!("invalidation channel {}/{}: {e}; retrying in {backoff:?}", source.addr, source.channel);
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

async fn subscribe_and_apply(
    server: &CacheLayer,
    source: &ChannelAddr,
    first: &mut bool,
    backoff: &mut Duration,
) -> std::io::Result<()> {
    let mut conn = RespClient::connect(source.addr.as_str()).await?;
    let confirm = conn
        .call(["SUBSCRIBE".to_string(), source.channel.clone()])
        .await?;
    if confirm.is_error() {
        return Err(std::io::Error::other(format!(
            "SUBSCRIBE failed: {confirm:?}"
        )));
    }
    if !*first {
        // Messages sent while we were away are lost: start clean rather than stale.
        server.flush_for_resync();
    }
    *first = false;
    *backoff = Duration::from_millis(100);
    info!(
        "invalidation: subscribed to {}/{}",
        source.addr, source.channel
    );
    loop {
        let frame = conn.read_reply().await?;
        let (Frame::Array(parts) | Frame::Push(parts)) = frame else {
            continue;
        };
        if let [kind, _channel, Frame::Bulk(key)] = parts.as_slice()
            && kind
                .as_bytes()
                .is_some_and(|k| k.eq_ignore_ascii_case(b"message"))
        {
            server.invalidate(&Bytes::copy_from_slice(key));
        }
    }
}

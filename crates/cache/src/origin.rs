//! # The origin: the system of record behind the cache
//!
//! Any RESP server — infralab's kv, the shard router, or Redis itself — reached over the
//! network with [`service::RespClient`], exactly as a production cache talks to its
//! database. Connections are pooled: a request takes an idle connection (or opens one),
//! and gives it back only after a clean reply, so a connection in an unknown state (a
//! timeout mid-reply) is never reused. Every request has a deadline (`--origin-timeout`):
//! a slow origin must not hold a client forever.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use proto::Frame;
use service::RespClient;

/// Idle connections kept for reuse; more may be open while busy.
const MAX_IDLE: usize = 64;

/// Why an origin request failed (the client gets this text in an `-ERR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginError(pub String);

impl std::fmt::Display for OriginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub struct Origin {
    addr: String,
    timeout: Duration,
    idle: Mutex<Vec<RespClient>>,
}

impl Origin {
    pub fn new(addr: String, timeout: Duration) -> Self {
        Origin {
            addr,
            timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<RespClient>> {
        match self.idle.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn error(&self, why: impl std::fmt::Display) -> OriginError {
        OriginError(format!("origin {} unavailable: {why}", self.addr))
    }

    /// Sends one command and returns the origin's reply (which may itself be an error
    /// reply: that is the origin's answer, not a failure to reach it).
    ///
    /// A pooled connection may have been closed by the origin since it was last used
    /// (a restart); an `idempotent` request is then retried once on a fresh connection.
    pub async fn call(&self, words: Vec<Bytes>, idempotent: bool) -> Result<Frame, OriginError> {
        let pooled = self.idle().pop();
        let was_pooled = pooled.is_some();
        match self.call_on(pooled, words.clone()).await {
            Err(_) if was_pooled && idempotent => self.call_on(None, words).await,
            other => other,
        }
    }

    async fn call_on(
        &self,
        conn: Option<RespClient>,
        words: Vec<Bytes>,
    ) -> Result<Frame, OriginError> {
        let attempt = async {
            let mut conn = match conn {
                Some(c) => c,
                None => RespClient::connect(self.addr.as_str()).await?,
            };
            let reply = conn.call(words).await?;
            Ok::<_, std::io::Error>((conn, reply))
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok((conn, reply))) => {
                let mut idle = self.idle();
                if idle.len() < MAX_IDLE {
                    idle.push(conn);
                }
                Ok(reply)
            }
            Ok(Err(e)) => Err(self.error(e)),
            Err(_) => Err(self.error(format!("no reply within {} ms", self.timeout.as_millis()))),
        }
    }

    /// `GET key` at the origin: `Some(value)`, `None` if it has no such key.
    pub async fn get(&self, key: &Bytes) -> Result<Option<Bytes>, OriginError> {
        match self
            .call(vec![Bytes::from_static(b"GET"), key.clone()], true)
            .await?
        {
            Frame::Bulk(v) => Ok(Some(v)),
            Frame::Null => Ok(None),
            Frame::Error(e) => Err(OriginError(String::from_utf8_lossy(&e).into_owned())),
            other => Err(OriginError(format!(
                "origin {} sent an unexpected reply to GET: {other:?}",
                self.addr
            ))),
        }
    }
}

//! # beanstalkd's protocol, in front of the same engine
//!
//! A second listener (`--beanstalk-port`, 11300) speaks beanstalkd 1.12's text protocol,
//! so any beanstalkd client (greenstalk, beanstalkc, pheanstalk, go-beanstalk) works
//! against the broker's queues; a job put here can be received with `QRECV`, and a
//! message sent with `QSEND` reserved here. The two vocabularies name the same ideas:
//!
//! | beanstalkd | the engine (RESP) |
//! |---|---|
//! | tube | queue (`use` and `watch` do not create it; `put` and `reserve` do) |
//! | job id | message id (see below) |
//! | `put pri delay ttr` | `QSEND` with `PRIORITY` and `DELAY`; the TTR is kept for the job |
//! | `reserve` | `QRECV` of one message, its visibility timeout = the job's TTR |
//! | `delete` (reserved job) | `QACK` with the connection's receipt |
//! | `delete` (ready, delayed, buried job) | removal by id |
//! | `release pri delay` | `QNACK ... DELAY` |
//! | `touch` | `QEXTEND` by the job's TTR |
//! | `bury` | straight to the tube's dead-letter queue (`<tube>:dlq` or its `DEADLETTER`) |
//! | `kick`, `kick-job` | `QREDRIVE` of the tube's dead letters, or ending delays early |
//!
//! **Job ids.** A job's id *is* its message id: a number from sled's `generate_id`, which
//! never repeats and only grows, across restarts and crashes included. So the id is
//! stable: `INSERTED 42` over beanstalkd is `QSEND`'s `42`, `QRECV`'s id 42, and still 42
//! after a restart. What RESP calls a *receipt* (`42-1-<nonce>`, one per delivery) never
//! appears on this protocol: beanstalkd ties a reserved job to the connection that
//! reserved it, and so does this front-end, which keeps the receipt of each job the
//! connection reserved and uses it for `delete`, `release`, `bury` and `touch`. Another
//! connection naming the same id gets `NOT_FOUND`, as in beanstalkd.
//!
//! **Buried jobs** are dead letters: a buried job of tube `t` is a message of `t`'s
//! dead-letter queue whose origin is `t`. `QPEEK t:dlq` shows it, `QREDRIVE t:dlq`
//! kicks it, and a message dead-lettered over RESP (after `MAXDELIVERIES`) shows as
//! buried here.
//!
//! **No authentication.** beanstalkd's protocol has none, so `--requirepass` cannot apply
//! to this port. Rather than open a password-less door beside a password-protected one,
//! the broker refuses to start when `--requirepass` is set with a non-loopback `--bind`
//! and this listener is on (`--beanstalk-port 0` turns it off)
//! (see [`check_auth`]); on loopback it starts, and warns that this port has no password.
//!
//! - [`parse`]: the byte stream -> commands (bounded, linear, table-tested).
//! - [`commands`]: each command -> the shared engine -> beanstalkd's reply.
//! - [`state`]: what this front-end keeps beside the engine (TTRs, pauses, counters).
//! - [`stats`]: the YAML replies.

pub mod commands;
pub mod parse;
pub mod state;
pub mod stats;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use service::CancellationToken;
use service::protocol_port::{Protocol, listen};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;
use tracing::{debug, warn};

use crate::shared_engine::SharedEngine;
use commands::{Conn, Flow, Input};
use parse::{Codec, Command, MAX_LINE, Request};
use state::Beanstalk;

/// beanstalkd's port.
pub const DEFAULT_BEANSTALK_PORT: u16 = 11300;
/// beanstalkd's default `-z`.
pub const DEFAULT_MAX_JOB_SIZE: usize = 65_535;
/// Replies are written once this many bytes are waiting, or when the input runs dry.
const WRITE_AT: usize = 64 * 1024;

/// beanstalkd has no authentication: with a password set, listening beyond loopback
/// would let anyone around the password. Returns the refusal, if any.
pub fn check_auth(bind: &str, requirepass: bool) -> Result<(), String> {
    if !requirepass {
        return Ok(());
    }
    let loopback = bind == "localhost"
        || bind
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        warn!(
            "broker: --requirepass does not protect the beanstalkd port (the protocol has no \
             authentication); it listens on loopback only"
        );
        Ok(())
    } else {
        Err(format!(
            "broker: --requirepass is set and --bind {bind} is not loopback, but beanstalkd's \
             protocol has no authentication: bind to 127.0.0.1, turn its listener off with \
             --beanstalk-port 0, or drop the password"
        ))
    }
}

/// Binds the beanstalkd listener on `bind:port` (0 here: any free port) and serves until
/// `shutdown`. Returns the bound address and the listener's task.
pub(crate) async fn spawn(
    inner: Arc<SharedEngine>,
    service: &service::ServiceArgs,
    port: u16,
    max_job_size: usize,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    // beanstalkd's protocol has no reply before a command, so a refused client (protected
    // mode, --maxclients) is disconnected (`Protocol::refuse`'s default) and the log says why.
    let make = |_| Beanstalk::new(inner, max_job_size);
    let flag = "--beanstalk-port PORT";
    listen(
        "broker (beanstalkd protocol)",
        flag,
        service,
        port,
        make,
        shutdown,
    )
    .await
}

impl Protocol for Beanstalk {
    async fn serve(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        shutdown: CancellationToken,
    ) {
        self.connected();
        tokio::select! {
            _ = shutdown.cancelled() => {}
            r = serve(&self, stream) => {
                if let Err(e) = r {
                    debug!("beanstalk connection {peer}: {e}");
                }
            }
        }
        self.disconnected();
    }
}

/// One connection: decode what has arrived, run each command, write the replies once
/// the input runs dry (so pipelined commands get their replies in one write).
async fn serve(b: &Arc<Beanstalk>, stream: TcpStream) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let (reader, mut writer) = stream.into_split();
    let mut input = Input::new(reader, b.max_job_size + MAX_LINE + 2);
    let mut codec = Codec::new(b.max_job_size);
    let mut conn = Conn::new(b.clone());
    let mut out = BytesMut::new();
    loop {
        while let Some(request) = codec.decode(&mut input.buf)? {
            match request {
                Request::Error(error) => commands::error_line(&mut out, error),
                Request::Command(command) => {
                    // A reserve may block: what is already answered goes out first.
                    if matches!(command, Command::Reserve | Command::ReserveWithTimeout(_))
                        && !out.is_empty()
                    {
                        reply(b, &mut writer, &mut out).await?;
                    }
                    if conn.execute(b, command, &mut out, &mut input).await == Flow::Quit {
                        return reply(b, &mut writer, &mut out).await;
                    }
                }
            }
            if out.len() >= WRITE_AT {
                reply(b, &mut writer, &mut out).await?;
            }
        }
        if !out.is_empty() {
            reply(b, &mut writer, &mut out).await?;
        }
        if input.fill().await? == 0 {
            return Ok(());
        }
    }
}

/// Sends the replies gathered in `out`. Under `--fsync everysec` and `no` the changes
/// they confirm reach the kernel first (the redo log, see [`crate::redo`]): an
/// `INSERTED` must not go out for a job that a `kill -9` could still lose.
async fn reply(
    b: &Beanstalk,
    writer: &mut (impl AsyncWriteExt + Unpin),
    out: &mut BytesMut,
) -> std::io::Result<()> {
    b.inner.write_redo();
    writer.write_all(out).await?;
    out.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_refuses_the_unauthenticated_port_off_loopback_only() {
        assert!(check_auth("0.0.0.0", false).is_ok());
        assert!(check_auth("127.0.0.1", true).is_ok());
        assert!(check_auth("::1", true).is_ok());
        assert!(check_auth("localhost", true).is_ok());
        let refused = check_auth("0.0.0.0", true).unwrap_err();
        assert!(refused.contains("no authentication"), "{refused}");
        assert!(check_auth("10.0.0.5", true).is_err());
    }
}

//! # The Kafka wire protocol, in front of the same engine
//!
//! A second listener (`--kafka-port`, 9092) speaks Kafka's binary protocol, so `kcat` and
//! any librdkafka- or Java-based client can produce to and consume from the topics the
//! RESP side sees. A record produced over one protocol is read over the other: the log
//! stores Kafka's own v2 record batches, so a produced batch is stored as the client sent
//! it (the log only stamps the base offset, which the CRC does not cover), and a fetch
//! hands stored batches back byte for byte — compressed ones included: the client
//! decompresses.
//!
//! The protocol, in one paragraph: every request is a frame `length: i32, api_key: i16,
//! api_version: i16, correlation_id: i32, client_id, body`; every response is `length,
//! correlation_id, body`, in request order on the connection. A client first asks
//! `ApiVersions` which versions of which APIs the broker speaks and uses, per API, the
//! highest version both know. Encoding and decoding of the messages is the
//! `kafka-protocol` crate's; this module is the broker side: what each request *does*.
//!
//! - [`connection`]: one client's requests, in order; [`request_buffer`]: reading them
//!   without trusting their announced size; [`sasl`] and [`scram`]: `--requirepass` on
//!   this port.
//! - [`api_versions`]: what is implemented (and nothing more is advertised).
//! - [`metadata`]: Metadata, FindCoordinator, CreateTopics, DeleteTopics.
//! - [`produce`] and [`fetch`] (Fetch, with long polling, and ListOffsets).
//! - [`groups`]: the JoinGroup/SyncGroup barrier; [`group_api`]: the group APIs and
//!   committed offsets, shared with the RESP front-end's coordinator.
//! - [`transactions`]: InitProducerId and the transaction APIs (idempotent and
//!   transactional producers, see `crate::txn_coordinator`).
//! - [`admin`]: topic configs, CreatePartitions, DeleteRecords, OffsetDelete,
//!   DescribeCluster.
//!
//! There is one broker (node 0), the leader of every partition; leader epochs are -1 so
//! clients skip epoch validation.

pub mod admin;
pub mod api_versions;
pub mod connection;
pub mod fetch;
pub mod group_api;
pub mod groups;
pub mod metadata;
pub mod produce;
pub mod request_buffer;
pub mod sasl;
pub mod scram;
pub mod stats;
pub mod transactions;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::ResponseHeader;
use kafka_protocol::protocol::Encodable;
use service::CancellationToken;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::server::StreamServer;
use groups::KafkaGroups;
use sasl::Credentials;

/// Kafka's default port.
pub const DEFAULT_KAFKA_PORT: u16 = 9092;
/// Largest request accepted by default (Kafka's `socket.request.max.bytes`).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 100 * 1024 * 1024;
/// Default memory all partial requests together may hold: five requests of the largest size.
pub const DEFAULT_MAX_BUFFERED_REQUEST_BYTES: usize = 5 * DEFAULT_MAX_REQUEST_BYTES;
/// How often group sessions and rebalance deadlines are checked.
const GROUP_TICK: Duration = Duration::from_millis(100);

/// `--kafka-port`: a port, `0` for no Kafka listener, or `auto` for a free port (the
/// flag every second protocol's port shares, see [`service::protocol_port`]).
pub type KafkaPort = service::protocol_port::ProtocolPort;

/// How the Kafka listener is set up, from the server's flags. (No `Debug`: it holds the
/// password.)
#[derive(Clone)]
pub struct Listener {
    pub bind: String,
    /// 0: the OS picks.
    pub port: u16,
    pub advertised_host: Option<String>,
    /// `None`: the bound port.
    pub advertised_port: Option<u16>,
    pub max_request_bytes: usize,
    /// `--requirepass`: clients must authenticate with SASL.
    pub password: Option<String>,
    /// `--protected-mode`: without a password, only clients on this host are served
    /// ([`service::protected`], the rule every listener shares).
    pub protected_mode: bool,
    /// `--tcp-backlog`, as for the RESP listener.
    pub tcp_backlog: u32,
}

impl Listener {
    pub fn new(args: &crate::Args, port: u16) -> Listener {
        Listener {
            bind: args.service.bind.clone(),
            port,
            advertised_host: args.kafka_advertised_host.clone(),
            advertised_port: args.kafka_advertised_port,
            max_request_bytes: args.kafka_max_request_bytes,
            password: args.service.requirepass.clone().filter(|p| !p.is_empty()),
            protected_mode: args.service.protected_mode.on,
            tcp_backlog: args.service.tcp_backlog,
        }
    }
}

/// The Kafka front-end's state: the engine, how clients reach this broker, and the
/// groups it runs.
#[derive(Debug)]
pub struct Kafka {
    pub server: Arc<StreamServer>,
    /// Host and port put in Metadata and FindCoordinator answers.
    pub advertised_host: String,
    pub advertised_port: i32,
    /// Largest request of an authenticated client.
    pub max_request: usize,
    /// The password clients must prove, if `--requirepass` is set.
    credentials: Option<Credentials>,
    groups: Mutex<KafkaGroups>,
    /// Changes whenever a group changes: requests waiting at a barrier look again.
    group_changes: watch::Sender<()>,
}

impl Kafka {
    pub fn groups(&self) -> MutexGuard<'_, KafkaGroups> {
        crate::lock(&self.groups)
    }

    /// Publishes `group` to the shared coordinator and wakes requests waiting on groups.
    fn group_changed(&self, groups: &KafkaGroups, group: &str) {
        groups.publish(group, &mut self.server.coordinator());
        self.group_changes.send_replace(());
    }
}

/// Binds the Kafka listener (port 0: any free port) and serves until `shutdown`.
/// Returns the bound address.
pub async fn spawn(
    server: Arc<StreamServer>,
    config: Listener,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = service::listener::bind(
        "stream (Kafka protocol)",
        &config.bind,
        config.port,
        config.tcp_backlog,
        "--kafka-port PORT",
    )
    .await?;
    let addr = listener.local_addr()?;
    let advertised_host = config.advertised_host.unwrap_or_else(|| {
        if addr.ip().is_unspecified() {
            "localhost".to_string()
        } else {
            addr.ip().to_string()
        }
    });
    info!(
        "stream: Kafka protocol on {addr} (advertised as {advertised_host}:{}){}",
        config.advertised_port.unwrap_or(addr.port()),
        if config.password.is_some() {
            ", SASL PLAIN and SCRAM-SHA-256 required"
        } else {
            ""
        }
    );
    let (protected_mode, password_set) = (config.protected_mode, config.password.is_some());
    service::protected::warn_if_exposed(
        "stream (Kafka protocol)",
        addr,
        protected_mode,
        password_set,
    );
    let kafka = Arc::new(Kafka {
        server,
        advertised_host,
        advertised_port: i32::from(config.advertised_port.unwrap_or(addr.port())),
        max_request: config.max_request_bytes,
        credentials: config.password.as_deref().map(Credentials::new),
        groups: Mutex::new(KafkaGroups::default()),
        group_changes: watch::Sender::new(()),
    });
    tokio::spawn(group_ticker(kafka.clone(), shutdown.clone()));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        // Kafka has no frame to send before the client's first request:
                        // a refused client is disconnected, and the log says why.
                        let local = stream.local_addr().map_or(addr.ip(), |a| a.ip());
                        if service::protected::refusal(protected_mode, local, password_set, peer.ip())
                            .is_some()
                        {
                            warn!(
                                "stream (Kafka protocol): refused {peer}: protected mode is on and \
                                 no password is set (--requirepass, or --protected-mode no)"
                            );
                            continue;
                        }
                        let kafka = kafka.clone();
                        let shutdown = shutdown.clone();
                        tokio::spawn(async move {
                            tokio::select! {
                                _ = shutdown.cancelled() => {}
                                r = connection::serve(&kafka, stream, peer) => {
                                    if let Err(e) = r {
                                        debug!("kafka connection {peer}: {e}");
                                    }
                                }
                            }
                        });
                    }
                    Err(e) => {
                        warn!("kafka accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
            }
        }
    });
    Ok(addr)
}

/// Expires silent members and completes barriers past their deadline.
async fn group_ticker(kafka: Arc<Kafka>, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(GROUP_TICK);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = interval.tick() => {
                let now = kafka.server.now_ms();
                let mut groups = kafka.groups();
                for name in groups.tick(now) {
                    info!("kafka group {name}: rebalancing (a member timed out or missed the barrier)");
                    kafka.group_changed(&groups, &name);
                }
            }
        }
    }
}

/// What a handler needs to know about the request besides its body.
#[derive(Debug, Clone)]
pub struct Request {
    pub version: i16,
    pub correlation_id: i32,
    pub response_header_version: i16,
    pub client_id: String,
    pub client_host: String,
}

/// Appends `length, header, body` to the output.
fn respond<R: Encodable>(out: &mut BytesMut, req: &Request, body: &R) -> std::io::Result<()> {
    let start = out.len();
    out.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(req.correlation_id)
        .encode(out, req.response_header_version)
        .map_err(invalid)?;
    body.encode(out, req.version).map_err(invalid)?;
    let len = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

fn invalid(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

/// A topic name from the wire.
fn name(s: &kafka_protocol::protocol::StrBytes) -> String {
    s.as_str().to_string()
}

fn str_bytes(s: impl Into<String>) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.into())
}

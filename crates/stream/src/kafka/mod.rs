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
//! - [`api_versions`]: what is implemented (and nothing more is advertised).
//! - [`metadata`]: Metadata, FindCoordinator, CreateTopics, DeleteTopics.
//! - [`produce`] and [`fetch`] (Fetch, with long polling, and ListOffsets).
//! - [`groups`]: the JoinGroup/SyncGroup barrier; [`group_api`]: the group APIs and
//!   committed offsets, shared with the RESP front-end's coordinator.
//!
//! There is one broker (node 0), the leader of every partition; leader epochs are -1 so
//! clients skip epoch validation.

pub mod api_versions;
pub mod fetch;
pub mod group_api;
pub mod groups;
pub mod metadata;
pub mod produce;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use service::CancellationToken;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::server::StreamServer;
use groups::KafkaGroups;

/// Kafka's default port.
pub const DEFAULT_KAFKA_PORT: u16 = 9092;
/// Largest request accepted (Kafka's `socket.request.max.bytes`).
const MAX_REQUEST: usize = 100 * 1024 * 1024;
/// How often group sessions and rebalance deadlines are checked.
const GROUP_TICK: Duration = Duration::from_millis(100);

/// The Kafka front-end's state: the engine, how clients reach this broker, and the
/// groups it runs.
#[derive(Debug)]
pub struct Kafka {
    pub server: Arc<StreamServer>,
    /// Host and port put in Metadata and FindCoordinator answers.
    pub advertised_host: String,
    pub advertised_port: i32,
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

/// Binds the Kafka listener on `bind:port` (port 0: any free port) and serves until
/// `shutdown`. Returns the bound address.
pub async fn spawn(
    server: Arc<StreamServer>,
    bind: &str,
    port: u16,
    advertised_host: Option<String>,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = service::listener::bind(
        "stream (Kafka protocol)",
        bind,
        port,
        service::settings::DEFAULT_TCP_BACKLOG,
        "--kafka-port PORT",
    )
    .await?;
    let addr = listener.local_addr()?;
    let advertised_host = advertised_host.unwrap_or_else(|| {
        if addr.ip().is_unspecified() {
            "localhost".to_string()
        } else {
            addr.ip().to_string()
        }
    });
    info!(
        "stream: Kafka protocol on {addr} (advertised as {advertised_host}:{})",
        addr.port()
    );
    let kafka = Arc::new(Kafka {
        server,
        advertised_host,
        advertised_port: i32::from(addr.port()),
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
                        let kafka = kafka.clone();
                        let shutdown = shutdown.clone();
                        tokio::spawn(async move {
                            tokio::select! {
                                _ = shutdown.cancelled() => {}
                                r = serve_connection(&kafka, stream, peer) => {
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

/// One client connection: requests are answered in order. Requests already buffered are
/// all handled before the answers are written, so a pipelining client gets few writes.
async fn serve_connection(
    kafka: &Kafka,
    mut stream: TcpStream,
    peer: SocketAddr,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut input = BytesMut::with_capacity(64 * 1024);
    let mut output = BytesMut::with_capacity(64 * 1024);
    let client_host = format!("/{}", peer.ip());
    loop {
        while let Some(frame) = next_frame(&mut input)? {
            handle(kafka, frame, &client_host, &mut output).await?;
        }
        if !output.is_empty() {
            stream.write_all(&output).await?;
            output.clear();
        }
        if stream.read_buf(&mut input).await? == 0 {
            return Ok(());
        }
    }
}

/// Splits one length-prefixed request off the input, if it has arrived whole.
fn next_frame(input: &mut BytesMut) -> std::io::Result<Option<Bytes>> {
    if input.len() < 4 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([input[0], input[1], input[2], input[3]]);
    let len = usize::try_from(len)
        .ok()
        .filter(|l| (8..=MAX_REQUEST).contains(l))
        .ok_or_else(|| std::io::Error::other(format!("bad request size {len}")))?;
    if input.len() < 4 + len {
        input.reserve(4 + len - input.len());
        return Ok(None);
    }
    input.advance(4);
    Ok(Some(input.split_to(len).freeze()))
}

/// Decodes, serves and encodes one request. An `Err` closes the connection (only for
/// requests that cannot even be parsed).
async fn handle(
    kafka: &Kafka,
    mut frame: Bytes,
    client_host: &str,
    out: &mut BytesMut,
) -> std::io::Result<()> {
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Some(api) = api_versions::supported(api_key, version) else {
        debug!("unsupported request: api {api_key} version {version}");
        api_versions::unsupported(api_key, correlation_id, out);
        return Ok(());
    };
    let header =
        RequestHeader::decode(&mut frame, api.request_header_version(version)).map_err(invalid)?;
    let client_id = header
        .client_id
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_default();
    let request = Request {
        version,
        correlation_id,
        response_header_version: api.response_header_version(version),
        client_id,
        client_host: client_host.to_string(),
    };
    macro_rules! serve {
        ($handler:path) => {{
            let body = Decodable::decode(&mut frame, version).map_err(invalid)?;
            if let Some(response) = $handler(kafka, body, &request).await {
                respond(out, &request, &response)?;
            }
        }};
    }
    match api {
        ApiKey::ApiVersions => serve!(api_versions::api_versions),
        ApiKey::Metadata => serve!(metadata::metadata),
        ApiKey::FindCoordinator => serve!(metadata::find_coordinator),
        ApiKey::CreateTopics => serve!(metadata::create_topics),
        ApiKey::DeleteTopics => serve!(metadata::delete_topics),
        ApiKey::Produce => serve!(produce::produce),
        ApiKey::Fetch => serve!(fetch::fetch),
        ApiKey::ListOffsets => serve!(fetch::list_offsets),
        ApiKey::JoinGroup => serve!(group_api::join_group),
        ApiKey::SyncGroup => serve!(group_api::sync_group),
        ApiKey::Heartbeat => serve!(group_api::heartbeat),
        ApiKey::LeaveGroup => serve!(group_api::leave_group),
        ApiKey::OffsetCommit => serve!(group_api::offset_commit),
        ApiKey::OffsetFetch => serve!(group_api::offset_fetch),
        ApiKey::DescribeGroups => serve!(group_api::describe_groups),
        ApiKey::ListGroups => serve!(group_api::list_groups),
        _ => api_versions::unsupported(api_key, correlation_id, out),
    }
    Ok(())
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

//! One Kafka client connection: read requests (see [`super::request_buffer`]), let
//! through only what its authentication state allows (see [`super::sasl`]), serve them
//! in order, write the answers.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::debug;

use super::request_buffer::RequestBuffer;
use super::sasl::{self, Authentication};
use super::stats::KafkaStats;
use super::{
    Kafka, Request, admin, api_versions, fetch, group_api, invalid, metadata, produce, respond,
    transactions,
};

/// The output buffer is replaced by an empty one after a write this large, so one big
/// fetch answer does not stay allocated for the life of the connection.
const KEEP_OUTPUT_CAPACITY: usize = 64 * 1024;

/// Whether the connection goes on after a request.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Continue,
    /// Write what is pending, then close (a failed authentication, a refused request).
    Close,
}

/// Serves one connection until the client leaves or is refused. Requests already
/// buffered are all handled before the answers are written, so a pipelining client gets
/// few writes.
pub async fn serve(kafka: &Kafka, mut stream: TcpStream, peer: SocketAddr) -> std::io::Result<()> {
    let stats = &kafka.server.kafka_stats;
    stats.connected_clients.fetch_add(1, Ordering::Relaxed);
    KafkaStats::add(&stats.total_connections_received, 1);
    let result = serve_requests(kafka, &mut stream, peer).await;
    stats.connected_clients.fetch_sub(1, Ordering::Relaxed);
    result
}

async fn serve_requests(
    kafka: &Kafka,
    stream: &mut TcpStream,
    peer: SocketAddr,
) -> std::io::Result<()> {
    let stats = &kafka.server.kafka_stats;
    stream.set_nodelay(true)?;
    let mut input = RequestBuffer::new(&stats.buffered_requests);
    let mut output = BytesMut::new();
    let mut auth = Authentication::new(kafka.credentials.as_ref());
    let client_host = format!("/{}", peer.ip());
    // Strangers get Kafka's `sasl.server.max.receive.size`, clients the full size.
    let max = |auth: &Authentication| {
        if auth.is_done() {
            kafka.max_request
        } else {
            sasl::MAX_UNAUTHENTICATED_REQUEST.min(kafka.max_request)
        }
    };
    loop {
        let mut next = Next::Continue;
        while next == Next::Continue {
            let Some(frame) = input.next_request(max(&auth)).inspect_err(|_| {
                KafkaStats::add(&stats.rejected_requests, 1);
            })?
            else {
                break;
            };
            next = handle(kafka, &mut auth, frame, &client_host, &mut output).await?;
        }
        if !output.is_empty() {
            stream.write_all(&output).await?;
            output.clear();
            if output.capacity() > KEEP_OUTPUT_CAPACITY {
                output = BytesMut::new();
            }
        }
        if next == Next::Close {
            return Ok(());
        }
        let read = input.read_from(stream, max(&auth)).await.inspect_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidData {
                KafkaStats::add(&stats.rejected_requests, 1);
            }
        })?;
        if read == 0 {
            return Ok(());
        }
        KafkaStats::add(&stats.total_net_input_bytes, read as u64);
    }
}

/// Decodes, serves and encodes one request. An `Err` closes the connection (only for
/// requests that cannot even be parsed).
async fn handle(
    kafka: &Kafka,
    auth: &mut Authentication,
    mut frame: Bytes,
    client_host: &str,
    out: &mut BytesMut,
) -> std::io::Result<Next> {
    if auth.expects_bare_token() {
        // After SaslHandshake v0: a bare SASL message, answered bare.
        let Some(reply) = sasl::bare_token(kafka.credentials.as_ref(), auth, &frame).await else {
            KafkaStats::add(&kafka.server.kafka_stats.auth_failures, 1);
            return Ok(Next::Close);
        };
        out.put_i32(reply.len() as i32);
        out.put_slice(&reply);
        return Ok(Next::Continue);
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    if !auth.is_done() && !ApiKey::try_from(api_key).is_ok_and(|api| auth.allows(api)) {
        // Kafka closes the connection without an answer: this client is not speaking
        // SASL, or not in order.
        debug!("kafka: api {api_key} before authentication; closing the connection");
        KafkaStats::add(&kafka.server.kafka_stats.auth_failures, 1);
        return Ok(Next::Close);
    }
    let Some(api) = api_versions::supported(api_key, version) else {
        debug!("unsupported request: api {api_key} version {version}");
        api_versions::unsupported(api_key, correlation_id, out);
        return Ok(Next::Continue);
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
    macro_rules! sasl_step {
        ($step:expr) => {{
            let step = $step;
            respond(out, &request, &step.response)?;
            if step.failed {
                KafkaStats::add(&kafka.server.kafka_stats.auth_failures, 1);
            }
            if step.close {
                return Ok(Next::Close);
            }
        }};
    }
    let credentials = kafka.credentials.as_ref();
    match api {
        ApiKey::ApiVersions => serve!(api_versions::api_versions),
        ApiKey::SaslHandshake => {
            let body = Decodable::decode(&mut frame, version).map_err(invalid)?;
            sasl_step!(sasl::handshake(credentials, auth, &body, version))
        }
        ApiKey::SaslAuthenticate => {
            let body = Decodable::decode(&mut frame, version).map_err(invalid)?;
            sasl_step!(sasl::authenticate(credentials, auth, &body).await)
        }
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
        ApiKey::InitProducerId => serve!(transactions::init_producer_id),
        ApiKey::AddPartitionsToTxn => serve!(transactions::add_partitions_to_txn),
        ApiKey::AddOffsetsToTxn => serve!(transactions::add_offsets_to_txn),
        ApiKey::TxnOffsetCommit => serve!(transactions::txn_offset_commit),
        ApiKey::EndTxn => serve!(transactions::end_txn),
        ApiKey::DescribeProducers => serve!(transactions::describe_producers),
        ApiKey::ListTransactions => serve!(transactions::list_transactions),
        ApiKey::DescribeTransactions => serve!(transactions::describe_transactions),
        ApiKey::DescribeConfigs => serve!(admin::describe_configs),
        ApiKey::AlterConfigs => serve!(admin::alter_configs),
        ApiKey::IncrementalAlterConfigs => serve!(admin::incremental_alter_configs),
        ApiKey::CreatePartitions => serve!(admin::create_partitions),
        ApiKey::DeleteRecords => serve!(admin::delete_records),
        ApiKey::OffsetDelete => serve!(admin::offset_delete),
        ApiKey::DescribeCluster => serve!(admin::describe_cluster),
        _ => api_versions::unsupported(api_key, correlation_id, out),
    }
    Ok(Next::Continue)
}

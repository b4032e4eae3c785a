//! ApiVersions: the APIs and versions this broker implements — exactly those, so a client
//! never picks a version it would be refused.
//!
//! A request for anything else is answered, not dropped: an `ApiVersions` request of a
//! version we do not know gets a version-0 answer with `UNSUPPORTED_VERSION` and our list
//! (as Kafka does, so the client can retry with a version we know); any other API or
//! version gets a response of the correlation id followed by the error code
//! `UNSUPPORTED_VERSION`, and the connection stays open.

use bytes::{BufMut, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::Encodable;

use super::{Kafka, Request};

/// `(api, min version, max version)` of everything implemented.
///
/// The upper bounds stop before versions that change what a request means: Metadata 10+
/// and Fetch 13+ identify topics by id, Produce 10+ adds leader discovery, FindCoordinator
/// 4+ batches keys, OffsetFetch 8+ batches groups.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 9),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::FindCoordinator, 0, 3),
    (ApiKey::JoinGroup, 0, 7),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 4),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 0, 5),
    (ApiKey::DeleteTopics, 0, 5),
    // Idempotent and transactional producers (see `transactions`). AddPartitionsToTxn
    // 4+ batches transactions (broker to broker), EndTxn 5+ returns a bumped epoch
    // (KIP-890): neither is what a client sends here.
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 3),
    (ApiKey::TxnOffsetCommit, 0, 3),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
    (ApiKey::DescribeTransactions, 0, 0),
    // Admin (see `admin`).
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeCluster, 0, 1),
    // SASL (see `sasl`).
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
];

/// The API, if `key` at `version` is implemented.
pub fn supported(key: i16, version: i16) -> Option<ApiKey> {
    SUPPORTED
        .iter()
        .find(|(api, min, max)| *api as i16 == key && (*min..=*max).contains(&version))
        .map(|(api, _, _)| *api)
}

fn api_list() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|(api, min, max)| {
            ApiVersion::default()
                .with_api_key(*api as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect()
}

pub async fn api_versions(
    _: &Kafka,
    _: ApiVersionsRequest,
    _: &Request,
) -> Option<ApiVersionsResponse> {
    Some(ApiVersionsResponse::default().with_api_keys(api_list()))
}

/// Answers a request this broker does not implement (see the module docs).
pub fn unsupported(key: i16, correlation_id: i32, out: &mut BytesMut) {
    let code = ResponseError::UnsupportedVersion.code();
    let start = out.len();
    out.put_i32(0);
    out.put_i32(correlation_id);
    if key == ApiKey::ApiVersions as i16 {
        let body = ApiVersionsResponse::default()
            .with_error_code(code)
            .with_api_keys(api_list());
        if body.encode(out, 0).is_err() {
            out.put_i16(code);
        }
    } else {
        out.put_i16(code);
    }
    let len = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

//! The admin APIs that Kafka's admin clients call: topic configs (DescribeConfigs,
//! AlterConfigs, IncrementalAlterConfigs), CreatePartitions, DeleteRecords, OffsetDelete
//! and DescribeCluster.
//!
//! Only configs the log really has are described and settable: `retention.ms`,
//! `retention.bytes`, `segment.bytes`, `segment.ms`, `index.interval.bytes`, and
//! `cleanup.policy`, which is always `delete` (whole old segments go; there is no
//! compaction of user topics). Any other key is `INVALID_CONFIG`, so a tool never
//! believes it set something that has no effect. A change applies to the live log at
//! once: the next retention sweep obeys the new `retention.*`.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, BrokerId, CreatePartitionsRequest,
    CreatePartitionsResponse, DeleteRecordsRequest, DeleteRecordsResponse, DescribeClusterRequest,
    DescribeClusterResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, OffsetDeleteRequest,
    OffsetDeleteResponse, alter_configs_response, incremental_alter_configs_response,
};
use kafka_protocol::protocol::StrBytes;

use super::metadata::{NODE_ID, partition_of, topic_error_code};
use super::produce::log_error_code;
use super::{Kafka, Request, name, str_bytes};
use crate::topic::{TopicConfig, TopicError};

/// ConfigResource types.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
/// DescribeConfigs' `config_source`.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;
/// IncrementalAlterConfigs' operations.
const SET: i8 = 0;
const DELETE: i8 = 1;
/// The one cleanup policy there is.
const CLEANUP_POLICY: &str = "cleanup.policy";

/// Kafka's config type of a topic config (DescribeConfigs v3+): INT 3, LONG 5, LIST 7.
fn config_type(key: &str) -> i8 {
    match key {
        "segment.bytes" | "index.interval.bytes" => 3,
        CLEANUP_POLICY => 7,
        _ => 5,
    }
}

/// A topic's configs as Kafka names them, with whether each is the server default.
fn topic_entries(config: TopicConfig, defaults: TopicConfig) -> Vec<(String, String, bool)> {
    let defaults: Vec<(&str, String)> = defaults.entries();
    let mut out: Vec<(String, String, bool)> = config
        .entries()
        .into_iter()
        .filter(|(k, _)| *k != "partitions")
        .map(|(k, v)| {
            let is_default = defaults.iter().any(|(dk, dv)| *dk == k && *dv == v);
            (k.to_string(), v, is_default)
        })
        .collect();
    out.push((CLEANUP_POLICY.to_string(), "delete".to_string(), true));
    out
}

/// Applies `changes` to a copy of `config` (checking every key and value).
fn changed(mut config: TopicConfig, changes: &[(String, String)]) -> Result<TopicConfig, String> {
    for (key, value) in changes {
        if key == CLEANUP_POLICY {
            if value != "delete" {
                return Err(format!(
                    "cleanup.policy={value} is not supported: this log only deletes old segments"
                ));
            }
        } else if key == "partitions" {
            return Err("the partition count is changed with CreatePartitions".into());
        } else {
            config.set(key, value)?;
        }
    }
    Ok(config)
}

pub async fn describe_configs(
    kafka: &Kafka,
    req: DescribeConfigsRequest,
    _: &Request,
) -> Option<DescribeConfigsResponse> {
    let server = &kafka.server;
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let wanted = |key: &str| {
                r.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| k.as_str() == key))
            };
            let entries: Vec<(String, String, bool, i8)> = match r.resource_type {
                TOPIC => match server.topics.require(r.resource_name.as_str()) {
                    Ok(topic) => topic_entries(topic.config(), server.defaults)
                        .into_iter()
                        .map(|(k, v, d)| {
                            let source = if d {
                                DEFAULT_CONFIG
                            } else {
                                DYNAMIC_TOPIC_CONFIG
                            };
                            (k, v, false, source)
                        })
                        .collect(),
                    Err(e) => {
                        return result
                            .with_error_code(topic_error_code(&e))
                            .with_error_message(Some(str_bytes(e.to_string())));
                    }
                },
                BROKER => broker_entries(kafka),
                _ => {
                    return result
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(str_bytes("only topic and broker configs")));
                }
            };
            let configs = entries
                .into_iter()
                .filter(|(k, ..)| wanted(k))
                .map(|(k, v, read_only, source)| {
                    DescribeConfigsResourceResult::default()
                        .with_config_type(config_type(&k))
                        .with_name(str_bytes(k))
                        .with_value(Some(str_bytes(v)))
                        .with_read_only(read_only)
                        .with_config_source(source)
                })
                .collect();
            result.with_configs(configs)
        })
        .collect();
    Some(DescribeConfigsResponse::default().with_results(results))
}

/// The broker's settings that shape topics (read-only: they are flags).
fn broker_entries(kafka: &Kafka) -> Vec<(String, String, bool, i8)> {
    let server = &kafka.server;
    let d = server.defaults;
    [
        ("log.retention.ms", d.log.retention_ms.to_string()),
        ("log.retention.bytes", d.log.retention_bytes.to_string()),
        ("log.segment.bytes", d.log.segment_bytes.to_string()),
        ("num.partitions", d.partitions.to_string()),
        ("auto.create.topics.enable", server.auto_create.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v, true, STATIC_BROKER_CONFIG))
    .collect()
}

/// Checks and (unless `validate_only`) applies a topic's new configs; the error code and
/// message.
fn alter_topic(
    kafka: &Kafka,
    topic: &StrBytes,
    resource_type: i8,
    changes: Result<Vec<(String, String)>, String>,
    validate_only: bool,
) -> (i16, Option<String>) {
    let topic = topic.as_str();
    if resource_type != TOPIC {
        return (
            ResponseError::InvalidRequest.code(),
            Some("only topic configs can be altered; broker settings are flags".into()),
        );
    }
    let server = &kafka.server;
    let result = server.topics.require(topic).and_then(|t| {
        let changes = changes.map_err(TopicError::InvalidConfig)?;
        changed(t.config(), &changes).map_err(TopicError::InvalidConfig)?;
        if !validate_only {
            let real: Vec<(String, String)> = changes
                .into_iter()
                .filter(|(k, _)| k != CLEANUP_POLICY)
                .collect();
            server.topics.alter(topic, &real)?;
        }
        Ok(())
    });
    match result {
        Ok(()) => (0, None),
        Err(e) => (topic_error_code(&e), Some(e.to_string())),
    }
}

/// The answer for one resource of AlterConfigs or IncrementalAlterConfigs (two types of
/// the same shape).
macro_rules! altered {
    ($ty:ty, $resource:expr, $result:expr) => {{
        let (code, message) = $result;
        <$ty>::default()
            .with_error_code(code)
            .with_error_message(message.map(str_bytes))
            .with_resource_type($resource.resource_type)
            .with_resource_name($resource.resource_name)
    }};
}

/// AlterConfigs replaces a topic's whole config: keys not named go back to the defaults.
pub async fn alter_configs(
    kafka: &Kafka,
    req: AlterConfigsRequest,
    _: &Request,
) -> Option<AlterConfigsResponse> {
    let defaults = kafka.server.defaults.entries();
    let responses = req
        .resources
        .into_iter()
        .map(|r| {
            let mut changes: Vec<(String, String)> = defaults
                .iter()
                .filter(|(k, _)| *k != "partitions")
                .filter(|(k, _)| !r.configs.iter().any(|c| c.name.as_str() == *k))
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            let mut missing = None;
            for c in &r.configs {
                match &c.value {
                    Some(v) => changes.push((c.name.to_string(), v.to_string())),
                    None => missing = Some(format!("no value for {}", c.name.as_str())),
                }
            }
            let changes = missing.map_or(Ok(changes), Err);
            let result = alter_topic(
                kafka,
                &r.resource_name,
                r.resource_type,
                changes,
                req.validate_only,
            );
            altered!(
                alter_configs_response::AlterConfigsResourceResponse,
                r,
                result
            )
        })
        .collect();
    Some(AlterConfigsResponse::default().with_responses(responses))
}

/// IncrementalAlterConfigs: SET a key, or DELETE it (back to the default); APPEND and
/// SUBTRACT are for list configs, which only `cleanup.policy` is — and it has one value.
pub async fn incremental_alter_configs(
    kafka: &Kafka,
    req: IncrementalAlterConfigsRequest,
    _: &Request,
) -> Option<IncrementalAlterConfigsResponse> {
    let defaults = kafka.server.defaults.entries();
    let responses = req
        .resources
        .into_iter()
        .map(|r| {
            let changes: Result<Vec<(String, String)>, String> = r
                .configs
                .iter()
                .map(|c| {
                    let key = c.name.to_string();
                    match (c.config_operation, &c.value) {
                        (SET, Some(v)) => Ok((key, v.to_string())),
                        (DELETE, _) if key == CLEANUP_POLICY => Ok((key, "delete".into())),
                        (DELETE, _) => defaults
                            .iter()
                            .find(|(k, _)| *k == key && key != "partitions")
                            .map(|(_, v)| (key.clone(), v.clone()))
                            .ok_or_else(|| format!("unknown topic config '{key}'")),
                        (SET, None) => Err(format!("no value for {key}")),
                        (op, _) => Err(format!(
                            "operation {op} on {key}: only SET (0) and DELETE (1) apply to these configs"
                        )),
                    }
                })
                .collect();
            let result = alter_topic(kafka, &r.resource_name, r.resource_type, changes, req.validate_only);
            altered!(incremental_alter_configs_response::AlterConfigsResourceResponse, r, result)
        })
        .collect();
    Some(IncrementalAlterConfigsResponse::default().with_responses(responses))
}

/// CreatePartitions: more partitions for a live topic. Keys then hash to other
/// partitions (`murmur2(key) % count` changed), as in Kafka; consumer groups subscribed
/// to the topic rebalance onto the new partitions.
pub async fn create_partitions(
    kafka: &Kafka,
    req: CreatePartitionsRequest,
    _: &Request,
) -> Option<CreatePartitionsResponse> {
    let server = &kafka.server;
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = name(&t.name.0);
            let result = match (server.topics.require(&topic), u32::try_from(t.count)) {
                (Err(e), _) => Err(e),
                (Ok(_), Err(_)) => Err(TopicError::InvalidConfig(format!(
                    "{} is not a partition count",
                    t.count
                ))),
                (Ok(existing), Ok(count)) if req.validate_only => {
                    if count > existing.partition_count() {
                        Ok(())
                    } else {
                        Err(TopicError::InvalidConfig(format!(
                            "topic '{topic}' has {} partitions; the new count must be larger",
                            existing.partition_count()
                        )))
                    }
                }
                (Ok(_), Ok(count)) => server.topics.add_partitions(&topic, count, server.now_ms()),
            };
            let result = match result {
                Ok(()) if !req.validate_only => {
                    let counts = server.partition_counts();
                    server.coordinator().topic_changed(&topic, &counts);
                    let mut groups = kafka.groups();
                    for group in groups.topic_grew(&topic, server.now_ms()) {
                        kafka.group_changed(&groups, &group);
                    }
                    Ok(())
                }
                other => other,
            };
            let (code, message) = match result {
                Ok(()) => (0, None),
                Err(TopicError::InvalidConfig(m)) => {
                    (ResponseError::InvalidPartitions.code(), Some(m))
                }
                Err(e) => (topic_error_code(&e), Some(e.to_string())),
            };
            CreatePartitionsTopicResult::default()
                .with_name(t.name)
                .with_error_code(code)
                .with_error_message(message.map(str_bytes))
        })
        .collect();
    Some(CreatePartitionsResponse::default().with_results(results))
}

/// DeleteRecords: moves a partition's log start offset forward (whole segments below it
/// are deleted; the rest become unreadable), as retention would, but on request.
pub async fn delete_records(
    kafka: &Kafka,
    req: DeleteRecordsRequest,
    _: &Request,
) -> Option<DeleteRecordsResponse> {
    let server = &kafka.server;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = server.topics.require(&name(&t.name.0));
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let response = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    let partition = partition_of(&topic, p.partition_index);
                    // -1: everything (up to the high watermark).
                    let result = partition.and_then(|partition| {
                        let before = if p.offset == -1 {
                            partition.end_offset()
                        } else {
                            u64::try_from(p.offset)
                                .map_err(|_| ResponseError::OffsetOutOfRange.code())?
                        };
                        partition
                            .delete_records(before, server.now_ms())
                            .map_err(|e| log_error_code(&e))
                    });
                    match result {
                        Ok(start) => response.with_low_watermark(start as i64),
                        Err(code) => response.with_error_code(code),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    Some(DeleteRecordsResponse::default().with_topics(topics))
}

/// OffsetDelete: forgets a group's committed offsets, unless the group is consuming the
/// topic right now (`GROUP_SUBSCRIBED_TO_TOPIC`), as Kafka.
pub async fn offset_delete(
    kafka: &Kafka,
    req: OffsetDeleteRequest,
    _: &Request,
) -> Option<OffsetDeleteResponse> {
    let server = &kafka.server;
    let group = name(&req.group_id.0);
    let subscribed: Vec<String> = server
        .coordinator()
        .group(&group)
        .map(|g| g.topics())
        .unwrap_or_default();
    let mut deletes = Vec::new();
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = name(&t.name.0);
        let in_use = subscribed.contains(&topic);
        let partitions = t
            .partitions
            .iter()
            .map(|p| {
                let code = if in_use {
                    ResponseError::GroupSubscribedToTopic.code()
                } else if let Ok(partition) = u32::try_from(p.partition_index) {
                    deletes.push((topic.clone(), partition));
                    0
                } else {
                    ResponseError::UnknownTopicOrPartition.code()
                };
                OffsetDeleteResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code)
            })
            .collect();
        topics.push(
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    let mut response = OffsetDeleteResponse::default();
    if server.coordinator().group(&group).is_none()
        && server.coordinator().committed_all(&group).is_empty()
    {
        return Some(response.with_error_code(ResponseError::GroupIdNotFound.code()));
    }
    if let Err(e) = server.delete_offsets(&group, &deletes).await {
        tracing::warn!("offset delete: {e}");
        response = response.with_error_code(ResponseError::KafkaStorageError.code());
    }
    Some(response.with_topics(topics))
}

pub async fn describe_cluster(
    kafka: &Kafka,
    _: DescribeClusterRequest,
    _: &Request,
) -> Option<DescribeClusterResponse> {
    let broker = DescribeClusterBroker::default()
        .with_broker_id(BrokerId(NODE_ID))
        .with_host(str_bytes(&kafka.advertised_host))
        .with_port(kafka.advertised_port);
    Some(
        DescribeClusterResponse::default()
            .with_cluster_id(StrBytes::from_static_str("infralab"))
            .with_controller_id(BrokerId(NODE_ID))
            .with_brokers(vec![broker])
            .with_cluster_authorized_operations(i32::MIN),
    )
}

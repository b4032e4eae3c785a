//! Metadata (which brokers, topics and partitions exist, and who leads each partition),
//! FindCoordinator (who runs a group), CreateTopics and DeleteTopics.
//!
//! There is one broker, node 0, the leader and only replica of every partition.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, MetadataRequest, MetadataResponse, TopicName,
};

use super::{Kafka, Request, name, str_bytes};
use crate::topic::{Topic, TopicError};

/// This broker's id.
pub const NODE_ID: i32 = 0;

/// Kafka's error code for a topic error.
pub fn topic_error_code(e: &TopicError) -> i16 {
    match e {
        TopicError::Unknown(_) => ResponseError::UnknownTopicOrPartition.code(),
        TopicError::AlreadyExists(_) => ResponseError::TopicAlreadyExists.code(),
        TopicError::InvalidName(_) => ResponseError::InvalidTopicException.code(),
        TopicError::InvalidConfig(_) => ResponseError::InvalidConfig.code(),
        TopicError::Io(_) => ResponseError::KafkaStorageError.code(),
    }
}

/// Partition `index` of a topic a request named (as `Topics::require` found it), or the
/// error code to answer for it.
pub fn partition_of(
    topic: &Result<std::sync::Arc<Topic>, TopicError>,
    index: i32,
) -> Result<std::sync::Arc<crate::topic::Partition>, i16> {
    match topic {
        Err(e) => Err(topic_error_code(e)),
        Ok(t) => u32::try_from(index)
            .ok()
            .and_then(|id| t.partition(id))
            .ok_or(ResponseError::UnknownTopicOrPartition.code()),
    }
}

pub async fn metadata(
    kafka: &Kafka,
    req: MetadataRequest,
    request: &Request,
) -> Option<MetadataResponse> {
    let server = &kafka.server;
    // v0: an empty list means every topic; v1+: null means every topic.
    let requested: Option<Vec<String>> = match req.topics {
        Some(t) if !(t.is_empty() && request.version == 0) => Some(
            t.iter()
                .filter_map(|t| t.name.as_ref().map(|n| name(&n.0)))
                .collect(),
        ),
        _ => None,
    };
    let auto_create = server.auto_create && (request.version < 4 || req.allow_auto_topic_creation);
    let names = requested.unwrap_or_else(|| server.topics.names());
    let topics = names
        .into_iter()
        .map(|topic| {
            let found = match server.topics.get(&topic) {
                Some(t) => Ok(t),
                None if auto_create => server.topic_for_produce(&topic),
                None => Err(TopicError::Unknown(topic.clone())),
            };
            describe_topic(&topic, found)
        })
        .collect();
    let broker = MetadataResponseBroker::default()
        .with_node_id(BrokerId(NODE_ID))
        .with_host(str_bytes(&kafka.advertised_host))
        .with_port(kafka.advertised_port);
    Some(
        MetadataResponse::default()
            .with_brokers(vec![broker])
            .with_cluster_id(Some(str_bytes("infralab")))
            .with_controller_id(BrokerId(NODE_ID))
            .with_topics(topics),
    )
}

fn describe_topic(
    topic: &str,
    found: Result<std::sync::Arc<Topic>, TopicError>,
) -> MetadataResponseTopic {
    let response = MetadataResponseTopic::default().with_name(Some(TopicName(str_bytes(topic))));
    match found {
        Err(e) => response.with_error_code(topic_error_code(&e)),
        Ok(t) => response.with_partitions(
            (0..t.partition_count())
                .map(|p| {
                    MetadataResponsePartition::default()
                        .with_partition_index(p as i32)
                        .with_leader_id(BrokerId(NODE_ID))
                        .with_leader_epoch(-1)
                        .with_replica_nodes(vec![BrokerId(NODE_ID)])
                        .with_isr_nodes(vec![BrokerId(NODE_ID)])
                })
                .collect(),
        ),
    }
}

/// This broker coordinates every group (key type 0) and every transactional id (key
/// type 1).
pub async fn find_coordinator(
    kafka: &Kafka,
    req: FindCoordinatorRequest,
    _: &Request,
) -> Option<FindCoordinatorResponse> {
    let response = FindCoordinatorResponse::default();
    if !matches!(req.key_type, 0 | 1) {
        return Some(
            response
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                .with_node_id(BrokerId(-1))
                .with_port(-1),
        );
    }
    Some(
        response
            .with_node_id(BrokerId(NODE_ID))
            .with_host(str_bytes(&kafka.advertised_host))
            .with_port(kafka.advertised_port),
    )
}

pub async fn create_topics(
    kafka: &Kafka,
    req: CreateTopicsRequest,
    _: &Request,
) -> Option<CreateTopicsResponse> {
    let server = &kafka.server;
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = name(&t.name.0);
            let result = CreatableTopicResult::default().with_name(t.name.clone());
            let fail = |code: i16, message: String| {
                result
                    .clone()
                    .with_error_code(code)
                    .with_error_message(Some(str_bytes(message)))
            };
            if !(t.replication_factor == -1 || t.replication_factor == 1) {
                return fail(
                    ResponseError::InvalidReplicationFactor.code(),
                    "this is a single broker: the replication factor is 1".into(),
                );
            }
            let mut config = server.defaults;
            if t.num_partitions > 0 {
                config.partitions = t.num_partitions as u32;
            } else if !t.assignments.is_empty() {
                config.partitions = t.assignments.len() as u32;
            } else if t.num_partitions == 0 || t.num_partitions < -1 {
                return fail(
                    ResponseError::InvalidPartitions.code(),
                    "the partition count must be positive".into(),
                );
            }
            if config.partitions > crate::topic::MAX_PARTITIONS {
                return fail(
                    ResponseError::InvalidPartitions.code(),
                    format!("at most {} partitions", crate::topic::MAX_PARTITIONS),
                );
            }
            for c in &t.configs {
                let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
                if let Err(e) = config.set(c.name.as_str(), &value) {
                    return fail(ResponseError::InvalidConfig.code(), e);
                }
            }
            let outcome = if req.validate_only {
                match server.topics.get(&topic) {
                    Some(_) => Err(TopicError::AlreadyExists(topic.clone())),
                    None if crate::topic::valid_name(&topic) => Ok(()),
                    None => Err(TopicError::InvalidName(topic.clone())),
                }
            } else {
                server
                    .topics
                    .create(&topic, config, server.now_ms())
                    .map(|_| ())
            };
            match outcome {
                Ok(()) => result
                    .with_num_partitions(config.partitions as i32)
                    .with_replication_factor(1),
                Err(e) => fail(topic_error_code(&e), e.to_string()),
            }
        })
        .collect();
    Some(CreateTopicsResponse::default().with_topics(results))
}

/// Deletes topics with their data and committed offsets; groups reading them rebalance.
pub async fn delete_topics(
    kafka: &Kafka,
    req: DeleteTopicsRequest,
    _: &Request,
) -> Option<DeleteTopicsResponse> {
    let server = &kafka.server;
    let responses = req
        .topic_names
        .into_iter()
        .map(|t| {
            let topic = name(&t.0);
            let code = match server.topics.delete(&topic) {
                Ok(true) => {
                    let counts = server.partition_counts();
                    let mut coordinator = server.coordinator();
                    coordinator.forget_topic(&topic);
                    coordinator.topic_changed(&topic, &counts);
                    0
                }
                Ok(false) => ResponseError::UnknownTopicOrPartition.code(),
                Err(e) => topic_error_code(&e),
            };
            DeletableTopicResult::default()
                .with_name(Some(t))
                .with_error_code(code)
        })
        .collect();
    Some(DeleteTopicsResponse::default().with_responses(responses))
}

//! The producer-id and transaction APIs: InitProducerId, AddPartitionsToTxn,
//! AddOffsetsToTxn, TxnOffsetCommit, EndTxn, and the admin views of them
//! (DescribeProducers, ListTransactions, DescribeTransactions).
//!
//! This broker is the transaction coordinator of every transactional id (FindCoordinator
//! with key type 1 names node 0), and the group coordinator of every group, so
//! TxnOffsetCommit lands here too. What each request does is in
//! [`crate::txn_coordinator`]; this module only reads requests and builds answers.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::describe_transactions_response::{
    TopicData, TransactionState as DescribedTransaction,
};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedTransaction;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeProducersRequest, DescribeProducersResponse,
    DescribeTransactionsRequest, DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse,
    InitProducerIdRequest, InitProducerIdResponse, ListTransactionsRequest,
    ListTransactionsResponse, ProducerId, TopicName, TransactionalId, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
};

use super::metadata::partition_of;
use super::{Kafka, Request, name, str_bytes};
use crate::marker::Outcome;
use crate::txn_coordinator as coordinator;

/// The error code of a result (0: none).
fn code(result: Result<(), i16>) -> i16 {
    result.err().unwrap_or(0)
}

pub async fn init_producer_id(
    kafka: &Kafka,
    req: InitProducerIdRequest,
    request: &Request,
) -> Option<InitProducerIdResponse> {
    let id = req.transactional_id.as_ref().map(|t| name(&t.0));
    // v3+ (KIP-360): a running producer names its id and epoch to bump its own epoch.
    let expected = (req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
    let result = coordinator::init_producer_id(
        &kafka.server,
        id.as_deref().filter(|id| !id.is_empty()),
        i64::from(req.transaction_timeout_ms),
        expected,
    )
    .await
    .map_err(|code| {
        // PRODUCER_FENCED is new in v4; older clients know it as INVALID_PRODUCER_EPOCH.
        if code == ResponseError::ProducerFenced.code() && request.version < 4 {
            ResponseError::InvalidProducerEpoch.code()
        } else {
            code
        }
    });
    let response = InitProducerIdResponse::default();
    Some(match result {
        Ok((producer_id, epoch)) => response
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch),
        Err(code) => response
            .with_error_code(code)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    })
}

pub async fn add_partitions_to_txn(
    kafka: &Kafka,
    req: AddPartitionsToTxnRequest,
    _: &Request,
) -> Option<AddPartitionsToTxnResponse> {
    let server = &kafka.server;
    let topics = req.v3_and_below_topics;
    // Every partition must exist; otherwise none is added (Kafka answers the others
    // OPERATION_NOT_ATTEMPTED).
    let exists = |topic: &TopicName, p: i32| {
        partition_of(&server.topics.require(&name(&topic.0)), p).is_ok()
    };
    let all_exist = topics
        .iter()
        .all(|t| t.partitions.iter().all(|&p| exists(&t.name, p)));
    let result = if all_exist {
        let partitions: Vec<(String, u32)> = topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|&p| (name(&t.name.0), p as u32)))
            .collect();
        coordinator::add_partitions(
            server,
            &name(&req.v3_and_below_transactional_id.0),
            req.v3_and_below_producer_id.0,
            req.v3_and_below_producer_epoch,
            &partitions,
        )
        .await
    } else {
        Err(ResponseError::UnknownTopicOrPartition.code())
    };
    let results = topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|&p| {
                    let error = match result {
                        Ok(()) => 0,
                        Err(_) if !all_exist && exists(&t.name, p) => {
                            ResponseError::OperationNotAttempted.code()
                        }
                        Err(code) => code,
                    };
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(p)
                        .with_partition_error_code(error)
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(partitions)
        })
        .collect();
    Some(AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results))
}

pub async fn add_offsets_to_txn(
    kafka: &Kafka,
    req: AddOffsetsToTxnRequest,
    _: &Request,
) -> Option<AddOffsetsToTxnResponse> {
    let result = coordinator::add_group(
        &kafka.server,
        &name(&req.transactional_id.0),
        req.producer_id.0,
        req.producer_epoch,
        &name(&req.group_id.0),
    )
    .await;
    Some(AddOffsetsToTxnResponse::default().with_error_code(code(result)))
}

pub async fn txn_offset_commit(
    kafka: &Kafka,
    req: TxnOffsetCommitRequest,
    _: &Request,
) -> Option<TxnOffsetCommitResponse> {
    let server = &kafka.server;
    let mut offsets = Vec::new();
    let mut invalid = Vec::new();
    for t in &req.topics {
        let topic = name(&t.name.0);
        let count = server.topics.partition_count(&topic);
        for p in &t.partitions {
            let known =
                count.is_some_and(|n| (0..i64::from(n)).contains(&i64::from(p.partition_index)));
            match (known, u64::try_from(p.committed_offset)) {
                (true, Ok(offset)) => {
                    offsets.push((topic.clone(), p.partition_index as u32, offset))
                }
                (false, _) => invalid.push((
                    topic.clone(),
                    p.partition_index,
                    ResponseError::UnknownTopicOrPartition.code(),
                )),
                (true, Err(_)) => invalid.push((
                    topic.clone(),
                    p.partition_index,
                    ResponseError::InvalidCommitOffsetSize.code(),
                )),
            }
        }
    }
    let group = name(&req.group_id.0);
    let consumer = kafka.groups().check_txn_commit(
        &group,
        req.member_id.as_str(),
        req.generation_id,
        req.group_instance_id.is_some(),
    );
    let result = if let Err(code) = consumer {
        Err(code)
    } else if invalid.is_empty() {
        coordinator::add_offsets(
            server,
            &name(&req.transactional_id.0),
            req.producer_id.0,
            req.producer_epoch,
            &group,
            &offsets,
        )
        .await
    } else {
        Err(ResponseError::OperationNotAttempted.code())
    };
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let topic = name(&t.name.0);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let own = invalid
                        .iter()
                        .find(|(n, i, _)| *n == topic && *i == p.partition_index)
                        .map(|e| e.2);
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(own.unwrap_or(code(result)))
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    Some(TxnOffsetCommitResponse::default().with_topics(topics))
}

pub async fn end_txn(kafka: &Kafka, req: EndTxnRequest, _: &Request) -> Option<EndTxnResponse> {
    let outcome = if req.committed {
        Outcome::Commit
    } else {
        Outcome::Abort
    };
    let result = coordinator::end(
        &kafka.server,
        &name(&req.transactional_id.0),
        req.producer_id.0,
        req.producer_epoch,
        outcome,
    )
    .await;
    Some(EndTxnResponse::default().with_error_code(code(result)))
}

pub async fn describe_producers(
    kafka: &Kafka,
    req: DescribeProducersRequest,
    _: &Request,
) -> Option<DescribeProducersResponse> {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = kafka.server.topics.require(&name(&t.name.0));
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&p| {
                    let response = PartitionResponse::default().with_partition_index(p);
                    let partition = match partition_of(&topic, p) {
                        Ok(partition) => partition,
                        Err(code) => return response.with_error_code(code),
                    };
                    let producers = partition
                        .producers()
                        .into_iter()
                        .map(|(id, epoch, last_sequence, last_timestamp, txn)| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(id))
                                .with_producer_epoch(i32::from(epoch))
                                .with_last_sequence(last_sequence)
                                .with_last_timestamp(last_timestamp)
                                .with_coordinator_epoch(0)
                                .with_current_txn_start_offset(txn.map_or(-1, |o| o as i64))
                        })
                        .collect();
                    response.with_active_producers(producers)
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    Some(DescribeProducersResponse::default().with_topics(topics))
}

pub async fn list_transactions(
    kafka: &Kafka,
    req: ListTransactionsRequest,
    _: &Request,
) -> Option<ListTransactionsResponse> {
    let states: Vec<String> = req.state_filters.iter().map(|s| s.to_string()).collect();
    let now = kafka.server.now_ms();
    let listed = kafka
        .server
        .transactions
        .state()
        .all()
        .filter(|m| states.is_empty() || states.iter().any(|s| s == m.state.name()))
        .filter(|m| {
            req.producer_id_filters.is_empty()
                || req.producer_id_filters.contains(&ProducerId(m.producer_id))
        })
        // duration_filter (v1+): transactions running longer than this many ms.
        .filter(|m| {
            req.duration_filter < 0
                || (m.state.name() == "Ongoing" && now - m.started_ms >= req.duration_filter)
        })
        .map(|m| {
            ListedTransaction::default()
                .with_transactional_id(TransactionalId(str_bytes(&m.transactional_id)))
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(str_bytes(m.state.name()))
        })
        .collect();
    Some(ListTransactionsResponse::default().with_transaction_states(listed))
}

pub async fn describe_transactions(
    kafka: &Kafka,
    req: DescribeTransactionsRequest,
    _: &Request,
) -> Option<DescribeTransactionsResponse> {
    let state = kafka.server.transactions.state();
    let described = req
        .transactional_ids
        .into_iter()
        .map(|id| {
            let response = DescribedTransaction::default().with_transactional_id(id.clone());
            let Some(m) = state.get(&name(&id.0)) else {
                return response.with_error_code(ResponseError::TransactionalIdNotFound.code());
            };
            let mut topics: Vec<TopicData> = Vec::new();
            for (topic, p) in &m.partitions {
                match topics.last_mut() {
                    Some(t) if t.topic.0.as_str() == topic => t.partitions.push(*p as i32),
                    _ => topics.push(
                        TopicData::default()
                            .with_topic(TopicName(str_bytes(topic)))
                            .with_partitions(vec![*p as i32]),
                    ),
                }
            }
            response
                .with_transaction_state(str_bytes(m.state.name()))
                .with_transaction_timeout_ms(i32::try_from(m.timeout_ms).unwrap_or(i32::MAX))
                .with_transaction_start_time_ms(m.started_ms)
                .with_producer_id(ProducerId(m.producer_id))
                .with_producer_epoch(m.producer_epoch)
                .with_topics(topics)
        })
        .collect();
    Some(DescribeTransactionsResponse::default().with_transaction_states(described))
}

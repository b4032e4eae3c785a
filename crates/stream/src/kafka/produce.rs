//! Produce: append the client's record batches as they are.
//!
//! Batches of an idempotent producer are checked against the partition's producer state
//! first (see [`crate::producer_state`]): a retry is acknowledged with its first offset,
//! a gap is `OUT_OF_ORDER_SEQUENCE_NUMBER`, a fenced epoch `INVALID_PRODUCER_EPOCH`.
//! Transactional batches must also belong to an open transaction that added the
//! partition (see [`crate::txn_coordinator`]).
//!
//! The batch bytes a producer sends are the bytes the log stores: the log checks the CRC,
//! stamps the base offset (outside the CRC) and appends. Compressed batches are stored
//! compressed; consumers decompress. `acks=0` gets no response at all, as in Kafka;
//! `acks=1` and `acks=-1` are the same on a single broker: the answer comes once the
//! batches are durable as `--fsync` says.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::metadata::partition_of;
use super::{Kafka, Request, name};
use crate::log::{Appended, LogError};
use crate::producer_state::SequenceError;
use crate::record::BatchHeader;

/// Kafka's error code for a log error.
pub fn log_error_code(e: &LogError) -> i16 {
    match e {
        LogError::InvalidBatch(_) => ResponseError::CorruptMessage.code(),
        LogError::TooLarge { .. } => ResponseError::MessageTooLarge.code(),
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange.code(),
        LogError::Sequence(SequenceError::OutOfOrder { .. }) => {
            ResponseError::OutOfOrderSequenceNumber.code()
        }
        LogError::Sequence(SequenceError::StaleEpoch { .. }) => {
            ResponseError::InvalidProducerEpoch.code()
        }
        LogError::Io(_) => ResponseError::KafkaStorageError.code(),
    }
}

pub async fn produce(kafka: &Kafka, req: ProduceRequest, _: &Request) -> Option<ProduceResponse> {
    let server = &kafka.server;
    let now = server.now_ms();
    let mut appended: Vec<Appended> = Vec::new();
    let mut responses = Vec::with_capacity(req.topic_data.len());
    let transactional_id = req.transactional_id.as_ref().map(|t| name(&t.0));
    for topic_data in req.topic_data {
        let topic = server.topic_for_produce(&name(&topic_data.name.0));
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for data in topic_data.partition_data {
            let response = PartitionProduceResponse::default()
                .with_index(data.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            let partition = partition_of(&topic, data.index);
            let result = partition.and_then(|p| {
                let Some(records) = data.records.filter(|r| !r.is_empty()) else {
                    return Err(ResponseError::InvalidRecord.code());
                };
                // Markers are the coordinator's to write: a client's control batch could
                // end someone else's transaction. Transactional batches need an open
                // transaction that added this partition.
                let mut at = 0;
                while let Ok(h) = BatchHeader::parse(&records[at..]) {
                    if h.is_control() {
                        return Err(ResponseError::InvalidRecord.code());
                    }
                    if h.is_transactional() {
                        server.transactions.check_produce(
                            transactional_id.as_deref(),
                            &h,
                            &name(&topic_data.name.0),
                            p.id,
                        )?;
                    }
                    at += h.size;
                    if at >= records.len() {
                        break;
                    }
                }
                // Appended from the request's bytes: the log stamps offsets into its copy.
                let a = p.append(&records, now).map_err(|e| log_error_code(&e))?;
                Ok((a, p.start_offset()))
            });
            partitions.push(match result {
                Ok((a, start)) => {
                    let base = a.base_offset as i64;
                    appended.push(a);
                    response
                        .with_base_offset(base)
                        .with_log_start_offset(start as i64)
                }
                Err(code) => response.with_error_code(code),
            });
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_partition_responses(partitions),
        );
    }
    if let Err(e) = server.make_durable(&appended).await {
        tracing::warn!("produce: fsync failed: {e}");
        for p in responses
            .iter_mut()
            .flat_map(|t| t.partition_responses.iter_mut())
        {
            if p.error_code == 0 {
                p.error_code = ResponseError::KafkaStorageError.code();
            }
        }
    }
    if req.acks == 0 {
        return None;
    }
    Some(ProduceResponse::default().with_responses(responses))
}

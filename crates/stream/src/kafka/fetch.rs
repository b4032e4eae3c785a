//! Fetch (read stored batches, long-polling with `max_wait_ms` / `min_bytes`) and
//! ListOffsets (earliest, latest, or the first offset at a timestamp).
//!
//! A fetch answers whole batches starting with the one holding `fetch_offset`, so the
//! first batch may begin before it; clients skip the records they did not ask for, as
//! with Kafka. If fewer than `min_bytes` are ready, the fetch waits up to `max_wait_ms`
//! for any of its partitions to grow.
//!
//! `isolation_level = read_committed` (1) is how exactly-once reaches the consumer: the
//! answer stops before the *last stable offset* (the first record of a transaction still
//! open, see [`crate::producer_state`]), so the consumer never holds a record whose fate
//! is undecided, and it lists the aborted transactions among the batches returned — the
//! client drops those producers' records up to their ABORT marker. A read_uncommitted
//! consumer gets everything, aborted records included. Both skip the markers themselves.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, ProducerId,
};
use tokio::sync::watch;

use super::metadata::partition_of;
use super::produce::log_error_code;
use super::{Kafka, Request, name};
use crate::record::BatchHeader;

/// ListOffsets' special timestamps.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
/// `isolation_level` of Fetch and ListOffsets.
const READ_COMMITTED: i8 = 1;

/// The whole batches of `records` that end before `limit` (the last stable offset).
fn before(records: Bytes, limit: u64) -> Bytes {
    let mut end = 0;
    while let Ok(h) = BatchHeader::parse(&records[end..]) {
        if h.last_offset() >= limit || end + h.size > records.len() {
            break;
        }
        end += h.size;
    }
    records.slice(..end)
}

/// The offset after the last batch of `records` (`from` if there is none).
fn next_offset_after(records: &[u8], from: u64) -> u64 {
    let mut pos = 0;
    let mut next = from;
    while let Ok(h) = BatchHeader::parse(&records[pos..]) {
        next = h.next_offset();
        pos += h.size;
    }
    next
}

pub async fn fetch(kafka: &Kafka, req: FetchRequest, _: &Request) -> Option<FetchResponse> {
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0));
    loop {
        let mut watchers = Vec::new();
        let (topics, bytes, failed) = read(kafka, &req, &mut watchers);
        let done = failed
            || bytes >= usize::try_from(req.min_bytes).unwrap_or(0).max(1)
            || tokio::time::Instant::now() >= deadline;
        if done {
            return Some(FetchResponse::default().with_responses(topics));
        }
        tokio::select! {
            _ = kafka.server.shutdown.cancelled() => {
                return Some(FetchResponse::default().with_responses(topics));
            }
            _ = tokio::time::sleep_until(deadline) => {}
            _ = any_changed(&mut watchers) => {}
        }
    }
}

/// Reads every requested partition once. Returns the answer, the record bytes in it,
/// and whether some partition failed (an error is answered at once, without waiting).
fn read(
    kafka: &Kafka,
    req: &FetchRequest,
    watchers: &mut Vec<watch::Receiver<u64>>,
) -> (Vec<FetchableTopicResponse>, usize, bool) {
    let server = &kafka.server;
    let mut budget = usize::try_from(req.max_bytes).unwrap_or(usize::MAX);
    let mut total = 0;
    let mut failed = false;
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let topic = server.topics.require(&name(&t.topic.0));
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let data = PartitionData::default()
                .with_partition_index(p.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_preferred_read_replica(BrokerId(-1))
                .with_aborted_transactions(Some(Vec::new()));
            let partition = partition_of(&topic, p.partition);
            let result = partition.and_then(|partition| {
                watchers.push(partition.watch_end());
                let info = partition.info();
                let max = usize::try_from(p.partition_max_bytes)
                    .unwrap_or(0)
                    .min(budget);
                let offset = u64::try_from(p.fetch_offset)
                    .map_err(|_| ResponseError::OffsetOutOfRange.code())?;
                let stable = partition.last_stable_offset();
                let mut records = if max == 0 && total > 0 {
                    Bytes::new()
                } else {
                    partition
                        .read(offset, max.max(1), u64::MAX)
                        .map_err(|e| log_error_code(&e))?
                };
                let mut aborted = None;
                if req.isolation_level == READ_COMMITTED {
                    records = before(records, stable);
                    let upper = next_offset_after(&records, offset);
                    aborted = Some(
                        partition
                            .aborted_between(offset, upper)
                            .into_iter()
                            .map(|a| {
                                AbortedTransaction::default()
                                    .with_producer_id(ProducerId(a.producer_id))
                                    .with_first_offset(a.first_offset as i64)
                            })
                            .collect(),
                    );
                }
                Ok((info, stable, records, aborted))
            });
            partitions.push(match result {
                Ok((info, stable, records, aborted)) => {
                    total += records.len();
                    budget = budget.saturating_sub(records.len());
                    data.with_high_watermark(info.end_offset as i64)
                        .with_last_stable_offset(stable as i64)
                        .with_log_start_offset(info.start_offset as i64)
                        .with_aborted_transactions(aborted)
                        .with_records(Some(records))
                }
                Err(code) => {
                    failed = true;
                    data.with_error_code(code).with_records(Some(Bytes::new()))
                }
            });
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions),
        );
    }
    (topics, total, failed)
}

/// Resolves when any of the partitions' end offsets moves.
async fn any_changed(watchers: &mut [watch::Receiver<u64>]) {
    if watchers.is_empty() {
        return std::future::pending().await;
    }
    let mut changes: Vec<Pin<Box<_>>> =
        watchers.iter_mut().map(|w| Box::pin(w.changed())).collect();
    std::future::poll_fn(|cx| {
        for c in changes.iter_mut() {
            if c.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    })
    .await
}

pub async fn list_offsets(
    kafka: &Kafka,
    req: ListOffsetsRequest,
    _: &Request,
) -> Option<ListOffsetsResponse> {
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
                    let response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1);
                    let partition = partition_of(&topic, p.partition_index);
                    let found = partition.and_then(|partition| match p.timestamp {
                        EARLIEST => Ok(Some((partition.start_offset(), -1))),
                        LATEST if req.isolation_level == READ_COMMITTED => {
                            Ok(Some((partition.last_stable_offset(), -1)))
                        }
                        LATEST => Ok(Some((partition.end_offset(), -1))),
                        ts if ts < 0 => Err(ResponseError::UnsupportedVersion.code()),
                        ts => partition
                            .offset_for_timestamp(ts)
                            .map_err(|e| log_error_code(&e)),
                    });
                    match found {
                        Ok(Some((offset, timestamp))) => response
                            .with_offset(offset as i64)
                            .with_timestamp(timestamp),
                        Ok(None) => response,
                        Err(code) => response.with_error_code(code),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    Some(ListOffsetsResponse::default().with_topics(topics))
}

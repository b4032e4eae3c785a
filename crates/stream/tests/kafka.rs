#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! The Kafka listener against the real `kcat` (librdkafka), and raw protocol requests.

mod common;
mod kafka_common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use bytes::{Buf, Bytes, BytesMut};
use common::{Client, array, field, int, read_partition, string, tmp_dir};
use kafka_common::{advertised, api_versions, call, kcat, roundtrip};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, ListGroupsRequest, ListGroupsResponse, ListOffsetsRequest,
    ListOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use proto::Frame;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

impl common::TestServer {
    fn broker(&self) -> String {
        self.kafka.to_string()
    }

    async fn resp(&self) -> Client {
        self.client().await
    }
}

/// `kcat -C -o beginning -e` of a whole topic: `(partition, offset, key, value)`.
async fn consume_all(broker: &str, topic: &str, extra: &[&str]) -> Vec<(u32, u64, String, String)> {
    let mut args = vec![
        "-b",
        broker,
        "-C",
        "-t",
        topic,
        "-o",
        "beginning",
        "-e",
        "-q",
        "-f",
        "%p %o %k %s\n",
    ];
    args.extend_from_slice(extra);
    kcat(&args, "")
        .await
        .lines()
        .map(|l| {
            let mut parts = l.splitn(4, ' ');
            let p = parts.next().unwrap().parse().unwrap();
            let o = parts.next().unwrap().parse().unwrap();
            (
                p,
                o,
                parts.next().unwrap().into(),
                parts.next().unwrap().into(),
            )
        })
        .collect()
}

#[tokio::test]
async fn kcat_produces_10000_keyed_messages_and_reads_them_back_in_order() {
    let dir = tmp_dir("kafka-keyed");
    let server = common::start_in(&dir, &[]).await;
    let broker = server.broker();
    let mut c = server.resp().await;
    c.ok(&["TOPIC.CREATE", "keyed", "PARTITIONS", "4"]).await;

    let input: String = (0..10_000)
        .map(|i| format!("key-{}:msg-{i}\n", i % 50))
        .collect();
    kcat(&["-b", &broker, "-P", "-t", "keyed", "-K:"], &input).await;

    let listing = kcat(&["-b", &broker, "-L", "-t", "keyed"], "").await;
    assert!(
        listing.contains("topic \"keyed\" with 4 partitions"),
        "{listing}"
    );
    for p in 0..4 {
        assert!(
            listing.contains(&format!("partition {p}, leader 0")),
            "{listing}"
        );
    }

    let consumed = consume_all(&broker, "keyed", &[]).await;
    assert_eq!(consumed.len(), 10_000);
    let mut next_offset = [0u64; 4];
    let mut last_of_key: BTreeMap<String, (u32, u64)> = BTreeMap::new();
    for (p, o, key, value) in &consumed {
        // Offsets dense from 0 in every partition, read in order.
        assert_eq!(*o, next_offset[*p as usize], "partition {p}");
        next_offset[*p as usize] += 1;
        let i: u64 = value.strip_prefix("msg-").unwrap().parse().unwrap();
        assert_eq!(key, &format!("key-{}", i % 50), "key intact");
        // One partition per key, and the key's messages in the order produced.
        if let Some((kp, last)) = last_of_key.insert(key.clone(), (*p, i)) {
            assert_eq!(kp, *p, "{key} moved partition");
            assert!(last < i, "{key}: {last} before {i}");
        }
    }
    // The same records over RESP: produced with kcat, read with FETCH.
    for p in 0..4u32 {
        let resp = read_partition(&mut c, "keyed", p, 0).await;
        let kafka: Vec<_> = consumed.iter().filter(|r| r.0 == p).collect();
        assert_eq!(resp.len(), kafka.len());
        for ((o, k, v), (_, ko, kk, kv)) in resp.iter().zip(kafka) {
            assert_eq!((o, k.as_deref(), v), (ko, Some(kk.as_str()), kv));
        }
    }
    server.running.stop().await;
}

#[tokio::test]
async fn records_produced_over_resp_are_read_by_kcat() {
    let dir = tmp_dir("kafka-from-resp");
    let server = common::start_in(&dir, &[]).await;
    let mut c = server.resp().await;
    c.ok(&["TOPIC.CREATE", "orders", "PARTITIONS", "2"]).await;
    c.ok(&[
        "PRODUCE",
        "orders",
        "book",
        "KEY",
        "user-1",
        "PARTITION",
        "1",
    ])
    .await;
    // One entry, [partition, base_offset, count]: the two records at 1/1 and 1/2,
    // where the Kafka consumer below finds them.
    let reply = c
        .ok(&[
            "PRODUCE.BATCH",
            "orders",
            "PARTITION",
            "1",
            "PAIRS",
            "user-2",
            "pen",
            "user-3",
            "ink",
        ])
        .await;
    assert_eq!(
        reply,
        Frame::Array(vec![Frame::Array(vec![
            Frame::Integer(1),
            Frame::Integer(1),
            Frame::Integer(2),
        ])])
    );
    let consumed = consume_all(&server.broker(), "orders", &[]).await;
    assert_eq!(
        consumed,
        vec![
            (1, 0, "user-1".into(), "book".into()),
            (1, 1, "user-2".into(), "pen".into()),
            (1, 2, "user-3".into(), "ink".into()),
        ]
    );
    // A consumer starting at an offset gets records from there on, although the batch
    // holding it starts earlier.
    let from_2 = kcat(
        &[
            "-b",
            &server.broker(),
            "-C",
            "-t",
            "orders",
            "-p",
            "1",
            "-o",
            "2",
            "-e",
            "-q",
            "-f",
            "%o %s\n",
        ],
        "",
    )
    .await;
    assert_eq!(from_2, "2 ink\n");
    server.running.stop().await;
}

#[tokio::test]
async fn compressed_batches_are_stored_as_produced_and_consumed_back() {
    let dir = tmp_dir("kafka-compressed");
    let server = common::start_in(&dir, &[]).await;
    let broker = server.broker();
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("z-{codec}");
        let input: String = (0..500).map(|i| format!("{codec} message {i}\n")).collect();
        kcat(&["-b", &broker, "-P", "-t", &topic, "-z", codec], &input).await;
        let values: Vec<String> = consume_all(&broker, &topic, &[])
            .await
            .into_iter()
            .map(|r| r.3)
            .collect();
        let expected: Vec<String> = (0..500).map(|i| format!("{codec} message {i}")).collect();
        assert_eq!(values, expected, "{codec}");
    }
    // librdkafka sends zstd (it ties gzip, snappy and lz4 to Produce/Fetch v2, which this
    // broker does not speak, and sends those uncompressed): the zstd batches are stored
    // compressed — RESP's FETCH, which does not decompress, says so — and kcat read them.
    let mut c = server.resp().await;
    let reply = c.call(&["FETCH", "z-zstd", "0", "0"]).await;
    assert!(common::error_text(&reply).starts_with("UNSUPPORTED_COMPRESSION_TYPE"));
    server.running.stop().await;
}

/// A `kcat -G` consumer running in the background.
struct GroupConsumer {
    child: Child,
}

impl GroupConsumer {
    fn start(broker: &str, group: &str, topic: &str, out: &Path) -> GroupConsumer {
        let child = Command::from(testkit::peer("kcat"))
            .args([
                "-b",
                broker,
                "-G",
                group,
                topic,
                "-X",
                "auto.offset.reset=earliest",
                "-u",
                "-q",
                "-f",
                "%p %o %s\n",
                "-X",
                "auto.commit.interval.ms=100",
                "-X",
                "session.timeout.ms=6000",
            ])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(out).unwrap())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        GroupConsumer { child }
    }

    /// SIGTERM: kcat commits, leaves the group and exits.
    async fn stop(mut self) {
        let pid = self.child.id().unwrap();
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(20), self.child.wait())
            .await
            .unwrap()
            .unwrap();
    }
}

/// `member → partitions of topic`, from RESP's view of the group.
async fn assignment(resp: SocketAddr, group: &str, topic: &str) -> BTreeMap<String, Vec<i64>> {
    let mut c = Client::connect(resp).await;
    let d = c.call(&["GROUP.DESCRIBE", group]).await;
    if d.is_error() || string(field(&d, "state")) != "Stable" {
        return BTreeMap::new();
    }
    array(field(&d, "members"))
        .iter()
        .map(|m| {
            let parts = match field(m, "assignment") {
                Frame::Map(pairs) => pairs
                    .iter()
                    .filter(|(k, _)| string(k) == topic)
                    .flat_map(|(_, v)| array(v).iter().map(int))
                    .collect(),
                _ => Vec::new(),
            };
            (string(field(m, "member")), parts)
        })
        .collect()
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .count()
}

#[tokio::test]
async fn a_kcat_consumer_group_splits_partitions_hands_them_over_and_resumes_after_restart() {
    let dir = tmp_dir("kafka-group");
    let server = common::start_in(&dir, &[]).await;
    let broker = server.broker();
    let mut c = server.resp().await;
    c.ok(&["TOPIC.CREATE", "jobs", "PARTITIONS", "4"]).await;
    let input: String = (0..400).map(|i| format!("k{i}:job-{i}\n")).collect();
    kcat(&["-b", &broker, "-P", "-t", "jobs", "-K:"], &input).await;

    let out_a = dir.join("a.out");
    let out_b = dir.join("b.out");
    let a = GroupConsumer::start(&broker, "workers", "jobs", &out_a);
    let b = GroupConsumer::start(&broker, "workers", "jobs", &out_b);
    // Two members, two partitions each, all four owned.
    let resp = server.running.addr();
    common::eventually("two members splitting four partitions", || async move {
        let a = assignment(resp, "workers", "jobs").await;
        let mut all: Vec<i64> = a.values().flatten().copied().collect();
        all.sort();
        a.len() == 2 && a.values().all(|p| p.len() == 2) && all == vec![0, 1, 2, 3]
    })
    .await;
    // DescribeGroups tells the same story to Kafka tools.
    let mut conn = TcpStream::connect(server.kafka).await.unwrap();
    let described: kafka_protocol::messages::DescribeGroupsResponse = call(
        &mut conn,
        ApiKey::DescribeGroups,
        5,
        &kafka_protocol::messages::DescribeGroupsRequest::default().with_groups(vec![
            kafka_protocol::messages::GroupId(StrBytes::from_static_str("workers")),
        ]),
    )
    .await;
    let g = &described.groups[0];
    assert_eq!(g.group_state.as_str(), "Stable");
    assert_eq!(g.protocol_type.as_str(), "consumer");
    assert_eq!(g.members.len(), 2);
    assert!(g.members.iter().all(|m| !m.member_assignment.is_empty()));
    common::eventually("everything consumed", || async {
        lines(&out_a) + lines(&out_b) >= 400
    })
    .await;
    // Stopping one hands its partitions to the other.
    b.stop().await;
    common::eventually("one member owning all four", || async move {
        let a = assignment(resp, "workers", "jobs").await;
        a.len() == 1 && a.values().all(|p| p.len() == 4)
    })
    .await;
    // Everything read is committed (auto commit every 100 ms).
    common::eventually("offsets committed", || async move {
        let mut c = Client::connect(resp).await;
        let mut total = 0;
        for p in 0..4 {
            let r = c
                .call(&["GROUP.COMMITTED", "workers", "jobs", &p.to_string()])
                .await;
            total += array(&r).first().map_or(0, |f| match f {
                Frame::Integer(n) => *n,
                _ => 0,
            });
        }
        total == 400
    })
    .await;
    a.stop().await;
    server.running.stop().await;

    // Restart; new messages; a new member resumes from the committed offsets.
    let server = common::start_in(&dir, &[]).await;
    let broker = server.broker();
    let input: String = (400..420).map(|i| format!("k{i}:job-{i}\n")).collect();
    kcat(&["-b", &broker, "-P", "-t", "jobs", "-K:"], &input).await;
    let out_c = dir.join("c.out");
    let c2 = GroupConsumer::start(&broker, "workers", "jobs", &out_c);
    common::eventually("the new messages consumed", || async {
        lines(&out_c) >= 20
    })
    .await;
    c2.stop().await;
    let seen = std::fs::read_to_string(&out_c).unwrap();
    let mut values: Vec<u32> = seen
        .lines()
        .map(|l| l.rsplit("job-").next().unwrap().parse().unwrap())
        .collect();
    values.sort();
    assert_eq!(
        values,
        (400..420).collect::<Vec<_>>(),
        "resumed exactly after the commits"
    );
    server.running.stop().await;
}

#[tokio::test]
async fn unsupported_apis_and_versions_get_error_responses_and_the_connection_stays() {
    let dir = tmp_dir("kafka-unsupported");
    let server = common::start_in(&dir, &[]).await;
    let mut conn = TcpStream::connect(server.kafka).await.unwrap();
    // ApiVersions of a version from the future: a v0 answer, UNSUPPORTED_VERSION, our list.
    let mut answer = roundtrip(&mut conn, ApiKey::ApiVersions as i16, 99, 1, &[]).await;
    let v0 = ApiVersionsResponse::decode(&mut answer, 0).unwrap();
    assert_eq!(v0.error_code, 35);
    let produce = v0.api_keys.iter().find(|k| k.api_key == 0).unwrap();
    assert_eq!((produce.min_version, produce.max_version), (3, 9));
    // Produce v0 (the pre-2017 message format) and an API we do not implement
    // (WriteTxnMarkers, 27: broker to broker): the error, on the same connection.
    let mut answer = roundtrip(&mut conn, ApiKey::Produce as i16, 0, 2, &[]).await;
    assert_eq!(answer.get_i16(), 35);
    let mut answer = roundtrip(&mut conn, ApiKey::WriteTxnMarkers as i16, 0, 3, &[]).await;
    assert_eq!(answer.get_i16(), 35);
    // And what is advertised is exactly what is served.
    let versions = api_versions(&mut conn).await;
    assert_eq!(versions.error_code, 0);
    let advertised: Vec<i16> = versions.api_keys.iter().map(|k| k.api_key).collect();
    assert_eq!(advertised.len(), 33);
    assert!(advertised.contains(&(ApiKey::InitProducerId as i16)));
    assert!(!advertised.contains(&(ApiKey::WriteTxnMarkers as i16)));
    server.running.stop().await;
}

/// The transaction APIs are advertised at the versions implemented, and KIP-890 part 2
/// (transaction version 2: Produce v12 adding partitions implicitly, EndTxn v5 bumping the
/// epoch, AddPartitionsToTxn v4+ batched for brokers) is not: no `transaction.version`
/// feature is finalized, and those versions are refused, so a client never sends one.
#[tokio::test]
async fn transaction_apis_are_advertised_at_the_versions_served_and_kip_890_v2_is_not() {
    let dir = tmp_dir("kafka-txn-versions");
    let server = common::start_in(&dir, &[]).await;
    let mut conn = TcpStream::connect(server.kafka).await.unwrap();
    let versions = api_versions(&mut conn).await;
    let range = |api| advertised(&versions, api).unwrap();
    assert_eq!(range(ApiKey::Produce), (3, 9));
    assert_eq!(range(ApiKey::InitProducerId), (0, 4));
    assert_eq!(range(ApiKey::AddPartitionsToTxn), (0, 3));
    assert_eq!(range(ApiKey::AddOffsetsToTxn), (0, 3));
    assert_eq!(range(ApiKey::EndTxn), (0, 3));
    assert_eq!(range(ApiKey::TxnOffsetCommit), (0, 3));
    assert!(versions.finalized_features.is_empty());
    assert!(versions.supported_features.is_empty());
    let refused = [
        (ApiKey::Produce, 10),
        (ApiKey::Produce, 12),
        (ApiKey::InitProducerId, 5),
        (ApiKey::AddPartitionsToTxn, 4),
        (ApiKey::AddPartitionsToTxn, 5),
        (ApiKey::EndTxn, 4),
        (ApiKey::EndTxn, 5),
        (ApiKey::TxnOffsetCommit, 4),
    ];
    for (i, (api, version)) in refused.into_iter().enumerate() {
        let correlation = 100 + i as i32;
        let mut answer = roundtrip(&mut conn, api as i16, version, correlation, &[]).await;
        assert_eq!(answer.get_i16(), 35, "{api:?} v{version}");
    }
    server.running.stop().await;
}

#[tokio::test]
async fn create_topics_list_offsets_delete_topics_and_list_groups() {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let dir = tmp_dir("kafka-admin");
    let server = common::start_in(&dir, &[]).await;
    let mut conn = TcpStream::connect(server.kafka).await.unwrap();
    let topic = |name: &'static str| TopicName(StrBytes::from_static_str(name));
    let created: CreateTopicsResponse = call(
        &mut conn,
        ApiKey::CreateTopics,
        5,
        &CreateTopicsRequest::default().with_topics(vec![
            CreatableTopic::default()
                .with_name(topic("events"))
                .with_num_partitions(3)
                .with_replication_factor(1),
            CreatableTopic::default()
                .with_name(topic("events"))
                .with_num_partitions(3)
                .with_replication_factor(3),
        ]),
    )
    .await;
    assert_eq!(created.topics[0].error_code, 0);
    assert_eq!(created.topics[0].num_partitions, 3);
    assert_eq!(
        created.topics[1].error_code, 38,
        "INVALID_REPLICATION_FACTOR"
    );
    // Seen over RESP too.
    let mut c = server.resp().await;
    let d = c.ok(&["TOPIC.DESCRIBE", "events"]).await;
    assert_eq!(array(field(&d, "partitions")).len(), 3);
    c.ok(&[
        "PRODUCE",
        "events",
        "a",
        "PARTITION",
        "2",
        "TIMESTAMP",
        "1000",
    ])
    .await;
    c.ok(&[
        "PRODUCE",
        "events",
        "b",
        "PARTITION",
        "2",
        "TIMESTAMP",
        "2000",
    ])
    .await;

    let ask = |ts: i64| {
        ListOffsetsRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(topic("events"))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(2)
                            .with_timestamp(ts),
                    ]),
            ])
    };
    // By time: the first record at or after it, with that record's own timestamp (what
    // `offsets_for_times` reports), not the one asked for.
    for (ts, offset, timestamp) in [(-2, 0, -1), (-1, 2, -1), (1500, 1, 2000), (3000, -1, -1)] {
        let r: ListOffsetsResponse = call(&mut conn, ApiKey::ListOffsets, 5, &ask(ts)).await;
        let found = &r.topics[0].partitions[0];
        assert_eq!(
            (found.offset, found.timestamp),
            (offset, timestamp),
            "timestamp {ts}"
        );
    }

    c.ok(&["GROUP.COMMIT", "auditors", "x", "-1", "events", "0", "0"])
        .await;
    let groups: ListGroupsResponse = call(
        &mut conn,
        ApiKey::ListGroups,
        4,
        &ListGroupsRequest::default(),
    )
    .await;
    let names: Vec<String> = groups
        .groups
        .iter()
        .map(|g| g.group_id.0.to_string())
        .collect();
    assert_eq!(names, vec!["auditors".to_string()]);

    let deleted: DeleteTopicsResponse = call(
        &mut conn,
        ApiKey::DeleteTopics,
        4,
        &DeleteTopicsRequest::default().with_topic_names(vec![topic("events"), topic("nope")]),
    )
    .await;
    let codes: Vec<i16> = deleted.responses.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, vec![0, 3]);
    assert!(c.call(&["TOPIC.DESCRIBE", "events"]).await.is_error());
    server.running.stop().await;
}

#[tokio::test]
async fn a_fetch_at_the_end_long_polls_until_a_record_arrives() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, FetchResponse};
    let dir = tmp_dir("kafka-long-poll");
    let server = common::start_in(&dir, &[]).await;
    let mut c = server.resp().await;
    c.ok(&["TOPIC.CREATE", "ticks", "PARTITIONS", "1"]).await;
    c.ok(&["PRODUCE", "ticks", "first"]).await;
    let fetch = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(30_000)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("ticks")))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(1)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let mut conn = TcpStream::connect(server.kafka).await.unwrap();
    let mut waiting = tokio::spawn(async move {
        let r: FetchResponse = call(&mut conn, ApiKey::Fetch, 12, &fetch).await;
        r
    });
    // Nothing at offset 1 yet: the fetch is parked at the end of the log (an answer with
    // no records would end the task) until a produce over RESP wakes it.
    let parked = tokio::time::timeout(std::time::Duration::from_millis(300), &mut waiting).await;
    assert!(parked.is_err(), "the fetch waited");
    c.ok(&["PRODUCE", "ticks", "second"]).await;
    let r = waiting.await.unwrap();
    let p = &r.responses[0].partitions[0];
    assert_eq!((p.error_code, p.high_watermark), (0, 2));
    let records = p.records.as_ref().unwrap();
    assert!(
        records.windows(6).any(|w| w == b"second"),
        "the new record is in the answer"
    );
    server.running.stop().await;
}

#[tokio::test]
async fn gzip_and_snappy_batches_from_a_java_style_producer_are_read_back_by_kcat() {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let dir = tmp_dir("kafka-gzip");
    let server = common::start_in(&dir, &[]).await;
    let mut conn = TcpStream::connect(server.kafka).await.unwrap();
    for (codec, compression) in [("gzip", Compression::Gzip), ("snappy", Compression::Snappy)] {
        let records: Vec<Record> = (0..200)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i,
                sequence: -1,
                timestamp: 1_700_000_000_000 + i,
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(format!("{codec} value {i}"))),
                headers: Default::default(),
            })
            .collect();
        let mut batch = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut batch,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        let topic = format!("java-{codec}");
        let produce = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(batch.freeze())),
                    ]),
            ]);
        let r: ProduceResponse = call(&mut conn, ApiKey::Produce, 9, &produce).await;
        let p = &r.responses[0].partition_responses[0];
        assert_eq!((p.error_code, p.base_offset), (0, 0), "{codec}");
        // Stored compressed, as sent (RESP's FETCH does not decompress).
        let reply = server.resp().await.call(&["FETCH", &topic, "0", "0"]).await;
        assert!(common::error_text(&reply).starts_with("UNSUPPORTED_COMPRESSION_TYPE"));
        let consumed = consume_all(&server.broker(), &topic, &[]).await;
        let expected: Vec<(u32, u64, String, String)> = (0..200)
            .map(|i| (0, i, format!("k{i}"), format!("{codec} value {i}")))
            .collect();
        assert_eq!(consumed, expected, "{codec}");
    }
    server.running.stop().await;
}

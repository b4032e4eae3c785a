#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! Idempotent producers on the Kafka listener: the broker's sequence checks seen through
//! raw requests (a retry acknowledged with its first offset, a gap, a fenced epoch, all
//! after a restart too), and real clients on their defaults — kafka-python 3's
//! `KafkaProducer()` and confluent-kafka with `enable.idempotence` — whose connection is
//! cut after a produce was written but before its answer arrived: the retry is written
//! once.

mod common;
mod kafka_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::{int, tmp_dir};
use kafka_common::{call, eos_client, items};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse,
    TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Kafka's error codes, as the tests expect them.
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_RECORD: i16 = 87;

/// One batch of `count` records from producer `pid`/`epoch` starting at `sequence`.
fn batch(pid: i64, epoch: i16, sequence: i32, count: i32, transactional: bool) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            sequence: sequence + i,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from(format!("seq-{}", sequence + i))),
            headers: Default::default(),
        })
        .collect();
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut out,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    out.freeze()
}

/// Produces one batch to partition 0 of `topic`: `(error code, base offset)`.
async fn produce(conn: &mut TcpStream, topic: &str, records: Bytes) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.into())))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ]);
    let r: ProduceResponse = call(conn, ApiKey::Produce, 9, &request).await;
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

async fn init_producer_id(conn: &mut TcpStream, transactional_id: Option<&str>) -> (i64, i16) {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(
            transactional_id.map(|t| TransactionalId(StrBytes::from_string(t.into()))),
        )
        .with_transaction_timeout_ms(60_000)
        .with_producer_id((-1).into())
        .with_producer_epoch(-1);
    let r: InitProducerIdResponse = call(conn, ApiKey::InitProducerId, 4, &request).await;
    assert_eq!(r.error_code, 0);
    (r.producer_id.0, r.producer_epoch)
}

async fn end_offset(server: &common::TestServer, topic: &str) -> i64 {
    let mut c = server.client().await;
    int(&c.call(&["LISTOFFSETS", topic, "0", "LATEST"]).await)
}

#[tokio::test]
async fn sequence_checks_dedupe_retries_refuse_gaps_and_fence_old_epochs_across_a_restart() {
    let dir = tmp_dir("kafka-idempotence");
    let server = common::start_in(&dir, &[]).await;
    let mut conn = TcpStream::connect(server.kafka).await.unwrap();
    let (pid, epoch) = init_producer_id(&mut conn, None).await;
    let (other, _) = init_producer_id(&mut conn, None).await;
    assert_ne!(pid, other, "every idempotent producer gets its own id");

    assert_eq!(
        produce(&mut conn, "t", batch(pid, epoch, 0, 3, false)).await,
        (0, 0)
    );
    assert_eq!(
        produce(&mut conn, "t", batch(pid, epoch, 3, 2, false)).await,
        (0, 3)
    );
    // The first batch again, as a producer retries one whose answer it lost: its original
    // offset, and nothing written.
    assert_eq!(
        produce(&mut conn, "t", batch(pid, epoch, 0, 3, false)).await,
        (0, 0)
    );
    assert_eq!(end_offset(&server, "t").await, 5);
    // A gap: sequence 7 when 5 is next.
    let (code, _) = produce(&mut conn, "t", batch(pid, epoch, 7, 1, false)).await;
    assert_eq!(code, OUT_OF_ORDER_SEQUENCE_NUMBER);
    // Another producer interleaves freely.
    assert_eq!(
        produce(&mut conn, "t", batch(other, 0, 0, 1, false)).await,
        (0, 5)
    );

    // Restart: the producer state is rebuilt from the batch headers in the log.
    server.running.stop().await;
    let server = common::start_in(&dir, &[]).await;
    let mut conn = TcpStream::connect(server.kafka).await.unwrap();
    assert_eq!(
        produce(&mut conn, "t", batch(pid, epoch, 3, 2, false)).await,
        (0, 3)
    );
    let (code, _) = produce(&mut conn, "t", batch(pid, epoch, 9, 1, false)).await;
    assert_eq!(code, OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(
        produce(&mut conn, "t", batch(pid, epoch, 5, 1, false)).await,
        (0, 6)
    );
    assert_eq!(end_offset(&server, "t").await, 7);
    // Producer ids are never handed out twice, even after a restart.
    let (third, _) = init_producer_id(&mut conn, None).await;
    assert!(third > other, "{third} > {other}");

    // A transactional id: each InitProducerId bumps the epoch; the old one is fenced.
    let (tpid, e0) = init_producer_id(&mut conn, Some("tx-a")).await;
    let (tpid_again, e1) = init_producer_id(&mut conn, Some("tx-a")).await;
    assert_eq!((tpid_again, e1), (tpid, e0 + 1));
    // A transactional batch outside a transaction (no AddPartitionsToTxn) is refused.
    let (code, _) = produce(&mut conn, "t", batch(tpid, e1, 0, 1, true)).await;
    assert_eq!(code, INVALID_TXN_STATE);
    // In the partition log, a newer epoch fences the older one.
    assert_eq!(
        produce(&mut conn, "t", batch(pid, epoch + 1, 0, 1, false)).await,
        (0, 7)
    );
    let (code, _) = produce(&mut conn, "t", batch(pid, epoch, 6, 1, false)).await;
    assert_eq!(code, INVALID_PRODUCER_EPOCH);
    // Markers are the coordinator's to write: a control batch from a client is refused.
    let forged = stream::marker::encode(tpid, e1, stream::marker::Outcome::Abort, 0);
    let (code, _) = produce(&mut conn, "t", Bytes::from(forged)).await;
    assert_eq!(code, INVALID_RECORD);
    assert_eq!(end_offset(&server, "t").await, 8);
    server.running.stop().await;
}

/// A TCP proxy in front of the Kafka listener that, once, lets a Produce request through
/// and throws its answer away, closing the connection: the producer cannot know whether
/// the batch was written, and retries it. Returns the proxy's address and whether the cut
/// happened.
async fn cutting_proxy(listener: TcpListener, broker: std::net::SocketAddr) -> Arc<AtomicBool> {
    let cut = Arc::new(AtomicBool::new(false));
    let produces = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let done = cut.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(broker).await else {
                continue;
            };
            tokio::spawn(pump(client, server, done.clone(), produces.clone()));
        }
    });
    cut
}

/// Forwards one connection frame by frame (both ways); see [`cutting_proxy`].
async fn pump(
    client: TcpStream,
    server: TcpStream,
    cut: Arc<AtomicBool>,
    produces: Arc<std::sync::atomic::AtomicUsize>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // The correlation id whose answer is to be dropped.
    let (drop_tx, mut drop_rx) = tokio::sync::watch::channel(None::<i32>);
    let upstream = async move {
        loop {
            let Ok(len) = client_read.read_i32().await else {
                return;
            };
            let mut frame = vec![0; len as usize];
            if client_read.read_exact(&mut frame).await.is_err() {
                return;
            }
            let api = i16::from_be_bytes([frame[0], frame[1]]);
            let correlation = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
            // The third produce (after the producer is well under way) loses its answer.
            if api == ApiKey::Produce as i16
                && produces.fetch_add(1, Ordering::SeqCst) == 2
                && !cut.swap(true, Ordering::SeqCst)
            {
                drop_tx.send_replace(Some(correlation));
            }
            if server_write.write_i32(len).await.is_err()
                || server_write.write_all(&frame).await.is_err()
            {
                return;
            }
        }
    };
    let downstream = async move {
        loop {
            let Ok(len) = server_read.read_i32().await else {
                return;
            };
            let mut frame = vec![0; len as usize];
            if server_read.read_exact(&mut frame).await.is_err() {
                return;
            }
            let correlation = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
            if *drop_rx.borrow_and_update() == Some(correlation) {
                return; // the answer is lost, the connection closes
            }
            if client_write.write_i32(len).await.is_err()
                || client_write.write_all(&frame).await.is_err()
            {
                return;
            }
        }
    };
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
    }
}

#[tokio::test]
async fn default_clients_whose_connection_is_cut_mid_produce_write_each_record_once() {
    for client in ["kafka-python", "confluent-idempotent"] {
        let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_port = proxy.local_addr().unwrap().port().to_string();
        let server = common::start(
            &format!("kafka-cut-{client}"),
            &["--kafka-advertised-port", &proxy_port],
        )
        .await;
        let cut = cutting_proxy(proxy, server.kafka).await;
        let broker = format!("127.0.0.1:{proxy_port}");
        let lines = eos_client(&["produce", &broker, client, "cut", "30"]).await;
        assert!(
            cut.load(Ordering::SeqCst),
            "{client}: the proxy cut a produce"
        );
        let mut acked: Vec<String> = items(&lines, "acked");
        acked.sort_by_key(|a| a.split(':').nth(1).unwrap().parse::<u32>().unwrap());
        let expected: Vec<String> = (0..30).map(|i| format!("0:{i}")).collect();
        assert_eq!(acked, expected, "{client}: every record acknowledged once");
        assert_eq!(
            end_offset(&server, "cut").await,
            30,
            "{client}: nothing written twice"
        );
        let values = items(
            &eos_client(&["read", &broker, "cut", "read_uncommitted"]).await,
            "values",
        );
        let expected: Vec<String> = (0..30).map(|i| format!("v{i}")).collect();
        assert_eq!(values, expected, "{client}");
        server.running.stop().await;
    }
}

#[tokio::test]
async fn every_client_default_produces_and_consumes() {
    let server = common::start("kafka-defaults", &[]).await;
    let broker = server.kafka.to_string();
    for client in ["kafka-python", "confluent-kafka", "confluent-idempotent"] {
        let topic = format!("defaults-{client}");
        let acked = items(
            &eos_client(&["produce", &broker, client, &topic, "20"]).await,
            "acked",
        );
        assert_eq!(acked.len(), 20, "{client}");
        let values = items(
            &eos_client(&["read", &broker, &topic, "read_committed"]).await,
            "values",
        );
        let expected: Vec<String> = (0..20).map(|i| format!("v{i}")).collect();
        assert_eq!(values, expected, "{client}");
    }
    server.running.stop().await;
}

#[tokio::test]
async fn resp_produce_with_a_producer_id_is_idempotent_too() {
    let server = common::start("resp-idempotence", &[]).await;
    let mut c = server.client().await;
    let init = c.call(&["PRODUCER.INIT"]).await;
    let (id, epoch) = (int(&common::array(&init)[0]), int(&common::array(&init)[1]));
    assert_eq!(epoch, 0);
    let (id, epoch) = (id.to_string(), epoch.to_string());
    let produce = |value: &'static str, sequence: &'static str| {
        let (id, epoch) = (id.clone(), epoch.clone());
        let addr = server.addr();
        async move {
            let mut c = common::Client::connect(addr).await;
            let words = [
                "PRODUCE",
                "r",
                value,
                "PARTITION",
                "0",
                "PRODUCER",
                &id,
                &epoch,
            ];
            let mut words: Vec<&str> = words.to_vec();
            words.push(sequence);
            c.call(&words).await
        }
    };
    let placed = |reply: &proto::Frame| int(&common::array(reply)[1]);
    assert_eq!(placed(&produce("a", "0").await), 0);
    assert_eq!(placed(&produce("b", "1").await), 1);
    // The first one again (a retry): its offset, not a new record.
    assert_eq!(placed(&produce("a", "0").await), 0);
    let gap = produce("c", "5").await;
    assert!(
        common::error_text(&gap).starts_with("OUT_OF_ORDER_SEQUENCE_NUMBER"),
        "{gap:?}"
    );
    assert_eq!(int(&c.call(&["LISTOFFSETS", "r", "0", "LATEST"]).await), 2);
    server.running.stop().await;
}

/// ListOffsets latest with read_committed: the last stable offset of partition 0.
async fn stable_offset(conn: &mut TcpStream, topic: &str) -> i64 {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
    let request = ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_isolation_level(1)
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.into())))
                .with_partitions(vec![ListOffsetsPartition::default().with_timestamp(-1)]),
        ]);
    let r: ListOffsetsResponse = call(conn, ApiKey::ListOffsets, 5, &request).await;
    r.topics[0].partitions[0].offset
}

/// Starts a transaction of `txid` (timeout `timeout_ms`) that wrote three records to
/// partition 0 of topic `txn`, and leaves it open; returns the producer id and epoch.
async fn open_transaction(
    server: &common::TestServer,
    conn: &mut TcpStream,
    txid: &TransactionalId,
    timeout_ms: i32,
) -> (i64, i16) {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(txid.clone()))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id((-1).into())
        .with_producer_epoch(-1);
    let r: InitProducerIdResponse = call(conn, ApiKey::InitProducerId, 4, &request).await;
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    common::Client::connect(server.addr())
        .await
        .call(&["TOPIC.CREATE", "txn"])
        .await;
    write_in_transaction(conn, txid, (pid, epoch), 0).await;
    (pid, epoch)
}

/// What a transactional producer does between its transaction's start and its end:
/// AddPartitionsToTxn for partition 0 of `txn`, then three records there, the first with
/// sequence number `sequence`.
async fn write_in_transaction(
    conn: &mut TcpStream,
    txid: &TransactionalId,
    (pid, epoch): (i64, i16),
    sequence: i32,
) {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};
    let add = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txid.clone())
        .with_v3_and_below_producer_id(pid.into())
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![
            AddPartitionsToTxnTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("txn")))
                .with_partitions(vec![0]),
        ]);
    let r: AddPartitionsToTxnResponse = call(conn, ApiKey::AddPartitionsToTxn, 3, &add).await;
    assert_eq!(
        r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        0
    );
    // The transactional id goes with a transactional produce.
    let request = ProduceRequest::default()
        .with_transactional_id(Some(txid.clone()))
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("txn")))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch(pid, epoch, sequence, 3, true))),
                ]),
        ]);
    let r: ProduceResponse = call(conn, ApiKey::Produce, 9, &request).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
}

/// EndTxn committing `txid`'s transaction: the answer's error code.
async fn commit(conn: &mut TcpStream, txid: &TransactionalId, (pid, epoch): (i64, i16)) -> i16 {
    use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};
    let end = EndTxnRequest::default()
        .with_transactional_id(txid.clone())
        .with_producer_id(pid.into())
        .with_producer_epoch(epoch)
        .with_committed(true);
    let r: EndTxnResponse = call(conn, ApiKey::EndTxn, 3, &end).await;
    r.error_code
}

/// The fsync rounds the server has run so far (`INFO stream`'s `fsync_rounds`).
async fn fsync_rounds(info: &mut common::Client) -> u64 {
    let text = common::string(&info.call(&["INFO", "stream"]).await);
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("fsync_rounds:"));
    line.unwrap().parse().unwrap()
}

async fn describe_transaction(
    conn: &mut TcpStream,
    txid: &TransactionalId,
) -> kafka_protocol::messages::describe_transactions_response::TransactionState {
    use kafka_protocol::messages::{DescribeTransactionsRequest, DescribeTransactionsResponse};
    let describe =
        DescribeTransactionsRequest::default().with_transactional_ids(vec![txid.clone()]);
    let r: DescribeTransactionsResponse =
        call(conn, ApiKey::DescribeTransactions, 0, &describe).await;
    r.transaction_states.into_iter().next().unwrap()
}

#[tokio::test]
async fn an_abandoned_transaction_times_out_is_aborted_and_its_producer_fenced() {
    const PRODUCER_FENCED: i16 = 90;
    let server = common::start("kafka-txn-timeout", &[]).await;
    let mut conn = TcpStream::connect(server.kafka).await.unwrap();
    let txid = TransactionalId(StrBytes::from_static_str("abandoned"));
    let (pid, epoch) = open_transaction(&server, &mut conn, &txid, 1000).await;

    // read_committed's latest offset (the last stable offset) stays at 0 while the
    // transaction is open; the timeout aborts it (a marker at 3), and it moves to 4.
    assert_eq!(stable_offset(&mut conn, "txn").await, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while stable_offset(&mut conn, "txn").await != 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "the transaction timed out"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let state = describe_transaction(&mut conn, &txid).await;
    assert_eq!(state.transaction_state.as_str(), "CompleteAbort");
    assert_eq!(state.producer_epoch, epoch + 1, "the epoch was bumped");
    // The zombie comes back to commit: fenced.
    assert_eq!(
        commit(&mut conn, &txid, (pid, epoch)).await,
        PRODUCER_FENCED
    );
    server.running.stop().await;
}

#[tokio::test]
async fn a_transaction_decided_before_a_crash_is_finished_on_restart() {
    use stream::log::DiskOptions;
    use stream::transaction::{TxnRecord, TxnState};
    use stream::transaction_log::TransactionLog;
    let dir = tmp_dir("kafka-txn-recover");
    let server = common::start_in(&dir, &[]).await;
    let mut conn = TcpStream::connect(server.kafka).await.unwrap();
    let txid = TransactionalId(StrBytes::from_static_str("decided"));
    open_transaction(&server, &mut conn, &txid, 60_000).await;
    assert_eq!(stable_offset(&mut conn, "txn").await, 0);
    server.running.stop().await;
    // The crash came right after EndTxn(commit) made its decision durable: the
    // PrepareCommit record is in the transaction log, no marker in the partition.
    {
        let (log, records) = TransactionLog::open(&dir, DiskOptions::default(), 0).unwrap();
        let mut decided = records
            .into_iter()
            .find_map(|r| match r {
                TxnRecord::Metadata(m) if m.transactional_id == "decided" => Some(m),
                _ => None,
            })
            .unwrap();
        assert_eq!(decided.state, TxnState::Ongoing);
        decided.state = TxnState::PrepareCommit;
        log.append(&[TxnRecord::Metadata(decided)], 0).unwrap();
    }
    let server = common::start_in(&dir, &[]).await;
    let mut conn = TcpStream::connect(server.kafka).await.unwrap();
    // On start the coordinator wrote the COMMIT marker (offset 3) and completed it.
    assert_eq!(stable_offset(&mut conn, "txn").await, 4);
    assert_eq!(end_offset(&server, "txn").await, 4);
    let state = describe_transaction(&mut conn, &txid).await;
    assert_eq!(state.transaction_state.as_str(), "CompleteCommit");
    server.running.stop().await;
}

/// InitProducerId v3+ (KIP-360): a running producer names its id and epoch to bump its
/// own epoch (how clients recover from an error without a restart). Only the current
/// epoch may: once a new instance took over, the old one naming its epoch is fenced —
/// `PRODUCER_FENCED` from v4, `INVALID_PRODUCER_EPOCH` before — instead of fencing its
/// successor.
#[tokio::test]
async fn a_producer_may_bump_only_its_own_current_epoch() {
    const PRODUCER_FENCED: i16 = 90;
    let server = common::start("kafka-kip360", &[]).await;
    let mut conn = TcpStream::connect(server.kafka).await.unwrap();
    let init = |pid: i64, epoch: i16| {
        InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("bumper"))))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(pid.into())
            .with_producer_epoch(epoch)
    };
    let r: InitProducerIdResponse = call(&mut conn, ApiKey::InitProducerId, 4, &init(-1, -1)).await;
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    let r: InitProducerIdResponse =
        call(&mut conn, ApiKey::InitProducerId, 4, &init(pid, epoch)).await;
    assert_eq!((r.error_code, r.producer_id.0), (0, pid));
    assert_eq!(r.producer_epoch, epoch + 1, "its own epoch, bumped");
    // A new instance of the transactional id takes over ...
    let r: InitProducerIdResponse = call(&mut conn, ApiKey::InitProducerId, 4, &init(-1, -1)).await;
    assert_eq!(r.producer_epoch, epoch + 2);
    // ... and the old one cannot bump its way back.
    let r: InitProducerIdResponse =
        call(&mut conn, ApiKey::InitProducerId, 4, &init(pid, epoch + 1)).await;
    assert_eq!(r.error_code, PRODUCER_FENCED);
    let r: InitProducerIdResponse =
        call(&mut conn, ApiKey::InitProducerId, 3, &init(pid, epoch + 1)).await;
    assert_eq!(r.error_code, INVALID_PRODUCER_EPOCH);
    let r: InitProducerIdResponse =
        call(&mut conn, ApiKey::InitProducerId, 4, &init(pid, epoch + 2)).await;
    assert_eq!((r.error_code, r.producer_epoch), (0, epoch + 3));
    server.running.stop().await;
}

/// Under `--fsync always`, EndTxn waits for two fsyncs: the Prepare record (the decision)
/// and one covering the markers (and the offsets, had there been any) — not one more for
/// the Complete record, which a restart can do without. The answer still comes only
/// after the marker is durable: the partition's last stable offset is past it.
#[tokio::test]
async fn end_txn_under_fsync_always_waits_for_two_fsyncs() {
    let dir = tmp_dir("kafka-txn-fsyncs");
    let server = common::start_in(&dir, &["--fsync", "always"]).await;
    let mut conn = TcpStream::connect(server.kafka).await.unwrap();
    let txid = TransactionalId(StrBytes::from_static_str("synced"));
    let (pid, epoch) = open_transaction(&server, &mut conn, &txid, 60_000).await;
    let mut info = common::Client::connect(server.addr()).await;
    let before = fsync_rounds(&mut info).await;
    assert_eq!(commit(&mut conn, &txid, (pid, epoch)).await, 0);
    assert_eq!(fsync_rounds(&mut info).await - before, 2);
    assert_eq!(stable_offset(&mut conn, "txn").await, 4);
    server.running.stop().await;
}

/// Under `--fsync everysec` no transaction request waits for the disk: its records are
/// written to the kernel before the answer and fsynced by the once-a-second task, as
/// DESIGN.md's durability words say. Thirty transactions (AddPartitionsToTxn, a produce,
/// EndTxn each) cost at most the background task's rounds — one a second — where EndTxn
/// waiting for the Prepare record and the markers would cost two rounds each.
#[tokio::test]
async fn transactions_under_fsync_everysec_wait_for_no_fsync() {
    const TRANSACTIONS: i32 = 30;
    let dir = tmp_dir("kafka-txn-everysec");
    let server = common::start_in(&dir, &["--fsync", "everysec"]).await;
    let mut conn = TcpStream::connect(server.kafka).await.unwrap();
    let txid = TransactionalId(StrBytes::from_static_str("unsynced"));
    let (pid, epoch) = open_transaction(&server, &mut conn, &txid, 60_000).await;
    let mut info = common::Client::connect(server.addr()).await;
    let before = fsync_rounds(&mut info).await;
    let started = std::time::Instant::now();
    for i in 0..TRANSACTIONS {
        if i > 0 {
            write_in_transaction(&mut conn, &txid, (pid, epoch), 3 * i).await;
        }
        assert_eq!(commit(&mut conn, &txid, (pid, epoch)).await, 0);
    }
    let rounds = fsync_rounds(&mut info).await - before;
    // The background task's rounds: one a second, and one already under way.
    let background = started.elapsed().as_secs() + 2;
    assert!(
        rounds <= background,
        "{rounds} fsync rounds for {TRANSACTIONS} transactions in {:?}",
        started.elapsed()
    );
    // Every transaction committed: three records and a marker each.
    assert_eq!(
        stable_offset(&mut conn, "txn").await,
        i64::from(TRANSACTIONS) * 4
    );
    server.running.stop().await;
}

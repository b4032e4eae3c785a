#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! Exactly once, end to end, with confluent-kafka: a transactional consume-transform-
//! produce loop is SIGKILLed mid-transaction, the server too, both restarted; a
//! read_committed consumer then finds every input record in the output exactly once, a
//! read_uncommitted one the aborted records as well; kafka-python's admin client describes
//! the transaction and its producer, deletes records and the group's offsets. And altered
//! retention that the log obeys, a topic grown under a running consumer group.

mod common;
mod kafka_common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{Client, eventually, int, tmp_dir};
use kafka_common::{eos_client, items};
use testkit::free_port;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka_eos_clients.py");

/// The real server binary on fixed ports, `--fsync always`; killed (SIGKILL) on drop.
struct Process(Child);

async fn spawn_server(dir: &Path, port: u16, kafka_port: u16) -> Process {
    let child = Command::new(env!("CARGO_BIN_EXE_infralab-stream"))
        .args([
            "--port",
            &port.to_string(),
            "--kafka-port",
            &kafka_port.to_string(),
        ])
        .args(["--dir", dir.to_str().unwrap(), "--fsync", "always"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    eventually("the server to listen", || async move {
        tokio::net::TcpStream::connect(addr).await.is_ok()
    })
    .await;
    Process(child)
}

#[tokio::test]
async fn a_transactional_loop_killed_mid_transaction_leaves_each_record_once_for_read_committed() {
    let dir = tmp_dir("kafka-eos-sigkill");
    let (port, kafka_port) = (free_port(), free_port());
    let broker = format!("127.0.0.1:{kafka_port}");
    let mut server = spawn_server(&dir, port, kafka_port).await;
    let acked = items(
        &eos_client(&["produce", &broker, "kafka-python", "in", "50"]).await,
        "acked",
    );
    assert_eq!(acked.len(), 50);

    // The loop commits two transactions, starts a third, writes half of it: SIGKILL.
    let mut etl = Command::new("python3")
        .arg(SCRIPT)
        .args(["etl", &broker, "in", "out", "etl-group", "etl-1", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(etl.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the loop reached the middle of a transaction")
        .unwrap();
    assert_eq!(line.as_deref(), Some("mid_transaction"));
    etl.kill().await.unwrap();
    // The open transaction's records are in the log, above the last stable offset.
    let uncommitted = items(
        &eos_client(&["read", &broker, "out", "read_uncommitted"]).await,
        "values",
    );
    let committed = items(
        &eos_client(&["read", &broker, "out", "read_committed"]).await,
        "values",
    );
    assert_eq!(
        committed.len(),
        20,
        "two transactions of ten: {committed:?}"
    );
    assert!(uncommitted.len() > 20, "{uncommitted:?}");

    // The server dies too (SIGKILL) and comes back: the transaction state is recovered.
    server.0.kill().await.unwrap();
    let _server = spawn_server(&dir, port, kafka_port).await;
    // A new instance of the loop (same transactional.id) fences the old one, whose open
    // transaction is aborted, and finishes the input.
    let done = eos_client(&["etl", &broker, "in", "out", "etl-group", "etl-1"]).await;
    assert!(!items(&done, "committed_transactions").is_empty());

    let mut committed = items(
        &eos_client(&["read", &broker, "out", "read_committed"]).await,
        "values",
    );
    committed.sort();
    let mut expected: Vec<String> = (0..50).map(|i| format!("v{i}!")).collect();
    expected.sort();
    assert_eq!(
        committed, expected,
        "each input record once, for read_committed"
    );
    let uncommitted = items(
        &eos_client(&["read", &broker, "out", "read_uncommitted"]).await,
        "values",
    );
    assert!(
        uncommitted.len() > 50 && expected.iter().all(|v| uncommitted.contains(v)),
        "read_uncommitted sees the aborted records too: {uncommitted:?}"
    );

    // The admin views of it, and DeleteRecords / OffsetDelete on the input.
    let admin = eos_client(&["admin", &broker, "etl-1", "in", "etl-group"]).await;
    assert_eq!(items(&admin, "txn_state"), ["COMPLETE_COMMIT"]);
    assert_eq!(items(&admin, "listed"), ["etl-1"]);
    assert_eq!(
        items(&admin, "producers"),
        ["1"],
        "kafka-python's idempotent producer"
    );
    assert_eq!(items(&admin, "brokers"), ["1"]);
    assert_eq!(items(&admin, "low_watermark"), ["10"]);
    assert_eq!(items(&admin, "offset_delete"), ["NoError"]);
    let mut c = Client::connect(format!("127.0.0.1:{port}").parse().unwrap()).await;
    assert_eq!(
        int(&c.call(&["LISTOFFSETS", "in", "0", "EARLIEST"]).await),
        10
    );
    let committed = c.call(&["GROUP.COMMITTED", "etl-group", "in", "0"]).await;
    assert_eq!(
        common::array(&committed)[0],
        proto::Frame::Null,
        "{committed:?}"
    );
}

#[tokio::test]
async fn altered_retention_is_described_and_obeyed_by_the_log() {
    let server = common::start("kafka-configs", &["--retention-check-interval-ms", "50"]).await;
    let broker = server.kafka.to_string();
    let mut c = Client::connect(server.addr()).await;
    c.ok(&["TOPIC.CREATE", "kept"]).await;
    let lines = eos_client(&["configs", &broker, "kept"]).await;
    let before = items(&lines, "before");
    assert!(
        before.contains(&"retention.ms=604800000".to_string()),
        "{before:?}"
    );
    assert!(
        before.contains(&"cleanup.policy=delete".to_string()),
        "{before:?}"
    );
    let after = items(&lines, "after");
    assert!(after.contains(&"retention.ms=200".to_string()), "{after:?}");
    assert!(
        after.contains(&"segment.bytes=1024".to_string()),
        "{after:?}"
    );
    assert_ne!(
        items(&lines, "bad"),
        ["None"],
        "an unknown config is refused"
    );
    let incremental = items(&lines, "incremental");
    assert_eq!(incremental[0], "ok");
    assert!(
        incremental.contains(&"retention.bytes=1000000".to_string()),
        "{incremental:?}"
    );
    assert!(
        incremental.contains(&"retention.ms=200".to_string()),
        "{incremental:?}"
    );
    assert_eq!(items(&lines, "incremental_bad"), ["INVALID_CONFIG"]);
    // The log obeys: 1 KiB segments, and everything older than 200 ms goes.
    for i in 0..40 {
        c.call(&["PRODUCE", "kept", &format!("{i:0>64}")]).await;
    }
    eventually("retention to delete the old segments", || {
        let addr = server.addr();
        async move {
            let mut c = Client::connect(addr).await;
            int(&c.call(&["LISTOFFSETS", "kept", "0", "EARLIEST"]).await) == 40
        }
    })
    .await;
    server.running.stop().await;
}

#[tokio::test]
async fn a_running_consumer_group_rebalances_onto_new_partitions() {
    let server = common::start("kafka-grow", &[]).await;
    let broker = server.kafka.to_string();
    let mut c = Client::connect(server.addr()).await;
    c.ok(&["TOPIC.CREATE", "growing", "PARTITIONS", "1"]).await;
    let lines = eos_client(&["grow", &broker, "growing", "growers"]).await;
    assert_eq!(items(&lines, "assignment"), ["0", "1", "2"]);
    assert_eq!(items(&lines, "value"), ["on-new-partition"]);
    server.running.stop().await;
}

/// kafka-python 3's transactional producer against what ApiVersions advertises
/// (TxnOffsetCommit v3, KIP-447): offsets sent with the group metadata of the current
/// member commit; the same member's metadata one generation back — a zombie processor
/// that missed a rebalance — is refused (`ILLEGAL_GENERATION`, which the client turns
/// into an aborted transaction), so neither its offset nor its output is committed; a
/// bare group id (no member named) commits as before KIP-447.
#[tokio::test]
async fn a_zombie_consumers_offsets_are_refused_in_a_transaction() {
    let server = common::start("kafka-kip447", &[]).await;
    let broker = server.kafka.to_string();
    let mut c = Client::connect(server.addr()).await;
    for topic in ["fenced-in", "fenced-out"] {
        c.ok(&["TOPIC.CREATE", topic, "PARTITIONS", "1"]).await;
    }
    for v in ["a", "b", "c"] {
        c.call(&["PRODUCE", "fenced-in", v]).await;
    }
    let lines = eos_client(&[
        "fencing",
        &broker,
        "fenced-in",
        "fenced-out",
        "fenced-group",
        "fenced-1",
    ])
    .await;
    assert_eq!(items(&lines, "current"), ["committed"]);
    assert_eq!(items(&lines, "zombie"), ["CommitFailedError"]);
    assert_eq!(items(&lines, "bare"), ["committed"]);
    assert_eq!(items(&lines, "committed"), ["1", "1", "3"]);
    assert_eq!(items(&lines, "values"), ["current", "bare"]);
    server.running.stop().await;
}

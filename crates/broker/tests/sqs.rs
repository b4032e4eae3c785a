#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! The SQS listener: boto3 (with greenstalk and redis-py beside it) through every action,
//! FIFO queues (message groups, deduplication),
//! redelivery, dead letters, long polling and jobs crossing protocols; signed requests
//! under `--requirepass`; protected mode; and bad requests answered with SQS's errors
//! while the server keeps serving.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use service::CancellationToken;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A broker with every protocol on a free port, in `dir`.
async fn broker(dir: &std::path::Path, extra: &[&str]) -> broker::Started {
    common::start_with_protocols(dir, extra).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_drives_every_action_on_the_queues_beanstalkd_and_resp_share() {
    let dir = common::temp_dir("sqs-boto3");
    let ours = broker(&dir, &[]).await;
    let sqs = ours.sqs_addr.unwrap();
    let beanstalk = ours.beanstalk_addr.unwrap();
    common::python(
        "sqs/boto3_session.py",
        "boto3, greenstalk, redis",
        &[
            format!("http://{sqs}"),
            beanstalk.ip().to_string(),
            beanstalk.port().to_string(),
            ours.running.addr().port().to_string(),
        ],
    )
    .await;
    ours.running.stop().await;
}

#[tokio::test]
async fn boto3_fifo_queues_keep_group_order_and_drop_duplicate_sends() {
    let dir = common::temp_dir("sqs-fifo");
    let ours = broker(&dir, &[]).await;
    let sqs = ours.sqs_addr.unwrap();
    common::python("sqs/boto3_fifo.py", "boto3", &[format!("http://{sqs}")]).await;
    ours.running.stop().await;
}

#[tokio::test]
async fn with_a_password_requests_must_be_signed_with_it() {
    let dir = common::temp_dir("sqs-signed");
    // Exposed, with a password: allowed once the beanstalkd port (no authentication) is off.
    let argv = [
        "broker",
        "--port",
        "0",
        "--bind",
        "0.0.0.0",
        "--requirepass",
        "s3cret",
    ];
    let ports = ["--beanstalk-port", "0", "--sqs-port", "auto", "--dir"];
    let args = broker::Args::parse_from(argv.iter().chain(&ports).chain([&dir.to_str().unwrap()]));
    let ours = broker::start_with_protocols(args, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(ours.beanstalk_addr, None);
    let sqs = SocketAddr::from(([127, 0, 0, 1], ours.sqs_addr.unwrap().port()));
    let args = [format!("http://{sqs}"), "s3cret".into()];
    common::python("sqs/boto3_signed.py", "boto3", &args).await;
    // Unsigned: refused.
    let (status, body) = post(sqs, "ListQueues", "{}").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("MissingAuthenticationToken"), "{body}");
    ours.running.stop().await;
}

/// One HTTP/1.1 request on a fresh connection: (status, body).
async fn request(addr: SocketAddr, raw: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(raw).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut reply))
        .await
        .expect("no reply within 10 s")
        .unwrap();
    let text = String::from_utf8_lossy(&reply).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

async fn post(addr: SocketAddr, action: &str, body: &str) -> (u16, String) {
    let raw = format!(
        "POST / HTTP/1.1\r\nhost: {addr}\r\nx-amz-target: AmazonSQS.{action}\r\n\
         content-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    request(addr, raw.as_bytes()).await
}

#[tokio::test]
async fn bad_requests_get_sqs_errors_and_the_server_keeps_serving() {
    let dir = common::temp_dir("sqs-bad");
    let ours = broker(&dir, &[]).await;
    let sqs = ours.sqs_addr.unwrap();
    let table: &[(&str, &str, u16, &str)] = &[
        ("CreateQueue", "{", 400, "SerializationException"),
        ("CreateQueue", "[1, 2]", 400, "SerializationException"),
        ("CreateQueue", "{}", 400, "MissingParameter"),
        (
            "CreateQueue",
            r#"{"QueueName": 7}"#,
            400,
            "SerializationException",
        ),
        (
            "GetQueueUrl",
            r#"{"QueueName": "nope"}"#,
            400,
            "QueueDoesNotExist",
        ),
        ("Teleport", "{}", 400, "InvalidAction"),
        (
            "ReceiveMessage",
            r#"{"QueueUrl": "http://x/000000000000/nope"}"#,
            400,
            "QueueDoesNotExist",
        ),
    ];
    for &(action, body, status, code) in table {
        let (got, reply) = post(sqs, action, body).await;
        assert_eq!(got, status, "{action} {body}: {reply}");
        assert!(
            reply.contains(&format!("com.amazonaws.sqs#{code}")),
            "{action} {body}: {reply}"
        );
    }
    let (status, body) = post(sqs, "CreateQueue", r#"{"QueueName": "q"}"#).await;
    assert_eq!(status, 200, "{body}");
    let url = format!("http://{sqs}/000000000000/q");
    let receive = format!(r#"{{"QueueUrl": "{url}", "MaxNumberOfMessages": 11}}"#);
    let (status, body) = post(sqs, "ReceiveMessage", &receive).await;
    assert_eq!(status, 400);
    assert!(body.contains("InvalidParameterValue"), "{body}");
    // The query protocol is not spoken, and says so.
    let (status, body) = request(
        sqs,
        b"POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\n\
          content-length: 17\r\nconnection: close\r\n\r\nAction=ListQueues",
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("JSON protocol"), "{body}");
    // A body past the limit is refused without being read.
    let (status, _) = request(
        sqs,
        format!(
            "POST / HTTP/1.1\r\nhost: x\r\nx-amz-target: AmazonSQS.ListQueues\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n",
            broker::sqs::MAX_REQUEST_BYTES + 1
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(status, 413);
    // Still serving.
    let (status, body) = post(sqs, "ListQueues", "{}").await;
    assert_eq!(status, 200);
    assert!(body.contains(&url), "{body}");
    ours.running.stop().await;
}

#[tokio::test]
async fn protected_mode_refuses_remote_sqs_clients_without_a_password() {
    let dir = common::temp_dir("sqs-protected");
    let ours = broker(&dir, &["--bind", "0.0.0.0"]).await;
    let port = ours.sqs_addr.unwrap().port();
    let remote = SocketAddr::new(testkit::non_loopback_ip(), port);
    let (status, body) = post(remote, "ListQueues", "{}").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("protected mode"), "{body}");
    let local = SocketAddr::from(([127, 0, 0, 1], port));
    let (status, body) = post(local, "ListQueues", "{}").await;
    assert_eq!(status, 200, "{body}");
    ours.running.stop().await;
}

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

#[tokio::test]
async fn the_query_protocol_serves_the_same_actions_with_xml_replies() {
    let dir = common::temp_dir("sqs-query");
    let ours = broker(&dir, &[]).await;
    let sqs = ours.sqs_addr.unwrap();
    let response = r#"<CreateQueueResponse xmlns="http://queue.amazonaws.com/doc/2012-11-05/">"#;
    let (status, body) = form(
        sqs,
        "/",
        "Action=CreateQueue&QueueName=legacy&Attribute.1.Name=VisibilityTimeout\
         &Attribute.1.Value=7&Version=2012-11-05",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with(r#"<?xml version="1.0"?>"#), "{body}");
    assert!(body.contains(response), "{body}");
    let url = element(&body, "QueueUrl");
    assert_eq!(url, format!("http://{sqs}/000000000000/legacy"));
    assert!(
        body.contains("</CreateQueueResult><ResponseMetadata><RequestId>"),
        "{body}"
    );

    // A send with a message attribute, its body form-encoded.
    let encoded_url = url.replace(':', "%3A").replace('/', "%2F");
    let (status, body) = form(
        sqs,
        "/",
        &format!(
            "Action=SendMessage&QueueUrl={encoded_url}&MessageBody=hello+%3Cworld%3E\
             &MessageAttribute.1.Name=kind&MessageAttribute.1.Value.DataType=String\
             &MessageAttribute.1.Value.StringValue=video"
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let id = element(&body, "MessageId");
    let md5 = element(&body, "MD5OfMessageBody");
    assert_eq!(md5.len(), 32, "{body}");
    assert_eq!(element(&body, "MD5OfMessageAttributes").len(), 32, "{body}");

    // The JSON protocol sees the same queue and message.
    let json = format!(r#"{{"QueueUrl": "{url}", "AttributeNames": ["All"]}}"#);
    let (_, body) = post(sqs, "GetQueueAttributes", &json).await;
    assert!(
        body.contains(r#""ApproximateNumberOfMessages":"1""#),
        "{body}"
    );
    assert!(body.contains(r#""VisibilityTimeout":"7""#), "{body}");

    // Received at the queue's own URL (as older SDKs post), attributes as Name/Value pairs.
    let (status, body) = form(
        sqs,
        "/000000000000/legacy",
        "Action=ReceiveMessage&AttributeName.1=All&MessageAttributeName.1=All",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<ReceiveMessageResult><Message>"), "{body}");
    assert_eq!(element(&body, "MessageId"), id);
    assert_eq!(element(&body, "MD5OfBody"), md5);
    assert!(body.contains("<Body>hello &lt;world&gt;</Body>"), "{body}");
    assert!(
        body.contains(
            "<Attribute><Name>ApproximateReceiveCount</Name><Value>1</Value></Attribute>"
        ),
        "{body}"
    );
    assert!(
        body.contains(
            "<MessageAttribute><Name>kind</Name><Value><DataType>String</DataType>\
             <StringValue>video</StringValue></Value></MessageAttribute>"
        ),
        "{body}"
    );
    let receipt = element(&body, "ReceiptHandle");

    // A batch: one good entry, one bad, reported entry by entry.
    let (status, body) = form(
        sqs,
        "/",
        &format!(
            "Action=DeleteMessageBatch&QueueUrl={encoded_url}\
             &DeleteMessageBatchRequestEntry.1.Id=good\
             &DeleteMessageBatchRequestEntry.1.ReceiptHandle={receipt}\
             &DeleteMessageBatchRequestEntry.2.Id=bad\
             &DeleteMessageBatchRequestEntry.2.ReceiptHandle=nonsense"
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(
            "<DeleteMessageBatchResultEntry><Id>good</Id></DeleteMessageBatchResultEntry>"
        ),
        "{body}"
    );
    let failed = element_block(&body, "BatchResultErrorEntry");
    for field in [
        "<Code>ReceiptHandleIsInvalid</Code>",
        "<Id>bad</Id>",
        "<SenderFault>true</SenderFault>",
    ] {
        assert!(failed.contains(field), "{body}");
    }

    // An action without a result: the response holds only its metadata.
    let (status, body) = form(
        sqs,
        "/",
        &format!("Action=PurgeQueue&QueueUrl={encoded_url}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(r#"<PurgeQueueResponse xmlns="http://queue.amazonaws.com/doc/2012-11-05/"><ResponseMetadata>"#),
        "{body}"
    );

    // Errors: the query protocol's envelope and codes.
    let (status, body) = form(sqs, "/", "Action=GetQueueUrl&QueueName=nope").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains(
            "<Error><Type>Sender</Type><Code>AWS.SimpleQueueService.NonExistentQueue</Code>\
             <Message>The specified queue does not exist.</Message><Detail/></Error><RequestId>"
        ),
        "{body}"
    );
    let (status, body) = form(sqs, "/", "Action=Dance").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("<Code>InvalidAction</Code>"), "{body}");

    // Parameters in the URL of a GET work too.
    let raw =
        format!("GET /?Action=ListQueues HTTP/1.1\r\nhost: {sqs}\r\nconnection: close\r\n\r\n");
    let (status, body) = request(sqs, raw.as_bytes()).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&format!(
            "<ListQueuesResult><QueueUrl>{url}</QueueUrl></ListQueuesResult>"
        )),
        "{body}"
    );
    ours.running.stop().await;
}

/// A query-protocol request: `params` as a form body, posted to `path`.
async fn form(addr: SocketAddr, path: &str, params: &str) -> (u16, String) {
    let raw = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\n\
         content-type: application/x-www-form-urlencoded; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{params}",
        params.len()
    );
    request(addr, raw.as_bytes()).await
}

/// The text of the first `<tag>` element in `xml`.
fn element(xml: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no <{tag}> in {xml}"))
        + open.len();
    let end = xml[start..].find('<').unwrap() + start;
    xml[start..end].to_string()
}

/// The content of the first `<tag>` element in `xml`, elements and all.
fn element_block(xml: &str, tag: &str) -> String {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no <{tag}> in {xml}"))
        + open.len();
    let end = xml[start..].find(&close).unwrap() + start;
    xml[start..end].to_string()
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
    // A query-protocol request without its Action: the query protocol's error.
    let (status, body) = form(sqs, "/", "QueueName=x").await;
    assert_eq!(status, 400);
    assert!(body.contains("<Code>MissingParameter</Code>"), "{body}");
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

#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! `--requirepass` on the Kafka port: SASL PLAIN and SCRAM-SHA-256 with kcat, kafka-python
//! and confluent-kafka; without credentials or with the wrong password nothing is listed,
//! produced, fetched or deleted.

mod common;
mod kafka_common;

use std::time::Duration;

use bytes::Bytes;
use common::{Client, int, tmp_dir};
use kafka_common::{advertised, api_versions, call, kcat, kcat_status};
use kafka_protocol::messages::{
    ApiKey, DeleteTopicsRequest, MetadataRequest, MetadataResponse, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use service::RespClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PASSWORD: &str = "s3cret pass";

async fn start_protected(name: &str) -> common::TestServer {
    common::start(name, &["--requirepass", PASSWORD]).await
}

/// A RESP client that has authenticated.
async fn resp(server: &common::TestServer) -> Client {
    let mut c = Client(RespClient::connect(server.addr()).await.unwrap());
    c.ok(&["AUTH", PASSWORD]).await;
    c
}

async fn latest(c: &mut Client, topic: &str) -> i64 {
    int(&c.ok(&["LISTOFFSETS", topic, "0", "LATEST"]).await)
}

async fn topic_exists(c: &mut Client, topic: &str) -> bool {
    !c.call(&["TOPIC.DESCRIBE", topic]).await.is_error()
}

/// Sends a request without waiting for an answer.
async fn send<Req: Encodable>(conn: &mut TcpStream, api: ApiKey, version: i16, body: &Req) {
    use kafka_protocol::messages::RequestHeader;
    let mut frame = bytes::BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .encode(&mut frame, api.request_header_version(version))
        .unwrap();
    body.encode(&mut frame, version).unwrap();
    conn.write_i32(frame.len() as i32).await.unwrap();
    conn.write_all(&frame).await.unwrap();
}

/// The server closes the connection: the next read ends (no answer comes first).
async fn assert_closed(conn: &mut TcpStream, what: &str) {
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("{what}: the connection stayed open"));
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "{what}: got an answer {read:?}"
    );
}

async fn handshake(conn: &mut TcpStream, mechanism: &'static str) -> SaslHandshakeResponse {
    let request =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
    call(conn, ApiKey::SaslHandshake, 1, &request).await
}

async fn plain(conn: &mut TcpStream, token: &[u8]) -> SaslAuthenticateResponse {
    let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token));
    call(conn, ApiKey::SaslAuthenticate, 2, &request).await
}

fn topic(name: &'static str) -> TopicName {
    TopicName(StrBytes::from_static_str(name))
}

#[tokio::test]
async fn before_authenticating_only_api_versions_and_sasl_are_served() {
    let server = start_protected("sasl-raw").await;
    let mut c = resp(&server).await;
    c.ok(&["TOPIC.CREATE", "kept", "PARTITIONS", "1"]).await;
    c.ok(&["PRODUCE", "kept", "hello"]).await;

    // ApiVersions is answered, and offers the SASL APIs.
    let mut conn = TcpStream::connect(server.kafka).await.unwrap();
    let versions = api_versions(&mut conn).await;
    let offered = |api| advertised(&versions, api);
    assert_eq!(offered(ApiKey::SaslHandshake), Some((0, 1)));
    assert_eq!(offered(ApiKey::SaslAuthenticate), Some((0, 2)));
    // Anything else closes the connection, unanswered, and changes nothing.
    let delete = DeleteTopicsRequest::default().with_topic_names(vec![topic("kept")]);
    send(&mut conn, ApiKey::DeleteTopics, 4, &delete).await;
    assert_closed(&mut conn, "DeleteTopics before SASL").await;
    let mut conn = TcpStream::connect(server.kafka).await.unwrap();
    send(&mut conn, ApiKey::Metadata, 9, &MetadataRequest::default()).await;
    assert_closed(&mut conn, "Metadata before SASL").await;
    // Between the handshake and the authentication too.
    let mut conn = TcpStream::connect(server.kafka).await.unwrap();
    assert_eq!(handshake(&mut conn, "PLAIN").await.error_code, 0);
    send(&mut conn, ApiKey::Metadata, 9, &MetadataRequest::default()).await;
    assert_closed(&mut conn, "Metadata after the handshake").await;
    // A request larger than Kafka's sasl.server.max.receive.size, before authenticating.
    let mut conn = TcpStream::connect(server.kafka).await.unwrap();
    conn.write_i32(600 * 1024).await.unwrap();
    conn.write_all(&[0u8; 1024]).await.unwrap();
    assert_closed(&mut conn, "600 KiB before SASL").await;

    // An unknown mechanism: UNSUPPORTED_SASL_MECHANISM with the list, then closed.
    let mut conn = TcpStream::connect(server.kafka).await.unwrap();
    let refused = handshake(&mut conn, "GSSAPI").await;
    assert_eq!(refused.error_code, 33);
    let names: Vec<&str> = refused.mechanisms.iter().map(|m| m.as_str()).collect();
    assert_eq!(names, ["PLAIN", "SCRAM-SHA-256"]);
    assert_closed(&mut conn, "unknown mechanism").await;

    // Wrong password, or another user: SASL_AUTHENTICATION_FAILED, then closed.
    for token in [
        &b"\0default\0wrong"[..],
        b"\0admin\0s3cret pass",
        b"garbage",
    ] {
        let mut conn = TcpStream::connect(server.kafka).await.unwrap();
        assert_eq!(handshake(&mut conn, "PLAIN").await.error_code, 0);
        let failed = plain(&mut conn, token).await;
        assert_eq!(
            failed.error_code,
            58,
            "{:?}",
            String::from_utf8_lossy(token)
        );
        let message = failed.error_message.unwrap();
        assert!(message.starts_with("Authentication failed"), "{message}");
        assert_closed(&mut conn, "failed authentication").await;
    }

    // The right one: everything is served.
    let mut conn = TcpStream::connect(server.kafka).await.unwrap();
    assert_eq!(handshake(&mut conn, "PLAIN").await.error_code, 0);
    assert_eq!(
        plain(&mut conn, b"\0default\0s3cret pass").await.error_code,
        0
    );
    let all = MetadataRequest::default().with_topics(None);
    let metadata: MetadataResponse = call(&mut conn, ApiKey::Metadata, 9, &all).await;
    let names: Vec<String> = metadata
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    assert_eq!(names, ["kept"]);
    // A second handshake on an authenticated connection: ILLEGAL_SASL_STATE, still open.
    assert_eq!(handshake(&mut conn, "PLAIN").await.error_code, 34);

    // SaslHandshake v0: the PLAIN message goes bare, and so does the (empty) answer.
    let mut conn = TcpStream::connect(server.kafka).await.unwrap();
    let request =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"));
    let v0: SaslHandshakeResponse = call(&mut conn, ApiKey::SaslHandshake, 0, &request).await;
    assert_eq!(v0.error_code, 0);
    let token = b"\0default\0s3cret pass";
    conn.write_i32(token.len() as i32).await.unwrap();
    conn.write_all(token).await.unwrap();
    assert_eq!(conn.read_i32().await.unwrap(), 0, "an empty bare answer");
    let metadata: MetadataResponse = call(&mut conn, ApiKey::Metadata, 9, &all).await;
    assert_eq!(metadata.topics.len(), 1);

    assert!(topic_exists(&mut c, "kept").await, "nothing was deleted");
    assert_eq!(latest(&mut c, "kept").await, 1);
    let info = c.ok(&["INFO", "stream"]).await;
    let info = String::from_utf8_lossy(info.as_bytes().unwrap()).into_owned();
    assert!(info.contains("kafka_auth_failures:"), "{info}");
    server.running.stop().await;
}

#[tokio::test]
async fn without_a_password_sasl_requests_get_illegal_sasl_state() {
    let server = common::start("sasl-none", &[]).await;
    let mut conn = TcpStream::connect(server.kafka).await.unwrap();
    let answer = handshake(&mut conn, "PLAIN").await;
    assert_eq!(answer.error_code, 34);
    let versions = api_versions(&mut conn).await;
    assert_eq!(versions.error_code, 0, "the connection stays open");
    server.running.stop().await;
}

fn sasl_args<'a>(mechanism: &'a str, user: &'a str, password: &'a str) -> Vec<String> {
    [
        "security.protocol=SASL_PLAINTEXT".to_string(),
        format!("sasl.mechanisms={mechanism}"),
        format!("sasl.username={user}"),
        format!("sasl.password={password}"),
    ]
    .into_iter()
    .flat_map(|x| ["-X".to_string(), x])
    .collect()
}

#[tokio::test]
async fn kcat_with_plain_and_scram_and_refused_without_credentials() {
    let server = start_protected("sasl-kcat").await;
    let broker = server.kafka.to_string();
    let mut c = resp(&server).await;
    for (mechanism, topic) in [("PLAIN", "via-plain"), ("SCRAM-SHA-256", "via-scram")] {
        c.ok(&["TOPIC.CREATE", topic, "PARTITIONS", "1"]).await;
        let sasl = sasl_args(mechanism, "default", PASSWORD);
        let with = |args: &[&str]| -> Vec<String> {
            let mut all: Vec<String> = ["-b", &broker].iter().map(|s| s.to_string()).collect();
            all.extend(args.iter().map(|s| s.to_string()));
            all.extend(sasl.iter().cloned());
            all
        };
        let args = with(&["-P", "-t", topic]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        kcat(&args, "one\ntwo\nthree\n").await;
        let args = with(&["-C", "-t", topic, "-o", "beginning", "-e", "-q"]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(kcat(&args, "").await, "one\ntwo\nthree\n", "{mechanism}");
        let args = with(&["-L", "-t", topic]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let listing = kcat(&args, "").await;
        assert!(
            listing.contains(&format!("topic \"{topic}\" with 1 partitions")),
            "{listing}"
        );

        // The wrong password: refused, nothing listed or produced.
        let wrong = sasl_args(mechanism, "default", "not it");
        let mut args: Vec<String> = ["-b", &broker, "-L", "-m", "3"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(wrong);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, stdout, stderr) = kcat_status(&args, "").await;
        assert!(
            !ok && !stdout.contains(topic),
            "{mechanism}: {stdout} {stderr}"
        );
        assert!(
            stderr.contains("Authentication failed"),
            "{mechanism}: {stderr}"
        );
    }

    // No SASL at all: nothing listed, produced or created.
    let (ok, stdout, _) = kcat_status(&["-b", &broker, "-L", "-m", "3"], "").await;
    assert!(!ok && !stdout.contains("via-plain"), "{stdout}");
    let (ok, _, _) = kcat_status(
        &[
            "-b",
            &broker,
            "-P",
            "-t",
            "via-plain",
            "-X",
            "message.timeout.ms=2000",
        ],
        "sneaked in\n",
    )
    .await;
    assert!(!ok, "an unauthenticated produce fails");
    let (ok, _, _) = kcat_status(
        &[
            "-b",
            &broker,
            "-P",
            "-t",
            "brand-new",
            "-X",
            "message.timeout.ms=2000",
        ],
        "sneaked in\n",
    )
    .await;
    assert!(!ok);
    assert_eq!(latest(&mut c, "via-plain").await, 3);
    assert!(
        !topic_exists(&mut c, "brand-new").await,
        "no topic was created"
    );
    server.running.stop().await;
}

/// Runs `tests/kafka_sasl_clients.py`; returns its one JSON line.
async fn python_client(
    client: &str,
    broker: &str,
    topic: &str,
    mechanism: &str,
    password: &str,
) -> String {
    let args = [client, broker, topic, mechanism, "default", password];
    let stdout = kafka_common::python("kafka_sasl_clients.py", &args).await;
    stdout.lines().last().unwrap_or_default().to_string()
}

#[tokio::test]
async fn kafka_python_and_confluent_kafka_with_plain_and_scram() {
    let server = start_protected("sasl-python").await;
    let broker = server.kafka.to_string();
    let mut c = resp(&server).await;
    let expected: String = format!(
        "{{\"ok\": [{}]}}",
        (0..10)
            .map(|i| format!("\"value-{i}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for client in ["kafka-python", "confluent-kafka"] {
        for mechanism in ["PLAIN", "SCRAM-SHA-256"] {
            let topic = format!("{client}-{mechanism}").to_lowercase();
            c.ok(&["TOPIC.CREATE", &topic, "PARTITIONS", "1"]).await;
            let answer = python_client(client, &broker, &topic, mechanism, PASSWORD).await;
            assert_eq!(answer, expected, "{client} {mechanism}");
            assert_eq!(latest(&mut c, &topic).await, 10);

            let answer = python_client(client, &broker, &topic, mechanism, "wrong").await;
            assert!(
                answer.starts_with("{\"refused\""),
                "{client} {mechanism} wrong password: {answer}"
            );
            assert_eq!(latest(&mut c, &topic).await, 10, "nothing produced");
        }
        let answer = python_client(client, &broker, "uninvited", "none", "").await;
        assert!(
            answer.starts_with("{\"refused\""),
            "{client} without SASL: {answer}"
        );
        assert!(
            !topic_exists(&mut c, "uninvited").await,
            "{client}: no topic created"
        );
    }
    server.running.stop().await;
}

#[tokio::test]
async fn kafka_port_zero_means_no_kafka_listener() {
    let dir = tmp_dir("sasl-no-kafka");
    let args = <stream::Args as clap::Parser>::parse_from([
        "stream",
        "--port",
        "0",
        "--kafka-port",
        "0",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    let started = stream::start_with_kafka(args, service::CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(started.kafka_addr, None);
    let mut c = Client::connect(started.running.addr()).await;
    c.ok(&["PING"]).await;
    started.running.stop().await;
}

#![allow(clippy::unwrap_used, dead_code)] // test code: a panic is a test failure
//! Talking Kafka in tests: the real `kcat`, and raw requests encoded with kafka-protocol.

use std::process::Stdio;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

/// Runs kcat to completion with `input` on stdin; returns stdout.
pub async fn kcat(args: &[&str], input: &str) -> String {
    let (success, stdout, stderr) = kcat_status(args, input).await;
    assert!(success, "kcat {args:?} failed: {stderr}");
    stdout
}

/// Runs kcat to completion: whether it succeeded, its stdout and its stderr.
pub async fn kcat_status(args: &[&str], input: &str) -> (bool, String, String) {
    let mut child = Command::from(testkit::peer("kcat"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("kcat did not start ({e}): {}", testkit::INSTALL_PEERS));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("kcat finished")
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Sends one request frame and reads one response frame (after the correlation id).
pub async fn roundtrip(
    conn: &mut TcpStream,
    api: i16,
    version: i16,
    correlation: i32,
    body: &[u8],
) -> Bytes {
    let mut frame = BytesMut::new();
    frame.put_i32((8 + 2 + body.len()) as i32);
    frame.put_i16(api);
    frame.put_i16(version);
    frame.put_i32(correlation);
    frame.put_i16(-1); // null client id
    frame.put_slice(body);
    conn.write_all(&frame).await.unwrap();
    read_response(conn, correlation).await
}

pub async fn read_response(conn: &mut TcpStream, correlation: i32) -> Bytes {
    let len = conn.read_i32().await.unwrap() as usize;
    let mut buf = vec![0; len];
    conn.read_exact(&mut buf).await.unwrap();
    let mut buf = Bytes::from(buf);
    assert_eq!(buf.get_i32(), correlation);
    buf
}

/// Sends a request encoded with kafka-protocol and decodes the answer.
pub async fn call<Req: Encodable, Resp: Decodable>(
    conn: &mut TcpStream,
    api: ApiKey,
    version: i16,
    body: &Req,
) -> Resp {
    let mut frame = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("test")))
        .encode(&mut frame, api.request_header_version(version))
        .unwrap();
    body.encode(&mut frame, version).unwrap();
    conn.write_i32(frame.len() as i32).await.unwrap();
    conn.write_all(&frame).await.unwrap();
    let len = conn.read_i32().await.unwrap() as usize;
    let mut buf = vec![0; len];
    conn.read_exact(&mut buf).await.unwrap();
    let mut buf = Bytes::from(buf);
    let header = ResponseHeader::decode(&mut buf, api.response_header_version(version)).unwrap();
    assert_eq!(header.correlation_id, 7);
    Resp::decode(&mut buf, version).unwrap()
}

/// What the broker advertises (ApiVersions v3), and a lookup in it: `(min, max)` of `api`,
/// `None` if not advertised.
pub async fn api_versions(conn: &mut TcpStream) -> ApiVersionsResponse {
    call(conn, ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()).await
}

pub fn advertised(versions: &ApiVersionsResponse, api: ApiKey) -> Option<(i16, i16)> {
    versions
        .api_keys
        .iter()
        .find(|k| k.api_key == api as i16)
        .map(|k| (k.min_version, k.max_version))
}

/// Runs one of this crate's Python client scripts (`tests/<script>`) to completion;
/// returns its stdout. Exit code 3 means a client library is missing (`.ci/run` installs
/// kafka-python and confluent-kafka).
pub async fn python(script: &str, args: &[&str]) -> String {
    let path = format!("{}/tests/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(path)
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), out)
        .await
        .expect("the Python client finished")
        .expect("python3 is installed (.ci/run)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() != Some(3),
        "a client library is missing: run .ci/run (pip install kafka-python confluent-kafka): {stderr}"
    );
    assert!(out.status.success(), "{script} {args:?}: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `tests/kafka_eos_clients.py`'s output lines.
pub async fn eos_client(args: &[&str]) -> Vec<String> {
    python("kafka_eos_clients.py", args)
        .await
        .lines()
        .map(str::to_string)
        .collect()
}

/// The items of the output line starting with `key` (`KEY ITEM ITEM ...`).
pub fn items(lines: &[String], key: &str) -> Vec<String> {
    let line = lines
        .iter()
        .find(|l| l.split(' ').next() == Some(key))
        .unwrap_or_else(|| panic!("no '{key}' line in {lines:?}"));
    line.split(' ').skip(1).map(str::to_string).collect()
}

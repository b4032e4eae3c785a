//! # The SQS API, in front of the same engine
//!
//! A third listener (`--sqs-port`, 9324 as ElasticMQ's) speaks Amazon SQS's API, so the
//! AWS SDKs work against the broker's queues: boto3's `boto3.client("sqs",
//! endpoint_url="http://localhost:9324")`, the AWS CLI's `--endpoint-url`, the Java and Go
//! SDKs. A message sent here is received with `QRECV` or beanstalkd's `reserve`, and the
//! reverse. The vocabularies name the same ideas:
//!
//! | SQS | the engine (RESP) | beanstalkd |
//! |---|---|---|
//! | queue (`CreateQueue`) | queue (`QCREATE`) | tube |
//! | `MessageId` | message id | job id |
//! | `ReceiptHandle` | receipt | (the connection's reservation) |
//! | `SendMessage` (`DelaySeconds`) | `QSEND` (`DELAY`) | `put` |
//! | `ReceiveMessage` (`VisibilityTimeout`, `WaitTimeSeconds`) | `QRECV` (`VISIBILITY`, `BLOCK`) | `reserve` (TTR, timeout) |
//! | `DeleteMessage` | `QACK` | `delete` |
//! | `ChangeMessageVisibility` | `QEXTEND` (`0`: `QNACK`) | `touch` (`release`) |
//! | `RedrivePolicy` `maxReceiveCount` | `MAXDELIVERIES`, `DEADLETTER` | `bury` |
//! | `StartMessageMoveTask` | `QREDRIVE` | `kick` |
//!
//! **The protocol.** Each action is an HTTP `POST /` whose `X-Amz-Target:
//! AmazonSQS.<Action>` header names the action and whose body is a JSON object of its
//! parameters (AWS's "JSON 1.0" protocol, which the SDKs use since late 2023); the reply
//! is a JSON object, or an error ([`errors`]). SQS's older query protocol (form-encoded
//! parameters, `Action=SendMessage&...`, XML replies), which the AWS CLI v1 and older
//! SDKs speak, is spoken too: a request without `X-Amz-Target` is read as one ([`query`]),
//! and goes to the same action handlers.
//!
//! **Long polling.** `WaitTimeSeconds` (or the queue's `ReceiveMessageWaitTimeSeconds`)
//! is the RESP long poll of [`crate::shared_engine`]: the request waits, holding nothing
//! but its HTTP connection, until a send wakes it or the wait ends.
//!
//! **Credentials.** Without `--requirepass` any credentials are accepted and the
//! signature is not looked at (as ElasticMQ). With it, every request must be signed
//! (signature version 4, [`signature`]) with the password as the secret access key.
//! Protected mode applies as on every listener: with no password, a client that is not on
//! this host gets `403` and the connection is closed.
//!
//! - [`wire`]: reading parameters, queue URLs and ARNs, message attributes, batches.
//! - [`actions`]: each action -> the shared engine -> its reply.
//! - [`queue_attributes`], [`fifo`] (FIFO queues' send parameters), [`digest`] (the
//!   MD5s), [`signature`], [`errors`].

pub mod actions;
pub mod digest;
pub mod errors;
pub mod fifo;
pub mod query;
pub mod queue_attributes;
pub mod signature;
pub mod wire;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use service::CancellationToken;
use service::protocol_port::{Protocol, listen};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::debug;

use crate::shared_engine::SharedEngine;
use actions::Caller;
use errors::SqsError;
use wire::Input;

/// ElasticMQ's port, which SQS tools for local development expect.
pub const DEFAULT_SQS_PORT: u16 = 9324;

/// The largest request body: a batch of ten 256 KiB messages and their JSON. A larger one
/// gets `413` without being read further.
pub const MAX_REQUEST_BYTES: usize = 3 * 1024 * 1024;

/// The region ARNs name when the request does not say (it is unsigned).
const DEFAULT_REGION: &str = "us-east-1";

/// The SQS front-end's shared state.
pub struct Sqs {
    inner: Arc<SharedEngine>,
    /// `--requirepass`: the secret access key requests must be signed with.
    password: Option<String>,
    /// For queue URLs when a request has no `Host` header.
    addr: SocketAddr,
}

/// Binds the SQS listener on `bind:port` (0 here: any free port) and serves until `shutdown`.
/// Returns the bound address and the listener's task.
pub(crate) async fn spawn(
    inner: Arc<SharedEngine>,
    service: &service::ServiceArgs,
    port: u16,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let password = service.requirepass.clone();
    let make = |addr| Sqs {
        inner,
        password,
        addr,
    };
    listen(
        "broker (SQS API)",
        "--sqs-port PORT",
        service,
        port,
        make,
        shutdown,
    )
    .await
}

impl Protocol for Sqs {
    async fn serve(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        shutdown: CancellationToken,
    ) {
        let sqs = self.clone();
        let service = service_fn(move |req| {
            let sqs = sqs.clone();
            async move { Ok::<_, Infallible>(sqs.handle(req).await) }
        });
        // A long poll in flight returns at once, then the connection closes.
        let result = service::http1::serve(stream, service, &shutdown).await;
        if let Err(e) = result {
            debug!("sqs connection {peer}: {e}");
        }
    }

    /// Refused clients get SQS's `403` with the reason, then the connection closes.
    async fn refuse(self: Arc<Self>, mut stream: TcpStream, reason: &'static str) {
        let body = serde_json::json!({
            "__type": "com.amazonaws.sqs#AccessDenied",
            "message": reason,
        })
        .to_string();
        let response = format!(
            "HTTP/1.1 403 Forbidden\r\ncontent-type: application/x-amz-json-1.0\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    }
}

/// The two wire formats of the same actions.
enum Wire {
    /// `X-Amz-Target` and a JSON body; a JSON reply.
    Json,
    /// Form parameters naming the `Action`; an XML reply ([`query`]).
    Query { action: String },
}

impl Sqs {
    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let mut wire = Wire::Json;
        let answer = self.answer(req, &mut wire).await;
        let response = match (&wire, answer) {
            (Wire::Json, Ok(reply)) => json_response(StatusCode::OK, &reply),
            (Wire::Json, Err(e)) => e.response(),
            (Wire::Query { action }, Ok(reply)) => query::response(action, &reply),
            (Wire::Query { .. }, Err(e)) => query::error_response(&e),
        };
        // Before the reply: the changes it confirms reach the kernel (`--fsync everysec`
        // and `no`, see [`crate::redo`]), as on the other listeners.
        self.inner.write_redo();
        response
    }

    async fn answer(
        &self,
        req: Request<Incoming>,
        wire: &mut Wire,
    ) -> Result<serde_json::Value, SqsError> {
        let (parts, body) = req.into_parts();
        // An announced length past the limit is refused before any of it is read.
        let announced = hyper::body::Body::size_hint(&body).lower();
        if announced > MAX_REQUEST_BYTES as u64 {
            return Err(SqsError::too_large(MAX_REQUEST_BYTES));
        }
        let body = match Limited::new(body, MAX_REQUEST_BYTES).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(SqsError::too_large(MAX_REQUEST_BYTES));
            }
            Err(e) => return Err(SqsError::malformed(format!("reading the body: {e}"))),
        };
        if let Some(password) = &self.password {
            let signed = signature::Request {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                query: parts.uri.query().unwrap_or(""),
                headers: &parts.headers,
                body: &body,
            };
            signature::verify(&signed, password)?;
        }
        let target = parts
            .headers
            .get("x-amz-target")
            .and_then(|t| t.to_str().ok());
        let (action, input) = match target {
            Some(target) => {
                let Some(action) = target.strip_prefix("AmazonSQS.") else {
                    return Err(SqsError::unknown_action(target));
                };
                if parts.method != Method::POST {
                    return Err(SqsError::malformed("SQS actions are POST requests"));
                }
                (action.to_string(), Input::parse(&body)?)
            }
            // No target: the query protocol (parameters in the form or the URL).
            None => {
                let query = parts.uri.query().unwrap_or("");
                *wire = Wire::Query {
                    action: String::new(),
                };
                let (action, input) = query::parse(parts.uri.path(), query, &body)?;
                *wire = Wire::Query {
                    action: action.clone(),
                };
                (action, input)
            }
        };
        let host = parts
            .headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .map_or_else(|| self.addr.to_string(), str::to_string);
        let region = signature::region(&parts.headers).unwrap_or_else(|| DEFAULT_REGION.into());
        actions::dispatch(&self.inner, &Caller { host, region }, &action, input).await
    }
}

/// A JSON reply of the JSON 1.0 protocol.
pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    if let Ok(value) = "application/x-amz-json-1.0".parse() {
        response.headers_mut().insert("content-type", value);
    }
    response
}

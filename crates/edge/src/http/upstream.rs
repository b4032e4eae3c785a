//! One upstream HTTP server (the edge's origin, one of the balancer's backends), reached
//! over pooled keep-alive connections, with a deadline and a limit on what it may send.
//!
//! Failures map to the statuses a proxy answers with (RFC 9110 §15.6): an upstream that
//! cannot be reached or resets the connection is `502 Bad Gateway`, one that does not
//! answer in time is `504 Gateway Timeout`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Why an upstream request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    /// No answer within the deadline: `504`.
    Timeout,
    /// Refused, reset, or an unreadable answer: `502`.
    Unreachable(String),
}

impl UpstreamError {
    pub fn status(&self) -> StatusCode {
        match self {
            UpstreamError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            UpstreamError::Unreachable(_) => StatusCode::BAD_GATEWAY,
        }
    }
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::Timeout => f.write_str("upstream timed out"),
            UpstreamError::Unreachable(why) => write!(f, "upstream unreachable: {why}"),
        }
    }
}

/// An upstream server: `http://host:port`.
#[derive(Clone, Debug)]
pub struct Upstream {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
    max_response_bytes: usize,
}

impl Upstream {
    /// `base` is `host:port` or `http://host:port` (no path).
    pub fn new(base: &str, timeout: Duration, max_response_bytes: usize) -> Self {
        let base = base.trim_end_matches('/');
        let base = if base.starts_with("http://") {
            base.to_owned()
        } else {
            format!("http://{base}")
        };
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Upstream {
            base,
            client,
            timeout,
            max_response_bytes,
        }
    }

    /// `http://host:port`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `method path_and_query` with `headers` and `body`; returns the whole response.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response<Bytes>, UpstreamError> {
        let uri: Uri = format!("{}{}", self.base, path_and_query)
            .parse()
            .map_err(|e| UpstreamError::Unreachable(format!("bad upstream URI: {e}")))?;
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        // The client sets Host from the URI when the request has none.
        request.headers_mut().remove(hyper::header::HOST);
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| UpstreamError::Unreachable(error_chain(&e)))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, self.max_response_bytes)
                .collect()
                .await
                .map_err(|e| UpstreamError::Unreachable(format!("response body: {e}")))?
                .to_bytes();
            Ok(Response::from_parts(parts, body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| UpstreamError::Timeout)?
    }
}

/// An error and its causes on one line (hyper's top-level message alone says little).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

//! Bodies are read whole, with a limit: a cache stores whole responses, and a bounded
//! buffer is what keeps the memory a client can cause linear in what it sent.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Response, StatusCode, header};

/// The body type every server here answers with.
pub type Body = Full<Bytes>;

/// Reads a request body of at most `limit` bytes. A `Content-Length` over the limit is
/// refused before a byte of the body is read; a chunked body is cut off at the limit.
/// The error is the response to send (`413`, or `400` for a body that breaks off).
pub async fn read_body(
    headers: &hyper::HeaderMap,
    body: Incoming,
    limit: usize,
) -> Result<Bytes, Response<Body>> {
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large(limit)),
        Err(e) => Err(text(
            StatusCode::BAD_REQUEST,
            &format!("bad request body: {e}\n"),
        )),
    }
}

fn too_large(limit: usize) -> Response<Body> {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("request body larger than {limit} bytes\n"),
    )
}

/// A short `text/plain` response.
pub fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::copy_from_slice(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

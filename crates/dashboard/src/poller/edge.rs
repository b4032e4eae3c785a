//! The edge cache, over HTTP: `GET /_edge/stats`, the page curl shows an operator, in the
//! same `key:value` lines as `INFO`.

use std::io;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::sample::{Sample, fields};

/// One `GET /_edge/stats` on a fresh connection (once a second, a connection costs less
/// than keeping one alive through the edge's idle timeouts).
pub async fn poll(addr: &str) -> Sample {
    match stats(addr).await {
        Ok(text) => {
            let f = fields(&text);
            let mut s = Sample::up();
            s.take(
                &f,
                &[
                    ("hits", "hits_total"),
                    ("misses", "misses_total"),
                    ("hit_ratio", "hit_ratio"),
                    ("objects", "keys"),
                    ("used_memory", "memory"),
                    ("evictions", "evictions_total"),
                    ("origin_requests", "origin_requests_total"),
                ],
            );
            // Every request the edge answered, as the RESP servers' commands.
            let served = ["hits", "misses", "stale", "revalidated"]
                .iter()
                .filter_map(|k| f.get(*k)?.parse::<f64>().ok())
                .sum();
            s.set("commands_total", served);
            s
        }
        Err(e) => Sample::down(e.to_string()),
    }
}

async fn stats(addr: &str) -> io::Result<String> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(connection);
    let request = Request::get("/_edge/stats")
        .header("host", addr)
        .body(Empty::<Bytes>::new())
        .map_err(io::Error::other)?;
    let response = sender
        .send_request(request)
        .await
        .map_err(io::Error::other)?;
    if !response.status().is_success() {
        return Err(io::Error::other(format!(
            "/_edge/stats answered {}",
            response.status()
        )));
    }
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(io::Error::other)?
        .to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

//! Servers on port 0 and a plain HTTP client for the edge, lb and web tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use edge::http::{HttpArgs, Running, Upstream};
use hyper::{HeaderMap, Method, StatusCode};
use tokio_util::sync::CancellationToken;

/// A reply, whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn x_cache(&self) -> &str {
        self.header("x-cache")
    }
}

/// Sends one request to `addr`.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let client = Upstream::new(&addr.to_string(), Duration::from_secs(10), 64 << 20);
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(
            hyper::header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            v.parse().expect("value"),
        );
    }
    let method = Method::from_bytes(method.as_bytes()).expect("method");
    let response = client
        .send(method, path, map, Bytes::copy_from_slice(body.as_bytes()))
        .await
        .expect("a response");
    let (parts, body) = response.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    send(addr, "GET", path, headers, "").await
}

/// An origin (`infralab web`) and an edge in front of it.
pub struct Lab {
    pub web: Running,
    pub edge: Running,
}

impl Lab {
    pub async fn start() -> Lab {
        Self::with(|_| {}).await
    }

    /// With the edge's arguments adjusted by `tweak`.
    pub async fn with(tweak: impl FnOnce(&mut edge::Args)) -> Lab {
        let web = start_web("web").await;
        let mut args = edge::Args::ephemeral(&web.addr().to_string());
        tweak(&mut args);
        let edge = edge::start(args, CancellationToken::new())
            .await
            .expect("edge starts");
        Lab { web, edge }
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        get(self.edge.addr(), path, headers).await
    }

    /// One `key:value` line of `GET /_edge/stats`.
    pub async fn stat(&self, key: &str) -> String {
        stat(self.edge.addr(), "/_edge/stats", key).await
    }

    pub async fn stop(self) {
        self.edge.stop().await;
        self.web.stop().await;
    }
}

pub async fn stat(addr: SocketAddr, page: &str, key: &str) -> String {
    let reply = get(addr, page, &[]).await;
    reply
        .body
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in {}", reply.body))
        .to_owned()
}

pub async fn start_web(name: &str) -> Running {
    edge::web::start(edge::web::Args::ephemeral(name), CancellationToken::new())
        .await
        .expect("web starts")
}

pub fn http_args() -> HttpArgs {
    HttpArgs::ephemeral()
}

/// Polls `check` every 10 ms for up to 10 s: for effects that happen in the background.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..1000 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

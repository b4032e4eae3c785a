//! The header rules every HTTP intermediary follows (RFC 9110 §7.6): hop-by-hop fields
//! belong to one connection and are not forwarded; `Via` records each hop;
//! `X-Forwarded-For` tells the origin who the client was.

use std::net::SocketAddr;

use hyper::HeaderMap;
use hyper::header::{self, HeaderName, HeaderValue};

/// The fields that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes the hop-by-hop fields, and those the `Connection` field names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Appends this hop to `Via` (`1.1 edge-eu`).
pub fn add_via(headers: &mut HeaderMap, pseudonym: &str) {
    if let Some(value) = via_value(pseudonym) {
        headers.append(header::VIA, value);
    }
}

/// This hop's `Via` value (`1.1 edge-eu`), for a server to make once and append to each
/// response (`None` for a pseudonym that is no valid field value).
pub fn via_value(pseudonym: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("1.1 {pseudonym}")).ok()
}

/// Appends the client's address to `X-Forwarded-For` (`client, proxy1, proxy2`).
pub fn add_forwarded_for(headers: &mut HeaderMap, peer: SocketAddr) {
    let ip = peer.ip().to_string();
    let joined = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(previous) => format!("{previous}, {ip}"),
        None => ip,
    };
    if let Ok(value) = HeaderValue::from_str(&joined) {
        headers.insert("x-forwarded-for", value);
    }
}

/// Marks a request that arrived over TLS (a request extension the listener sets).
#[derive(Debug, Clone, Copy)]
pub struct ArrivedOverTls;

/// `X-Forwarded-Proto`: tells the servers behind a TLS-terminating proxy that the client
/// used HTTPS (for redirects, secure cookies), though they are reached over plain HTTP.
/// The first proxy's word stands: one behind it, reached over HTTP, keeps it.
pub fn add_forwarded_proto(headers: &mut HeaderMap, over_tls: bool) {
    if over_tls {
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
    } else if !headers.contains_key("x-forwarded-proto") {
        headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    }
}

/// Every line of a field joined by `, ` (RFC 9110 §5.3): how a list-valued field
/// (`Cache-Control`, `Vary`, `If-None-Match`) is read whether it came on one line or many.
pub fn joined(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<String> {
    let mut out: Option<String> = None;
    for value in headers.get_all(name) {
        let value = String::from_utf8_lossy(value.as_bytes());
        match &mut out {
            Some(s) => {
                s.push_str(", ");
                s.push_str(&value);
            }
            None => out = Some(value.into_owned()),
        }
    }
    out
}

//! # edge — the HTTP caching levels
//!
//! Three servers that share one HTTP layer ([`http`]): the listener with its limits,
//! bounded bodies, an upstream client, a proxy's header rules.
//!
//! - [`proxy`] — `infralab edge`: a caching reverse proxy, one CDN edge node, whose
//!   rules are the engine in [`cache`] (RFC 9111, RFC 5861, RFC 9213).
//! - [`lb`] — `infralab lb`: an HTTP load balancer (round robin, least connections,
//!   consistent hashing, sticky sessions, health checks, rate limits).
//! - [`web`] — `infralab web`: a small origin whose endpoints set each caching header.
#![forbid(unsafe_code)]

pub mod cache;
pub mod http;
pub mod lb;
pub mod proxy;
pub mod web;

pub use proxy::{Args, start};
pub use service::{BoxError, Running};

/// Parses a size with an optional unit: `1048576`, `64kb`, `10mb`, `1gb` (as Redis's
/// `maxmemory`: powers of 1024).
pub fn parse_size(text: &str) -> Result<usize, String> {
    let lower = text.trim().to_ascii_lowercase();
    let (digits, unit) = match lower.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => lower.split_at(i),
        None => (lower.as_str(), ""),
    };
    let n: usize = digits.parse().map_err(|_| format!("not a size: {text}"))?;
    let scale: usize = match unit {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        _ => return Err(format!("unknown unit in {text} (use b, kb, mb or gb)")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("too large: {text}"))
}

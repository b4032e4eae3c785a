//! Invalidation by hand or by event, and the stats page.
//!
//! - `PURGE /posts/1` removes every stored variant of that URL.
//! - `PURGE /` with `Surrogate-Key: post-1 posts` (or `Cache-Tag: post-1,posts`) removes
//!   every URL whose response carried one of those tags — how an origin invalidates all
//!   the pages showing a post when the post changes.
//! - Purges are accepted from loopback and private networks only (where the origins
//!   live), unless `--purge-from-anywhere`: anyone who can purge can empty the cache and
//!   send every request to the origin.
//! - `GET /_edge/stats`: hits, misses, hit ratio, bytes served from cache, origin
//!   requests, evictions, memory, as `key:value` lines like Redis's INFO.

use std::net::IpAddr;

use hyper::header::HeaderValue;
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};

use super::Edge;
use super::stats::Stats;
use crate::http::{Body, text};

/// Whether `PURGE` from `ip` is accepted without `--purge-from-anywhere`: loopback,
/// RFC 1918 and RFC 4193 (unique local) addresses.
pub fn may_purge(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_loopback() || v4.is_private())
        }
    }
}

/// `PURGE`: by tag if the request names tags, else by URL.
pub fn purge(edge: &Edge, parts: &Parts, peer: IpAddr) -> Response<Body> {
    if !edge.purge_from_anywhere && !may_purge(peer) {
        return text(
            StatusCode::FORBIDDEN,
            "PURGE is accepted from loopback and private networks only (--purge-from-anywhere)\n",
        );
    }
    let mut tags: Vec<String> = Vec::new();
    for (name, separator) in [("surrogate-key", ' '), ("cache-tag", ',')] {
        for value in parts.headers.get_all(name) {
            if let Ok(value) = value.to_str() {
                tags.extend(
                    value
                        .split(separator)
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned),
                );
            }
        }
    }
    let removed = if tags.is_empty() {
        let key = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        edge.store().remove(key)
    } else {
        let mut store = edge.store();
        tags.iter().map(|t| store.purge_tag(t)).sum()
    };
    Stats::add(&edge.stats.purges, 1);
    let status = if removed > 0 {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    text(status, &format!("purged {removed}\n"))
}

/// `GET /_edge/stats`.
pub fn page(edge: &Edge, parts: &Parts) -> Response<Body> {
    if parts.uri.path() != "/_edge/stats" {
        return text(StatusCode::NOT_FOUND, "try /_edge/stats\n");
    }
    let s = &edge.stats;
    let (objects, used, evictions) = {
        let store = edge.store_read();
        (store.len(), store.used(), store.evictions())
    };
    let body = format!(
        "region:{}\nhits:{}\nmisses:{}\nstale:{}\nrevalidated:{}\nhit_ratio:{:.3}\n\
         bytes_from_cache:{}\norigin_requests:{}\nobjects:{}\nused_memory:{}\nevictions:{}\n\
         purges:{}\nin_flight_fills:{}\n",
        edge.region,
        Stats::get(&s.hits),
        Stats::get(&s.misses),
        Stats::get(&s.stale),
        Stats::get(&s.revalidated),
        s.hit_ratio(),
        Stats::get(&s.bytes_from_cache),
        Stats::get(&s.origin_requests),
        objects,
        used,
        evictions,
        Stats::get(&s.purges),
        edge.collapser.in_flight(),
    );
    let body = body + &crate::http::tls::stats_lines(edge.tls.as_deref());
    let mut response = text(StatusCode::OK, &body);
    response
        .headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purges_come_from_private_networks() {
        for ok in [
            "127.0.0.1",
            "10.1.2.3",
            "172.18.0.5",
            "192.168.1.1",
            "::1",
            "fd00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(may_purge(ok.parse().expect("ip")), "{ok}");
        }
        for no in ["8.8.8.8", "172.32.0.1", "2001:db8::1", "::ffff:8.8.8.8"] {
            assert!(!may_purge(no.parse().expect("ip")), "{no}");
        }
    }
}

//! Protected mode for the HTTP servers: the rule every infralab listener shares
//! ([`service::protected::refusal`]), answered the HTTP way.
//!
//! A server bound to a non-loopback address (`--bind 0.0.0.0`) while protected mode is on
//! (`--protected-mode yes`, the default) serves clients on this host only: anyone else gets
//! `403 Forbidden` with a body that says how to open the server, and the connection is
//! closed. The HTTP servers have no password to set, so the way in is a decision made
//! knowingly: `--protected-mode no` (or `INFRALAB_PROTECTED_MODE=no`, as the container
//! image sets). An edge or a balancer is *meant* to face the internet — in production you
//! would turn protected mode off for it — but its `PURGE` method, its stats and the origin
//! behind it should be exposed on purpose, not because `--bind 0.0.0.0` was the quickest
//! way to try it from a laptop.

use std::net::{IpAddr, SocketAddr};

use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use tracing::warn;

use super::{Body, text};

/// What a refused client reads.
pub const FORBIDDEN: &str = "DENIED infralab is running in protected mode: it listens on an \
     address other hosts can reach, and only clients on this host are served. If you want \
     to serve other hosts, restart the server with '--protected-mode no' (or the \
     environment variable INFRALAB_PROTECTED_MODE=no); MAKE SURE that is what you mean to \
     expose (an edge's PURGE and stats, the origin behind it) before you do so.\n";

/// Must a client at `peer`, who reached us at `local`, be refused?
pub fn refused(protected_mode: bool, local: IpAddr, peer: IpAddr) -> bool {
    // No password exists for these servers: protected mode alone decides.
    service::protected::refusal(protected_mode, local, false, peer).is_some()
}

/// The answer to every request on a refused connection.
pub fn forbidden() -> Response<Body> {
    let mut response = text(StatusCode::FORBIDDEN, FORBIDDEN);
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Says loudly, at startup, that a listener on `addr` is reachable from other hosts.
pub fn warn_if_exposed(server: &str, addr: SocketAddr, protected_mode: bool) {
    if addr.ip().to_canonical().is_loopback() {
        return;
    }
    if protected_mode {
        warn!(
            "WARNING: {server} listens on {addr}, reachable from other hosts: protected mode \
             is on, so clients that are not on this host get 403 Forbidden. Start it with \
             --protected-mode no to serve them."
        );
    } else {
        warn!(
            "WARNING: {server} listens on {addr} with protected mode off: anyone who can \
             reach this address is served{}.",
            if server == "edge" {
                ", and PURGE is open to private networks"
            } else {
                ""
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn only_remote_clients_of_an_exposed_server_are_refused() {
        let any = ip("0.0.0.0");
        assert!(!refused(true, any, ip("127.0.0.1")));
        assert!(!refused(true, any, ip("::ffff:127.0.0.1")));
        assert!(refused(true, any, ip("192.0.2.7")));
        assert!(refused(true, ip("10.0.0.2"), ip("10.0.0.3")));
        assert!(!refused(false, any, ip("192.0.2.7")));
        assert!(!refused(true, ip("127.0.0.1"), ip("127.0.0.1")));
    }

    #[test]
    fn the_refusal_says_how_to_get_in() {
        assert!(FORBIDDEN.contains("--protected-mode no"));
        assert!(FORBIDDEN.contains("INFRALAB_PROTECTED_MODE=no"));
        assert_eq!(forbidden().status(), StatusCode::FORBIDDEN);
    }
}

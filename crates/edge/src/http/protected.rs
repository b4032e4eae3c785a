//! Protected mode for the HTTP servers: the flag and the rule every infralab listener
//! shares ([`service::protected::ProtectedMode`], [`service::protected::refusal`]),
//! answered the HTTP way. Only the words are HTTP's: the `403` a refused client reads,
//! and the startup warning, which has no password to suggest.
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

use std::net::SocketAddr;

use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use super::{Body, text};

/// What a refused client reads.
pub const FORBIDDEN: &str = "DENIED infralab is running in protected mode: it listens on an \
     address other hosts can reach, and only clients on this host are served. If you want \
     to serve other hosts, restart the server with '--protected-mode no' (or the \
     environment variable INFRALAB_PROTECTED_MODE=no); MAKE SURE that is what you mean to \
     expose (an edge's PURGE and stats, the origin behind it) before you do so.\n";

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
    let open_note = if server == "edge" {
        ", and PURGE is open to private networks"
    } else {
        ""
    };
    service::protected::warn_if_exposed_without_password(
        server,
        addr,
        protected_mode,
        "403 Forbidden",
        open_note,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_says_how_to_get_in() {
        assert!(FORBIDDEN.contains("--protected-mode no"));
        assert!(FORBIDDEN.contains("INFRALAB_PROTECTED_MODE=no"));
        assert_eq!(forbidden().status(), StatusCode::FORBIDDEN);
    }

    /// The flag is `service`'s, flattened into every HTTP server's `Args`; only its
    /// `--help` line is worded here, for the `403`.
    #[test]
    fn every_http_server_takes_the_shared_flag_and_says_403_in_its_help() {
        use clap::{CommandFactory, Parser};
        use service::protected::ProtectedMode;

        let edge = crate::Args::try_parse_from(["edge", "--protected-mode", "no"]);
        let lb = crate::lb::Args::try_parse_from(["lb", "--backends", "127.0.0.1:1"]);
        let web = crate::web::Args::try_parse_from(["web", "--protected-mode", "yes"]);
        assert_eq!(
            edge.ok().map(|a| a.http.protected_mode),
            Some(ProtectedMode::OFF)
        );
        assert_eq!(
            lb.ok().map(|a| a.http.protected_mode),
            Some(ProtectedMode::ON)
        );
        assert_eq!(
            web.ok().map(|a| a.http.protected_mode),
            Some(ProtectedMode::ON)
        );
        for mut command in [
            crate::Args::command(),
            crate::lb::Args::command(),
            crate::web::Args::command(),
        ] {
            let help = command.render_help().to_string();
            assert!(help.contains("(others get `403`)"), "{help}");
            assert!(help.contains("INFRALAB_PROTECTED_MODE"), "{help}");
        }
    }
}

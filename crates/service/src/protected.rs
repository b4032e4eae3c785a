//! Protected mode: a server with no password answers only clients on the same host.
//!
//! A server started with `--bind 0.0.0.0` "to try it from my laptop" and no password is a
//! database anyone on the network — or the internet — can read, rewrite and wipe. Redis's
//! answer, copied here: while protected mode is on (the default) and no password is set,
//! a client connecting from anywhere but the loopback interface gets one error line that
//! explains how to fix it, and is disconnected. Exposing a server is then a decision, made
//! with `--requirepass` (or, knowingly, `--protected-mode no`), never an accident.
//!
//! The rule is [`refusal`], one function for every listener of every server: the RESP
//! accept loop calls it with each new peer, and a listener of another protocol (the
//! stream server's Kafka port) can call it too and send the text in its own error form.
//!
//! The switch is [`ProtectedMode`], the one definition of `--protected-mode yes|no` that
//! every server's `Args` flattens: the RESP servers through [`crate::ServiceArgs`], and sql,
//! the HTTP servers and the dashboard directly, so the flag, its environment variable and
//! its default cannot drift apart from one server to the next.

use std::net::{IpAddr, SocketAddr};

use tracing::warn;

use crate::settings::yes_no;

/// `--protected-mode yes|no` (or `INFRALAB_PROTECTED_MODE`), on unless turned off. A
/// server's `Args` takes it with `#[command(flatten)] pub protected_mode: ProtectedMode`
/// and reads `args.protected_mode.on`. A server whose refusal reads differently (the HTTP
/// servers' `403`) words its `--help` line itself, with
/// `#[command(mut_arg("protected_mode", |arg| arg.help("...")))]` on its `Args`: the flag,
/// its variable and its default stay defined here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
pub struct ProtectedMode {
    /// `yes`: while no password is set, refuse clients that are not on this host (Redis's
    /// protected mode). `no`: accept anyone who can reach the port.
    #[arg(
        long = "protected-mode",
        id = "protected_mode",
        value_name = "PROTECTED_MODE",
        env = "INFRALAB_PROTECTED_MODE",
        default_value = "yes",
        value_parser = yes_no,
        action = clap::ArgAction::Set
    )]
    pub on: bool,
}

impl ProtectedMode {
    /// The default: remote clients of an exposed server without a password are refused.
    pub const ON: ProtectedMode = ProtectedMode { on: true };
    /// Anyone who can reach the port is served (`--protected-mode no`).
    pub const OFF: ProtectedMode = ProtectedMode { on: false };
}

/// Why a client is refused, in Redis's words (Redis sends it as `-DENIED ...`).
pub const DENIED: &str = "DENIED infralab is running in protected mode because protected mode \
     is enabled and no password is set for the default user. In this mode connections are \
     only accepted from the loopback interface. If you want to connect from external \
     computers you may adopt one of the following solutions: \
     1) Set a password: restart the server with '--requirepass <password>' (or the \
     INFRALAB_REQUIREPASS environment variable), or send 'CONFIG SET requirepass <password>' \
     from the loopback interface, and have clients AUTH with it. \
     2) Disable protected mode: restart the server with '--protected-mode no', or send \
     'CONFIG SET protected-mode no' from the loopback interface; MAKE SURE the server is \
     not publicly accessible from the internet if you do so. \
     NOTE: You only need to do one of the above things in order for the server to start \
     accepting connections from the outside.";

/// Must a client connecting from `peer` to `local` be refused? `Some(reason)` (the text of
/// the error to send before closing) when protected mode is on, no password is set, and
/// the peer is not on the loopback interface. `local` is the listener's address the client
/// reached (its bind address, or the interface's for a wildcard bind): one on loopback
/// only ever has loopback peers, so it never refuses.
pub fn refusal(
    protected_mode: bool,
    local: IpAddr,
    password_set: bool,
    peer: IpAddr,
) -> Option<&'static str> {
    (protected_mode && exposed(local, password_set) && !is_loopback(peer)).then_some(DENIED)
}

/// Can other hosts reach a listener on `local` without a password? Not when it is bound
/// to loopback (only this host's clients ever arrive), nor when a password is set (they
/// must prove they know it). This is what protected mode guards, and what the startup
/// warnings of every protocol's listeners (RESP, PostgreSQL, HTTP) are about.
pub fn exposed(local: IpAddr, password_set: bool) -> bool {
    !password_set && !is_loopback(local)
}

/// Warns, at startup, about a listener on `addr` that other hosts can reach without a
/// password: refused by protected mode, or — with it off — open to anyone.
pub fn warn_if_exposed(server: &str, addr: SocketAddr, protected_mode: bool, password_set: bool) {
    if !exposed(addr.ip(), password_set) {
        return;
    }
    if protected_mode {
        warn!(
            "WARNING: {server} listens on {addr}, reachable from other hosts, and no password \
             is set: protected mode is on, so clients that are not on this host will be \
             refused with an error that says why. Set a password (--requirepass) to let them in, or turn \
             protected mode off (--protected-mode no) if this network is trusted."
        );
    } else {
        warn!(
            "WARNING: {server} listens on {addr} with no password and protected mode off: \
             anyone who can reach this address can read, change and delete everything. \
             Set a password with --requirepass."
        );
    }
}

/// The same warning for a server that has no password at all (the HTTP servers: edge,
/// lb, web, and the dashboard): being off loopback is enough to be exposed. `refused_with`
/// is what a refused client gets (`403 Forbidden`); `open_note` is appended to the
/// warning when protected mode is off (what else is then open, or empty).
pub fn warn_if_exposed_without_password(
    server: &str,
    addr: SocketAddr,
    protected_mode: bool,
    refused_with: &str,
    open_note: &str,
) {
    if !exposed(addr.ip(), false) {
        return;
    }
    if protected_mode {
        warn!(
            "WARNING: {server} listens on {addr}, reachable from other hosts: protected mode \
             is on, so clients that are not on this host get {refused_with}. Start it with \
             --protected-mode no to serve them."
        );
    } else {
        warn!(
            "WARNING: {server} listens on {addr} with protected mode off: anyone who can \
             reach this address is served{open_note}."
        );
    }
}

/// Loopback, counting an IPv4 address written as IPv6 (`::ffff:127.0.0.1`).
fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn refuses_only_remote_peers_of_an_exposed_server_without_password() {
        let any = ip("0.0.0.0");
        for peer in ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(refusal(true, any, false, ip(peer)), None, "{peer}");
        }
        for peer in ["192.0.2.7", "10.0.0.1", "::ffff:192.0.2.7", "2001:db8::1"] {
            assert_eq!(refusal(true, any, false, ip(peer)), Some(DENIED), "{peer}");
            assert_eq!(refusal(true, ip("::"), false, ip(peer)), Some(DENIED));
            assert_eq!(
                refusal(true, ip("192.0.2.2"), false, ip(peer)),
                Some(DENIED)
            );
            // A password, or protected mode off, lets them in.
            assert_eq!(refusal(true, any, true, ip(peer)), None);
            assert_eq!(refusal(false, any, false, ip(peer)), None);
        }
        // Bound to loopback: nothing is exposed.
        assert_eq!(refusal(true, ip("127.0.0.1"), false, ip("127.0.0.1")), None);
    }

    #[test]
    fn exposed_means_reachable_from_other_hosts_without_a_password() {
        assert!(exposed(ip("0.0.0.0"), false));
        assert!(exposed(ip("::"), false));
        assert!(exposed(ip("192.0.2.2"), false));
        assert!(!exposed(ip("0.0.0.0"), true));
        assert!(!exposed(ip("127.0.0.1"), false));
        assert!(!exposed(ip("::ffff:127.0.0.1"), false));
    }

    #[test]
    fn the_flag_is_yes_or_no_and_on_by_default() {
        use clap::Parser;

        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            protected_mode: ProtectedMode,
        }
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("server").chain(args.iter().copied()))
                .map(|cli| cli.protected_mode)
                .ok()
        };
        assert_eq!(parse(&[]), Some(ProtectedMode::ON));
        assert_eq!(parse(&["--protected-mode", "no"]), Some(ProtectedMode::OFF));
        assert_eq!(parse(&["--protected-mode", "YES"]), Some(ProtectedMode::ON));
        assert_eq!(parse(&["--protected-mode", "maybe"]), None);
        assert_eq!(parse(&["--protected-mode"]), None);
    }

    #[test]
    fn the_refusal_says_how_to_get_in() {
        assert!(DENIED.starts_with("DENIED "));
        for hint in [
            "--requirepass",
            "--protected-mode no",
            "CONFIG SET protected-mode no",
        ] {
            assert!(DENIED.contains(hint), "{hint}");
        }
        assert!(!DENIED.contains('\r') && !DENIED.contains('\n'));
    }
}

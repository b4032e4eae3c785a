//! Test support shared by the integration tests of every server crate (a dev-dependency
//! only: no server links it).
//!
//! - [`peer`]: an external program a test drives (`redis-server`, `redis-cli`, `kcat`,
//!   `python3` with a client library...), or a failure that says the one thing to run:
//!   [`INSTALL_PEERS`]. A test never skips because its peer is missing.
//! - [`RedisServer`]: a real `redis-server` on a free loopback port — the peer that the
//!   differential tests compare against, the origin a cache reads through, a router's
//!   backend.
//! - [`eventually!`]: waits for a condition instead of sleeping for a guessed time, so
//!   a test is as fast as the server and still fails (with a message) if the condition
//!   never holds.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)] // test code: a panic is a test failure

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[doc(hidden)]
pub use tokio;

/// What a test whose peer is missing asks for: one command that installs every peer the
/// suite uses (`.ci/run`'s apt and pip lines) and runs the suite.
pub const INSTALL_PEERS: &str = "run `scripts/test` from the workspace root: it installs the \
     test peers with apt and pip (as root, or through sudo) and then runs the whole suite";

/// A command for the external program `program`, after checking it is installed: when it
/// is not on `PATH`, the test fails here with [`INSTALL_PEERS`] instead of with a bare
/// "No such file or directory" later. (`tokio::process::Command::from` turns it into an
/// async command.)
pub fn peer(program: &str) -> Command {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()));
    assert!(found, "`{program}` is not installed: {INSTALL_PEERS}");
    Command::new(program)
}

/// Types `script` into `redis-cli -p port`, as a user at a terminal would, and returns
/// what it printed: README sessions are checked this way against kv and redis-server.
pub fn redis_cli(port: u16, script: &str) -> String {
    use std::io::Write;
    let mut child = peer("redis-cli")
        .args(["-p", &port.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("redis-cli starts");
    child
        .stdin
        .take()
        .expect("stdin piped")
        .write_all(script.as_bytes())
        .expect("redis-cli reads its input");
    let out = child.wait_with_output().expect("redis-cli exits");
    String::from_utf8(out.stdout).expect("redis-cli prints text")
}

/// A free loopback port: bind port 0, read what the kernel picked, let it go. (Another
/// process could take it in between; on a test machine that does not happen in practice.)
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// This host's address on its default route: not loopback, so a connection to it from
/// here comes from a non-loopback peer, as another host's would — how the protected-mode
/// tests play a remote client. (Connecting a UDP socket sends nothing; it only picks the
/// route.)
pub fn non_loopback_ip() -> std::net::IpAddr {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    socket
        .connect("192.0.2.1:9")
        .and_then(|()| socket.local_addr())
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
        .expect("this test needs a non-loopback IPv4 address with a route (eth0)")
}

/// A fresh directory under the system's temp dir, unique to this process and call.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "infralab-test-{tag}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A throwaway `redis-server` on a free loopback port, without persistence, killed (and
/// its directory removed) when dropped.
pub struct RedisServer {
    pub port: u16,
    args: Vec<String>,
    /// Its own working directory: a replica writes the RDB it receives to `dump.rdb`, and
    /// every redis-server loads `dump.rdb` from its directory at startup.
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one with `extra` command-line options and waits until it answers `PING`.
    pub fn start(extra: &[&str]) -> RedisServer {
        let port = free_port();
        let mut server = RedisServer {
            port,
            args: extra.iter().map(|s| s.to_string()).collect(),
            dir: temp_dir(&format!("redis-{port}")),
            child: None,
        };
        server.restart();
        server
    }

    /// Starts a replica of `primary` (`--replicaof`).
    pub fn replica_of(primary: &RedisServer) -> RedisServer {
        let port = primary.port.to_string();
        RedisServer::start(&["--replicaof", "127.0.0.1", &port])
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// kill -9: the server "goes down".
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again) on the same port with the same options, and waits until it
    /// answers `PING`.
    pub fn restart(&mut self) {
        self.kill();
        let child = peer("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--dir", self.dir.to_str().unwrap()])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("redis-server did not start ({e}): {INSTALL_PEERS}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !answers_ping(self.port) {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Whether something on `port` answers an inline `PING` with `+PONG`.
fn answers_ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Re-evaluates the (async) condition every 10 ms until it holds; panics after `limit`,
/// naming `what`.
///
/// ```ignore
/// eventually!(Duration::from_secs(5), "the replica caught up", replica_len().await == 100);
/// ```
#[macro_export]
macro_rules! eventually {
    ($limit:expr, $what:expr, $check:expr) => {{
        let limit: std::time::Duration = $limit;
        let deadline = $crate::tokio::time::Instant::now() + limit;
        while !$check {
            assert!(
                $crate::tokio::time::Instant::now() < deadline,
                "not within {limit:?}: {}",
                $what
            );
            $crate::tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }};
}

/// Resident memory of process `pid` (`"self"` for this one), in bytes, from `/proc`.
pub fn rss(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// Waits (at most 30 s) for [`rss`] of `pid` to be at most `bound`; fails saying `what`
/// and how much it still was. Freed memory leaves the resident set when the allocator
/// gives it back, which takes a moment: a condition to wait for, not a time to guess.
pub async fn rss_falls_to(pid: &str, bound: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = rss(pid);
        if now <= bound {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: RSS {} MiB, expected at most {} MiB",
            now >> 20,
            bound >> 20
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[should_panic(expected = "`infralab-no-such-peer` is not installed: run `scripts/test`")]
    fn a_missing_peer_fails_with_the_one_command_that_installs_it() {
        let _ = super::peer("infralab-no-such-peer");
    }

    #[test]
    fn an_installed_program_is_found_on_the_path() {
        let out = super::peer("sh").args(["-c", "echo ok"]).output().unwrap();
        assert_eq!(out.stdout, b"ok\n");
    }
}

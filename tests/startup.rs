//! The `infralab` binary as a newcomer meets it: `up` on other ports and another address,
//! a busy port, a data directory another server holds, and logs redirected to a file.
#![allow(clippy::unwrap_used)] // test code: a panic is a test failure

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

mod http_get;

/// A child process killed (SIGKILL) when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn infralab() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_infralab"));
    c.stdin(Stdio::null());
    c
}

/// Runs `infralab args...` to completion (it is expected to fail fast).
fn run_to_end(args: &[&str]) -> Output {
    let out = infralab().args(args).output().unwrap();
    assert!(!out.status.success(), "`infralab {args:?}` succeeded");
    out
}

/// A port this test holds (bound, listening) for as long as it keeps the listener.
fn busy_port() -> (TcpListener, u16) {
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    (holder, port)
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("infralab-startup-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Reads `output` line by line up to the first line for which `last` holds; returns
/// the lines read, or panics with them if the output ends first.
fn read_until(output: impl Read, last: impl Fn(&str) -> bool) -> String {
    let mut read = String::new();
    for line in BufReader::new(output).lines() {
        let line = line.unwrap();
        read.push_str(&line);
        read.push('\n');
        if last(&line) {
            return read;
        }
    }
    panic!("the output ended early:\n{read}");
}

/// Starts `infralab SERVER --port 0 --dir DIR` and waits for its "listening on" log line;
/// returns the process and everything it logged up to then.
fn server_on(server: &str, dir: &Path) -> (Running, String) {
    let mut child = infralab()
        .args([server, "--port", "0", "--dir", dir.to_str().unwrap()])
        .args(if server == "broker" {
            &["--beanstalk-port", "0", "--sqs-port", "0"][..]
        } else {
            &[]
        })
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let running = Running(child);
    (
        running,
        read_until(stderr, |line| line.contains("listening on")),
    )
}

#[test]
fn a_busy_port_names_the_server_and_the_flag_and_up_leaves_no_data_behind() {
    let (_holder, port) = busy_port();
    let offset = (port - 7379).to_string();
    let data = temp_dir("busy");
    let out = run_to_end(&[
        "up",
        "--port-offset",
        &offset,
        "--dir",
        data.join("data").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "kv: cannot listen on 127.0.0.1:{port}: Address already in use"
        )) && stderr.contains("--port-offset N"),
        "{stderr}"
    );
    assert!(
        !data.join("data").exists(),
        "`up` created its data directory before failing"
    );

    // One server alone suggests --port.
    let out = run_to_end(&["pubsub", "--port", &port.to_string()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("pubsub: cannot listen on 127.0.0.1:{port}"))
            && stderr.contains("--port PORT"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn up_moves_every_port_by_the_offset_onto_the_bind_address() {
    // 127.0.0.2 is loopback too on Linux: nothing else of this machine's listens there.
    let (holder, port) = busy_port();
    drop(holder);
    let offset = port - 7379;
    let data = temp_dir("up");
    let mut child = infralab()
        .args(["up", "--bind", "127.0.0.2", "--port-offset"])
        .arg(offset.to_string())
        .arg("--dir")
        .arg(data.join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let up = Running(child);
    let table = read_until(stdout, |line| line.starts_with("dashboard"));
    for (name, default) in [
        ("kv", 7379),
        ("cache", 7380),
        ("broker", 7382),
        ("broker (beanstalkd)", 11300),
        ("broker (SQS)", 9324),
        ("stream", 7383),
        ("stream (Kafka)", 9092),
        ("pubsub", 7381),
        ("shard-router", 7390),
        ("dashboard", 7300),
    ] {
        let addr = format!("127.0.0.2:{}", default + offset);
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(&format!("{name} ")) && l.contains(&addr)),
            "{name} is not on {addr}:\n{table}"
        );
    }
    assert!(
        table.contains(&format!("redis-cli -h 127.0.0.2 -p {} SET", 7379 + offset)),
        "{table}"
    );
    // The router reaches kv on its moved port: a write through it lands.
    let ping = infralab()
        .args(["ping", &format!("127.0.0.2:{}", 7390 + offset)])
        .output()
        .unwrap();
    assert!(ping.status.success(), "{ping:?}");
    // The dashboard watches the servers on their moved ports, and sees kv up.
    let kv_up = format!(
        "\"name\":\"kv\",\"kind\":\"kv\",\"addr\":\"127.0.0.2:{}\",\"up\":true",
        7379 + offset
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let state = http_get::body(&format!("127.0.0.2:{}", 7300 + offset), "/api/state");
        if state.contains(&kv_up) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the dashboard does not show kv up on its moved port: {state}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(up);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn a_second_server_on_a_data_directory_is_told_another_server_uses_it() {
    let data = temp_dir("lock");
    for server in ["kv", "broker"] {
        let dir = data.join(server);
        let (_first, _) = server_on(server, &dir);
        let dir = dir.to_str().unwrap();
        let out = run_to_end(&[server, "--port", "0", "--dir", dir]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("infralab: another server is using {dir} ")),
            "{server}: {stderr}"
        );
        assert!(!stderr.contains("WouldBlock"), "{server}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn logs_written_to_a_file_have_no_colour_codes() {
    let data = temp_dir("ansi");
    // stderr is a pipe here, as when redirected to a file: no escape sequences.
    let (kv, log) = server_on("kv", &data);
    drop(kv);
    assert!(log.contains("listening on"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escapes in a redirected log: {log:?}"
    );
    let _ = std::fs::remove_dir_all(&data);
}

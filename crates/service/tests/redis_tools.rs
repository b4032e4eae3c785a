//! The real Redis tools against the scaffolding: redis-cli (one-shot and the COMMAND DOCS
//! it fetches for interactive hints) and redis-benchmark (inline and multibulk PING).
//! Without redis-tools these tests fail saying how to install it (`testkit::INSTALL_PEERS`).
#![allow(clippy::unwrap_used)] // test code: a panic is a test failure

mod common;

use std::process::Output;

async fn tool(program: &str, args: &[String]) -> Output {
    let out = tokio::process::Command::from(testkit::peer(program))
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{program} not runnable ({e}): {}", testkit::INSTALL_PEERS));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn args(port: u16, rest: &[&str]) -> Vec<String> {
    ["-p".to_string(), port.to_string()]
        .into_iter()
        .chain(rest.iter().map(|s| s.to_string()))
        .collect()
}

#[tokio::test]
async fn redis_cli_ping_hello_and_command_docs() {
    let server = common::start(|_| {}).await;
    let port = server.addr().port();
    let out = tool("redis-cli", &args(port, &["PING"])).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "PONG");
    let out = tool("redis-cli", &args(port, &["HELLO", "3"])).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("proto") && text.contains('3') && text.contains("infralab"),
        "{text}"
    );
    let out = tool("redis-cli", &args(port, &["COMMAND", "DOCS"])).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("ping") && text.contains("summary"), "{text}");
    // Interactive mode: redis-cli reads COMMAND DOCS at start-up, then runs what it reads.
    let mut child = tokio::process::Command::from(testkit::peer("redis-cli"))
        .args(args(port, &[]))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("redis-cli");
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"ECHO interactive\nquit\n").await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("interactive"));
    server.stop().await;
}

#[tokio::test]
async fn redis_benchmark_ping_inline_and_mbulk() {
    let server = common::start(|_| {}).await;
    let port = server.addr().port();
    let out = tool(
        "redis-benchmark",
        &args(port, &["-t", "ping", "-n", "100000", "-q"]),
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // One line per test: "PING_INLINE: 98039.22 requests per second, p50=0.255 msec".
    for test in ["PING_INLINE", "PING_MBULK"] {
        let line = text
            .split(['\r', '\n'])
            .rfind(|l| l.starts_with(test) && l.contains("requests per second"))
            .unwrap_or_else(|| panic!("{test} missing in {text}"));
        let rps: f64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no rate in {line}"));
        assert!(rps > 0.0, "{line}");
    }
    server.stop().await;
}

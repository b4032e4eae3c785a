#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! `infralab demo celebrity --dashboard`: the demo prints the dashboard's URL, the page
//! lists the demo's servers as they start and carries their activity, and after the demo
//! the servers stay up until Ctrl-C (SIGINT), which ends it cleanly.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod http_get;

/// The demo's process, killed if the test fails before it ends it.
struct Demo(std::process::Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_demo_with_dashboard_prints_the_url_and_shows_its_servers() {
    let mut demo = Demo(
        Command::new(env!("CARGO_BIN_EXE_infralab"))
            .args(["demo", "celebrity", "--dashboard"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let child = &mut demo.0;
    // The demo's output, line by line, read on a thread so the test can wait with a deadline.
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let next_matching = |what: &str, holds: &dyn Fn(&str) -> bool| -> String {
        loop {
            let line = lines
                .recv_timeout(Duration::from_secs(120))
                .unwrap_or_else(|_| panic!("{what}: not printed within 120 s"));
            if holds(&line) {
                return line;
            }
        }
    };
    let line = next_matching("the dashboard's URL", &|l| {
        l.starts_with("dashboard: http://")
    });
    let addr = line
        .trim_start_matches("dashboard: http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    next_matching("the end of the demo", &|l| {
        l.starts_with("The demo is done")
    });

    // Every server the demo started is on the page, up (they stay up), with the reads the
    // demo made counted on the cache.
    let cache_hits = |state: &str| -> Option<f64> {
        state
            .split("\"name\":\"cache-0\"")
            .nth(1)?
            .split("\"hits_total\":")
            .nth(1)?
            .split([',', '}'])
            .next()?
            .parse()
            .ok()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = http_get::body(&addr, "/api/state");
        let shown = [
            "\"name\":\"kv-0\"",
            "\"name\":\"router-0\"",
            "\"name\":\"cache-0\"",
        ]
        .iter()
        .all(|n| state.contains(n));
        // The celebrity's 200 reads and the regular post's 199 hits.
        if shown && !state.contains("\"up\":false") && cache_hits(&state) >= Some(399.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the demo's servers and its 399 cache hits are not on the page: {state}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Ctrl-C ends it.
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "the demo did not stop after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
}

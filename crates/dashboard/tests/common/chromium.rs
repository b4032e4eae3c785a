//! Headless Chromium driven over the DevTools protocol, through a pipe
//! (`--remote-debugging-pipe`: JSON messages ending in a NUL byte, commands on the
//! browser's fd 3, replies on its fd 4), so the test can wait for the page's live data
//! and read what it rendered. (`--dump-dom` with `--virtual-time-budget` cannot: virtual
//! time stands still while a request is open, and the page's `/events` stream never ends.)

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Chromium on the PATH, or None when it is absent and CI is not set (with `CI=true` it
/// must be there: `.ci/run` installs it).
pub fn find() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .flat_map(|dir| ["chromium", "chromium-browser"].map(|n| dir.join(n)))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "chromium is not installed and CI=true: .ci/run installs Debian's chromium package"
        );
        eprintln!(
            "SKIPPED: chromium is not installed (apt-get install chromium, or run scripts/test)"
        );
    }
    found
}

pub struct Browser {
    child: Child,
    commands: ChildStdin,
    replies: BufReader<ChildStdout>,
    next_id: u64,
    session: String,
    profile: PathBuf,
}

impl Browser {
    /// Starts headless Chromium on `url` and attaches to its page.
    pub async fn open(chromium: &Path, url: &str) -> Browser {
        let profile =
            std::env::temp_dir().join(format!("dashboard-chromium-{}", std::process::id()));
        // The shell gives Chromium the pipe's ends as fds 3 and 4.
        let child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 </dev/null >/dev/null"#)
            .arg(chromium)
            .args([
                "--headless=new",
                "--no-sandbox", // as root (CI) Chromium refuses to start with its sandbox
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--hide-scrollbars",
                "--window-size=1280,1250",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("cannot start chromium");
        let mut child = child;
        let commands = child.stdin.take().unwrap();
        let replies = BufReader::new(child.stdout.take().unwrap());
        let mut browser = Browser {
            child,
            commands,
            replies,
            next_id: 0,
            session: String::new(),
            profile,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let page = loop {
            let targets = browser.call(None, "Target.getTargets", json!({})).await;
            let page = targets["targetInfos"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["type"] == "page")
                .cloned();
            if let Some(page) = page {
                break page;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromium opened no page"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let attached = browser
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": page["targetId"], "flatten": true}),
            )
            .await;
        browser.session = attached["sessionId"].as_str().unwrap().to_owned();
        browser
    }

    /// Sends one command (to the page's session, or the browser's) and returns its result.
    async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.commands.write_all(&bytes).await.unwrap();
        self.commands.flush().await.unwrap();
        let wait = async {
            loop {
                let mut raw = Vec::new();
                let n = self.replies.read_until(0, &mut raw).await.unwrap();
                assert!(n > 0, "chromium closed the pipe");
                raw.pop();
                let reply: Value = serde_json::from_slice(&raw).unwrap();
                if reply["id"] == id {
                    assert!(reply.get("error").is_none(), "{method}: {reply}");
                    return reply["result"].clone();
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(60), wait)
            .await
            .unwrap_or_else(|_| panic!("chromium did not answer {method} within 60 s"))
    }

    /// The value of a JavaScript expression in the page.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let session = self.session.clone();
        let r = self
            .call(
                Some(&session),
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
            )
            .await;
        r["result"]["value"].clone()
    }

    /// The page's visible text (what a reader sees), as rendered.
    pub async fn text(&mut self) -> String {
        self.eval("document.body.innerText")
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// Waits until the rendered text satisfies `holds`; returns it.
    pub async fn until_text(&mut self, what: &str, holds: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + super::PATIENCE;
        loop {
            let text = self.text().await;
            if holds(&text) {
                return text;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not on the page within {:?}; the page says:\n{text}",
                super::PATIENCE
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A PNG of the window.
    pub async fn screenshot(&mut self) -> Vec<u8> {
        use base64::Engine;
        let session = self.session.clone();
        let r = self
            .call(
                Some(&session),
                "Page.captureScreenshot",
                json!({"format": "png"}),
            )
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap()
    }

    pub async fn close(mut self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(10),
            self.call(None, "Browser.close", json!({})),
        )
        .await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        let _ = self.child.kill().await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

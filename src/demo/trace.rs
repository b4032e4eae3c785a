//! The narrated trace every demo prints: who sends what to whom, what comes back, how long
//! it took. One line per step, so a reader can follow a request across the servers.

use std::time::{Duration, Instant};

use proto::Frame;
use service::RespClient;

/// Longest rendering of a request or a reply before it is cut with `...`.
const MAX_SHOWN: usize = 72;

/// Prints the steps of a demo as they happen (and keeps them, for tests).
#[derive(Debug)]
pub struct Trace {
    started: Instant,
    lines: Vec<String>,
}

impl Default for Trace {
    fn default() -> Self {
        Self::new()
    }
}

impl Trace {
    pub fn new() -> Self {
        Trace {
            started: Instant::now(),
            lines: Vec::new(),
        }
    }

    /// Every line printed so far.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// A heading: what the next steps show.
    pub fn section(&mut self, title: &str) {
        self.emit(format!("\n== {title}"));
    }

    /// A sentence of narration.
    pub fn note(&mut self, text: impl AsRef<str>) {
        self.emit(format!("           {}", text.as_ref()));
    }

    /// One step that took `took`: `[ 0.41 ms] app → router  SET post:42 ...  ⇒ OK`.
    pub fn step(&mut self, took: Duration, from: &str, to: &str, what: &str, outcome: &str) {
        let ms = took.as_secs_f64() * 1000.0;
        self.emit(format!(
            "[{ms:>6.2} ms] {from} → {to}  {}  ⇒ {}",
            cut(what),
            cut(outcome)
        ));
    }

    /// Sends one command on `client` and traces it. An error reply is returned as a frame
    /// (the demos narrate errors too); only a broken connection is an `Err`.
    pub async fn call(
        &mut self,
        client: &mut RespClient,
        from: &str,
        to: &str,
        words: &[&str],
    ) -> std::io::Result<Frame> {
        let owned: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
        let start = Instant::now();
        let reply = client.call(owned).await?;
        self.step(start.elapsed(), from, to, &words.join(" "), &show(&reply));
        Ok(reply)
    }

    /// Time since the demo started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn emit(&mut self, line: String) {
        println!("{line}");
        self.lines.push(line);
    }
}

fn cut(text: &str) -> String {
    if text.chars().count() <= MAX_SHOWN {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(MAX_SHOWN - 3).collect();
    short.push_str("...");
    short
}

/// A reply as redis-cli would summarise it on one line.
pub fn show(frame: &Frame) -> String {
    match frame {
        Frame::Simple(s) => String::from_utf8_lossy(s).into_owned(),
        Frame::Error(e) => format!("(error) {}", String::from_utf8_lossy(e)),
        Frame::Integer(n) => format!("(integer) {n}"),
        Frame::Bulk(b) => format!("\"{}\"", String::from_utf8_lossy(b)),
        Frame::Null | Frame::NullArray => "(nil)".to_owned(),
        Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => {
            let inner: Vec<String> = items.iter().map(show).collect();
            format!("[{}]", inner.join(", "))
        }
        Frame::Map(pairs) => {
            let inner: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}: {}", show(k), show(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
        Frame::Pairs(pairs) => {
            let inner: Vec<String> = pairs
                .iter()
                .map(|(a, b)| format!("[{}, {}]", show(a), show(b)))
                .collect();
            format!("[{}]", inner.join(", "))
        }
        Frame::Double(d) => d.to_string(),
        Frame::Boolean(b) => b.to_string(),
        Frame::BigNumber(b) => String::from_utf8_lossy(b).into_owned(),
        Frame::Verbatim { text, .. } => String::from_utf8_lossy(text).into_owned(),
    }
}

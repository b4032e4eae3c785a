//! The slow log and the latency monitor: what was slow, remembered by the server.
//!
//! Every command is timed (its execution: not the time spent waiting for its bytes,
//! writing the reply to the socket, or a blocking pop's wait; a command queued by `MULTI`
//! is timed when `EXEC` runs it, as part of `EXEC`'s one entry, where Redis 7 logs each
//! queued command and not `EXEC`). One that took longer than
//! `slowlog-log-slower-than` microseconds (default 10,000; 0 logs everything, a negative
//! value nothing) is kept in a ring of the last `slowlog-max-len` (128) entries, with its
//! arguments, client and time: `SLOWLOG GET` shows them newest first. The log lives in
//! memory, is bounded, and is nearly free — a production server keeps it on, which is the
//! point: when something is slow, the evidence is already there.
//!
//! Nearly free, because the timing has to be paid by every command, slow or not, and at a
//! million commands a second each nanosecond is a tenth of a percent. A clock read costs
//! ~20 ns, so kv reads the clock once per command, not once before and once after: a
//! command of a pipelined batch starts where the previous one ended (see
//! `Kv::observe_start`), and the wall time a command sees for expiry is told from that
//! same instant and one read of the wall clock per batch (`clock::Anchor`). And it
//! copies nothing: a data command only borrows its
//! arguments, so they are still there afterwards, and the log reads them only if the
//! command turned out slow.
//!
//! The latency monitor is coarser: with `latency-monitor-threshold` set (ms, 0: off), a
//! command over it records a `command` event (`fast-command` for commands flagged fast);
//! `LATENCY LATEST` shows each event's last and worst latency. The commands that read
//! both are in `commands::admin`.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;

/// Redis keeps at most this many arguments of a logged command, and this many bytes of
/// each: a slow `MSET` of a million keys must not make the log itself a memory problem.
const MAX_ARGS: usize = 32;
const MAX_ARG_BYTES: usize = 128;

struct Entry {
    id: u64,
    unix_secs: u64,
    micros: u64,
    args: Vec<Bytes>,
    client: SocketAddr,
}

/// A latency event's last and worst sample.
struct Event {
    at: u64,
    last_ms: u64,
    max_ms: u64,
}

pub struct SlowLog {
    slower_than_us: AtomicI64,
    max_len: AtomicUsize,
    latency_threshold_ms: AtomicU64,
    next_id: AtomicU64,
    entries: Mutex<VecDeque<Entry>>,
    events: Mutex<BTreeMap<&'static str, Event>>,
}

impl Default for SlowLog {
    fn default() -> Self {
        SlowLog {
            slower_than_us: AtomicI64::new(10_000),
            max_len: AtomicUsize::new(128),
            latency_threshold_ms: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            entries: Mutex::default(),
            events: Mutex::default(),
        }
    }
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An argument as the log keeps it: cut to [`MAX_ARG_BYTES`] with a note of the rest.
fn clip(arg: &[u8]) -> Bytes {
    if arg.len() <= MAX_ARG_BYTES {
        return Bytes::copy_from_slice(arg);
    }
    let more = arg.len() - MAX_ARG_BYTES;
    let mut out = arg[..MAX_ARG_BYTES].to_vec();
    out.extend_from_slice(format!("... ({more} more bytes)").as_bytes());
    Bytes::from(out)
}

impl SlowLog {
    /// Is anything timed at all (the slow log or the latency monitor on)?
    pub fn enabled(&self) -> bool {
        self.slower_than_us.load(Ordering::Relaxed) >= 0
            || self.latency_threshold_ms.load(Ordering::Relaxed) > 0
    }

    /// Does a command that took `elapsed` need [`Self::record`]? (Cheap: two loads.)
    pub fn wants(&self, elapsed: Duration) -> bool {
        let us = elapsed.as_micros() as i64;
        let slower_than = self.slower_than_us.load(Ordering::Relaxed);
        let latency = self.latency_threshold_ms.load(Ordering::Relaxed);
        (slower_than >= 0 && us >= slower_than) || (latency > 0 && us / 1000 >= latency as i64)
    }

    /// Logs a command that [`Self::wants`] logging. `words`: its name and arguments.
    pub fn record(&self, words: &[Bytes], fast: bool, elapsed: Duration, client: SocketAddr) {
        let us = elapsed.as_micros() as u64;
        let latency = self.latency_threshold_ms.load(Ordering::Relaxed);
        if latency > 0 && us / 1000 >= latency {
            let name = if fast { "fast-command" } else { "command" };
            let ms = us / 1000;
            let mut events = crate::lock(&self.events);
            let e = events.entry(name).or_insert(Event {
                at: 0,
                last_ms: 0,
                max_ms: 0,
            });
            (e.at, e.last_ms, e.max_ms) = (unix_secs(), ms, e.max_ms.max(ms));
        }
        let slower_than = self.slower_than_us.load(Ordering::Relaxed);
        if slower_than < 0 || (us as i64) < slower_than {
            return;
        }
        let mut args: Vec<Bytes> = words.iter().take(MAX_ARGS).map(|w| clip(w)).collect();
        if words.len() > MAX_ARGS {
            args[MAX_ARGS - 1] = Bytes::from(format!(
                "... ({} more arguments)",
                words.len() - MAX_ARGS + 1
            ));
        }
        let entry = Entry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            unix_secs: unix_secs(),
            micros: us,
            args,
            client,
        };
        let max = self.max_len.load(Ordering::Relaxed);
        let mut entries = crate::lock(&self.entries);
        entries.push_front(entry);
        entries.truncate(max);
    }

    pub fn config_get(&self) -> Vec<(String, String)> {
        vec![
            (
                "slowlog-log-slower-than".into(),
                self.slower_than_us.load(Ordering::Relaxed).to_string(),
            ),
            (
                "slowlog-max-len".into(),
                self.max_len.load(Ordering::Relaxed).to_string(),
            ),
            (
                "latency-monitor-threshold".into(),
                self.latency_threshold_ms
                    .load(Ordering::Relaxed)
                    .to_string(),
            ),
        ]
    }

    /// `CONFIG SET` of the three parameters; `None` for any other name.
    pub fn config_set(&self, name: &str, value: &str) -> Option<Result<(), String>> {
        let not_int = || "argument couldn't be parsed into an integer".to_string();
        Some(match name {
            "slowlog-log-slower-than" => value
                .parse::<i64>()
                .map_err(|_| not_int())
                .map(|n| self.slower_than_us.store(n, Ordering::Relaxed)),
            "slowlog-max-len" => value.parse::<usize>().map_err(|_| not_int()).map(|n| {
                self.max_len.store(n, Ordering::Relaxed);
                crate::lock(&self.entries).truncate(n);
            }),
            "latency-monitor-threshold" => value
                .parse::<u64>()
                .map_err(|_| not_int())
                .map(|n| self.latency_threshold_ms.store(n, Ordering::Relaxed)),
            _ => return None,
        })
    }

    /// The newest `count` entries, newest first: (id, Unix seconds, microseconds,
    /// arguments, client address).
    pub fn newest(&self, count: usize) -> Vec<(u64, u64, u64, Vec<Bytes>, SocketAddr)> {
        let entries = crate::lock(&self.entries);
        entries
            .iter()
            .take(count)
            .map(|e| (e.id, e.unix_secs, e.micros, e.args.clone(), e.client))
            .collect()
    }

    pub fn len(&self) -> usize {
        crate::lock(&self.entries).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn reset(&self) {
        crate::lock(&self.entries).clear();
    }

    /// Each latency event: (name, Unix seconds of the last, last ms, worst ms).
    pub fn latest_events(&self) -> Vec<(&'static str, u64, u64, u64)> {
        let events = crate::lock(&self.events);
        events
            .iter()
            .map(|(name, e)| (*name, e.at, e.last_ms, e.max_ms))
            .collect()
    }

    /// Forgets the named latency events (all if `names` is empty); how many were known.
    pub fn reset_events(&self, names: &[Bytes]) -> usize {
        let mut events = crate::lock(&self.events);
        let before = events.len();
        if names.is_empty() {
            events.clear();
        } else {
            events.retain(|name, _| !names.iter().any(|n| n == name.as_bytes()));
        }
        before - events.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_commands_are_clipped_as_redis_clips_them() {
        let log = SlowLog::default();
        assert_eq!(log.config_set("slowlog-log-slower-than", "0"), Some(Ok(())));
        let mut words: Vec<Bytes> = vec![Bytes::from_static(b"mset")];
        words.extend((0..40).map(|i| Bytes::from(format!("k{i}"))));
        words[1] = Bytes::from(vec![b'x'; 200]);
        let addr: SocketAddr = "127.0.0.1:5000".parse().unwrap_or_else(|_| unreachable!());
        assert!(log.wants(Duration::from_micros(3)));
        log.record(&words, false, Duration::from_micros(3), addr);
        let entries = crate::lock(&log.entries);
        let args = &entries[0].args;
        assert_eq!(args.len(), 32);
        assert_eq!(args[31], Bytes::from("... (10 more arguments)"));
        assert!(args[1].ends_with(b"... (72 more bytes)"));
        assert_eq!(entries[0].micros, 3);
    }

    #[test]
    fn negative_threshold_logs_nothing() {
        let log = SlowLog::default();
        assert_eq!(
            log.config_set("slowlog-log-slower-than", "-1"),
            Some(Ok(()))
        );
        assert!(!log.wants(Duration::from_secs(5)));
    }
}

//! What the beanstalkd front-end keeps beside the engine, shared by its connections:
//! paused tubes, who uses, watches and waits on each tube, and the counters `stats`
//! reports. (A job's TTR is not here: it is the message's own lease, [`Message::ttr`],
//! stored with it, so it survives a restart.)
//!
//! [`Message::ttr`]: crate::message::Message::ttr

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;

use super::parse::Command;
use super::stats;
use crate::clock::Millis;
use crate::shared_engine::SharedEngine;
use crate::store::lock;

/// The beanstalkd front-end's shared state.
pub struct Beanstalk {
    pub(crate) inner: Arc<SharedEngine>,
    /// `-z`: the largest job body accepted.
    pub max_job_size: usize,
    /// Paused tubes: (the pause asked for, in seconds; when it ends).
    paused: Mutex<HashMap<Bytes, (u32, Instant)>>,
    /// Connections using, watching and waiting on each tube (beanstalkd's tubes exist
    /// while someone uses or watches them, jobs or not).
    tubes: Mutex<HashMap<Bytes, TubeUse>>,
    /// `cmd-*` counters for `stats`, by [`stats::index`].
    commands: [AtomicU64; stats::NAMES.len()],
    pub current_connections: AtomicU64,
    /// Connections that have put a job, reserved one, are waiting in a reserve.
    pub producers: AtomicU64,
    pub workers: AtomicU64,
    pub waiting: AtomicU64,
    pub total_connections: AtomicU64,
    pub started: Instant,
}

/// How many connections use, watch and wait on one tube.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TubeUse {
    pub using: u64,
    pub watching: u64,
    pub waiting: u64,
}

impl Beanstalk {
    pub(crate) fn new(inner: Arc<SharedEngine>, max_job_size: usize) -> Self {
        Beanstalk {
            inner,
            max_job_size,
            paused: Mutex::new(HashMap::new()),
            tubes: Mutex::new(HashMap::new()),
            commands: std::array::from_fn(|_| AtomicU64::new(0)),
            current_connections: AtomicU64::new(0),
            producers: AtomicU64::new(0),
            workers: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            total_connections: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    pub fn pause(&self, tube: &Bytes, seconds: u32) {
        let until = Instant::now() + std::time::Duration::from_secs(u64::from(seconds));
        lock(&self.paused).insert(tube.clone(), (seconds, until));
    }

    /// When `tube`'s pause ends, if it is paused; `seconds` it was paused for.
    pub fn paused(&self, tube: &Bytes) -> Option<(u32, Instant)> {
        let mut paused = lock(&self.paused);
        match paused.get(tube) {
            Some(&(_, until)) if until <= Instant::now() => {
                paused.remove(tube);
                None
            }
            other => other.copied(),
        }
    }

    /// Who uses, watches and waits on `tube` now.
    pub fn tube_use(&self, tube: &Bytes) -> TubeUse {
        lock(&self.tubes).get(tube).copied().unwrap_or_default()
    }

    /// The tubes someone uses, watches or waits on.
    pub fn tubes_in_use(&self) -> Vec<Bytes> {
        lock(&self.tubes).keys().cloned().collect()
    }

    /// Changes `tube`'s counts; a tube nobody uses, watches or waits on is forgotten.
    pub fn adjust(&self, tube: &Bytes, change: impl FnOnce(&mut TubeUse)) {
        let mut tubes = lock(&self.tubes);
        let counts = tubes.entry(tube.clone()).or_default();
        change(counts);
        if *counts == TubeUse::default() {
            tubes.remove(tube);
        }
    }

    pub fn count(&self, command: &Command) {
        self.commands[stats::index(command)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn counted(&self, command: &str) -> u64 {
        stats::NAMES
            .iter()
            .position(|name| *name == command)
            .map_or(0, |i| self.commands[i].load(Ordering::Relaxed))
    }

    pub fn connected(&self) {
        self.current_connections.fetch_add(1, Ordering::Relaxed);
        self.total_connections.fetch_add(1, Ordering::Relaxed);
    }

    pub fn disconnected(&self) {
        self.current_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Seconds on the wire to the engine's milliseconds.
pub fn millis(seconds: u32) -> Millis {
    Millis::from(seconds) * 1000
}

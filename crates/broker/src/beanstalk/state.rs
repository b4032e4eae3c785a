//! What the beanstalkd front-end keeps beside the engine, shared by its connections:
//! each job's TTR, paused tubes, who uses, watches and waits on each tube, and the
//! counters `stats` reports.
//!
//! A job's TTR is the visibility timeout each of its deliveries gets. The engine's
//! messages do not store one (a RESP receive chooses its lease when it receives), so the
//! TTR given to `put` is kept here, in memory: after a restart a job's deliveries get its
//! tube's visibility timeout instead (30 s unless `QCREATE ... VISIBILITY` set another).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;

use crate::clock::Millis;
use crate::message::MessageId;
use crate::shared_engine::SharedEngine;
use crate::store::lock;

/// The beanstalkd front-end's shared state.
pub struct Beanstalk {
    pub(crate) inner: Arc<SharedEngine>,
    /// `-z`: the largest job body accepted.
    pub max_job_size: usize,
    ttrs: Mutex<Ttrs>,
    /// Paused tubes: (the pause asked for, in seconds; when it ends).
    paused: Mutex<HashMap<Bytes, (u32, Instant)>>,
    /// Connections using, watching and waiting on each tube (beanstalkd's tubes exist
    /// while someone uses or watches them, jobs or not).
    tubes: Mutex<HashMap<Bytes, TubeUse>>,
    /// `cmd-*` counters for `stats`, by command name.
    commands: Mutex<HashMap<&'static str, u64>>,
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

struct Ttrs {
    seconds: HashMap<MessageId, u32>,
    /// Forget the TTRs of jobs that are gone when the table grows past this.
    prune_at: usize,
}

impl Beanstalk {
    pub(crate) fn new(inner: Arc<SharedEngine>, max_job_size: usize) -> Self {
        Beanstalk {
            inner,
            max_job_size,
            ttrs: Mutex::new(Ttrs {
                seconds: HashMap::new(),
                prune_at: 1024,
            }),
            paused: Mutex::new(HashMap::new()),
            tubes: Mutex::new(HashMap::new()),
            commands: Mutex::new(HashMap::new()),
            current_connections: AtomicU64::new(0),
            producers: AtomicU64::new(0),
            workers: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            total_connections: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// Records a job's TTR. Jobs deleted over RESP leave entries behind: when the table
    /// doubles, the entries of jobs that no longer exist are dropped (`exists` asks the
    /// engine), so it stays proportional to the live jobs.
    pub fn set_ttr(&self, id: MessageId, ttr: u32, exists: impl Fn(MessageId) -> bool) {
        let mut ttrs = lock(&self.ttrs);
        ttrs.seconds.insert(id, ttr);
        if ttrs.seconds.len() > ttrs.prune_at {
            ttrs.seconds.retain(|&id, _| exists(id));
            ttrs.prune_at = (ttrs.seconds.len() * 2).max(1024);
        }
    }

    /// A job's TTR in seconds, if it was put over this protocol since the start.
    pub fn ttr(&self, id: MessageId) -> Option<u32> {
        lock(&self.ttrs).seconds.get(&id).copied()
    }

    pub fn forget(&self, id: MessageId) {
        lock(&self.ttrs).seconds.remove(&id);
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

    pub fn count(&self, command: &'static str) {
        *lock(&self.commands).entry(command).or_default() += 1;
    }

    pub fn counted(&self, command: &str) -> u64 {
        lock(&self.commands).get(command).copied().unwrap_or(0)
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

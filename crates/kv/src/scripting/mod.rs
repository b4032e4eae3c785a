//! Lua scripting: `EVAL`, `EVALSHA`, `EVAL_RO`, `EVALSHA_RO` and `SCRIPT`, as Redis 7 has
//! them.
//!
//! ## Why scripts
//!
//! A script is a small program the server runs *between two other commands*: it reads,
//! decides and writes with nothing else running in between. That turns a read-modify-write
//! that would race between clients (check a counter, then increment it; check a lock's
//! owner, then delete it) into one atomic step, without `WATCH`'s retry loop and in one
//! round trip. The course's rate limiter and distributed lock are both scripts (see the
//! crate README).
//!
//! ## How kv runs them
//!
//! - [`vm`]: one Lua 5.1 state on its own thread, the script cache (by SHA-1), the
//!   sandbox, and `redis.call`, which runs kv's own command functions in a session of the
//!   script's ([`crate::commands::scripting::call`]).
//! - [`gate`]: the event loop waits while a script runs, so the script is atomic, up to
//!   `busy-reply-threshold`; after it, other clients get `-BUSY` and `SCRIPT KILL` works.
//! - [`convert`]: Redis's Lua <-> RESP conversion rules.
//!
//! A script's writes go through the one write path ([`Kv::write`]) like any command's, and
//! reach the journal and the replicas as one unit ([`Kv::begin_unit`]): Redis 7's "effects
//! replication" (a replica applies what the script *did*, not the script, so a script that
//! reads the clock or a random number cannot make a replica diverge).

pub mod convert;
pub mod gate;
pub mod vm;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use proto::Frame;

use crate::server::Kv;
use gate::Gate;
use vm::Job;

/// The scripting state a [`Kv`] holds.
#[derive(Debug)]
pub struct Scripts {
    pub(crate) gate: Arc<Gate>,
    /// The VM thread's queue, once [`Scripts::start`] ran.
    jobs: OnceLock<Mutex<Sender<Job>>>,
    /// `busy-reply-threshold` (alias `lua-time-limit`), in milliseconds.
    busy_threshold_ms: AtomicU64,
}

impl Default for Scripts {
    fn default() -> Self {
        Scripts {
            gate: Arc::default(),
            jobs: OnceLock::new(),
            busy_threshold_ms: AtomicU64::new(5000),
        }
    }
}

impl Scripts {
    /// Starts the VM thread for `kv`.
    pub fn start(kv: &Arc<Kv>) -> std::io::Result<()> {
        let scripts = &kv.scripts;
        let jobs = vm::spawn(Arc::downgrade(kv), scripts.gate.clone())?;
        let _ = scripts.jobs.set(Mutex::new(jobs));
        Ok(())
    }

    /// Hands `job` to the VM. `false` if the VM is not running.
    pub(crate) fn send(&self, job: Job) -> bool {
        self.jobs
            .get()
            .is_some_and(|jobs| crate::lock(jobs).send(job).is_ok())
    }

    pub fn busy_threshold(&self) -> Duration {
        Duration::from_millis(self.busy_threshold_ms.load(Ordering::Relaxed))
    }

    pub(crate) fn set_busy_threshold(&self, ms: u64) {
        self.busy_threshold_ms.store(ms, Ordering::Relaxed);
    }

    /// Before any other command: `None` to run it, or its reply while a script runs past
    /// the threshold (see [`gate`]). One atomic load when no script runs.
    pub fn admit(&self, args: &proto::Args) -> Option<Frame> {
        if !self.gate.running() {
            return None;
        }
        let sub = args.peek_all().next();
        self.gate.admit(args.name(), sub, self.busy_threshold())
    }
}

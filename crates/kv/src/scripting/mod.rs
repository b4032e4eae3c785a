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
//! - [`vm`]: one Lua 5.1 state and the script cache (by SHA-1); `sandbox`: the globals a
//!   script sees and `redis.call`, which runs kv's own command functions in a session of
//!   the script's ([`crate::commands::scripting::call`]).
//! - [`gate`]: the event loop waits while a script runs, so the script is atomic, up to
//!   `busy-reply-threshold`; after it, other clients get `-BUSY` and `SCRIPT KILL` works.
//! - [`convert`]: Redis's Lua <-> RESP conversion rules.
//! - [`name`]: a script's name, the SHA-1 of its body.
//!
//! A script's writes go through the one write path ([`Kv::write`]) like any command's, and
//! reach the journal and the replicas as one unit ([`Kv::begin_unit`]): Redis 7's "effects
//! replication" (a replica applies what the script *did*, not the script, so a script that
//! reads the clock or a random number cannot make a replica diverge).
//!
//! ## Where a script runs: inline, or on the VM's thread
//!
//! Redis runs a script on its one thread, and while a script runs past the threshold its
//! instruction hook calls back into the event loop to answer `-BUSY`. A tokio event loop
//! cannot be re-entered from inside a hook, so a script that may run long has to run on a
//! thread of its own (the VM's) while the event loop waits for it, then serves `-BUSY`.
//! That handoff — two context switches per script — costs more than a short script
//! itself: most scripts (a rate limiter, a lock) take microseconds.
//!
//! So a script runs *inline*, on the event loop, when its previous run ended within a
//! short slice ([`SLICE`], at most half the threshold), and on the connection's path that
//! builds no future ([`crate::commands::TryNow`]): only a script handed to the VM's
//! thread goes down the waiting `async` path. If an inline run outlives the
//! slice, the hook (every 10,000 Lua instructions) abandons it — provided it has not
//! written: a script that has only read has changed nothing, so it can start over from
//! the top on the VM's thread, where it is killable and others get `-BUSY` as before.
//! While it is being abandoned every `redis.call` fails and no `pcall`, `xpcall` or
//! `coroutine.resume` catches the error, so it can neither write nor stay. Nothing else
//! ran in between (the event loop was busy with it), so the script stays atomic.
//!
//! A script that outlives the slice *after writing* cannot start over (its writes are in
//! the dataset): it finishes inline, and is run on the VM's thread from then on. Had such
//! a script run past `busy-reply-threshold` on the event loop, other clients would wait
//! for it instead of getting `-BUSY` (it could not be killed either way: it wrote). Only a
//! script that was quick on its previous run and turns long after writing does that;
//! Redis too answers no one while one command runs inside a script. The same holds for
//! code inside a coroutine, which the hook does not see (on the VM's thread too).

pub mod convert;
pub mod gate;
pub mod name;
mod sandbox;
pub mod vm;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use proto::Frame;

use crate::server::Kv;
use gate::Gate;
use vm::{Job, Ran, Request};

/// How long a script may run inline on the event loop before it is moved to the VM's
/// thread (when it has not written; see the module docs). Long enough for a script of a
/// few commands on a loaded machine, short next to any threshold a server uses.
pub const SLICE: Duration = Duration::from_millis(2);

/// The scripting state a [`Kv`] holds.
#[derive(Debug)]
pub struct Scripts {
    pub(crate) gate: Arc<Gate>,
    /// The VM thread's queue, once [`Scripts::start`] ran.
    jobs: OnceLock<Mutex<Sender<Job>>>,
    /// The Lua state, for inline runs, and the server it runs against.
    vm: OnceLock<(vm::Shared, Weak<Kv>)>,
    /// `busy-reply-threshold` (alias `lua-time-limit`), in milliseconds.
    busy_threshold_ms: AtomicU64,
}

impl Default for Scripts {
    fn default() -> Self {
        let scripts = Scripts {
            gate: Arc::default(),
            jobs: OnceLock::new(),
            vm: OnceLock::new(),
            busy_threshold_ms: AtomicU64::new(0),
        };
        scripts.set_busy_threshold(5000);
        scripts
    }
}

impl Scripts {
    /// Starts the VM thread for `kv`.
    pub fn start(kv: &Arc<Kv>) -> std::io::Result<()> {
        let scripts = &kv.scripts;
        let vm = vm::Vm::new(scripts.gate.clone()).map_err(std::io::Error::other)?;
        let vm = Arc::new(Mutex::new(vm));
        let jobs = vm::spawn(Arc::downgrade(kv), vm.clone())?;
        let _ = scripts.jobs.set(Mutex::new(jobs));
        let _ = scripts.vm.set((vm, Arc::downgrade(kv)));
        Ok(())
    }

    /// Runs `request` on the event loop if it is a quick script (see the module docs);
    /// `Err` gives it back, to hand to the VM's thread.
    pub(crate) fn run_inline(&self, request: Request) -> Result<Ran, Request> {
        let Some((vm, kv)) = self.vm.get() else {
            return Err(request);
        };
        let Some(kv) = kv.upgrade() else {
            return Err(request);
        };
        // Held by the VM's thread only for a moment after a `SCRIPT` job: hand over then.
        let Ok(mut vm) = vm.try_lock() else {
            return Err(request);
        };
        vm.eval_inline(kv, request)
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
        self.gate
            .set_slice(SLICE.min(Duration::from_millis(ms) / 2));
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

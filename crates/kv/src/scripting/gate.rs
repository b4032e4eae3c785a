//! The script gate: while a script runs, nothing else does — until it has run too long.
//!
//! Redis runs a script on its one thread, so no other command can slip in between the
//! script's reads and writes: that is what makes a script atomic. kv runs the script on
//! a thread of its own (the Lua VM's, see [`super::vm`]) and makes the event loop wait
//! for it here. For `busy-reply-threshold` (5 s by default) the wait is silent, as Redis's
//! blocked event loop is. After that the event loop serves clients again, but every
//! command gets `-BUSY` except `SCRIPT KILL` (and `SHUTDOWN NOSAVE`): a runaway script must
//! not make the server unreachable, and the data must not change under it.
//!
//! `SCRIPT KILL` raises a flag that the VM's instruction hook checks; a script that has
//! already written cannot be killed (`-UNKILLABLE`), because stopping it halfway would
//! leave half of its writes in the dataset.
//!
//! A short script runs on the event loop itself, *inline* (see [`super`]): the gate is
//! open the same way, and [`Gate::outlived`] is what the hook asks to know when such a
//! run must stop and start over on the VM's thread.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use proto::{CommandError, Frame};

/// What the event loop knows about the script that is running, if any.
#[derive(Debug, Default)]
pub struct Gate {
    /// A script is running: the one check every command pays.
    running: AtomicBool,
    state: Mutex<Option<Running>>,
    /// Notified when a script ends.
    ended: Condvar,
    /// Threads waiting on `ended` (changed under `state`'s lock): `close` wakes them only
    /// if there are any, since waking a condition variable is a system call even when
    /// nobody waits, one per inline script otherwise.
    waiters: AtomicUsize,
    /// Set by `SCRIPT KILL`, read by the VM's hook.
    kill: AtomicBool,
    /// The running script runs inline, on the event loop (see [`super`]).
    inline: AtomicBool,
    /// The inline run outlived its slice before writing: it is being abandoned, to run
    /// again on the VM's thread. Every `redis.call` fails and no `pcall` catches it.
    abandoned: AtomicBool,
    /// How long an inline run may take, in nanoseconds.
    slice_ns: AtomicU64,
    /// Notified when a script ends, for tasks that wait without blocking the event loop.
    idle: tokio::sync::Notify,
    /// Tasks in [`Gate::idle`]: `close` notifies only if there are any (notifying takes
    /// the `Notify`'s own lock even when nobody waits).
    idlers: AtomicUsize,
}

/// A task counted in [`Gate::idle`] while it waits (also when its future is dropped).
struct Idler<'a>(&'a AtomicUsize);

impl<'a> Idler<'a> {
    fn new(idlers: &'a AtomicUsize) -> Self {
        idlers.fetch_add(1, Ordering::SeqCst);
        Idler(idlers)
    }
}

impl Drop for Idler<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug)]
struct Running {
    started: Instant,
    /// The script has called a write command: it can no longer be killed.
    wrote: bool,
}

/// `-BUSY`: what every command gets while a script runs past the threshold.
pub fn busy() -> Frame {
    CommandError::coded(
        "BUSY",
        "Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
    )
    .to_frame()
}

impl Gate {
    /// A script starts (on the event loop, before it is handed to the VM).
    pub fn open(&self) {
        self.open_at(Instant::now());
    }

    /// A script starts, at `started` (the caller's clock read, one fewer per script).
    ///
    /// The flags are stored with `Release`, a plain store on x86, where `SeqCst` is a
    /// locked exchange: what another thread must see in order comes through `state`'s
    /// mutex; only `running` (see [`Gate::close`]) needs the total order.
    fn open_at(&self, started: Instant) {
        *crate::lock(&self.state) = Some(Running {
            started,
            wrote: false,
        });
        self.kill.store(false, Ordering::Release);
        self.running.store(true, Ordering::Release);
    }

    /// How long an inline run may take (see [`super`]).
    pub fn slice(&self) -> Duration {
        Duration::from_nanos(self.slice_ns.load(Ordering::Relaxed))
    }

    pub fn set_slice(&self, slice: Duration) {
        let ns = u64::try_from(slice.as_nanos()).unwrap_or(u64::MAX);
        self.slice_ns.store(ns, Ordering::Relaxed);
    }

    /// A script starts inline, on the event loop, at `started`, allowed to run for
    /// [`Gate::slice`].
    pub fn open_inline(&self, started: Instant) {
        self.inline.store(true, Ordering::Release);
        self.abandoned.store(false, Ordering::Release);
        self.open_at(started);
    }

    /// The hook's question during an inline run: has it outlived its slice without
    /// writing? Then it is abandoned (`true`): nothing it did has to be undone, so it can
    /// run again from the start on the VM's thread. One that has written runs on where it
    /// is (see [`super`] for what that costs).
    pub fn outlived(&self) -> bool {
        if !self.inline.load(Ordering::Relaxed) {
            return false;
        }
        if self.abandoned.load(Ordering::Relaxed) {
            return true;
        }
        let slice = self.slice();
        let state = crate::lock(&self.state);
        match state.as_ref() {
            Some(running) if !running.wrote && running.started.elapsed() > slice => {
                self.abandoned.store(true, Ordering::SeqCst);
                true
            }
            _ => false,
        }
    }

    /// Was the inline run abandoned (see [`Gate::outlived`])?
    pub fn abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Relaxed)
    }

    /// The script ended (on the VM thread after its reply was handed over, or inline).
    pub fn close(&self) {
        let mut state = crate::lock(&self.state);
        *state = None;
        self.kill.store(false, Ordering::Release);
        self.inline.store(false, Ordering::Release);
        self.abandoned.store(false, Ordering::Release);
        // `SeqCst` store, then load, against `idle`'s increment, then load: either
        // `idle` sees no script running or this sees it waiting.
        self.running.store(false, Ordering::SeqCst);
        if self.waiters.load(Ordering::Relaxed) > 0 {
            self.ended.notify_all();
        }
        if self.idlers.load(Ordering::SeqCst) > 0 {
            self.idle.notify_waiters();
        }
    }

    /// Waits, as a task, until no script runs: a replica's link holds the primary's
    /// changes back while a (read-only) script runs past the threshold on the replica.
    pub async fn idle(&self) {
        let _idler = Idler::new(&self.idlers);
        loop {
            // Created before the check: `close` between the two still wakes it.
            let ended = self.idle.notified();
            if !self.running.load(Ordering::SeqCst) {
                return;
            }
            ended.await;
        }
    }

    /// Is a script running?
    pub fn running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    /// The running script called a write command.
    pub fn wrote(&self) {
        if let Some(running) = crate::lock(&self.state).as_mut() {
            running.wrote = true;
        }
    }

    /// Has `SCRIPT KILL` asked the running script to stop?
    pub fn killed(&self) -> bool {
        self.kill.load(Ordering::Relaxed)
    }

    /// Waits until no script runs, or until the running one has run for `threshold`
    /// (`None`: no limit). `true`: no script runs any more.
    pub fn wait(&self, threshold: Option<Duration>) -> bool {
        let mut state = crate::lock(&self.state);
        loop {
            let Some(running) = state.as_ref() else {
                return true;
            };
            let left = match threshold {
                None => Duration::from_secs(3600),
                Some(t) => match t.checked_sub(running.started.elapsed()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return false,
                },
            };
            self.waiters.fetch_add(1, Ordering::SeqCst);
            state = match self.ended.wait_timeout(state, left) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
            self.waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// A command from another client while a script runs: `None` once the script has
    /// ended (run the command), or the reply it gets now (`-BUSY`, or `SCRIPT KILL`'s).
    pub fn admit(&self, name: &str, sub: Option<&[u8]>, threshold: Duration) -> Option<Frame> {
        if self.wait(Some(threshold)) {
            return None;
        }
        match (name, sub) {
            ("script", Some(sub)) if sub.eq_ignore_ascii_case(b"kill") => Some(self.kill()),
            ("shutdown", _) => None,
            _ => Some(busy()),
        }
    }

    /// `SCRIPT KILL`: stops a script that has not written.
    pub fn kill(&self) -> Frame {
        let state = crate::lock(&self.state);
        match state.as_ref() {
            None => CommandError::coded("NOTBUSY", "No scripts in execution right now.").to_frame(),
            Some(running) if running.wrote => CommandError::coded(
                "UNKILLABLE",
                "Sorry the script already executed write commands against the dataset. You can \
                 either wait the script termination or kill the server in a hard way using the \
                 SHUTDOWN NOSAVE command.",
            )
            .to_frame(),
            Some(_) => {
                self.kill.store(true, Ordering::SeqCst);
                Frame::ok()
            }
        }
    }
}

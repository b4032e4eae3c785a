//! Stopping a statement that is running: psql's Ctrl-C (a CancelRequest),
//! `pg_cancel_backend(pid)` from another session, and `statement_timeout`.
//!
//! **The cancel key.** At startup every connection is told a *process id* and a *secret
//! key* (BackendKeyData). To cancel, a client opens a *new* connection and sends only
//! `CancelRequest(pid, key)` — the original connection is busy running the statement and
//! reads nothing until it ends. The server looks the pair up ([`Backends`]); a wrong key
//! does nothing (knowing a pid is not enough to cancel someone else's query), and no
//! reply is sent either way: the client learns the outcome from its original connection,
//! where the statement fails with 57014 `canceling statement due to user request`.
//!
//! **Checking for interrupts.** A cancel only *asks*: it sets a flag on the backend. The
//! statement itself looks at the flag at safe points — between rows of a scan, a join or
//! a filter — and stops there with an error, so its partial work is undone like any
//! failed statement's. This is PostgreSQL's `CHECK_FOR_INTERRUPTS()`: a signal handler
//! sets `QueryCancelPending`, and the executor polls it. Here a statement runs from start
//! to end on one thread (holding the engine lock), so the backend whose statement is
//! running on this thread is kept in a thread-local ([`running`]), and
//! [`check_for_interrupts`] reads it. The same check enforces `statement_timeout` on a
//! running statement; a statement *waiting* (for a row lock, in `pg_sleep`) instead
//! awaits [`Backend::cancelled`] alongside its wait.
//!
//! A cancel that arrives while the connection is idle is dropped: the next statement
//! starts with a clear flag ([`Backend::begin_statement`]), as in PostgreSQL.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use pgwire::api::{ClientInfo, PidSecretKeyGenerator};
use pgwire::messages::ProtocolVersion;
use pgwire::messages::startup::SecretKey;
use sqlparser::ast::{Expr, SelectItem, SetExpr, Statement};

use service::client::random_u64;

use crate::error::SqlError;

/// One connection's side of cancelling: its pid and its "please stop" flag.
#[derive(Debug, Default)]
pub struct Backend {
    pid: AtomicI32,
    cancel: AtomicBool,
    wake: tokio::sync::Notify,
}

impl Backend {
    /// The process id the client was given (0 before startup completes).
    pub fn pid(&self) -> i32 {
        self.pid.load(Ordering::Relaxed)
    }

    /// A new statement starts: a cancel meant for an earlier one does not carry over.
    pub fn begin_statement(&self) {
        self.cancel.store(false, Ordering::SeqCst);
    }

    /// Asks the running statement to stop.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
        self.wake.notify_waiters();
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    /// Resolves when the statement is asked to stop (for statements that wait).
    pub async fn cancelled(&self) {
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

/// Every connected backend by pid, with its secret key: where a CancelRequest and
/// `pg_cancel_backend` find the statement to stop.
#[derive(Debug, Default)]
pub struct Backends {
    by_pid: Mutex<HashMap<i32, (Bytes, Arc<Backend>)>>,
    next_pid: AtomicI32,
}

impl Backends {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<i32, (Bytes, Arc<Backend>)>> {
        self.by_pid.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A CancelRequest: cancels `pid`'s statement if `key` is its secret key.
    pub fn cancel_request(&self, pid: i32, key: &SecretKey) -> bool {
        let map = self.map();
        match map.get(&pid) {
            Some((secret, backend)) if *secret == key.to_bytes() => {
                backend.cancel();
                true
            }
            _ => false,
        }
    }

    /// `pg_cancel_backend(pid)`: whether there was such a backend to signal.
    pub fn cancel_pid(&self, pid: i32) -> bool {
        self.map().get(&pid).map(|(_, b)| b.cancel()).is_some()
    }

    /// How many connections there are (`pg_stat_database.numbackends`).
    pub fn count(&self) -> usize {
        self.map().len()
    }

    fn register(&self, backend: &Arc<Backend>, key: &SecretKey) -> i32 {
        // Pids start where PostgreSQL's small ones would not be mistaken for them.
        let pid = 10_000 + self.next_pid.fetch_add(1, Ordering::Relaxed);
        backend.pid.store(pid, Ordering::Relaxed);
        self.map().insert(pid, (key.to_bytes(), backend.clone()));
        pid
    }
}

/// One connection's cancel key: made at startup (pgwire asks for it before sending
/// BackendKeyData), registered in [`Backends`], forgotten when the connection ends.
#[derive(Debug)]
pub struct BackendKey {
    backends: Arc<Backends>,
    backend: Arc<Backend>,
}

impl BackendKey {
    pub fn new(backends: Arc<Backends>, backend: Arc<Backend>) -> BackendKey {
        BackendKey { backends, backend }
    }
}

impl PidSecretKeyGenerator for BackendKey {
    fn generate(&self, client: &dyn ClientInfo) -> (i32, SecretKey) {
        // Protocol 3.0 (psql 15, libpq) has a 4-byte key; 3.2 allows up to 256 bytes.
        let key = match client.protocol_version() {
            ProtocolVersion::PROTOCOL3_0 => SecretKey::I32(random_u64() as i32),
            _ => SecretKey::Bytes(
                (0..4)
                    .flat_map(|_| random_u64().to_be_bytes())
                    .collect::<Vec<u8>>()
                    .into(),
            ),
        };
        let pid = self.backends.register(&self.backend, &key);
        (pid, key)
    }
}

impl Drop for BackendKey {
    fn drop(&mut self) {
        let pid = self.backend.pid();
        let mut map = self.backends.map();
        if map
            .get(&pid)
            .is_some_and(|(_, b)| Arc::ptr_eq(b, &self.backend))
        {
            map.remove(&pid);
        }
    }
}

// ---- CHECK_FOR_INTERRUPTS ----

struct Running {
    backend: Arc<Backend>,
    deadline: Option<Instant>,
    /// Checks left before a statement running on the async worker thread must move off
    /// it (see [`running_inline`]); `None` when it already runs off it.
    budget: Option<u32>,
    /// Calls since the clock was last read: reading it for every row would cost more
    /// than the row.
    calls: u32,
}

thread_local! {
    static RUNNING: RefCell<Option<Running>> = const { RefCell::new(None) };
}

/// How many checks pass between two reads of the clock for `statement_timeout`.
const CLOCK_EVERY: u32 = 256;

/// How many checks (about one per row looked at) a statement may make on the async
/// worker thread: a point lookup or a one-row UPDATE makes a handful.
const INLINE_BUDGET: u32 = 1024;

/// The marker error of a statement that used up [`INLINE_BUDGET`]: not a SQLSTATE, it
/// never reaches a client (the session undoes the attempt and runs it again with
/// [`running`]).
const RAN_LONG: &str = "long!";

/// Did this attempt stop because it ran past the inline budget?
pub fn ran_long(e: &SqlError) -> bool {
    e.code == RAN_LONG
}

/// Runs `work` like [`running`], but on the current thread (the async worker) and only
/// for [`INLINE_BUDGET`] checks: past that it stops with an error that [`ran_long`]
/// recognises, and the caller undoes it and runs it with [`running`].
///
/// Moving a statement off the worker ([`tokio::task::block_in_place`]) hands the
/// worker's other tasks to a new thread: worth it for a statement that runs for
/// milliseconds, but for a point lookup the hand-off costs more than the lookup (the
/// select-only benchmark's statement is one). So every statement starts here.
pub fn running_inline<R>(
    backend: &Arc<Backend>,
    deadline: Option<Instant>,
    work: impl FnOnce() -> R,
) -> R {
    as_backend(backend, deadline, Some(INLINE_BUDGET), work)
}

/// Runs `work` (one statement's synchronous part) as `backend`'s, so that
/// [`check_for_interrupts`] inside it sees that backend's cancel flag and `deadline`.
///
/// A statement can run for seconds on the runtime thread that polled its connection.
/// On a multi-threaded runtime it runs in [`tokio::task::block_in_place`], which hands
/// that thread's queued tasks to another: otherwise a connection task queued behind it —
/// the very session sending `pg_cancel_backend`, or any other client — could wait for
/// the statement to end.
pub fn running<R>(
    backend: &Arc<Backend>,
    deadline: Option<Instant>,
    work: impl FnOnce() -> R,
) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let multi_threaded =
        Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
    if multi_threaded {
        tokio::task::block_in_place(|| as_backend(backend, deadline, None, work))
    } else {
        as_backend(backend, deadline, None, work)
    }
}

fn as_backend<R>(
    backend: &Arc<Backend>,
    deadline: Option<Instant>,
    budget: Option<u32>,
    work: impl FnOnce() -> R,
) -> R {
    struct Restore(Option<Running>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            RUNNING.with(|r| *r.borrow_mut() = previous);
        }
    }
    let previous = RUNNING.with(|r| {
        r.borrow_mut().replace(Running {
            backend: backend.clone(),
            deadline,
            budget,
            calls: 0,
        })
    });
    let _restore = Restore(previous);
    work()
}

/// Stops the running statement (57014) if it was cancelled or ran past
/// `statement_timeout`. Called at safe points: between rows.
pub fn check_for_interrupts() -> Result<(), SqlError> {
    RUNNING.with(|r| {
        let mut r = r.borrow_mut();
        let Some(running) = r.as_mut() else {
            return Ok(());
        };
        if running.backend.is_cancelled() {
            return Err(user_request());
        }
        if let Some(left) = running.budget.as_mut() {
            if *left == 0 {
                return Err(SqlError::new(
                    RAN_LONG,
                    "statement ran past the inline budget",
                ));
            }
            *left -= 1;
        }
        running.calls += 1;
        if running.calls >= CLOCK_EVERY {
            running.calls = 0;
            if running.deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(statement_timeout());
            }
        }
        Ok(())
    })
}

pub fn user_request() -> SqlError {
    SqlError::new("57014", "canceling statement due to user request")
}

pub fn statement_timeout() -> SqlError {
    SqlError::new("57014", "canceling statement due to statement timeout")
}

// ---- the functions that act on backends ----

/// `SELECT pg_sleep(s)`, `SELECT pg_backend_pid()`, `SELECT pg_cancel_backend(pid)`:
/// functions about the session rather than data, run by the session without the engine
/// (a sleep must not hold the engine lock, and a cancel must get through while another
/// statement holds it). Only as the whole statement: `SELECT f(args)` with no FROM.
#[derive(Debug, Clone)]
pub enum SessionCall {
    Sleep(Expr),
    BackendPid,
    CancelBackend(Expr),
}

impl SessionCall {
    pub fn of(stmt: &Statement) -> Option<SessionCall> {
        let Statement::Query(q) = stmt else {
            return None;
        };
        let SetExpr::Select(s) = q.body.as_ref() else {
            return None;
        };
        let [SelectItem::UnnamedExpr(Expr::Function(f))] = s.projection.as_slice() else {
            return None;
        };
        if !s.from.is_empty() || s.selection.is_some() {
            return None;
        }
        let args = crate::expr::function_args(f);
        let one = || match args.as_slice() {
            [Some(e)] => Some((*e).clone()),
            _ => None,
        };
        match crate::expr::function_name(f).as_str() {
            "pg_sleep" => one().map(SessionCall::Sleep),
            "pg_cancel_backend" => one().map(SessionCall::CancelBackend),
            "pg_backend_pid" if args.is_empty() => Some(SessionCall::BackendPid),
            _ => None,
        }
    }

    /// The result column's name (PostgreSQL names it after the function).
    pub fn column(&self) -> &'static str {
        match self {
            SessionCall::Sleep(_) => "pg_sleep",
            SessionCall::BackendPid => "pg_backend_pid",
            SessionCall::CancelBackend(_) => "pg_cancel_backend",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancel_reaches_only_the_statement_running_on_this_thread() {
        let backend = Arc::new(Backend::default());
        assert!(
            check_for_interrupts().is_ok(),
            "no statement: nothing to stop"
        );
        backend.cancel();
        let inside = running(&backend, None, check_for_interrupts);
        assert_eq!(
            inside.map_err(|e| e.message).err(),
            Some(user_request().message)
        );
        // After the statement, this thread runs nobody's statement.
        assert!(check_for_interrupts().is_ok());
        backend.begin_statement();
        assert!(running(&backend, None, check_for_interrupts).is_ok());
    }

    #[test]
    fn a_deadline_stops_a_running_statement() {
        let backend = Arc::new(Backend::default());
        let past = Instant::now();
        let result = running(&backend, Some(past), || {
            (0..CLOCK_EVERY * 2).try_for_each(|_| check_for_interrupts())
        });
        assert_eq!(
            result.map_err(|e| e.message).err(),
            Some(statement_timeout().message)
        );
    }

    #[test]
    fn an_inline_statement_stops_at_its_budget_and_a_moved_one_does_not() {
        let backend = Arc::new(Backend::default());
        let rows = |n: u32| move || (0..n).try_for_each(|_| check_for_interrupts());
        assert!(running_inline(&backend, None, rows(INLINE_BUDGET)).is_ok());
        let stopped = running_inline(&backend, None, rows(INLINE_BUDGET + 1));
        assert!(stopped.is_err_and(|e| ran_long(&e)));
        assert!(running(&backend, None, rows(INLINE_BUDGET * 4)).is_ok());
    }

    #[test]
    fn cancel_requests_need_the_secret_key() {
        let backends = Arc::new(Backends::default());
        let backend = Arc::new(Backend::default());
        let pid = backends.register(&backend, &SecretKey::I32(42));
        assert!(!backends.cancel_request(pid, &SecretKey::I32(41)));
        assert!(!backend.is_cancelled());
        assert!(!backends.cancel_request(pid + 1, &SecretKey::I32(42)));
        assert!(backends.cancel_request(pid, &SecretKey::I32(42)));
        assert!(backend.is_cancelled());
        let key = BackendKey::new(backends.clone(), backend.clone());
        drop(key);
        assert!(
            !backends.cancel_pid(pid),
            "forgotten when the connection ends"
        );
    }
}

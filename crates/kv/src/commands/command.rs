//! One row of kv's command table: what `COMMAND` reports about a command (its
//! [`CommandSpec`]: name, arity, flags, keys) and the function that runs it.
//!
//! Keeping the handler in the row is what makes dispatch cheap. The service has already
//! found the row by hashing the command's name once (to check its arity); the row's
//! handler is then one indirect call away. Finding it again by comparing the name
//! against `match` arms, as kv once did, cost every request a few hundred instructions
//! (four nested `match`es, each comparing names one by one until the right arm) and half
//! its instruction-cache misses: callgrind per pipelined `SETBIT`, 3,660 -> 3,345
//! instructions and, with a 32 KiB L1i, 28.6 -> 15.3 misses (Redis: 4,467 and 5.0).

use proto::{Args, Frame, Protocol};
use service::{Client, CommandSpec, Reply};

use super::Result;
use crate::server::{Kv, Session};

/// A command's spec and its handler (see the module notes).
#[derive(Debug, Clone, Copy)]
pub struct Command {
    pub spec: CommandSpec,
    pub run: Run,
    /// The command may wait (`SAVE` for the disk, a blocking pop for a push): the
    /// connection runs it on its asynchronous path, [`super::execute`], which names these
    /// commands itself; `run` is then its form that does not wait, if it has one (`EVAL`
    /// inside `EXEC`).
    pub waits: bool,
    /// A command that may wait but usually need not (`EVAL` of a quick script): what it
    /// runs first, on the path without a future (see [`TryNow`]).
    pub try_now: Option<TryNow>,
}

/// Runs a command that [`Command::waits`] without waiting, when it can: its reply, or
/// `None` to send it down the waiting path after all (which gets the command's
/// arguments as they arrived, not as this left them). `EVAL` of a script that ran
/// quickly last time runs inline (see [`crate::scripting`]); only the others need a
/// future.
pub type TryNow = fn(&Kv, &mut Session, &mut Args) -> Option<Frame>;

/// How a command's handler is called: with what it needs, and no more.
#[derive(Debug, Clone, Copy)]
pub enum Run {
    /// Arguments in, a reply out, against the client's session (its database, its
    /// transaction state). Most commands, and all that a script's `redis.call` reaches.
    Session(fn(&Kv, &mut Session, &mut Args) -> Result),
    /// The same, with the protocol the client speaks: the geo replies' shape depends on it.
    Shaped(fn(&Kv, &mut Session, &mut Args, Protocol) -> Result),
    /// Needs the connection itself (`LRANGE` hands back bytes already encoded for it).
    /// Not reachable from scripts.
    Client(fn(&Kv, &mut Client<Session>, &mut Args) -> Reply),
    /// Runs only on the waiting path ([`super::execute`]) or in a transaction's own way
    /// (`crate::transaction`).
    Elsewhere,
}

/// The start of a table row: [`CommandSpec::new`]'s metadata; the handler comes next.
pub const fn spec(
    name: &'static str,
    arity: i64,
    flags: &'static [&'static str],
    group: &'static str,
    summary: &'static str,
) -> Command {
    Command {
        spec: CommandSpec::new(name, arity, flags, group, summary),
        run: Run::Elsewhere,
        waits: false,
        try_now: None,
    }
}

impl Command {
    /// Key positions (first, last, step), as [`CommandSpec::keys`].
    pub const fn keys(mut self, first: i64, last: i64, step: i64) -> Self {
        self.spec = self.spec.keys(first, last, step);
        self
    }

    /// An argument synopsis, as [`CommandSpec::syntax`].
    pub const fn syntax(mut self, syntax: &'static str) -> Self {
        self.spec = self.spec.syntax(syntax);
        self
    }

    /// Subcommands with their arities, as [`CommandSpec::subcommands`].
    pub const fn subcommands(mut self, subcommands: &'static [(&'static str, i64)]) -> Self {
        self.spec = self.spec.subcommands(subcommands);
        self
    }

    /// Runs with [`Run::Session`].
    pub const fn runs(mut self, handler: fn(&Kv, &mut Session, &mut Args) -> Result) -> Self {
        self.run = Run::Session(handler);
        self
    }

    /// Runs with [`Run::Shaped`].
    pub const fn shaped(
        mut self,
        handler: fn(&Kv, &mut Session, &mut Args, Protocol) -> Result,
    ) -> Self {
        self.run = Run::Shaped(handler);
        self
    }

    /// Runs with [`Run::Client`].
    pub const fn on_client(
        mut self,
        handler: fn(&Kv, &mut Client<Session>, &mut Args) -> Reply,
    ) -> Self {
        self.run = Run::Client(handler);
        self
    }

    /// May wait (see [`Command::waits`]).
    pub const fn waits(mut self) -> Self {
        self.waits = true;
        self
    }

    /// May wait, but tries not to first (see [`TryNow`]).
    pub const fn tries_now(mut self, attempt: TryNow) -> Self {
        self.waits = true;
        self.try_now = Some(attempt);
        self
    }

    /// Goes straight down the waiting path: it may wait and has no attempt without a
    /// future ([`TryNow`]). Such a command's time is what it waited for, not its cost.
    pub fn must_wait(&self) -> bool {
        self.waits && self.try_now.is_none()
    }
}

//! What a command's run is watched by: the slow log and the latency monitor (its time),
//! `MONITOR` (its words), and the time it sees (see [`Kv::command_time`]).

use std::time::{Duration, Instant};

use proto::Args;
use service::Client;

use super::{Kv, Session};

impl Kv {
    /// The Unix milliseconds at `started`, a command's start instant (from
    /// [`Self::observe_start`]), without reading the wall clock again: from the batch's
    /// [`Anchor`], which the batch's first timed command takes (one read of the wall
    /// clock per batch, not one per command). `None` when the slow log is off (no
    /// instant is read) or the clock cannot be anchored (a test's manual clock): then
    /// [`Self::now`] reads the clock, as before.
    ///
    /// Like Redis 7's command time snapshot, a command then sees one time throughout,
    /// the time it began; a script sees the time its `EVAL` began.
    pub(super) fn command_time(
        &self,
        session: &mut Session,
        started: Option<Instant>,
    ) -> Option<u64> {
        let started = started?;
        let anchor = match session.anchor {
            Some(anchor) => anchor,
            None => *session.anchor.insert(self.clock.anchor(started)?),
        };
        Some(anchor.ms_at(started))
    }

    /// Before a command: when it started, if the slow log or the latency monitor is on.
    ///
    /// The clock is read once per command, not twice: a command starts where the
    /// previous one of the same batch ended ([`Session::lap`], set by
    /// [`Self::observe_end`]), and only the first command of a batch reads the clock
    /// itself. Pipelined, that is half the clock reads (a clock read is ~20 ns, a tenth
    /// of a pipelined `GET`'s time on kv). The price is that a command is charged with
    /// what the connection did since the previous command ended: encoding that reply
    /// and parsing this request, microseconds. Anything that may take longer breaks the
    /// chain — the end of a batch (its replies are written, the client may be slow), a
    /// command that may wait, one the service runs itself — so its time is never
    /// charged to the next command. The same instant also tells a data command's wall
    /// time (see [`Self::command_time`]), so the expiry clock is not read per command
    /// either: callgrind counts 1.2 clock reads per pipelined `SETBIT`, down from 2.2.
    pub(super) fn observe_start(&self, session: &mut Session) -> Option<Instant> {
        let lap = session.lap.take();
        self.slowlog
            .enabled()
            .then(|| lap.unwrap_or_else(Instant::now))
    }

    /// After a command: feeds the monitors and the slow log (see [`crate::monitor`],
    /// [`crate::slowlog`]). `started`: from [`Self::observe_start`]; `args`: the
    /// command's arguments, as it left them (only the name and the request are read).
    /// `waited`: the command may have waited (a blocking pop), so its time is not its
    /// cost and the slow log skips it.
    pub(super) fn observe_end(
        &self,
        client: &mut Client<Session>,
        started: Option<Instant>,
        args: Option<&Args>,
        waited: bool,
    ) {
        let elapsed = started.map(|started| {
            let now = Instant::now();
            client.session.lap = Some(now);
            now.saturating_duration_since(started)
        });
        let Some(args) = args else {
            return;
        };
        let flags = client.spec().map_or(&[][..], |spec| spec.flags);
        let monitor = self.monitors.active()
            && !flags.contains(&"admin")
            && !matches!(args.name(), "auth" | "hello");
        let slow = elapsed.filter(|&elapsed| !waited && self.slowlog.wants(elapsed));
        if monitor || slow.is_some() {
            self.record(client, args, monitor, slow);
        }
    }

    /// [`Self::observe_end`]'s rare part, out of line: a command that every request runs
    /// stays a few cache lines long (kv's hot path touched 3 to 4 times Redis's
    /// instruction-cache lines per command; callgrind, 32 KiB L1i).
    #[cold]
    #[inline(never)]
    fn record(&self, client: &Client<Session>, args: &Args, monitor: bool, slow: Option<Duration>) {
        let words = args.words();
        if monitor {
            self.monitors.feed(client.session.db, client.addr(), &words);
        }
        if let Some(elapsed) = slow {
            let fast = client
                .spec()
                .is_some_and(|spec| spec.flags.contains(&"fast"));
            self.slowlog.record(&words, fast, elapsed, client.addr());
        }
    }
}

//! The YAML of `stats`, `stats-job`, `stats-tube` and the `list-*` replies, with
//! beanstalkd 1.12's keys in its order, so tools that parse them (beanstalk_console,
//! greenstalk's `stats()`) find what they expect.
//!
//! Where the engine keeps no such number the value is 0: per-job `timeouts`, `releases`,
//! `buries` and `kicks` and per-tube `cmd-delete` and `cmd-pause-tube` (the engine counts
//! per queue, and other things).

use std::fmt::Write;

use bytes::Bytes;

use super::commands::{DEFAULT_TUBE, is_buried};
use super::parse::{Command, is_tube_name};
use super::state::Beanstalk;
use crate::clock::Millis;
use crate::engine::{Engine, Error};
use crate::message::{DEFAULT_PRIORITY, Message, State};
use crate::store::Store;

/// Every command's name, as `stats` counts it (`cmd-<name>`), in [`index`] order.
pub const NAMES: [&str; 25] = [
    "put",
    "use",
    "reserve",
    "reserve-with-timeout",
    "reserve-job",
    "delete",
    "release",
    "bury",
    "touch",
    "watch",
    "ignore",
    "peek",
    "peek-ready",
    "peek-delayed",
    "peek-buried",
    "kick",
    "kick-job",
    "stats-job",
    "stats-tube",
    "stats",
    "list-tubes",
    "list-tube-used",
    "list-tubes-watched",
    "pause-tube",
    "quit",
];

/// The command's place in [`NAMES`]: its counter (an array slot, not a map lookup, as
/// every command is counted).
pub fn index(command: &Command) -> usize {
    match command {
        Command::Put { .. } => 0,
        Command::Use(_) => 1,
        Command::Reserve => 2,
        Command::ReserveWithTimeout(_) => 3,
        Command::ReserveJob(_) => 4,
        Command::Delete(_) => 5,
        Command::Release { .. } => 6,
        Command::Bury { .. } => 7,
        Command::Touch(_) => 8,
        Command::Watch(_) => 9,
        Command::Ignore(_) => 10,
        Command::Peek(_) => 11,
        Command::PeekReady => 12,
        Command::PeekDelayed => 13,
        Command::PeekBuried => 14,
        Command::Kick(_) => 15,
        Command::KickJob(_) => 16,
        Command::StatsJob(_) => 17,
        Command::StatsTube(_) => 18,
        Command::Stats => 19,
        Command::ListTubes => 20,
        Command::ListTubeUsed => 21,
        Command::ListTubesWatched => 22,
        Command::PauseTube { .. } => 23,
        Command::Quit => 24,
    }
}

fn text(name: &Bytes) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(name)
}

/// Every tube, as beanstalkd counts them: `default`, the tubes someone uses or watches,
/// and the queues with a name a tube may have; sorted.
pub fn tube_names(b: &Beanstalk, engine: &Engine<Store>) -> Vec<Bytes> {
    let mut tubes: Vec<Bytes> = engine
        .names()
        .filter(|name| is_tube_name(name))
        .cloned()
        .chain(b.tubes_in_use())
        .chain([Bytes::from_static(DEFAULT_TUBE)])
        .collect();
    tubes.sort();
    tubes.dedup();
    tubes
}

/// A YAML list of tube names.
pub fn list(tubes: &[Bytes]) -> String {
    let mut out = String::from("---\n");
    for tube in tubes {
        let _ = writeln!(out, "- {}", text(tube));
    }
    out
}

/// `stats-job`. A dead letter is reported as a buried job of the tube it came from.
pub fn job(queue: &Bytes, m: &Message, ttr: Millis, now: Millis) -> String {
    let (state, tube) = match (&m.state, &m.origin) {
        (state, Some(origin)) if is_buried(state, Some(origin)) => ("buried", origin),
        (State::Ready, _) => ("ready", queue),
        (State::Delayed { .. }, _) => ("delayed", queue),
        (State::InFlight(_), _) => ("reserved", queue),
    };
    let left = match m.state {
        State::Delayed { until } => until.saturating_sub(now),
        State::InFlight(lease) => lease.deadline.saturating_sub(now),
        State::Ready => 0,
    };
    let delay = match m.state {
        State::Delayed { until } => until.saturating_sub(m.sent_at),
        _ => 0,
    };
    let mut out = String::from("---\n");
    let _ = write!(
        out,
        "id: {}\ntube: {}\nstate: {state}\npri: {}\nage: {}\ndelay: {}\nttr: {}\n\
         time-left: {}\nfile: 0\nreserves: {}\ntimeouts: 0\nreleases: 0\nburies: 0\nkicks: 0\n",
        m.id,
        text(tube),
        m.priority,
        now.saturating_sub(m.sent_at) / 1000,
        delay / 1000,
        ttr / 1000,
        left / 1000,
        m.deliveries,
    );
    out
}

/// One tube's counts, zero for a tube the engine has not created yet.
struct TubeCounts {
    urgent: usize,
    ready: usize,
    reserved: usize,
    delayed: usize,
    buried: usize,
    total: u64,
    timeouts: u64,
}

fn counts(engine: &mut Engine<Store>, tube: &Bytes, now: Millis) -> Result<TubeCounts, Error> {
    let stats = match engine.stats(tube, now) {
        Err(Error::NoQueue(_)) => None,
        other => Some(other?),
    };
    let urgent = engine
        .peek(tube, usize::MAX, now)
        .unwrap_or_default()
        .iter()
        .filter(|m| m.priority < DEFAULT_PRIORITY)
        .count();
    Ok(TubeCounts {
        urgent,
        ready: stats.as_ref().map_or(0, |s| s.ready),
        reserved: stats.as_ref().map_or(0, |s| s.in_flight),
        delayed: stats.as_ref().map_or(0, |s| s.delayed),
        buried: engine.buried(tube, now)?.len(),
        total: stats.as_ref().map_or(0, |s| s.counters.sent),
        timeouts: stats.as_ref().map_or(0, |s| s.counters.timed_out),
    })
}

/// `stats-tube`.
pub fn tube(
    b: &Beanstalk,
    engine: &mut Engine<Store>,
    tube: &Bytes,
    now: Millis,
) -> Result<String, Error> {
    let c = counts(engine, tube, now)?;
    let using = b.tube_use(tube);
    let (pause, left) = b.paused(tube).map_or((0, 0), |(seconds, until)| {
        let left = until.saturating_duration_since(std::time::Instant::now());
        (seconds, left.as_secs())
    });
    let mut out = String::from("---\n");
    let _ = write!(
        out,
        "name: {}\ncurrent-jobs-urgent: {}\ncurrent-jobs-ready: {}\ncurrent-jobs-reserved: {}\n\
         current-jobs-delayed: {}\ncurrent-jobs-buried: {}\ntotal-jobs: {}\ncurrent-using: {}\n\
         current-watching: {}\ncurrent-waiting: {}\ncmd-delete: 0\ncmd-pause-tube: 0\n\
         pause: {pause}\npause-time-left: {left}\n",
        text(tube),
        c.urgent,
        c.ready,
        c.reserved,
        c.delayed,
        c.buried,
        c.total,
        using.using,
        using.watching,
        using.waiting,
    );
    Ok(out)
}

/// `stats`: the server's numbers, summed over every tube.
pub fn server(b: &Beanstalk, engine: &mut Engine<Store>, now: Millis) -> Result<String, Error> {
    let names: Vec<Bytes> = engine.names().cloned().collect();
    let mut sum = TubeCounts {
        urgent: 0,
        ready: 0,
        reserved: 0,
        delayed: 0,
        buried: 0,
        total: 0,
        timeouts: 0,
    };
    for name in &names {
        let c = counts(engine, name, now)?;
        sum.urgent += c.urgent;
        // A dead letter is ready in its dead-letter queue and buried in its tube: count
        // it once, as buried.
        sum.ready += c.ready;
        sum.reserved += c.reserved;
        sum.delayed += c.delayed;
        sum.buried += c.buried;
        sum.total += c.total;
        sum.timeouts += c.timeouts;
    }
    sum.ready = sum.ready.saturating_sub(sum.buried);
    let mut out = String::from("---\n");
    let _ = write!(
        out,
        "current-jobs-urgent: {}\ncurrent-jobs-ready: {}\ncurrent-jobs-reserved: {}\n\
         current-jobs-delayed: {}\ncurrent-jobs-buried: {}\n",
        sum.urgent, sum.ready, sum.reserved, sum.delayed, sum.buried
    );
    for command in [
        "put",
        "peek",
        "peek-ready",
        "peek-delayed",
        "peek-buried",
        "reserve",
        "reserve-with-timeout",
        "delete",
        "release",
        "use",
        "watch",
        "ignore",
        "bury",
        "kick",
        "touch",
        "stats",
        "stats-job",
        "stats-tube",
        "list-tubes",
        "list-tube-used",
        "list-tubes-watched",
        "pause-tube",
    ] {
        let _ = writeln!(out, "cmd-{command}: {}", b.counted(command));
    }
    let load = std::sync::atomic::Ordering::Relaxed;
    let _ = write!(
        out,
        "job-timeouts: {}\ntotal-jobs: {}\nmax-job-size: {}\ncurrent-tubes: {}\n\
         current-connections: {}\ncurrent-producers: {}\ncurrent-workers: {}\n\
         current-waiting: {}\ntotal-connections: {}\npid: {}\nversion: \"1.12\"\n\
         rusage-utime: 0.000000\nrusage-stime: 0.000000\nuptime: {}\n\
         binlog-oldest-index: 0\nbinlog-current-index: 0\nbinlog-records-migrated: 0\n\
         binlog-records-written: 0\nbinlog-max-size: 0\ndraining: false\nid: infralab\n\
         hostname: infralab\nos: {}\nplatform: {}\n",
        sum.timeouts,
        sum.total,
        b.max_job_size,
        tube_names(b, engine).len(),
        b.current_connections.load(load),
        b.producers.load(load),
        b.workers.load(load),
        b.waiting.load(load),
        b.total_connections.load(load),
        std::process::id(),
        b.started.elapsed().as_secs(),
        std::env::consts::OS,
        std::env::consts::ARCH,
    );
    Ok(out)
}

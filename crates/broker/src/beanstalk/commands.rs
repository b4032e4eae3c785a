//! One beanstalkd connection: the tube it uses, the tubes it watches, the jobs it has
//! reserved; and each command -> the shared engine -> beanstalkd's reply.
//!
//! A reserved job is a delivery the connection holds (its receipt is kept in the
//! connection's [`Session`], as a RESP consumer's): `delete`, `release`, `bury` and
//! `touch` of a reserved job use that receipt, so only the connection that reserved a job
//! can finish it, as in beanstalkd. When the connection closes its jobs are released
//! (`--on-disconnect release`, beanstalkd's behaviour) or left to their TTR (`keep`).

use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use proto::frame::put_decimal;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::parse::{BAD_FORMAT, Command, JOB_TOO_BIG};
use super::state::{Beanstalk, TubeUse, millis};
use super::stats;
use crate::consumer::Session;
use crate::engine::{Error, SendOptions};
use crate::message::{MessageId, State};
use crate::queue::Delivery;

/// A reserved job whose TTR ends within this many ms makes `reserve` answer
/// `DEADLINE_SOON` rather than wait (beanstalkd's one-second safety margin).
const SAFETY_MARGIN: u64 = 1000;

pub const DEFAULT_TUBE: &[u8] = b"default";

/// Whether the connection goes on after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

/// The connection's incoming bytes: a blocked `reserve` keeps reading (up to `limit`
/// buffered bytes) so that it notices the client hanging up.
pub struct Input {
    reader: OwnedReadHalf,
    pub buf: BytesMut,
    limit: usize,
}

impl Input {
    pub fn new(reader: OwnedReadHalf, limit: usize) -> Self {
        Input {
            reader,
            buf: BytesMut::new(),
            limit,
        }
    }

    /// Reads what has arrived; 0 at the end of the stream. Into a buffer with room for
    /// a good read, by the RESP connections' rule ([`service::read_buffer::make_room`]):
    /// left to itself, `read_buf` grows an emptied buffer 64 bytes at a time, so a 1 KiB
    /// `put` took several reads and reallocations. (The buffer is never given back as the
    /// thread's spare: a beanstalkd connection keeps its own while it lives.)
    pub async fn fill(&mut self) -> std::io::Result<usize> {
        service::read_buffer::make_room(&mut self.buf);
        self.reader.read_buf(&mut self.buf).await
    }

    /// Completes when the client closes the connection.
    async fn closed(&mut self) {
        loop {
            if self.buf.len() >= self.limit {
                return std::future::pending().await;
            }
            if let Ok(0) | Err(_) = self.fill().await {
                return;
            }
        }
    }
}

/// One connection's beanstalkd state.
pub struct Conn {
    using: Bytes,
    watching: Vec<Bytes>,
    session: Session,
    /// Has it put a job / reserved one (beanstalkd's producers and workers)?
    producer: bool,
    worker: bool,
    /// For the counts of who uses and watches what, undone when the connection ends.
    beanstalk: Arc<Beanstalk>,
}

impl Conn {
    pub fn new(beanstalk: Arc<Beanstalk>) -> Self {
        let default = Bytes::from_static(DEFAULT_TUBE);
        beanstalk.adjust(&default, |u| {
            u.using += 1;
            u.watching += 1;
        });
        Conn {
            using: default.clone(),
            watching: vec![default],
            session: Session::default(),
            producer: false,
            worker: false,
            beanstalk,
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let b = &self.beanstalk;
        b.adjust(&self.using, |u| u.using -= 1);
        for tube in &self.watching {
            b.adjust(tube, |u| u.watching -= 1);
        }
        let load = std::sync::atomic::Ordering::Relaxed;
        if self.producer {
            b.producers.fetch_sub(1, load);
        }
        if self.worker {
            b.workers.fetch_sub(1, load);
        }
    }
}

/// A connection waiting in `reserve` on `tubes`, counted as such until dropped (also when
/// the wait is cancelled by a shutdown).
struct Waiting<'a> {
    beanstalk: &'a Beanstalk,
    tubes: Vec<Bytes>,
}

impl<'a> Waiting<'a> {
    fn new(beanstalk: &'a Beanstalk, tubes: &[Bytes]) -> Self {
        for tube in tubes {
            beanstalk.adjust(tube, |u| u.waiting += 1);
        }
        beanstalk
            .waiting
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Waiting {
            beanstalk,
            tubes: tubes.to_vec(),
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        for tube in &self.tubes {
            self.beanstalk.adjust(tube, |u| u.waiting -= 1);
        }
        self.beanstalk
            .waiting
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

enum Reserved {
    Got(Bytes, Vec<Delivery>),
    DeadlineSoon,
    /// Nothing yet; time alone changes a watched tube in this many ms.
    Wait(Option<u64>),
}

impl Conn {
    pub async fn execute(
        &mut self,
        b: &Arc<Beanstalk>,
        command: Command,
        out: &mut BytesMut,
        input: &mut Input,
    ) -> Flow {
        b.count(&command);
        // As beanstalkd: a connection that asks for a job is a worker from then on.
        if matches!(
            command,
            Command::Reserve | Command::ReserveWithTimeout(_) | Command::ReserveJob(_)
        ) && !std::mem::replace(&mut self.worker, true)
        {
            b.workers.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if command == Command::Quit {
            return Flow::Quit;
        }
        if let Err(e) = self.run(b, command, out, input).await {
            line(
                out,
                match e {
                    Error::NoQueue(_) | Error::Stale(_) => "NOT_FOUND",
                    Error::TooLarge { .. } => JOB_TOO_BIG,
                    Error::Invalid(_) => BAD_FORMAT,
                    Error::Storage(_) => "INTERNAL_ERROR",
                },
            );
        }
        Flow::Continue
    }

    async fn run(
        &mut self,
        b: &Arc<Beanstalk>,
        command: Command,
        out: &mut BytesMut,
        input: &mut Input,
    ) -> Result<(), Error> {
        let inner = &b.inner;
        match command {
            Command::Put {
                pri,
                delay,
                ttr,
                body,
            } => {
                let tube = self.using.clone();
                let options = SendOptions {
                    delay: Some(millis(delay)),
                    priority: pri,
                    // beanstalkd gives a TTR of 0 one second.
                    ttr: Some(millis(ttr.max(1))),
                    ..SendOptions::default()
                };
                let id = inner
                    .write(|engine, now| engine.send(&tube, body, options, now))
                    .await?;
                if !std::mem::replace(&mut self.producer, true) {
                    b.producers
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                out.extend_from_slice(b"INSERTED ");
                put_decimal(out, id as i64);
                out.extend_from_slice(b"\r\n");
            }
            Command::Use(tube) => {
                line(out, format!("USING {}", String::from_utf8_lossy(&tube)));
                b.adjust(&tube, |u| u.using += 1);
                b.adjust(&self.using, |u| u.using -= 1);
                self.using = tube;
            }
            Command::Reserve => self.reserve(b, None, out, input).await?,
            Command::ReserveWithTimeout(seconds) => {
                self.reserve(b, Some(seconds), out, input).await?
            }
            Command::ReserveJob(id) => {
                let got = inner.run(|engine, now| {
                    let ttr = engine.ttr_of(id, now)?;
                    engine.receive_job(id, ttr, now)
                })?;
                match got {
                    Some((tube, delivery)) => self.reserved(b, tube, vec![delivery], out),
                    None => line(out, "NOT_FOUND"),
                }
            }
            Command::Delete(id) => {
                let deleted = match self.session.held(id) {
                    Some((tube, receipt)) => {
                        let acked = inner
                            .write(|engine, now| engine.ack(&tube, &receipt, now))
                            .await;
                        self.session.done(&receipt);
                        match acked {
                            Ok(()) => true,
                            Err(Error::Stale(_)) => {
                                inner.write(|engine, now| engine.remove(id, now)).await?
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    None => inner.write(|engine, now| engine.remove(id, now)).await?,
                };
                line(out, if deleted { "DELETED" } else { "NOT_FOUND" });
            }
            Command::Release { id, pri, delay } => {
                let Some((tube, receipt)) = self.held(b, id) else {
                    return reply(out, "NOT_FOUND");
                };
                inner
                    .write(|engine, now| {
                        engine.reprioritize(&tube, &receipt, pri, now)?;
                        engine.nack(&tube, &receipt, millis(delay), now)
                    })
                    .await?;
                self.session.done(&receipt);
                line(out, "RELEASED");
            }
            Command::Bury { id, pri } => {
                let Some((tube, receipt)) = self.held(b, id) else {
                    return reply(out, "NOT_FOUND");
                };
                inner
                    .write(|engine, now| engine.bury(&tube, &receipt, pri, now))
                    .await?;
                self.session.done(&receipt);
                line(out, "BURIED");
            }
            Command::Touch(id) => {
                let Some((tube, receipt)) = self.held(b, id) else {
                    return reply(out, "NOT_FOUND");
                };
                inner
                    .write(|engine, now| {
                        let ttr = engine.ttr_of(id, now)?;
                        engine.extend(&tube, &receipt, ttr, now)
                    })
                    .await?;
                line(out, "TOUCHED");
            }
            Command::Watch(tube) => {
                if !self.watching.contains(&tube) {
                    b.adjust(&tube, |u| u.watching += 1);
                    self.watching.push(tube);
                }
                line(out, format!("WATCHING {}", self.watching.len()));
            }
            Command::Ignore(tube) => {
                if let Some(i) = self.watching.iter().position(|t| *t == tube) {
                    if self.watching.len() < 2 {
                        return reply(out, "NOT_IGNORED");
                    }
                    b.adjust(&tube, |u| u.watching -= 1);
                    self.watching.remove(i);
                }
                line(out, format!("WATCHING {}", self.watching.len()));
            }
            Command::Peek(id) => {
                let found = inner.run(|engine, now| engine.find(id, now))?;
                match found {
                    Some((_, m)) => job(out, "FOUND", m.id, &m.payload),
                    None => line(out, "NOT_FOUND"),
                }
            }
            Command::PeekReady | Command::PeekDelayed | Command::PeekBuried => {
                let tube = self.using.clone();
                let found = inner.run(|engine, now| {
                    let found = match command {
                        Command::PeekReady => engine.peek(&tube, 1, now).unwrap_or_default(),
                        Command::PeekDelayed => engine.delayed(&tube, now)?,
                        _ => engine.buried(&tube, now)?,
                    };
                    Ok(found.into_iter().next())
                })?;
                match found {
                    Some(m) => job(out, "FOUND", m.id, &m.payload),
                    None => line(out, "NOT_FOUND"),
                }
            }
            Command::Kick(bound) => {
                let tube = self.using.clone();
                let kicked = inner
                    .write(|engine, now| engine.kick(&tube, bound as usize, now))
                    .await?;
                line(out, format!("KICKED {kicked}"));
            }
            Command::KickJob(id) => {
                let kicked = inner.write(|engine, now| engine.kick_job(id, now)).await?;
                line(out, if kicked { "KICKED" } else { "NOT_FOUND" });
            }
            Command::StatsJob(id) => {
                let yaml = inner.run(|engine, now| {
                    let Some((tube, message)) = engine.find(id, now)? else {
                        return Ok(None);
                    };
                    let ttr = engine.ttr_of(id, now)?;
                    Ok(Some(stats::job(&tube, &message, ttr, now)))
                })?;
                match yaml {
                    Some(yaml) => ok(out, &yaml),
                    None => line(out, "NOT_FOUND"),
                }
            }
            Command::StatsTube(tube) => {
                if !self.knows(b, &tube) {
                    return reply(out, "NOT_FOUND");
                }
                let yaml = inner.run(|engine, now| stats::tube(b, engine, &tube, now))?;
                ok(out, &yaml);
            }
            Command::Stats => {
                let yaml = inner.run(|engine, now| stats::server(b, engine, now))?;
                ok(out, &yaml);
            }
            Command::ListTubes => {
                let tubes = inner.run(|engine, _| Ok(stats::tube_names(b, engine)))?;
                ok(out, &stats::list(&tubes));
            }
            Command::ListTubeUsed => line(
                out,
                format!("USING {}", String::from_utf8_lossy(&self.using)),
            ),
            Command::ListTubesWatched => ok(out, &stats::list(&self.watching)),
            Command::PauseTube { tube, delay } => {
                if !self.knows(b, &tube) {
                    return reply(out, "NOT_FOUND");
                }
                b.pause(&tube, delay);
                line(out, "PAUSED");
            }
            Command::Quit => {}
        }
        Ok(())
    }

    /// The delivery of `id` this connection holds, if it is still current.
    fn held(&mut self, b: &Beanstalk, id: MessageId) -> Option<(Bytes, crate::receipt::Receipt)> {
        let (tube, receipt) = self.session.held(id)?;
        let current = b
            .inner
            .run(|engine, now| Ok(engine.is_current(&tube, &receipt, now)))
            .unwrap_or(false);
        if !current {
            self.session.done(&receipt);
            return None;
        }
        Some((tube, receipt))
    }

    /// Does `tube` exist, as beanstalkd sees it (it has jobs, or someone uses it)?
    fn knows(&self, b: &Beanstalk, tube: &Bytes) -> bool {
        tube[..] == *DEFAULT_TUBE
            || b.tube_use(tube) != TubeUse::default()
            || b.inner
                .run(|engine, _| Ok(engine.names().any(|name| name == tube)))
                .unwrap_or(false)
    }

    fn reserved(&mut self, b: &Beanstalk, tube: Bytes, got: Vec<Delivery>, out: &mut BytesMut) {
        self.session.hold(&b.inner, &tube, &got);
        if let Some(d) = got.first() {
            job(out, "RESERVED", d.id, &d.payload);
        }
    }

    /// `reserve` and `reserve-with-timeout`: the most urgent ready job of the watched
    /// tubes (lowest priority number, then oldest), leased for its TTR; or wait for one.
    ///
    /// The wait is the RESP long poll's (see [`crate::shared_engine`]), over several
    /// queues: register on every watched tube's waker *before* looking, then sleep until
    /// one is notified, a delay or lease in them falls due, a reserved job nears its
    /// deadline (`DEADLINE_SOON`), the timeout passes (`TIMED_OUT`), or the client hangs up.
    ///
    /// A busy worker rarely waits, so the first look is made without registering (it
    /// costs one lock of the engine and no allocation); only if it finds nothing does the
    /// registered loop start, and looks again.
    async fn reserve(
        &mut self,
        b: &Arc<Beanstalk>,
        timeout: Option<u32>,
        out: &mut BytesMut,
        input: &mut Input,
    ) -> Result<(), Error> {
        let deadline = timeout.map(|s| Instant::now() + Duration::from_secs(u64::from(s)));
        if let Reserved::Got(tube, got) = self.look(b, false)? {
            self.reserved(b, tube, got, out);
            return Ok(());
        }
        loop {
            let wakers: Vec<Arc<Notify>> = self.watching.iter().map(|t| b.inner.waker(t)).collect();
            let mut waits: Vec<_> = wakers.iter().map(|w| Box::pin(w.notified())).collect();
            for wait in &mut waits {
                wait.as_mut().enable();
            }
            let unpause = self
                .watching
                .iter()
                .filter_map(|t| b.paused(t))
                .map(|p| p.1)
                .min();
            let due = match self.look(b, true)? {
                Reserved::Got(tube, got) => {
                    // Woken for a job and left others behind: wake the next waiting
                    // consumer of each tube that still has some.
                    let left = b.inner.run(|engine, _| {
                        Ok(self
                            .watching
                            .iter()
                            .map(|t| engine.ready_len(t) > 0)
                            .collect::<Vec<_>>())
                    })?;
                    for (waker, left) in wakers.iter().zip(left) {
                        if left {
                            waker.notify_one();
                        }
                    }
                    self.reserved(b, tube, got, out);
                    return Ok(());
                }
                Reserved::DeadlineSoon => return reply(out, "DEADLINE_SOON"),
                Reserved::Wait(due) => due,
            };
            if deadline.is_some_and(|d| d <= Instant::now()) {
                return reply(out, "TIMED_OUT");
            }
            let due = due.map(|ms| Instant::now() + Duration::from_millis(ms + 1));
            let wake_at = [deadline, due, unpause.map(Instant::from_std)]
                .into_iter()
                .flatten()
                .min();
            let sleep = async {
                match wake_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let notified = poll_fn(|cx| {
                for wait in &mut waits {
                    if wait.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(());
                    }
                }
                Poll::Pending
            });
            let _waiting = Waiting::new(b, &self.watching);
            tokio::select! {
                _ = notified => {}
                _ = sleep => {}
                _ = input.closed() => return Ok(()),
                _ = b.inner.shutdown.cancelled() => return Ok(()),
            }
        }
    }

    /// One look for a job, under one lock of the engine: the watched, unpaused tubes by
    /// their most urgent ready job, the first that hands one out (a FIFO queue's next job
    /// may be held back by its group). With nothing to hand out, and `to_wait` (the
    /// registered loop), whether a reserved job's deadline is near, and when time alone
    /// changes a watched tube.
    fn look(&self, b: &Beanstalk, to_wait: bool) -> Result<Reserved, Error> {
        let one = self.watching.len() == 1;
        let active = |t: &&Bytes| b.paused(t).is_none();
        let held = if to_wait {
            self.session.holding()
        } else {
            Vec::new()
        };
        b.inner.run(|engine, now| {
            if one {
                // The usual case: no choosing between tubes.
                if let Some(tube) = self.watching.iter().find(active) {
                    let got = engine.reserve(tube, now)?;
                    if !got.is_empty() {
                        return Ok(Reserved::Got(tube.clone(), got));
                    }
                }
            } else {
                let mut heads = Vec::new();
                for tube in self.watching.iter().filter(active) {
                    if let Some(key) = engine.ready_head(tube, now)? {
                        heads.push((key, tube));
                    }
                }
                heads.sort_unstable();
                for (_, tube) in heads {
                    let got = engine.reserve(tube, now)?;
                    if !got.is_empty() {
                        return Ok(Reserved::Got(tube.clone(), got));
                    }
                }
            }
            if !to_wait {
                return Ok(Reserved::Wait(None));
            }
            let soonest = held
                .iter()
                .filter_map(|(tube, r)| {
                    engine.lease_of(tube, r.message).filter(|l| l.receipt == *r)
                })
                .map(|lease| lease.deadline)
                .min();
            if soonest.is_some_and(|d| d.saturating_sub(now) <= SAFETY_MARGIN) {
                return Ok(Reserved::DeadlineSoon);
            }
            let due = self
                .watching
                .iter()
                .filter(active)
                .filter_map(|t| engine.next_due(t))
                .chain(soonest.map(|d| d - SAFETY_MARGIN))
                .min()
                .map(|t| t.saturating_sub(now));
            Ok(Reserved::Wait(due))
        })
    }
}

/// Answers with one line and ends the command.
fn reply(out: &mut BytesMut, text: &str) -> Result<(), Error> {
    line(out, text);
    Ok(())
}

fn line(out: &mut BytesMut, text: impl AsRef<str>) {
    out.extend_from_slice(text.as_ref().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `<word> <id> <bytes>\r\n<body>\r\n`: RESERVED and FOUND. (Digits by hand, not
/// `write!`: the formatting machinery cost more than the rest of the reply.)
fn job(out: &mut BytesMut, word: &str, id: MessageId, body: &Bytes) {
    out.reserve(word.len() + 48 + body.len());
    out.extend_from_slice(word.as_bytes());
    out.extend_from_slice(b" ");
    put_decimal(out, id as i64);
    out.extend_from_slice(b" ");
    put_decimal(out, body.len() as i64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

/// `OK <bytes>\r\n<yaml>\r\n`: the stats and list replies.
fn ok(out: &mut BytesMut, yaml: &str) {
    line(out, format!("OK {}", yaml.len()));
    line(out, yaml);
}

pub fn error_line(out: &mut BytesMut, error: &str) {
    line(out, error)
}

/// Whether a message is "buried" in beanstalkd's sense: a dead letter, waiting.
pub fn is_buried(state: &State, origin: Option<&Bytes>) -> bool {
    *state == State::Ready && origin.is_some()
}

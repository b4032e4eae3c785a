//! A subscriber's outbound queue, and what happens when the subscriber is slow.
//!
//! Pub/sub has no natural back-pressure. A publisher is never told to slow down: the
//! server accepts a message, copies a reference to it into every subscriber's queue and
//! replies at once. If one subscriber reads slower than messages arrive, its queue grows
//! without bound, and one stuck laptop on hotel Wi-Fi can take the whole server's memory.
//!
//! So every queue is bounded, as Redis bounds a subscriber's output buffer with
//! `client-output-buffer-limit pubsub 32mb 8mb 60`:
//!
//! - a **hard** limit: the queue may never hold more than this many bytes;
//! - a **soft** limit held for **N seconds**: a queue may burst above the soft limit,
//!   but if it stays above it for longer than N seconds the subscriber is too slow.
//!
//! When a message would break a limit, the [`SlowPolicy`] decides who pays:
//!
//! | policy | what happens | the subscriber sees |
//! |---|---|---|
//! | `disconnect` (Redis) | the connection is closed, its queue freed | an error on read; it must reconnect and knows it lost data |
//! | `drop-oldest` | the oldest queued messages make room | a gap in the stream, but recent data |
//! | `drop-newest` | the new message is not queued | a gap in the stream, stale data first |
//!
//! None of them slows the publisher or the other subscribers: that is the point. (The
//! course's answer for subscribers that must not lose messages is a queue behind them:
//! see the [`bridge`](crate::bridge).)
//!
//! Queued messages are [`Bytes`]: the same encoded message is shared by every queue it is
//! in, so a queue's "size" is the bytes it keeps alive, the figure the limits apply to.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use proto::Protocol;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A connection takes at most about this many bytes from its queue per socket write:
/// small messages are coalesced into one write, large ones go one at a time.
pub const BATCH_BYTES: usize = 64 * 1024;

/// The limits on one subscriber's queue (0 disables a limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimit {
    pub hard: usize,
    pub soft: usize,
    pub soft_for: Duration,
}

impl Default for OutputLimit {
    /// Redis's default for pub/sub clients: `32mb 8mb 60`.
    fn default() -> Self {
        OutputLimit {
            hard: 32 * 1024 * 1024,
            soft: 8 * 1024 * 1024,
            soft_for: Duration::from_secs(60),
        }
    }
}

impl FromStr for OutputLimit {
    type Err = String;

    /// `"32mb 8mb 60"`, or Redis's own `"pubsub 32mb 8mb 60"` (other classes such as
    /// `normal 0 0 0 replica 256mb 64mb 60` are accepted and ignored: they do not apply here).
    fn from_str(text: &str) -> Result<Self, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let numbers: Vec<&str> = if words.len() == 3 {
            words
        } else if words.len().is_multiple_of(4) && !words.is_empty() {
            let mut pubsub = None;
            for class in words.chunks(4) {
                match class[0].to_ascii_lowercase().as_str() {
                    "pubsub" => pubsub = Some(class[1..].to_vec()),
                    "normal" | "slave" | "replica" => {}
                    other => return Err(format!("unknown client class '{other}'")),
                }
            }
            pubsub.ok_or("no pubsub class given")?
        } else {
            return Err("expected '<hard> <soft> <soft-seconds>', e.g. '32mb 8mb 60'".into());
        };
        let seconds: u64 = numbers[2]
            .parse()
            .map_err(|_| format!("invalid soft-seconds '{}'", numbers[2]))?;
        Ok(OutputLimit {
            hard: parse_memory(numbers[0])?,
            soft: parse_memory(numbers[1])?,
            soft_for: Duration::from_secs(seconds),
        })
    }
}

impl fmt::Display for OutputLimit {
    /// In bytes, as `CONFIG GET client-output-buffer-limit` shows it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pubsub {} {} {}",
            self.hard,
            self.soft,
            self.soft_for.as_secs()
        )
    }
}

/// A size as Redis writes it in its config (`32mb`, `1k`), in bytes.
pub fn parse_memory(text: &str) -> Result<usize, String> {
    let bytes = service::settings::parse_memory(text)?;
    usize::try_from(bytes).map_err(|_| format!("memory size '{text}' is too large"))
}

/// Who pays when a subscriber's queue is full. See the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SlowPolicy {
    #[default]
    Disconnect,
    DropOldest,
    DropNewest,
}

impl SlowPolicy {
    pub fn name(self) -> &'static str {
        match self {
            SlowPolicy::Disconnect => "disconnect",
            SlowPolicy::DropOldest => "drop-oldest",
            SlowPolicy::DropNewest => "drop-newest",
        }
    }

    pub fn parse(text: &str) -> Option<SlowPolicy> {
        match text.to_ascii_lowercase().as_str() {
            "disconnect" => Some(SlowPolicy::Disconnect),
            "drop-oldest" => Some(SlowPolicy::DropOldest),
            "drop-newest" => Some(SlowPolicy::DropNewest),
            _ => None,
        }
    }
}

/// What [`Outbox::offer`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Queued; `evicted` older messages were dropped to make room (`drop-oldest`).
    Queued { evicted: u64 },
    /// Not queued (`drop-newest`, or a message larger than the limit itself).
    Dropped,
    /// The subscriber was over its limit and has been disconnected (`disconnect`).
    Disconnected,
    /// The subscriber was already disconnected.
    Closed,
}

/// Counters shared by every outbox of a server, for `INFO`. (Bytes queued right now are
/// summed over the queues when asked: a shared counter updated on every message would be
/// a cache line bouncing between the publisher's and the subscribers' threads.)
#[derive(Debug, Default)]
pub struct QueueGauge {
    /// The most one queue has ever held.
    pub peak: AtomicUsize,
    /// Messages taken out of queues to be written.
    pub sent: AtomicU64,
}

/// One subscriber's queue of encoded messages.
#[derive(Debug)]
pub struct Outbox {
    queue: Mutex<Queue>,
    /// Wakes the subscriber's connection when the queue becomes non-empty or closes.
    ready: Notify,
    /// Closes the connection at once, even mid-write (see `Client::evict_token`).
    evict: CancellationToken,
    resp3: AtomicBool,
    /// Set when a message lands in an empty queue: the connection must be woken.
    needs_wake: AtomicBool,
    gauge: Arc<QueueGauge>,
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Bytes>,
    bytes: usize,
    /// When the queue last went above the soft limit (reset when it falls below).
    over_soft_since: Option<Instant>,
    /// Why the subscriber was disconnected, once it has been.
    closed: Option<&'static str>,
}

impl Outbox {
    pub fn new(protocol: Protocol, evict: CancellationToken, gauge: Arc<QueueGauge>) -> Self {
        Outbox {
            queue: Mutex::new(Queue::default()),
            ready: Notify::new(),
            evict,
            resp3: AtomicBool::new(protocol == Protocol::Resp3),
            needs_wake: AtomicBool::new(false),
            gauge,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        match self.queue.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The protocol messages for this subscriber must be encoded in.
    pub fn protocol(&self) -> Protocol {
        if self.resp3.load(Ordering::Relaxed) {
            Protocol::Resp3
        } else {
            Protocol::Resp2
        }
    }

    pub fn set_protocol(&self, protocol: Protocol) {
        self.resp3
            .store(protocol == Protocol::Resp3, Ordering::Relaxed);
    }

    /// Bytes waiting in the queue.
    pub fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Offers an encoded message; never waits. `now` reads the clock for the soft-limit
    /// timer; it is only called when the queue is over the soft limit.
    pub fn offer(
        &self,
        message: &Bytes,
        now: impl Fn() -> Instant,
        limit: OutputLimit,
        policy: SlowPolicy,
    ) -> Offer {
        let mut q = self.lock();
        if q.closed.is_some() {
            return Offer::Closed;
        }
        let after = q.bytes + message.len();
        // Redis's rule: over the soft limit *continuously* for longer than N seconds.
        let over_soft_too_long = if limit.soft > 0 && after > limit.soft {
            let now = now();
            let since = *q.over_soft_since.get_or_insert(now);
            now.duration_since(since) > limit.soft_for
        } else {
            q.over_soft_since = None;
            false
        };
        let over_hard = limit.hard > 0 && after > limit.hard;
        if !over_hard && !over_soft_too_long {
            self.push(&mut q, message.clone());
            return Offer::Queued { evicted: 0 };
        }
        match policy {
            SlowPolicy::Disconnect => {
                self.close(&mut q, "over its output buffer limit");
                Offer::Disconnected
            }
            SlowPolicy::DropNewest => Offer::Dropped,
            SlowPolicy::DropOldest => {
                let cap = if over_soft_too_long {
                    limit.soft
                } else {
                    limit.hard
                };
                if message.len() > cap {
                    return Offer::Dropped;
                }
                let mut evicted = 0;
                while q.bytes + message.len() > cap {
                    let Some(old) = q.items.pop_front() else {
                        break;
                    };
                    q.bytes -= old.len();
                    evicted += 1;
                }
                self.push(&mut q, message.clone());
                Offer::Queued { evicted }
            }
        }
    }

    fn push(&self, q: &mut Queue, message: Bytes) {
        if q.items.is_empty() {
            self.needs_wake.store(true, Ordering::Release);
        }
        q.bytes += message.len();
        if q.bytes > self.gauge.peak.load(Ordering::Relaxed) {
            self.gauge.peak.fetch_max(q.bytes, Ordering::Relaxed);
        }
        q.items.push_back(message);
    }

    /// After a message was queued: `true` if the queue was empty, so its connection is
    /// asleep and the caller must [`wake`](Outbox::wake) it. The publisher collects these
    /// and wakes each subscriber once per pipeline of `PUBLISH`es, not once per message:
    /// the subscriber then writes the whole batch with one syscall, as Redis does when it
    /// flushes client buffers once per event-loop turn.
    pub fn claim_wake(&self) -> bool {
        self.needs_wake.load(Ordering::Acquire) && self.needs_wake.swap(false, Ordering::AcqRel)
    }

    /// Wakes the subscriber's connection (a permit is stored if it is not waiting yet).
    pub fn wake(&self) {
        self.ready.notify_one();
    }

    /// Disconnects the subscriber: frees its queue and closes its connection.
    fn close(&self, q: &mut Queue, reason: &'static str) {
        q.closed = Some(reason);
        q.items = VecDeque::new();
        q.bytes = 0;
        self.evict.cancel();
        self.ready.notify_one();
    }

    /// Takes what is queued, up to about [`BATCH_BYTES`], without waiting: `Ok(None)` if
    /// the queue is empty, `Err(reason)` if the subscriber has been disconnected.
    pub fn try_take(&self) -> Result<Option<Bytes>, &'static str> {
        let mut q = self.lock();
        if let Some(reason) = q.closed {
            return Err(reason);
        }
        let Some(first) = q.items.pop_front() else {
            return Ok(None);
        };
        let mut taken = 1;
        let batch = if q.items.is_empty() || first.len() >= BATCH_BYTES {
            first
        } else {
            // Coalesce small messages: one copy here saves a syscall per message.
            let mut buf = BytesMut::with_capacity(BATCH_BYTES.min(q.bytes) + first.len());
            buf.put(first);
            while let Some(next) = q.items.front() {
                if buf.len() + next.len() > BATCH_BYTES {
                    break;
                }
                if let Some(next) = q.items.pop_front() {
                    buf.put(next);
                    taken += 1;
                }
            }
            buf.freeze()
        };
        q.bytes -= batch.len();
        self.gauge.sent.fetch_add(taken, Ordering::Relaxed);
        Ok(Some(batch))
    }

    /// Waits until there is something to send (or the subscriber is disconnected).
    ///
    /// Cancel-safe: the connection drops this future whenever a request arrives first;
    /// nothing is taken from the queue until the moment it is returned.
    pub async fn next(&self) -> Result<Bytes, &'static str> {
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            // Register interest *before* looking, so a push between the look and the
            // wait cannot be missed.
            notified.as_mut().enable();
            if let Some(batch) = self.try_take()? {
                return Ok(batch);
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox() -> Outbox {
        Outbox::new(
            Protocol::Resp2,
            CancellationToken::new(),
            Arc::new(QueueGauge::default()),
        )
    }

    fn msg(n: usize, tag: u8) -> Bytes {
        Bytes::from(vec![tag; n])
    }

    const LIMIT: OutputLimit = OutputLimit {
        hard: 100,
        soft: 50,
        soft_for: Duration::from_secs(10),
    };

    #[test]
    fn parses_redis_syntax() {
        assert_eq!(
            "32mb 8mb 60".parse::<OutputLimit>(),
            Ok(OutputLimit::default())
        );
        assert_eq!(
            "normal 0 0 0 slave 256mb 64mb 60 pubsub 1k 2kb 5".parse::<OutputLimit>(),
            Ok(OutputLimit {
                hard: 1000,
                soft: 2048,
                soft_for: Duration::from_secs(5)
            })
        );
        assert!("32mb 8mb".parse::<OutputLimit>().is_err());
        assert!("32xb 8mb 60".parse::<OutputLimit>().is_err());
        assert_eq!(
            OutputLimit::default().to_string(),
            "pubsub 33554432 8388608 60"
        );
    }

    #[test]
    fn hard_limit_disconnects_and_frees_the_queue() {
        let o = outbox();
        let now = Instant::now();
        for _ in 0..10 {
            assert_eq!(
                o.offer(&msg(10, 1), || now, LIMIT, SlowPolicy::Disconnect),
                Offer::Queued { evicted: 0 }
            );
        }
        assert_eq!(o.queued_bytes(), 100);
        assert_eq!(
            o.offer(&msg(1, 1), || now, LIMIT, SlowPolicy::Disconnect),
            Offer::Disconnected
        );
        assert!(o.evict.is_cancelled());
        assert_eq!(o.queued_bytes(), 0);
        assert_eq!(
            o.offer(&msg(1, 1), || now, LIMIT, SlowPolicy::Disconnect),
            Offer::Closed
        );
        assert!(o.try_take().is_err());
    }

    #[test]
    fn soft_limit_needs_to_be_held_for_its_seconds() {
        let o = outbox();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let p = SlowPolicy::Disconnect;
        for _ in 0..6 {
            o.offer(&msg(10, 1), || t0, LIMIT, p);
        }
        // 60 bytes: over soft since t0. Still fine at 10 s (not *longer* than 10 s).
        assert_eq!(
            o.offer(&msg(1, 1), || at(10), LIMIT, p),
            Offer::Queued { evicted: 0 }
        );
        // The subscriber catches up: below soft again, the timer restarts.
        while o.try_take().unwrap().is_some() {}
        assert_eq!(
            o.offer(&msg(10, 1), || at(11), LIMIT, p),
            Offer::Queued { evicted: 0 }
        );
        for _ in 0..5 {
            o.offer(&msg(10, 1), || at(12), LIMIT, p);
        }
        assert_eq!(
            o.offer(&msg(1, 1), || at(22), LIMIT, p),
            Offer::Queued { evicted: 0 }
        );
        assert_eq!(
            o.offer(&msg(1, 1), || at(23), LIMIT, p),
            Offer::Disconnected
        );
    }

    #[test]
    fn drop_policies() {
        let now = Instant::now();
        let newest = outbox();
        let oldest = outbox();
        for tag in 0..12u8 {
            newest.offer(&msg(10, tag), || now, LIMIT, SlowPolicy::DropNewest);
            oldest.offer(&msg(10, tag), || now, LIMIT, SlowPolicy::DropOldest);
        }
        assert_eq!(
            newest.offer(&msg(10, 99), || now, LIMIT, SlowPolicy::DropNewest),
            Offer::Dropped
        );
        assert_eq!(
            oldest.offer(&msg(20, 99), || now, LIMIT, SlowPolicy::DropOldest),
            Offer::Queued { evicted: 2 }
        );
        // Larger than the limit itself: cannot be queued at all.
        assert_eq!(
            oldest.offer(&msg(101, 7), || now, LIMIT, SlowPolicy::DropOldest),
            Offer::Dropped
        );
        let drain = |o: &Outbox| {
            let mut all = Vec::new();
            while let Some(b) = o.try_take().unwrap() {
                all.extend_from_slice(&b);
            }
            all
        };
        let kept_new = drain(&newest);
        assert_eq!(kept_new.len(), 100);
        assert_eq!((kept_new[0], kept_new[99]), (0, 9), "the first ten survive");
        let kept_old = drain(&oldest);
        assert_eq!(kept_old.len(), 100);
        assert_eq!((kept_old[0], kept_old[99]), (4, 99), "the latest survive");
        assert!(!newest.evict.is_cancelled() && !oldest.evict.is_cancelled());
    }

    #[test]
    fn take_coalesces_small_messages_and_keeps_order() {
        let o = outbox();
        let now = Instant::now();
        let unlimited = OutputLimit {
            hard: 0,
            soft: 0,
            soft_for: Duration::ZERO,
        };
        for i in 0..10_000u32 {
            o.offer(
                &Bytes::copy_from_slice(&i.to_be_bytes()),
                || now,
                unlimited,
                SlowPolicy::Disconnect,
            );
        }
        let mut all = Vec::new();
        let mut batches = 0;
        while let Some(b) = o.try_take().unwrap() {
            assert!(b.len() <= BATCH_BYTES);
            all.extend_from_slice(&b);
            batches += 1;
        }
        assert_eq!(batches, 1, "40,000 bytes fit one batch");
        let numbers: Vec<u32> = all
            .chunks(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(numbers, (0..10_000).collect::<Vec<_>>());
        assert_eq!(o.queued_bytes(), 0);
        assert_eq!(o.gauge.sent.load(Ordering::Relaxed), 10_000);
    }

    #[tokio::test]
    async fn next_wakes_on_offer() {
        let o = Arc::new(outbox());
        let waiter = tokio::spawn({
            let o = o.clone();
            async move { o.next().await }
        });
        tokio::task::yield_now().await;
        o.offer(&msg(3, 5), Instant::now, LIMIT, SlowPolicy::Disconnect);
        assert!(o.claim_wake(), "the queue was empty");
        assert!(!o.claim_wake(), "claimed once");
        o.wake();
        assert_eq!(waiter.await.unwrap().unwrap(), msg(3, 5));
    }
}

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
//! **What a queue holds, and what the limits count.** A subscriber that keeps up shares
//! the publisher's one encoded copy of each message: its queue holds a [`Bytes`] that
//! points at it (and so do the other subscribers' queues). One that falls behind by more
//! than [`COMPACT_AFTER`] bytes gets its own compact copies from then on, packed one
//! after the other into blocks of [`BLOCK_BYTES`] (Redis's reply lists are 16 KiB
//! blocks too): the shared copy goes back to the allocator as soon as the others have
//! written it, instead of living on, with its allocation's slack and reference count,
//! for as long as the slowest subscriber takes. (A 1 KiB message's own allocation is
//! about a quarter larger than the message: the allocator rounds it up to a size
//! class.) So the slow subscriber pays for its own backlog, byte for byte, and the
//! limits count what it holds: each queued message's bytes plus its slot in the queue
//! ([`ENTRY_BYTES`]). What the count misses: the tail of each block that the next message
//! did not fit in (fifteen 1,060-byte messages fill 15,900 of a block's 16,384 bytes: 3%),
//! the rest of the block being filled, the written head of the oldest block, the
//! allocator's slack on the first [`COMPACT_AFTER`] bytes, still shared, and the queue's
//! spare slots (it doubles as it grows). With 1 KiB messages at the 32 MB hard limit the
//! queue holds about 34.8 MB for the 33.5 MB it counts (Redis counts its reply blocks'
//! allocated sizes, so it holds about what it counts).

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

/// A queue holding this many bytes copies further messages into its own blocks rather
/// than share the publisher's copy (see the module's documentation). Well above what a
/// subscriber that keeps up has queued between two writes, so the fan-out of a healthy
/// channel copies nothing.
pub const COMPACT_AFTER: usize = 1024 * 1024;

/// The blocks a queue that fell behind copies its messages into. Messages larger than a
/// quarter of this are kept shared: their allocation's slack is small beside them.
pub const BLOCK_BYTES: usize = 16 * 1024;

/// What a queued message costs beyond its bytes: its slot in the queue.
pub const ENTRY_BYTES: usize = std::mem::size_of::<Bytes>();

/// The bytes a queued message is counted for against the limits.
fn cost(message: &[u8]) -> usize {
    message.len() + ENTRY_BYTES
}

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
    /// What the queued messages are counted for ([`cost`]).
    bytes: usize,
    /// The rest of the block the next copied message goes into (once the queue holds
    /// [`COMPACT_AFTER`]); each message is split off it, sharing its allocation.
    block: BytesMut,
    /// When the queue last went above the soft limit (reset when it falls below).
    over_soft_since: Option<Instant>,
    /// Why the subscriber was disconnected, once it has been.
    closed: Option<&'static str>,
}

impl Queue {
    /// A copy of `message` in the queue's current block (a new block if it is full).
    fn copy(&mut self, message: &[u8]) -> Bytes {
        if self.block.capacity() - self.block.len() < message.len() {
            self.block = BytesMut::with_capacity(BLOCK_BYTES);
        }
        self.block.extend_from_slice(message);
        self.block.split().freeze()
    }
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

    /// Bytes waiting in the queue, counted as the limits count them ([`cost`]).
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
        let after = q.bytes + cost(message);
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
            self.push(&mut q, message);
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
                if cost(message) > cap {
                    return Offer::Dropped;
                }
                let mut evicted = 0;
                while q.bytes + cost(message) > cap {
                    let Some(old) = q.items.pop_front() else {
                        break;
                    };
                    q.bytes -= cost(&old);
                    evicted += 1;
                }
                self.push(&mut q, message);
                Offer::Queued { evicted }
            }
        }
    }

    /// Queues `message`: shared, or copied into the queue's block once it is behind.
    fn push(&self, q: &mut Queue, message: &Bytes) {
        if q.items.is_empty() {
            self.needs_wake.store(true, Ordering::Release);
        }
        q.bytes += cost(message);
        if q.bytes > self.gauge.peak.load(Ordering::Relaxed) {
            self.gauge.peak.fetch_max(q.bytes, Ordering::Relaxed);
        }
        let held = if q.bytes > COMPACT_AFTER && message.len() <= BLOCK_BYTES / 4 {
            q.copy(message)
        } else {
            message.clone()
        };
        q.items.push_back(held);
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
        q.block = BytesMut::new();
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
        q.bytes -= batch.len() + taken as usize * ENTRY_BYTES;
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

    /// A message the limits count as `cost` bytes (its bytes and its slot in the queue).
    fn msg(cost: usize, tag: u8) -> Bytes {
        Bytes::from(vec![tag; cost - ENTRY_BYTES])
    }

    /// The smallest message: one byte.
    fn tiny(tag: u8) -> Bytes {
        msg(ENTRY_BYTES + 1, tag)
    }

    const LIMIT: OutputLimit = OutputLimit {
        hard: 1000,
        soft: 500,
        soft_for: Duration::from_secs(10),
    };

    /// No limit at all.
    const UNLIMITED: OutputLimit = OutputLimit {
        hard: 0,
        soft: 0,
        soft_for: Duration::ZERO,
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
                o.offer(&msg(100, 1), || now, LIMIT, SlowPolicy::Disconnect),
                Offer::Queued { evicted: 0 }
            );
        }
        assert_eq!(o.queued_bytes(), 1000, "bytes and queue slots");
        assert_eq!(
            o.offer(&tiny(1), || now, LIMIT, SlowPolicy::Disconnect),
            Offer::Disconnected
        );
        assert!(o.evict.is_cancelled());
        assert_eq!(o.queued_bytes(), 0);
        assert_eq!(
            o.offer(&tiny(1), || now, LIMIT, SlowPolicy::Disconnect),
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
            o.offer(&msg(100, 1), || t0, LIMIT, p);
        }
        // 600 bytes: over soft since t0. Still fine at 10 s (not *longer* than 10 s).
        assert_eq!(
            o.offer(&tiny(1), || at(10), LIMIT, p),
            Offer::Queued { evicted: 0 }
        );
        // The subscriber catches up: below soft again, the timer restarts.
        while o.try_take().unwrap().is_some() {}
        assert_eq!(
            o.offer(&msg(100, 1), || at(11), LIMIT, p),
            Offer::Queued { evicted: 0 }
        );
        for _ in 0..5 {
            o.offer(&msg(100, 1), || at(12), LIMIT, p);
        }
        assert_eq!(
            o.offer(&tiny(1), || at(22), LIMIT, p),
            Offer::Queued { evicted: 0 }
        );
        assert_eq!(o.offer(&tiny(1), || at(23), LIMIT, p), Offer::Disconnected);
    }

    #[test]
    fn drop_policies() {
        let now = Instant::now();
        let newest = outbox();
        let oldest = outbox();
        for tag in 0..12u8 {
            newest.offer(&msg(100, tag), || now, LIMIT, SlowPolicy::DropNewest);
            oldest.offer(&msg(100, tag), || now, LIMIT, SlowPolicy::DropOldest);
        }
        assert_eq!(
            newest.offer(&msg(100, 99), || now, LIMIT, SlowPolicy::DropNewest),
            Offer::Dropped
        );
        assert_eq!(
            oldest.offer(&msg(200, 99), || now, LIMIT, SlowPolicy::DropOldest),
            Offer::Queued { evicted: 2 }
        );
        // Larger than the limit itself: cannot be queued at all.
        assert_eq!(
            oldest.offer(&msg(1001, 7), || now, LIMIT, SlowPolicy::DropOldest),
            Offer::Dropped
        );
        let drain = |o: &Outbox| {
            let mut all = Vec::new();
            while let Some(b) = o.try_take().unwrap() {
                all.extend_from_slice(&b);
            }
            all
        };
        let each = 100 - ENTRY_BYTES;
        let kept_new = drain(&newest);
        assert_eq!(kept_new.len(), 10 * each);
        assert_eq!(
            (kept_new[0], kept_new[10 * each - 1]),
            (0, 9),
            "the first ten survive"
        );
        let kept_old = drain(&oldest);
        assert_eq!(kept_old.len(), 8 * each + (200 - ENTRY_BYTES));
        assert_eq!(
            (kept_old[0], kept_old[kept_old.len() - 1]),
            (4, 99),
            "the latest survive"
        );
        assert!(!newest.evict.is_cancelled() && !oldest.evict.is_cancelled());
    }

    #[test]
    fn a_queue_that_fell_behind_holds_its_own_compact_copies() {
        let o = outbox();
        let now = Instant::now();
        let published: Vec<Bytes> = (0..2_000u32)
            .map(|i| {
                let mut m = vec![b'x'; 1000];
                m[..4].copy_from_slice(&i.to_be_bytes());
                Bytes::from(m)
            })
            .collect();
        let mut shared = 0;
        for m in &published {
            let held_before = o.queued_bytes();
            o.offer(m, || now, UNLIMITED, SlowPolicy::Disconnect);
            let queue = o.lock();
            let held = queue.items.back().unwrap();
            assert_eq!(held, m);
            if held.as_ptr() == m.as_ptr() {
                shared += 1;
                assert!(
                    held_before + cost(m) <= COMPACT_AFTER,
                    "shared past the mark"
                );
            }
        }
        assert_eq!(shared, COMPACT_AFTER / cost(&published[0]));
        assert_eq!(o.queued_bytes(), 2_000 * cost(&published[0]));
        // The copies live in blocks: the publisher's copies can all go.
        drop(published);
        let mut next = 0u32;
        while let Some(batch) = o.try_take().unwrap() {
            for m in batch.chunks(1000) {
                assert_eq!(m[..4], next.to_be_bytes(), "in order");
                next += 1;
            }
        }
        assert_eq!((next, o.queued_bytes()), (2_000, 0));
    }

    #[test]
    fn take_coalesces_small_messages_and_keeps_order() {
        let o = outbox();
        let now = Instant::now();
        for i in 0..10_000u32 {
            o.offer(
                &Bytes::copy_from_slice(&i.to_be_bytes()),
                || now,
                UNLIMITED,
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
        o.offer(&tiny(5), Instant::now, LIMIT, SlowPolicy::Disconnect);
        assert!(o.claim_wake(), "the queue was empty");
        assert!(!o.claim_wake(), "claimed once");
        o.wake();
        assert_eq!(waiter.await.unwrap().unwrap(), tiny(5));
    }
}

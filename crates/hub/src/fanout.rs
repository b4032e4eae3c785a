//! The hub: who listens to what, and fan-out.
//!
//! Three tables, as in Redis 7:
//!
//! - `channels`: channel name → its subscribers. `PUBLISH news` finds them in O(1).
//! - `patterns`: glob pattern → its subscribers. Every publish tests the channel against
//!   *every* pattern, so patterns cost O(number of patterns) per message: that is why
//!   a server with thousands of `PSUBSCRIBE`s publishes slower than one with channels.
//! - `shards`: *shard channels* (`SSUBSCRIBE`/`SPUBLISH`). In a Redis cluster a shard
//!   channel lives on the one shard that owns its hash slot, so a message travels to one
//!   shard's subscribers instead of being broadcast to every node. On a single server
//!   that leaves a separate namespace of plain channels: no patterns, and a `SPUBLISH`
//!   never reaches a `SUBSCRIBE`r of the same name (nor a `PUBLISH` an `SSUBSCRIBE`r).
//!
//! Publishing holds the hub's lock while it appends to the queues, so every subscriber
//! sees all messages in one global order (Redis gets that from being single-threaded). The
//! work under the lock is small: a message is *encoded once per protocol* — a RESP2 array
//! and, only if some subscriber speaks RESP3, a push frame — and each queue receives a
//! reference-counted [`Bytes`] pointing at that one copy. A publish to 1,000 subscribers
//! copies the payload once, not 1,000 times, and never waits for any socket: delivery is
//! each subscriber's connection's job.
//!
//! An entry in either table is removed with its last subscriber, so the tables only hold
//! names somebody is listening to, however many distinct channels have come and gone.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use proto::Protocol;
use proto::frame::put_decimal;
use proto::glob::glob_match;
use tokio_util::sync::CancellationToken;

use crate::outbox::{Offer, Outbox, OutputLimit, QueueGauge, SlowPolicy};

type SubscriberId = u64;
type Subscribers = HashMap<SubscriberId, Arc<Outbox>>;

/// Counters for `INFO`.
#[derive(Debug, Default)]
pub struct HubStats {
    /// `PUBLISH` commands.
    pub published: AtomicU64,
    /// Messages queued to a subscriber (one publish to 3 subscribers counts 3).
    pub delivered: AtomicU64,
    /// Messages a slow subscriber lost under `drop-oldest` / `drop-newest`.
    pub dropped: AtomicU64,
    /// Subscribers disconnected for being over their limit.
    pub slow_disconnects: AtomicU64,
    /// Bytes in the subscribers' queues.
    pub queues: Arc<QueueGauge>,
}

/// The subscription tables and the slow-consumer settings.
#[derive(Debug, Default)]
pub struct Hub {
    tables: Mutex<Tables>,
    next_id: AtomicU64,
    pub stats: HubStats,
}

#[derive(Debug, Default)]
struct Tables {
    channels: HashMap<Bytes, Subscribers>,
    patterns: HashMap<Bytes, Subscribers>,
    shards: HashMap<Bytes, Subscribers>,
    limit: OutputLimit,
    policy: SlowPolicy,
}

impl Hub {
    pub fn new(limit: OutputLimit, policy: SlowPolicy) -> Self {
        let hub = Hub::default();
        hub.set_limits(limit, policy);
        hub
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        match self.tables.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub fn limits(&self) -> (OutputLimit, SlowPolicy) {
        let t = self.lock();
        (t.limit, t.policy)
    }

    /// Changes the limits and policy for every subscriber (`CONFIG SET`).
    pub fn set_limits(&self, limit: OutputLimit, policy: SlowPolicy) {
        let mut t = self.lock();
        t.limit = limit;
        t.policy = policy;
    }

    /// A new subscriber with an empty queue. Its messages are encoded for `protocol`;
    /// cancelling `evict` must close its connection.
    pub fn subscriber(
        self: &Arc<Self>,
        protocol: Protocol,
        evict: CancellationToken,
    ) -> Subscriber {
        Subscriber {
            hub: self.clone(),
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            outbox: Arc::new(Outbox::new(protocol, evict, self.stats.queues.clone())),
            channels: BTreeSet::new(),
            patterns: BTreeSet::new(),
            shards: BTreeSet::new(),
        }
    }

    /// Sends `payload` to every subscriber of `channel` and of every pattern matching it;
    /// returns how many subscriptions received it (a client subscribed to the channel and
    /// to a matching pattern counts twice, and gets the message twice, as in Redis).
    ///
    /// Subscribers whose queue was empty are added to `wakes`; the caller wakes them when
    /// its batch of commands is done (dropping `wakes` does it too).
    pub fn publish(
        &self,
        channel: &Bytes,
        payload: &Bytes,
        clock: &dyn Fn() -> Instant,
        wakes: &mut Wakes,
    ) -> usize {
        self.fan_out(Kind::Channel, channel, payload, clock, wakes)
    }

    /// `SPUBLISH`: sends `payload` as an `smessage` to the subscribers of the shard
    /// channel `channel` only (patterns never match shard channels). Returns how many.
    pub fn spublish(
        &self,
        channel: &Bytes,
        payload: &Bytes,
        clock: &dyn Fn() -> Instant,
        wakes: &mut Wakes,
    ) -> usize {
        self.fan_out(Kind::Shard, channel, payload, clock, wakes)
    }

    /// `kind` is `Channel` (a `PUBLISH`: the channel's and matching patterns'
    /// subscribers) or `Shard` (a `SPUBLISH`).
    fn fan_out(
        &self,
        kind: Kind,
        channel: &Bytes,
        payload: &Bytes,
        clock: &dyn Fn() -> Instant,
        wakes: &mut Wakes,
    ) -> usize {
        self.stats.published.fetch_add(1, Ordering::Relaxed);
        // The clock is read only if some queue is over its soft limit, at most once.
        let read_once = std::cell::OnceCell::new();
        let now = || *read_once.get_or_init(clock);
        let tables = self.lock();
        let (limit, policy) = (tables.limit, tables.policy);
        let mut received = 0;
        let (table, word): (_, &[u8]) = match kind {
            Kind::Shard => (&tables.shards, b"smessage"),
            _ => (&tables.channels, b"message"),
        };
        if let Some(subscribers) = table.get(channel) {
            let parts: [&[u8]; 3] = [word, channel, payload];
            let mut message = Encoded::new(&parts);
            for outbox in subscribers.values() {
                received += self.deliver(outbox, &mut message, &now, limit, policy, wakes);
            }
        }
        let patterns = match kind {
            Kind::Shard => None,
            _ => Some(&tables.patterns),
        };
        for (pattern, subscribers) in patterns.into_iter().flatten() {
            if glob_match(pattern, channel) {
                let parts: [&[u8]; 4] = [b"pmessage", pattern, channel, payload];
                let mut message = Encoded::new(&parts);
                for outbox in subscribers.values() {
                    received += self.deliver(outbox, &mut message, &now, limit, policy, wakes);
                }
            }
        }
        self.stats
            .delivered
            .fetch_add(received as u64, Ordering::Relaxed);
        received
    }

    fn deliver(
        &self,
        outbox: &Arc<Outbox>,
        message: &mut Encoded,
        now: &dyn Fn() -> Instant,
        limit: OutputLimit,
        policy: SlowPolicy,
        wakes: &mut Wakes,
    ) -> usize {
        let bytes = message.get(outbox.protocol());
        match outbox.offer(bytes, now, limit, policy) {
            Offer::Queued { evicted } => {
                if evicted > 0 {
                    self.stats.dropped.fetch_add(evicted, Ordering::Relaxed);
                }
                if outbox.claim_wake() {
                    wakes.0.push(outbox.clone());
                }
                1
            }
            Offer::Dropped => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                0
            }
            Offer::Disconnected => {
                self.stats.slow_disconnects.fetch_add(1, Ordering::Relaxed);
                0
            }
            Offer::Closed => 0,
        }
    }

    /// Sends one message (a push frame: a plain array in RESP2) to one client's queue,
    /// under the same limits as a published message: how kv delivers a `CLIENT TRACKING`
    /// invalidation to the client that must drop its cached keys. `false` if it was not
    /// queued (the client is over its limit, or gone).
    pub fn send(
        &self,
        outbox: &Arc<Outbox>,
        message: &proto::Frame,
        clock: &dyn Fn() -> Instant,
        wakes: &mut Wakes,
    ) -> bool {
        let (limit, policy) = self.limits();
        let mut encoded = Encoded::new(&[]);
        let protocol = outbox.protocol();
        let slot = match protocol {
            Protocol::Resp2 => &mut encoded.resp2,
            Protocol::Resp3 => &mut encoded.resp3,
        };
        *slot = Some(message.to_bytes(protocol));
        self.deliver(outbox, &mut encoded, clock, limit, policy, wakes) == 1
    }

    /// `PUBSUB CHANNELS [pattern]` (`kind` `Channel`) and `PUBSUB SHARDCHANNELS
    /// [pattern]` (`Shard`): channels with at least one subscriber.
    pub fn channels(&self, kind: Kind, pattern: Option<&[u8]>) -> Vec<Bytes> {
        self.lock()
            .table(kind)
            .keys()
            .filter(|c| pattern.is_none_or(|p| glob_match(p, c)))
            .cloned()
            .collect()
    }

    /// `PUBSUB NUMSUB` (`kind` `Channel`; pattern subscribers not counted) and `PUBSUB
    /// SHARDNUMSUB` (`Shard`): subscribers of one channel.
    pub fn numsub(&self, kind: Kind, channel: &[u8]) -> usize {
        self.lock().table(kind).get(channel).map_or(0, HashMap::len)
    }

    /// Is the subscriber whose queue is `outbox` subscribed to `name`?
    pub fn listens(&self, kind: Kind, name: &[u8], outbox: &Arc<Outbox>) -> bool {
        self.lock()
            .table(kind)
            .get(name)
            .is_some_and(|subscribers| subscribers.values().any(|o| Arc::ptr_eq(o, outbox)))
    }

    /// `PUBSUB NUMPAT`: distinct patterns with at least one subscriber.
    pub fn numpat(&self) -> usize {
        self.lock().patterns.len()
    }

    /// Bytes waiting in all subscribers' queues.
    pub fn queued_bytes(&self) -> usize {
        self.each_subscriber(|outboxes| outboxes.map(|o| o.queued_bytes()).sum())
    }

    /// Clients subscribed to at least one channel, pattern or shard channel (`INFO`'s
    /// `subscribers`; what the dashboard's pub/sub panel draws).
    pub fn subscribers(&self) -> usize {
        self.each_subscriber(|outboxes| outboxes.count())
    }

    /// `f` over every subscriber's queue once, however many subscriptions it has.
    fn each_subscriber<T>(&self, f: impl FnOnce(&mut dyn Iterator<Item = &Arc<Outbox>>) -> T) -> T {
        let t = self.lock();
        let mut seen = std::collections::HashSet::new();
        let mut outboxes = t
            .channels
            .values()
            .chain(t.patterns.values())
            .chain(t.shards.values())
            .flat_map(|subscribers| subscribers.iter())
            .filter(|(id, _)| seen.insert(**id))
            .map(|(_, outbox)| outbox);
        f(&mut outboxes)
    }

    /// Entries in the channel and pattern tables (for `INFO` and the no-leak tests).
    pub fn table_sizes(&self) -> (usize, usize) {
        let t = self.lock();
        (t.channels.len(), t.patterns.len())
    }

    /// Entries in the shard channel table (`INFO`'s `pubsubshard_channels`).
    pub fn shard_channels(&self) -> usize {
        self.lock().shards.len()
    }
}

impl Tables {
    fn table(&mut self, kind: Kind) -> &mut HashMap<Bytes, Subscribers> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shards,
        }
    }
}

/// Subscribers a publisher has queued messages for and must wake: see
/// [`Outbox::claim_wake`]. Dropping it wakes them.
#[derive(Debug, Default)]
pub struct Wakes(Vec<Arc<Outbox>>);

impl Wakes {
    pub fn wake_all(&mut self) {
        for outbox in self.0.drain(..) {
            outbox.wake();
        }
    }
}

impl Drop for Wakes {
    fn drop(&mut self) {
        self.wake_all();
    }
}

/// A message encoded at most once per protocol, on first need.
struct Encoded<'a> {
    /// `["message", channel, payload]` or `["pmessage", pattern, channel, payload]`.
    parts: &'a [&'a [u8]],
    resp2: Option<Bytes>,
    resp3: Option<Bytes>,
}

impl<'a> Encoded<'a> {
    fn new(parts: &'a [&'a [u8]]) -> Self {
        Encoded {
            parts,
            resp2: None,
            resp3: None,
        }
    }

    fn get(&mut self, protocol: Protocol) -> &Bytes {
        let slot = match protocol {
            Protocol::Resp2 => &mut self.resp2,
            Protocol::Resp3 => &mut self.resp3,
        };
        slot.get_or_insert_with(|| encode_push(protocol, self.parts))
    }
}

/// `parts` as a push frame (RESP3) or an array (RESP2) of bulk strings, written straight
/// into one buffer of exactly the right size. The same bytes as `Frame::Push(..).encode(..)`,
/// without building the frame: this runs for every published message, so it avoids
/// `write!` (the formatting machinery cost more than the rest of a publish) and sizes the
/// buffer exactly, which lets `Bytes` take the allocation over without a second one.
pub fn encode_push(protocol: Protocol, parts: &[&[u8]]) -> Bytes {
    let size = 1
        + decimal_len(parts.len())
        + 2
        + parts
            .iter()
            .map(|p| 1 + decimal_len(p.len()) + 2 + p.len() + 2)
            .sum::<usize>();
    let mut buf = Vec::with_capacity(size);
    buf.push(if protocol == Protocol::Resp3 {
        b'>'
    } else {
        b'*'
    });
    put_decimal(&mut buf, parts.len() as i64);
    buf.extend_from_slice(b"\r\n");
    for part in parts {
        buf.push(b'$');
        put_decimal(&mut buf, part.len() as i64);
        buf.extend_from_slice(b"\r\n");
        buf.extend_from_slice(part);
        buf.extend_from_slice(b"\r\n");
    }
    debug_assert_eq!(buf.len(), size);
    Bytes::from(buf)
}

/// Digits in `n` written in decimal.
fn decimal_len(mut n: usize) -> usize {
    let mut digits = 1;
    while n >= 10 {
        n /= 10;
        digits += 1;
    }
    digits
}

/// One client's subscriptions and its queue. Dropping it (the connection closed, or
/// `RESET`) removes every subscription from the hub.
#[derive(Debug)]
pub struct Subscriber {
    hub: Arc<Hub>,
    id: SubscriberId,
    outbox: Arc<Outbox>,
    channels: BTreeSet<Bytes>,
    patterns: BTreeSet<Bytes>,
    shards: BTreeSet<Bytes>,
}

/// Which of the three tables a subscription is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Channel,
    Pattern,
    Shard,
}

impl Subscriber {
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The queue itself, for a sender that delivers to this client directly
    /// ([`Hub::send`]).
    pub fn outbox_handle(&self) -> Arc<Outbox> {
        self.outbox.clone()
    }

    /// The connection's unique id (not the client's `CLIENT ID`).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The count Redis reports in an (un)subscribe confirmation of `kind`: channels plus
    /// patterns for `(P)SUBSCRIBE`, shard channels alone for `SSUBSCRIBE` (Redis 7 counts
    /// the two namespaces separately).
    pub fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Shard => self.shards.len(),
            _ => self.channels.len() + self.patterns.len(),
        }
    }

    /// Every subscription of every kind: the client is in subscribed mode while this is
    /// above zero.
    pub fn total(&self) -> usize {
        self.channels.len() + self.patterns.len() + self.shards.len()
    }

    fn mine(&mut self, kind: Kind) -> &mut BTreeSet<Bytes> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shards,
        }
    }

    /// The client's subscriptions of one kind, in order.
    pub fn names(&mut self, kind: Kind) -> Vec<Bytes> {
        self.mine(kind).iter().cloned().collect()
    }

    /// Subscribes; `false` if it already was.
    pub fn subscribe(&mut self, kind: Kind, name: Bytes) -> bool {
        let mine = self.mine(kind);
        if mine.contains(&name) {
            return false;
        }
        // Request bytes are slices of the connection's read buffer: keep a copy instead.
        let name = Bytes::copy_from_slice(&name);
        mine.insert(name.clone());
        self.hub
            .lock()
            .table(kind)
            .entry(name)
            .or_default()
            .insert(self.id, self.outbox.clone());
        true
    }

    /// Unsubscribes; `false` if it was not subscribed.
    pub fn unsubscribe(&mut self, kind: Kind, name: &[u8]) -> bool {
        let removed = self.mine(kind).remove(name);
        if removed {
            let mut tables = self.hub.lock();
            remove_from(&mut tables, kind, name, self.id);
        }
        removed
    }
}

/// Removes one subscription, and the table entry with its last subscriber.
fn remove_from(tables: &mut Tables, kind: Kind, name: &[u8], id: SubscriberId) {
    let table = tables.table(kind);
    if let Some(subscribers) = table.get_mut(name) {
        subscribers.remove(&id);
        if subscribers.is_empty() {
            table.remove(name);
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let mut tables = self.hub.lock();
        for name in &self.channels {
            remove_from(&mut tables, Kind::Channel, name, self.id);
        }
        for name in &self.patterns {
            remove_from(&mut tables, Kind::Pattern, name, self.id);
        }
        for name in &self.shards {
            remove_from(&mut tables, Kind::Shard, name, self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proto::Frame;

    use super::*;

    fn hub() -> Arc<Hub> {
        Arc::new(Hub::new(OutputLimit::default(), SlowPolicy::Disconnect))
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn drain(s: &Subscriber) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(batch) = s.outbox().try_take().unwrap() {
            out.extend_from_slice(&batch);
        }
        out
    }

    #[test]
    fn channel_and_pattern_deliveries() {
        let hub = hub();
        let now = Instant::now();
        let mut a = hub.subscriber(Protocol::Resp2, CancellationToken::new());
        let mut c = hub.subscriber(Protocol::Resp3, CancellationToken::new());
        assert!(a.subscribe(Kind::Channel, b("news")));
        assert!(!a.subscribe(Kind::Channel, b("news")));
        assert!(a.subscribe(Kind::Pattern, b("n*")));
        assert!(c.subscribe(Kind::Pattern, b("n*")));
        assert_eq!(a.count(Kind::Channel), 2);
        assert_eq!(
            hub.publish(&b("news"), &b("hi"), &|| now, &mut Wakes::default()),
            3
        );
        assert_eq!(
            hub.publish(&b("other"), &b("x"), &|| now, &mut Wakes::default()),
            0
        );
        assert_eq!(
            drain(&a),
            b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n\
              *4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
        );
        assert_eq!(
            drain(&c),
            b">4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
        );
        assert_eq!(hub.numsub(Kind::Channel, b"news"), 1);
        assert_eq!(hub.numpat(), 1);
        assert_eq!(hub.channels(Kind::Channel, Some(b"ne*")), vec![b("news")]);
    }

    #[test]
    fn shard_channels_are_their_own_namespace() {
        let hub = hub();
        let now = Instant::now();
        let mut plain = hub.subscriber(Protocol::Resp2, CancellationToken::new());
        let mut sharded = hub.subscriber(Protocol::Resp2, CancellationToken::new());
        plain.subscribe(Kind::Channel, b("orders"));
        plain.subscribe(Kind::Pattern, b("*"));
        assert!(sharded.subscribe(Kind::Shard, b("orders")));
        assert_eq!(
            (
                sharded.count(Kind::Shard),
                sharded.count(Kind::Channel),
                sharded.total()
            ),
            (1, 0, 1)
        );
        let mut wakes = Wakes::default();
        assert_eq!(hub.spublish(&b("orders"), &b("s"), &|| now, &mut wakes), 1);
        assert_eq!(
            drain(&sharded),
            b"*3\r\n$8\r\nsmessage\r\n$6\r\norders\r\n$1\r\ns\r\n"
        );
        assert_eq!(drain(&plain), b"", "no channel or pattern sees a SPUBLISH");
        assert_eq!(hub.publish(&b("orders"), &b("p"), &|| now, &mut wakes), 2);
        assert_eq!(
            drain(&sharded),
            b"",
            "a PUBLISH does not reach SSUBSCRIBErs"
        );
        assert_eq!(hub.numsub(Kind::Shard, b"orders"), 1);
        assert_eq!(hub.numsub(Kind::Channel, b"orders"), 1);
        assert_eq!(hub.channels(Kind::Shard, None), vec![b("orders")]);
        drop(sharded);
        assert_eq!(hub.shard_channels(), 0, "freed with its last subscriber");
    }

    #[test]
    fn direct_encoding_matches_the_frame_encoder() {
        // Lengths on both sides of every digit boundary, and binary content.
        for len in [0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 10_000, 100_000] {
            let payload = vec![b'\n'; len];
            let parts: [&[u8]; 4] = [b"pmessage", b"n*", b"news\x00\r\n", &payload];
            let frame = Frame::Push(
                parts
                    .iter()
                    .map(|p| Frame::Bulk(Bytes::copy_from_slice(p)))
                    .collect(),
            );
            for protocol in [Protocol::Resp2, Protocol::Resp3] {
                assert_eq!(encode_push(protocol, &parts), frame.to_bytes(protocol));
            }
        }
    }

    #[test]
    fn one_encoding_shared_by_every_queue() {
        let hub = hub();
        let mut subs: Vec<Subscriber> = (0..3)
            .map(|_| hub.subscriber(Protocol::Resp2, CancellationToken::new()))
            .collect();
        for s in &mut subs {
            s.subscribe(Kind::Channel, b("c"));
        }
        hub.publish(
            &b("c"),
            &Bytes::from(vec![7u8; 1000]),
            &Instant::now,
            &mut Wakes::default(),
        );
        let batches: Vec<Bytes> = subs
            .iter()
            .map(|s| s.outbox().try_take().unwrap().unwrap())
            .collect();
        assert!(
            batches.windows(2).all(|w| w[0].as_ptr() == w[1].as_ptr()),
            "every subscriber holds the same bytes"
        );
    }

    #[test]
    fn tables_are_freed_with_the_last_subscriber() {
        let hub = hub();
        let mut a = hub.subscriber(Protocol::Resp2, CancellationToken::new());
        let mut c = hub.subscriber(Protocol::Resp2, CancellationToken::new());
        for i in 0..100 {
            a.subscribe(Kind::Channel, b(&format!("ch{i}")));
            a.subscribe(Kind::Pattern, b(&format!("p{i}*")));
        }
        c.subscribe(Kind::Channel, b("ch0"));
        assert_eq!(hub.table_sizes(), (100, 100));
        assert!(a.unsubscribe(Kind::Channel, b"ch1"));
        assert!(!a.unsubscribe(Kind::Channel, b"ch1"));
        assert_eq!(hub.table_sizes(), (99, 100));
        drop(a);
        assert_eq!(hub.table_sizes(), (1, 0));
        drop(c);
        assert_eq!(hub.table_sizes(), (0, 0));
    }

    #[test]
    fn slow_subscriber_is_cut_off_without_touching_the_fast_one() {
        let hub = Arc::new(Hub::new(
            OutputLimit {
                hard: 1000,
                soft: 0,
                soft_for: Duration::ZERO,
            },
            SlowPolicy::Disconnect,
        ));
        let now = Instant::now();
        let evict = CancellationToken::new();
        let mut slow = hub.subscriber(Protocol::Resp2, evict.clone());
        let mut fast = hub.subscriber(Protocol::Resp2, CancellationToken::new());
        slow.subscribe(Kind::Channel, b("c"));
        fast.subscribe(Kind::Channel, b("c"));
        let payload = Bytes::from(vec![0u8; 100]);
        let mut received = 0;
        for _ in 0..100 {
            hub.publish(&b("c"), &payload, &|| now, &mut Wakes::default());
            received += drain(&fast).len();
        }
        assert!(evict.is_cancelled());
        assert_eq!(hub.stats.slow_disconnects.load(Ordering::Relaxed), 1);
        let one = encode_push(Protocol::Resp2, &[b"message", b"c", &payload]).len();
        assert_eq!(received, 100 * one, "the fast subscriber got everything");
        assert!(hub.stats.queues.peak.load(Ordering::Relaxed) <= 1000);
    }
}

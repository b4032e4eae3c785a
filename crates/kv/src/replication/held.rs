//! Sync mode's held replies: one gate per batch, not one wait per write.
//!
//! In sync mode a write's reply may go out only once `--sync-replicas` replicas
//! acknowledged an offset covering the write. The connection writes a batch's replies in
//! request order, so once one reply is held, everything after it is held too: a
//! pipeline's second write cannot be answered before its first. That makes one gate per
//! batch enough. The first write of a batch that is not yet acknowledged opens a
//! [`Gate`] — the one [`Reply::Deferred`] of the batch — and every later reply of the
//! batch, write or read, is encoded into the gate instead of the output. When the
//! connection settles the gate (after the whole batch ran), it waits once for the offset
//! of the batch's *last* write; the one `REPLCONF ACK` that covers it releases the whole
//! batch, and the replies join the output as one run of bytes.
//!
//! Why: a held reply of its own per write (a boxed future, an `Arc`, a queue entry, a
//! frame decoded back out of it at settle time) cost the primary ~630 instructions per
//! write beyond async mode (callgrind, SET -c 50 -P 16, one replica: 5,150 against 4,520
//! per write). A gate costs that once per batch; a write that joins one costs an
//! encode into its buffer and, for a write, one `(offset, range)` entry. Measured the
//! same way with gates: 4,907 against 4,558, so sync mode's extra cost per write went
//! from 631 to 349 instructions (what is left: the gate's wait — a watch subscription
//! and a timer per batch — and one more poll of the connection per batch, woken by
//! the acknowledgement).
//!
//! The guarantee is kept write by write: if the quorum does not acknowledge the last
//! write within `--sync-timeout`, each write of the batch is judged alone, and only the
//! ones not covered are answered `-NOTREPLICATED` (their bytes in the gate are replaced).
//! The timeout runs from when the gate is first awaited, which is when the batch ended:
//! its writes all ran within that batch, microseconds apart.
//!
//! Order is kept by construction: a reply joins the gate only while the gate is the last
//! thing in the connection's output. Anything that would go to the output past it — a
//! reply the service writes itself ([`Reply::Unhandled`]), a refused command, another
//! deferred reply — *seals* the gate first, and so does the gate's own settling; the
//! next unacknowledged write then opens a new one. Pushes (pub/sub messages,
//! invalidations) produced while a gate is open join it too, at their place.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use proto::{CommandError, Frame, Protocol};
use service::{Deferred, Reply, Settled};

use super::{Acks, lock};

/// A gate stops taking replies past this many bytes (the next write opens another), so a
/// huge pipeline's replies are not all held in one buffer. (The connection writes its
/// output, and awaits its deferred replies, every 1 MiB or 4,096 deferred replies.)
const MAX_HELD: usize = 64 * 1024;

/// The replies of a batch held until its writes are acknowledged (see the module's notes).
#[derive(Debug)]
pub(crate) struct Gate {
    /// Nothing joins any more: something went to the output after the gate, or the
    /// gate is being settled, or it is full. (Outside the lock: the service asks after
    /// every command whether pushes may join.)
    sealed: AtomicBool,
    batch: Mutex<Batch>,
}

#[derive(Debug)]
struct Batch {
    /// The replies, encoded in the connection's protocol, in order.
    out: BytesMut,
    /// Each write's stream offset and where its reply is in `out`, in order (offsets
    /// ascending).
    writes: Vec<(u64, Range<usize>)>,
    protocol: Protocol,
}

impl Gate {
    /// Holds `frame`, the reply of the write that ends at stream offset `offset`, and
    /// returns the gate and the deferred reply that releases it.
    pub(crate) fn open(
        acks: Arc<Acks>,
        protocol: Protocol,
        offset: u64,
        frame: Frame,
        wanted: usize,
        timeout: Duration,
    ) -> (Arc<Gate>, Reply) {
        let gate = Arc::new(Gate {
            sealed: AtomicBool::new(false),
            // Room for a pipeline of 16 short replies (growing from empty reallocated
            // the buffer three or four times per batch).
            batch: Mutex::new(Batch {
                out: BytesMut::with_capacity(256),
                writes: Vec::with_capacity(16),
                protocol,
            }),
        });
        // A new gate is open: the reply joins.
        let _ = gate.join(Reply::One(frame), Some(offset));
        let held = gate.clone();
        let reply = Reply::Deferred(Deferred::settled(async move {
            held.release(&acks, wanted, timeout).await
        }));
        (gate, reply)
    }

    /// Adds the next reply of the batch (`offset`: the write it answers, if it wrote),
    /// or hands it back (`Some`) if the gate is sealed. A reply that must go to the
    /// output on its own (one the service writes, a deferred one, a last reply before
    /// closing) seals the gate and is handed back: it goes to the output after the gate.
    pub(crate) fn join(&self, reply: Reply, offset: Option<u64>) -> Option<Reply> {
        if !self.is_open() {
            return Some(reply);
        }
        let mut batch = lock(&self.batch);
        let protocol = batch.protocol;
        let start = batch.out.len();
        match reply {
            Reply::One(frame) => frame.encode(protocol, &mut batch.out),
            // Not held today when it writes (no write answers with several frames).
            Reply::Many(frames) => frames
                .into_iter()
                .for_each(|frame| frame.encode(protocol, &mut batch.out)),
            Reply::Encoded(bytes) => batch.out.extend_from_slice(&bytes),
            other => {
                self.seal();
                return Some(other);
            }
        }
        if let Some(offset) = offset {
            let end = batch.out.len();
            batch.writes.push((offset, start..end));
        }
        if batch.out.len() >= MAX_HELD {
            self.seal();
        }
        None
    }

    /// Adds pushes (already encoded) produced after the last reply; `false` if sealed.
    pub(crate) fn push(&self, bytes: &Bytes) -> bool {
        let open = self.is_open();
        if open {
            lock(&self.batch).out.extend_from_slice(bytes);
        }
        open
    }

    /// Nothing more joins: something goes to the output after the gate.
    pub(crate) fn seal(&self) {
        self.sealed.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_open(&self) -> bool {
        !self.sealed.load(Ordering::Relaxed)
    }

    /// Waits until the batch's last write is acknowledged (or the timeout), then gives
    /// the held replies, each write not acknowledged by then answered `-NOTREPLICATED`.
    async fn release(&self, acks: &Acks, wanted: usize, timeout: Duration) -> Settled {
        self.seal();
        let last = lock(&self.batch)
            .writes
            .last()
            .map_or(0, |(offset, _)| *offset);
        // Boxed: the wait's state (a timer, a watch receiver) would otherwise make every
        // gate as large as one that actually waits.
        let all =
            acks.synced(last) || Box::pin(acks.wait(last, wanted, Some(timeout))).await >= wanted;
        let mut batch = lock(&self.batch);
        let protocol = batch.protocol;
        let out = std::mem::take(&mut batch.out);
        let out = if all {
            out.freeze()
        } else {
            let count = |offset| acks.count(offset);
            answer_unreplicated(&out, &batch.writes, protocol, count, wanted, timeout)
        };
        match protocol {
            Protocol::Resp2 => Settled::Resp2(out),
            Protocol::Resp3 => Settled::Resp3(out),
        }
    }
}

/// `out` with the reply of each write that fewer than `wanted` replicas acknowledged
/// (`count`) replaced by `-NOTREPLICATED`.
fn answer_unreplicated(
    out: &[u8],
    writes: &[(u64, Range<usize>)],
    protocol: Protocol,
    count: impl Fn(u64) -> usize,
    wanted: usize,
    timeout: Duration,
) -> Bytes {
    let mut rewritten = BytesMut::with_capacity(out.len());
    let mut copied = 0;
    for (offset, range) in writes {
        let got = count(*offset);
        if got >= wanted {
            continue;
        }
        rewritten.extend_from_slice(&out[copied..range.start]);
        not_replicated(got, wanted, timeout).encode(protocol, &mut rewritten);
        copied = range.end;
    }
    rewritten.extend_from_slice(&out[copied..]);
    rewritten.freeze()
}

/// The reply to a write that is applied here but not on enough replicas in time.
fn not_replicated(got: usize, wanted: usize, timeout: Duration) -> Frame {
    CommandError::coded(
        "NOTREPLICATED",
        format!(
            "the write is applied and durable on the primary but not replicated: {got} of {wanted} replicas acknowledged it within {} ms",
            timeout.as_millis()
        ),
    )
    .to_frame()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(frames: &[Frame]) -> Vec<u8> {
        let mut out = BytesMut::new();
        frames
            .iter()
            .for_each(|f| f.clone().encode(Protocol::Resp2, &mut out));
        out.to_vec()
    }

    #[test]
    fn only_the_writes_not_acknowledged_are_answered_notreplicated() {
        let timeout = Duration::from_millis(5);
        let replies = [Frame::ok(), Frame::bulk("read"), Frame::Integer(7)];
        let out = encoded(&replies);
        let ok_end = encoded(&replies[..1]).len();
        let read_end = encoded(&replies[..2]).len();
        // Two writes (offsets 10 and 20) around a read; the replica has 10 only.
        let writes = [(10, 0..ok_end), (20, read_end..out.len())];
        let count = |offset: u64| usize::from(offset <= 10);
        let got = answer_unreplicated(&out, &writes, Protocol::Resp2, count, 1, timeout);
        let expected = encoded(&[
            Frame::ok(),
            Frame::bulk("read"),
            not_replicated(0, 1, timeout),
        ]);
        assert_eq!(&got[..], &expected[..]);
        // Nothing acknowledged: both writes, the read untouched.
        let got = answer_unreplicated(&out, &writes, Protocol::Resp2, |_| 0, 1, timeout);
        let expected = encoded(&[
            not_replicated(0, 1, timeout),
            Frame::bulk("read"),
            not_replicated(0, 1, timeout),
        ]);
        assert_eq!(&got[..], &expected[..]);
    }

    #[test]
    fn a_reply_for_the_output_seals_the_gate_and_comes_back() {
        let acks = Arc::new(Acks::new(1));
        let (gate, reply) = Gate::open(
            acks,
            Protocol::Resp2,
            10,
            Frame::ok(),
            1,
            Duration::from_millis(5),
        );
        assert!(matches!(reply, Reply::Deferred(_)));
        assert!(gate.join(Reply::One(Frame::Integer(1)), None).is_none());
        assert!(gate.push(&Bytes::from_static(b">push")));
        let deferred = Reply::Deferred(Deferred::new(async { Frame::ok() }));
        assert!(matches!(
            gate.join(deferred, None),
            Some(Reply::Deferred(_))
        ));
        assert!(!gate.is_open());
        assert!(!gate.push(&Bytes::from_static(b">late")));
        assert!(matches!(
            gate.join(Reply::One(Frame::ok()), Some(20)),
            Some(Reply::One(_))
        ));
        let batch = lock(&gate.batch);
        assert_eq!(&batch.out[..], b"+OK\r\n:1\r\n>push");
        assert_eq!(batch.writes, vec![(10, 0..5)]);
    }

    /// One replica's `REPLCONF ACK offset`.
    fn acknowledge(acks: &Acks, offset: u64) {
        let replica = super::super::Follower {
            ip: "127.0.0.1".into(),
            port: 0,
            ack: offset,
            ack_at: std::time::Instant::now(),
        };
        acks.followers().insert(1, replica);
        acks.bump();
    }

    /// The gate waits for the batch's last write, not its first.
    #[tokio::test]
    async fn the_gate_opens_when_the_last_write_is_acknowledged() {
        let acks = Arc::new(Acks::new(1));
        let timeout = Duration::from_secs(10);
        let (gate, reply) = Gate::open(acks.clone(), Protocol::Resp2, 10, Frame::ok(), 1, timeout);
        assert!(gate.join(Reply::One(Frame::Integer(2)), Some(20)).is_none());
        let Reply::Deferred(deferred) = reply else {
            panic!("held")
        };
        let settled = tokio::spawn(deferred.settle());
        tokio::task::yield_now().await;
        assert!(!gate.is_open(), "settling seals the gate");
        acknowledge(&acks, 15);
        tokio::task::yield_now().await;
        assert!(
            !settled.is_finished(),
            "released by an ack short of its last write"
        );
        acknowledge(&acks, 20);
        let Settled::Resp2(out) = settled.await.unwrap() else {
            panic!("RESP2 bytes")
        };
        assert_eq!(&out[..], b"+OK\r\n:2\r\n");
    }
}

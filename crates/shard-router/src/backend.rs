//! Backend nodes: pooled, pipelined connections shared by every client.
//!
//! This is where a proxy's throughput comes from. A naive proxy opens a backend
//! connection per client and waits for each reply before sending the next request: one
//! round trip per command. Here each node has a small pool of connections (`pool_size`),
//! and every client's requests are *multiplexed* onto them:
//!
//! ```text
//! client A ──GET a──┐                         ┌──▶ reply a ──▶ client A
//! client B ──SET b──┼──▶ [ one TCP write ] ──▶ backend ──▶ [ replies in order ]
//! client A ──GET c──┘    GET a SET b GET c                └──▶ reply b ──▶ client B ...
//! ```
//!
//! A connection is one shared queue and two loops (and a watchdog, below). A client encodes
//! its request straight into the queue's output buffer and appends its reply slot to the
//! queue's FIFO, both under one lock — so the n-th request on the wire always owns the n-th
//! slot, and RESP servers answering a connection's requests strictly in order is all the
//! bookkeeping needed (no request ids). The writer takes the whole buffer, every client's
//! requests back to back, and writes it with one syscall. The reader finds where each reply
//! ends ([`proto::FrameParser::measure`], which keeps its place in a reply still arriving,
//! so a large one is walked once) and hands those bytes, untouched, to the oldest slot: the
//! client writes them to its own socket as they are (`service::Settled::Resp2`). No reply
//! is decoded into a `Frame` and encoded again, and no request is built as one.
//!
//! A client always uses the same connection of a node (chosen by its id), so its own
//! requests to that node stay in order: `SET k 1` then `GET k` never overtake each other.
//!
//! **Each client's protocol is relayed.** A reply's bytes can only be passed through if
//! the backend wrote them in the dialect the client speaks: a RESP2 `HGETALL` is a flat
//! array, and nothing in the bytes says it should be a map for a RESP3 client. So a node
//! keeps two pools, one per protocol. Connections of the RESP3 pool open with `HELLO 3`,
//! and a RESP3 client's forwarded commands go there: the backend itself chooses each
//! reply's type, exactly as if the client were connected to it. (A backend that refuses
//! `HELLO 3` leaves that connection on RESP2, and its replies are converted as well as
//! RESP2 allows: nulls become `_`.) The router's own requests — a split MGET's parts, a
//! DBSIZE fan-out, health probes — use RESP2 and are merged into a [`Frame`], which the
//! client's connection encodes in the client's protocol like any reply.
//!
//! **Timeouts are per connection, not per request.** A timer per request (armed when it
//! is queued, disarmed when its reply arrives) is two operations on the runtime's timer
//! wheel for every request: measured, a tenth of the instructions of forwarding a GET.
//! Instead the writer stamps each write, and one watchdog per connection sleeps until the
//! oldest unanswered write is `timeout` old. RESP answers in order, so a connection's
//! oldest request is the one that decides: if its reply is late, every later one is too.
//! The watchdog then closes the connection, and every request waiting on it gets
//! "timed out" — what twemproxy does with a server that stops answering. The next request
//! opens a fresh connection.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use proto::{Frame, FrameParser, Limits, Protocol, encode_command};
use service::Settled;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, oneshot};

use crate::health::{Health, Status};

/// A write buffer that grew past this (a burst of large requests) is not kept for reuse.
const KEEP_BUFFER: usize = 1024 * 1024;

/// Why a backend gave no reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendError {
    Connect(String, String),
    Lost(String),
    Timeout(String),
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendError::Connect(addr, e) => write!(f, "cannot connect to backend {addr}: {e}"),
            BackendError::Lost(addr) => write!(f, "connection to backend {addr} lost"),
            BackendError::Timeout(addr) => write!(f, "backend {addr} timed out"),
        }
    }
}

impl std::error::Error for BackendError {}

impl BackendError {
    pub fn to_frame(&self) -> Frame {
        Frame::error(format!("ERR {self}"))
    }
}

/// One backend server: its pool, health and counters.
pub struct Node {
    pub addr: String,
    /// The address again, shared by every [`Pending`] (an error names it; a success must
    /// not pay for a `String` per request to be able to).
    shared_addr: Arc<str>,
    /// Connections by protocol: `[RESP2, RESP3]` (see "each client's protocol").
    pools: [Vec<Mutex<Option<Arc<Connection>>>>; 2],
    timeout: Duration,
    health: Mutex<Health>,
    pub requests: AtomicU64,
    pub errors: AtomicU64,
}

/// Where a request's reply goes: its bytes, or why the connection gave none.
type Slot = oneshot::Sender<Result<Bytes, BackendError>>;

/// A request on its way: await it for the reply.
pub struct Pending {
    node_addr: Arc<str>,
    /// The dialect of the connection it went on, which its reply's bytes are in.
    protocol: Protocol,
    reply: oneshot::Receiver<Result<Bytes, BackendError>>,
}

impl Pending {
    /// The reply's bytes as the backend sent them, tagged with their protocol, or why
    /// there are none. No timer of its own: the connection's watchdog fails it if the
    /// backend is late.
    pub async fn settled(self) -> Result<Settled, BackendError> {
        let bytes = match self.reply.await {
            Ok(result) => result?,
            Err(_) => return Err(BackendError::Lost(self.node_addr.to_string())),
        };
        Ok(match self.protocol {
            Protocol::Resp2 => Settled::Resp2(bytes),
            Protocol::Resp3 => Settled::Resp3(bytes),
        })
    }

    /// The reply decoded, for a caller that looks inside it.
    pub async fn reply(self) -> Result<Frame, BackendError> {
        Ok(self.settled().await?.into_frame())
    }
}

impl Node {
    pub fn new(addr: &str, pool_size: usize, timeout: Duration, health: Health) -> Self {
        Node {
            addr: addr.to_string(),
            shared_addr: addr.into(),
            pools: [0, 1].map(|_| (0..pool_size.max(1)).map(|_| Mutex::new(None)).collect()),
            timeout,
            health: Mutex::new(health),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    /// Queues a request on connection `lane` (a client id) and returns at once: the
    /// request is on its way before the caller awaits the reply. The router's own
    /// requests go this way, in RESP2.
    pub async fn send(&self, lane: u64, request: Frame) -> Result<Pending, BackendError> {
        self.enqueue(lane, Protocol::Resp2, |out| {
            request.encode(Protocol::Resp2, out)
        })
        .await
    }

    /// Queues a client's command given as its words (name first), on a connection that
    /// speaks the client's `protocol`, encoded straight into the connection's output
    /// buffer: the proxy's hot path, no `Frame` built.
    pub async fn send_command<'a>(
        &self,
        lane: u64,
        protocol: Protocol,
        words: impl Iterator<Item = &'a [u8]> + Clone,
    ) -> Result<Pending, BackendError> {
        self.enqueue(lane, protocol, |out| encode_command(out, words))
            .await
    }

    /// Queues a request that is already encoded (a read retried on a replica).
    pub async fn send_encoded(
        &self,
        lane: u64,
        protocol: Protocol,
        request: &[u8],
    ) -> Result<Pending, BackendError> {
        self.enqueue(lane, protocol, |out| out.extend_from_slice(request))
            .await
    }

    /// Appends one request to the lane's connection of the `protocol` pool (connecting
    /// first if it has none, or if the one it had failed) together with the slot its
    /// reply will go to.
    async fn enqueue(
        &self,
        lane: u64,
        protocol: Protocol,
        encode: impl FnOnce(&mut BytesMut),
    ) -> Result<Pending, BackendError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let pool = &self.pools[usize::from(protocol == Protocol::Resp3)];
        let slot = &pool[(lane % pool.len() as u64) as usize];
        let connected = lock(slot).as_ref().filter(|c| c.is_open()).cloned();
        let connection = match connected {
            Some(connection) => connection,
            // Boxed: connecting is rare, and its future is large. Inline, it would sit
            // in the state of every future that awaits this one, up to the client's
            // command, and be copied with it on every request.
            None => Box::pin(self.connect(slot, protocol)).await?,
        };
        let (tx, rx) = oneshot::channel();
        if !connection.push(encode, tx) {
            return Err(BackendError::Lost(self.addr.clone()));
        }
        Ok(Pending {
            node_addr: self.shared_addr.clone(),
            protocol: connection.protocol,
            reply: rx,
        })
    }

    /// Sends and waits, recording the outcome in the node's health.
    pub async fn call(&self, lane: u64, request: Frame) -> Result<Frame, BackendError> {
        let result = match self.send(lane, request).await {
            Ok(pending) => pending.reply().await,
            Err(e) => Err(e),
        };
        self.record(&result);
        result
    }

    /// Sends an encoded request and waits for its reply bytes, recording the outcome.
    pub async fn call_encoded(
        &self,
        lane: u64,
        protocol: Protocol,
        request: &[u8],
    ) -> Result<Settled, BackendError> {
        let result = match self.send_encoded(lane, protocol, request).await {
            Ok(pending) => pending.settled().await,
            Err(e) => Err(e),
        };
        self.record(&result);
        result
    }

    /// Counts a request's outcome towards the node's health.
    pub fn record<T>(&self, result: &Result<T, BackendError>) {
        match result {
            Ok(_) => lock(&self.health).success(),
            Err(_) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                if lock(&self.health).failure(Instant::now()) {
                    tracing::warn!(node = %self.addr, "ejected after repeated failures");
                }
            }
        }
    }

    pub fn available(&self) -> bool {
        lock(&self.health).available(Instant::now())
    }

    pub fn status(&self) -> Status {
        lock(&self.health).status(Instant::now())
    }

    async fn connect(
        &self,
        slot: &Mutex<Option<Arc<Connection>>>,
        protocol: Protocol,
    ) -> Result<Arc<Connection>, BackendError> {
        let connecting = tokio::time::timeout(self.timeout, async {
            let mut stream = TcpStream::connect(&self.addr).await?;
            let _ = stream.set_nodelay(true);
            let spoken = match protocol {
                Protocol::Resp2 => Protocol::Resp2,
                Protocol::Resp3 => hello_3(&mut stream).await?,
            };
            Ok::<_, std::io::Error>((stream, spoken))
        });
        let (stream, protocol) = match connecting.await {
            Ok(Ok(connected)) => connected,
            Ok(Err(e)) => return Err(BackendError::Connect(self.addr.clone(), e.to_string())),
            Err(_) => return Err(BackendError::Timeout(self.addr.clone())),
        };
        let mut guard = lock(slot);
        // Another client may have connected this slot meanwhile: use theirs.
        if let Some(existing) = guard.as_ref().filter(|c| c.is_open()) {
            return Ok(existing.clone());
        }
        let connection = Arc::new(Connection {
            protocol,
            ..Connection::default()
        });
        tokio::spawn(serve(
            stream,
            connection.clone(),
            self.addr.clone(),
            self.timeout,
        ));
        *guard = Some(connection.clone());
        Ok(connection)
    }
}

/// Switches a fresh backend connection to RESP3 with `HELLO 3` and reads the reply:
/// the protocol the connection now speaks (RESP2 if the backend refused).
async fn hello_3(stream: &mut TcpStream) -> std::io::Result<Protocol> {
    stream
        .write_all(b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n")
        .await?;
    let mut input = BytesMut::with_capacity(1024);
    let mut reply = FrameParser::default();
    loop {
        match reply.measure(&input, &Limits::default()) {
            Ok(Some(len)) if len == input.len() => {
                return Ok(if input.first() == Some(&b'-') {
                    Protocol::Resp2
                } else {
                    Protocol::Resp3
                });
            }
            // More than one reply to one request: the backend is out of step.
            Ok(Some(_)) | Err(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "unexpected reply to HELLO 3",
                ));
            }
            Ok(None) => {}
        }
        if stream.read_buf(&mut input).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// What the clients of one backend connection share with its writer and reader.
#[derive(Default)]
struct Connection {
    /// What the backend speaks on this connection (what its reply bytes are in).
    protocol: Protocol,
    queue: Mutex<Queue>,
    /// Rung by the client that makes `unsent` non-empty; the writer waits on it.
    wake_writer: Notify,
    /// Set once the connection has failed: clients then open a new one.
    closed: AtomicBool,
}

#[derive(Default)]
struct Queue {
    /// Encoded requests not yet written, every client's, back to back.
    unsent: BytesMut,
    /// One reply slot per request written or unsent, oldest first: the n-th reply the
    /// backend sends belongs to the n-th slot.
    waiting: VecDeque<Slot>,
    /// Replies handed out so far: the number of the oldest waiting slot.
    answered: u64,
    /// One entry per write with replies still owed, oldest first: the number of slots
    /// it completes (every slot below it had been written), and when it was written.
    /// The front's time is how long the backend has owed its oldest reply.
    written: VecDeque<(u64, Instant)>,
    closed: bool,
}

impl Connection {
    fn is_open(&self) -> bool {
        !self.closed.load(Ordering::Relaxed)
    }

    /// Encodes one request at the end of the unsent buffer and queues its reply slot,
    /// under one lock so bytes and slots stay in the same order. Only the client that
    /// finds the buffer empty wakes the writer: the others' requests ride in the same
    /// write. `false`: the connection has failed.
    fn push(&self, encode: impl FnOnce(&mut BytesMut), reply: Slot) -> bool {
        let mut queue = lock(&self.queue);
        if queue.closed {
            return false;
        }
        let first = queue.unsent.is_empty();
        encode(&mut queue.unsent);
        queue.waiting.push_back(reply);
        drop(queue);
        if first {
            self.wake_writer.notify_one();
        }
        true
    }

    /// Takes every unsent request for one write (leaving `spare`, an empty buffer, in
    /// its place), and stamps the write for the watchdog.
    fn take_unsent(&self, spare: &mut BytesMut) {
        let now = Instant::now();
        let mut queue = lock(&self.queue);
        std::mem::swap(&mut queue.unsent, spare);
        if !spare.is_empty() {
            let through = queue.answered + queue.waiting.len() as u64;
            queue.written.push_back((through, now));
        }
    }

    /// Hands one reply to the oldest waiting slot. `false`: nobody was waiting.
    fn answer(&self, reply: Bytes) -> bool {
        let mut queue = lock(&self.queue);
        let Some(slot) = queue.waiting.pop_front() else {
            return false;
        };
        queue.answered += 1;
        let answered = queue.answered;
        while queue
            .written
            .front()
            .is_some_and(|&(through, _)| through <= answered)
        {
            queue.written.pop_front();
        }
        drop(queue);
        // The client may have gone (its slot dropped): the reply is simply discarded.
        let _ = slot.send(Ok(reply));
        true
    }

    /// When the oldest reply still owed was asked for (`None`: nothing owed).
    fn oldest_unanswered(&self) -> Option<Instant> {
        lock(&self.queue).written.front().map(|&(_, at)| at)
    }

    /// The connection failed: refuse new requests, and fail every waiting slot with
    /// `why`, so each of their clients gets an error at once.
    fn close(&self, why: &BackendError) {
        self.closed.store(true, Ordering::Relaxed);
        let waiting = {
            let mut queue = lock(&self.queue);
            queue.closed = true;
            queue.unsent = BytesMut::new();
            queue.written.clear();
            std::mem::take(&mut queue.waiting)
        };
        for slot in waiting {
            let _ = slot.send(Err(why.clone()));
        }
    }
}

/// One backend connection: a writer that sends everything queued with one write, a
/// reader that hands each reply's bytes to the oldest waiting slot, and a watchdog that
/// gives up when the oldest reply is `timeout` late. When any of them stops, all do, and
/// every waiting request gets an error (never a wrong reply).
async fn serve(stream: TcpStream, connection: Arc<Connection>, addr: String, timeout: Duration) {
    let (mut reader, mut writer) = stream.into_split();
    let write = async {
        let mut batch = BytesMut::with_capacity(16 * 1024);
        loop {
            connection.wake_writer.notified().await;
            // Let the other tasks that are ready run first: clients whose requests arrived
            // in the same tick append them now, and one write carries them all. This is
            // how an event loop like twemproxy's batches across clients; without it, at
            // one request per client, this task wakes for each request and writes it alone.
            tokio::task::yield_now().await;
            connection.take_unsent(&mut batch);
            if batch.is_empty() {
                continue;
            }
            if writer.write_all(&batch).await.is_err() {
                return;
            }
            batch.clear();
            if batch.capacity() > KEEP_BUFFER {
                batch = BytesMut::with_capacity(16 * 1024);
            }
        }
    };
    let read = async {
        let mut input = BytesMut::with_capacity(16 * 1024);
        let limits = Limits::default();
        // Keeps its place in a large reply arriving over many reads.
        let mut replies = FrameParser::default();
        loop {
            // Every complete reply in the buffer, each split off (no copy: the bytes
            // stay in the read buffer, shared) and handed to the request it answers.
            loop {
                match replies.measure(&input, &limits) {
                    Ok(Some(len)) => {
                        // A reply nobody asked for: the stream is out of step.
                        if !connection.answer(input.split_to(len).freeze()) {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
            if input.capacity() - input.len() < 4096 {
                input.reserve(16 * 1024);
            }
            match reader.read_buf(&mut input).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    // Sleeps until the oldest owed reply is due. With nothing owed it checks again
    // after `timeout`, so a write made meanwhile is caught at its own deadline.
    let watchdog = async {
        loop {
            match connection.oldest_unanswered() {
                Some(asked) if asked.elapsed() >= timeout => return,
                Some(asked) => tokio::time::sleep_until((asked + timeout).into()).await,
                None => tokio::time::sleep(timeout).await,
            }
        }
    };
    let why = tokio::select! {
        _ = write => BackendError::Lost(addr),
        _ = read => BackendError::Lost(addr),
        _ = watchdog => BackendError::Timeout(addr),
    };
    connection.close(&why);
}

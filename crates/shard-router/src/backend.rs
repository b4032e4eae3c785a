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
//! A connection is two loops. The writer takes every request queued (from any client),
//! appends them to one buffer and writes it with one syscall, remembering each request's
//! reply slot in FIFO order. The reader parses replies as they arrive and hands each to the
//! oldest waiting slot — RESP servers answer a connection's requests strictly in order, so
//! no request ids are needed. Under load, one write carries dozens of requests.
//!
//! A client always uses the same connection of a node (chosen by its id), so its own
//! requests to that node stay in order: `SET k 1` then `GET k` never overtake each other.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use proto::{Frame, Limits, Mode, Protocol, parse_frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::health::{Health, Status};

/// Largest batch one write carries.
const MAX_BATCH: usize = 64 * 1024;

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

struct Request {
    bytes: Bytes,
    reply: oneshot::Sender<Frame>,
}

/// One backend server: its pool, health and counters.
pub struct Node {
    pub addr: String,
    slots: Vec<Mutex<Option<mpsc::UnboundedSender<Request>>>>,
    timeout: Duration,
    health: Mutex<Health>,
    pub requests: AtomicU64,
    pub errors: AtomicU64,
}

/// A request on its way: await it for the reply.
pub struct Pending {
    node_addr: String,
    reply: oneshot::Receiver<Frame>,
    timeout: Duration,
}

impl Pending {
    /// The reply, or why there is none.
    pub async fn reply(self) -> Result<Frame, BackendError> {
        match tokio::time::timeout(self.timeout, self.reply).await {
            Ok(Ok(frame)) => Ok(frame),
            Ok(Err(_)) => Err(BackendError::Lost(self.node_addr)),
            Err(_) => Err(BackendError::Timeout(self.node_addr)),
        }
    }
}

impl Node {
    pub fn new(addr: &str, pool_size: usize, timeout: Duration, health: Health) -> Self {
        Node {
            addr: addr.to_string(),
            slots: (0..pool_size.max(1)).map(|_| Mutex::new(None)).collect(),
            timeout,
            health: Mutex::new(health),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    /// Queues a request on connection `lane` (a client id) and returns at once: the
    /// request is on its way before the caller awaits the reply.
    pub async fn send(&self, lane: u64, words: Frame) -> Result<Pending, BackendError> {
        let mut buf = BytesMut::new();
        words.encode(Protocol::Resp2, &mut buf);
        self.send_bytes(lane, buf.freeze()).await
    }

    async fn send_bytes(&self, lane: u64, bytes: Bytes) -> Result<Pending, BackendError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let slot = &self.slots[(lane % self.slots.len() as u64) as usize];
        let connected = lock(slot).as_ref().filter(|s| !s.is_closed()).cloned();
        let sender = match connected {
            Some(sender) => sender,
            None => self.connect(slot).await?,
        };
        let (tx, rx) = oneshot::channel();
        sender
            .send(Request { bytes, reply: tx })
            .map_err(|_| BackendError::Lost(self.addr.clone()))?;
        Ok(Pending {
            node_addr: self.addr.clone(),
            reply: rx,
            timeout: self.timeout,
        })
    }

    /// Sends and waits, recording the outcome in the node's health.
    pub async fn call(&self, lane: u64, words: Frame) -> Result<Frame, BackendError> {
        let result = match self.send(lane, words).await {
            Ok(pending) => pending.reply().await,
            Err(e) => Err(e),
        };
        self.record(&result);
        result
    }

    /// Counts a request's outcome towards the node's health.
    pub fn record(&self, result: &Result<Frame, BackendError>) {
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
        slot: &Mutex<Option<mpsc::UnboundedSender<Request>>>,
    ) -> Result<mpsc::UnboundedSender<Request>, BackendError> {
        let connecting = tokio::time::timeout(self.timeout, TcpStream::connect(&self.addr));
        let stream = match connecting.await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(BackendError::Connect(self.addr.clone(), e.to_string())),
            Err(_) => return Err(BackendError::Timeout(self.addr.clone())),
        };
        let _ = stream.set_nodelay(true);
        let mut guard = lock(slot);
        // Another client may have connected this slot meanwhile: use theirs.
        if let Some(existing) = guard.as_ref().filter(|s| !s.is_closed()) {
            return Ok(existing.clone());
        }
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(connection(stream, rx));
        *guard = Some(tx.clone());
        Ok(tx)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// One backend connection: a writer that batches every queued request into one write,
/// and a reader that hands replies to the waiting requests in FIFO order. When either
/// side fails, both stop, and every waiting request sees its reply slot dropped (an
/// error for its client, never a wrong reply).
async fn connection(stream: TcpStream, mut requests: mpsc::UnboundedReceiver<Request>) {
    let (mut reader, mut writer) = stream.into_split();
    let (in_flight, mut waiting) = mpsc::unbounded_channel::<oneshot::Sender<Frame>>();
    let write = async move {
        let mut batch = BytesMut::with_capacity(16 * 1024);
        while let Some(first) = requests.recv().await {
            // Let the other tasks that are ready run first: clients whose requests arrived
            // in the same tick queue them now, and one write carries them all. This is how
            // an event loop like twemproxy's batches across clients; without it, at one
            // request per client, this task wakes for each request and writes it alone.
            tokio::task::yield_now().await;
            let mut next = Some(first);
            while let Some(request) = next.take() {
                batch.extend_from_slice(&request.bytes);
                if in_flight.send(request.reply).is_err() {
                    return;
                }
                if batch.len() < MAX_BATCH {
                    next = requests.try_recv().ok();
                }
            }
            if writer.write_all(&batch).await.is_err() {
                return;
            }
            batch.clear();
        }
    };
    let read = async move {
        let mut input = BytesMut::with_capacity(16 * 1024);
        let limits = Limits::default();
        loop {
            loop {
                match parse_frame(&mut input, &limits, Mode::Reply) {
                    Ok(Some(frame)) => match waiting.recv().await {
                        Some(slot) => {
                            let _ = slot.send(frame);
                        }
                        None => return,
                    },
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
            input.reserve(16 * 1024);
            match reader.read_buf(&mut input).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::select! {
        _ = write => {}
        _ = read => {}
    }
}

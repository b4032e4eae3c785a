//! One task per client connection.
//!
//! The loop is where pipelining pays off. A client that pipelines sends many commands
//! without waiting for replies; one `read` then returns many requests. We parse *every*
//! complete request in the buffer, execute them in order, append each reply to one output
//! buffer, and write that buffer with a single call. 10,000 pipelined PINGs cost a handful
//! of syscalls instead of 20,000 — that is most of the difference between 50k and 1M
//! requests per second.
//!
//! Each command is first offered to [`Server::execute_now`], which runs it without
//! building a future if it never waits; only the rest go through `async`
//! [`Server::execute`].
//!
//! A server may also answer [`Reply::Deferred`]: the reply is a future (a proxy waiting
//! on a backend). The loop then keeps executing the rest of the pipeline and awaits the
//! deferred replies, in request order, only just before it writes — so one client's
//! pipeline of 16 GETs is 16 requests in flight to the backends, not 16 round trips.
//!
//! Memory: a server may hold thousands of connections that are idle nearly all the time,
//! so a connection holds buffers only while it uses them. It waits for input *without* a
//! read buffer — one is taken when the socket is readable, and given back when every
//! request in it has been served, to be the thread's spare that the next connection to
//! read takes ([`crate::read_buffer`]: one hot buffer goes round the clients, where a
//! fresh one per batch cost an allocation's slow path and cold cache lines). A partly
//! arrived request keeps its buffer, which grows only as its bytes arrive. The
//! reply buffer is kept between batches while small, and let go when a large reply grew
//! it, so one big request does not cost its size for the rest of the connection's life.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use proto::{Args, CommandError, Frame, Protocol, RequestParser};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::builtin;
use crate::client::{Client, Registration, Shared, Stats};
use crate::command_table::{CommandSpec, CommandTable};
use crate::read_buffer;
use crate::server::{Deferred, Push, Reply, Server, Settled};

/// Output beyond this many bytes is written before the rest of a pipeline is executed,
/// so a huge pipeline does not buffer all of its replies in memory.
const FLUSH_THRESHOLD: usize = 1024 * 1024;

/// Deferred replies beyond this many are settled and written before the rest of a
/// pipeline is executed, bounding what one client keeps in flight.
const MAX_IN_FLIGHT: usize = 4096;

/// A reply buffer up to this size is kept between batches (reused, it costs no
/// allocation per batch); a larger one, grown by a large reply, is let go once written.
const KEEP_OUTPUT: usize = 16 * 1024;

/// What a connection needs to execute commands: the server, the shared state and the
/// command table.
pub(crate) struct Context<S: Server> {
    pub server: Arc<S>,
    pub shared: Arc<Shared>,
    pub table: CommandTable,
}

/// Serves one client until it quits, errs, idles out, is killed, or the server shuts down.
pub(crate) async fn serve<S: Server>(
    mut stream: TcpStream,
    ctx: Arc<Context<S>>,
    registration: Registration,
) {
    let info = registration.info.clone();
    let authenticated = ctx.shared.settings.requirepass().is_none();
    let builtins = {
        let ctx = Arc::clone(&ctx);
        Arc::new(move |client: &mut Client<S::Session>, args| builtin::execute(&ctx, client, args))
    };
    let mut client = Client::new(S::Session::default(), info.clone(), authenticated, builtins);
    // No read buffer until there is something to read (see the module's notes on memory).
    let mut input = BytesMut::new();
    let mut requests = RequestParser::default();
    let mut output = Outbox::default();
    let stats = &info.stats;
    // The stop signal, registered once for the connection's life. `evict` is a child of
    // `kill`, so this one future fires on CLIENT KILL, shutdown and eviction alike. A
    // `cancelled()` future made afresh on every turn of the loop would register itself with
    // the token (a lock) and unregister when dropped (another) on every request: measured,
    // about a tenth of the instructions of a `GET`. Pinned here, a turn costs one poll.
    let stopped = info.evict.cancelled();
    tokio::pin!(stopped);

    'connection: loop {
        // 1. Execute every complete request already buffered, replies into `output`.
        let limits = ctx.shared.settings.limits();
        let mut executed = 0;
        loop {
            let mut args = match requests.next(&mut input, &limits) {
                Ok(Some(args)) => args,
                Ok(None) => break,
                Err(e) => {
                    debug!(client = info.id, "closing after {e}");
                    output.frame(client.protocol, e.to_frame());
                    ctx.server.batch_executed(&mut client.session);
                    let _ = write(&mut stream, &mut output, stats, &info.evict).await;
                    break 'connection;
                }
            };
            executed += 1;
            let spec = ctx.table.get_bytes(args.name_bytes());
            let reply = match admit(&mut client, spec, &mut args) {
                Err(refusal) => {
                    ctx.server.refused(&mut client.session);
                    refusal
                }
                Ok(spec) => match ctx.server.execute_now(&mut client, args) {
                    Ok(reply) => reply,
                    // A blocking command (BLPOP, a long-poll receive) may wait a long
                    // time: show it in CLIENT LIST now, and watch for the client hanging
                    // up meanwhile and drop the command if it does, so the server
                    // unblocks it instead of handing its next element to a dead socket.
                    Err(args) if spec.flags.contains(&"blocking") => {
                        client.publish_activity();
                        let command = ctx.server.execute(&mut client, args);
                        tokio::select! {
                            reply = command => reply,
                            () = peer_closed(&stream) => {
                                debug!(client = info.id, "closed while blocked");
                                break 'connection;
                            }
                        }
                    }
                    Err(args) => ctx.server.execute(&mut client, args).await,
                },
            };
            let reply = match reply {
                Reply::Unhandled(args) => {
                    // CLIENT INFO and CLIENT LIST describe this client as of this command.
                    client.publish_activity();
                    builtin::execute(&ctx, &mut client, args)
                }
                reply => reply,
            };
            while let Some(push) = ctx.server.pending_push(&mut client.session) {
                output.raw(push);
            }
            let protocol = client.protocol;
            let close = match reply {
                Reply::One(frame) => {
                    output.frame(protocol, frame);
                    false
                }
                Reply::Many(frames) => {
                    for frame in frames {
                        output.frame(protocol, frame);
                    }
                    false
                }
                Reply::Encoded(bytes) => {
                    output.raw(bytes);
                    false
                }
                Reply::Close(frame) => {
                    output.frame(protocol, frame);
                    true
                }
                Reply::Unhandled(args) => {
                    output.frame(protocol, unknown_command(&args).to_frame());
                    false
                }
                Reply::Deferred(later) => {
                    output.later(protocol, later);
                    false
                }
            };
            if close {
                ctx.server.batch_executed(&mut client.session);
                let _ = write(&mut stream, &mut output, stats, &info.evict).await;
                break 'connection;
            }
            // Replies written before the batch ends (a huge pipeline's) come after the
            // server's end-of-batch work too: a durable server writes its journal there.
            if output.must_flush() {
                ctx.server.batch_executed(&mut client.session);
                if write(&mut stream, &mut output, stats, &info.evict)
                    .await
                    .is_err()
                {
                    break 'connection;
                }
            }
        }
        Stats::add(&stats.commands_processed, executed);
        client.publish_activity();
        ctx.server.batch_executed(&mut client.session);
        // Every complete request is served: the read buffer goes back now, before this
        // connection yields and writes, so the next connection to read on this thread
        // reads into the same cache lines.
        read_buffer::give_back(&mut input);

        // 2. One write for the whole batch — on an event loop of its own, only after every
        // other client with input waiting has had its turn (see `Server::WRITE_AFTER_READS`).
        if S::WRITE_AFTER_READS && executed > 0 {
            behind_ready_clients().await;
        }
        if write(&mut stream, &mut output, stats, &info.evict)
            .await
            .is_err()
        {
            break;
        }

        // 3. Wait for more input, a push, a kill/shutdown, or the idle timeout — holding
        // no read buffer if every request in the last one was served (given back above).
        output.let_go_of_large_buffers();
        let idle = ctx.shared.settings.idle_timeout();
        tokio::select! {
            _ = &mut stopped => break,
            ready = stream.readable() => {
                if ready.is_err() {
                    break;
                }
                read_buffer::make_room(&mut input);
                match read_ready(&mut stream, &mut input).await {
                    Ok(0) => break,
                    Ok(n) => {
                        Stats::add(&stats.reads_processed, 1);
                        Stats::add(&stats.net_input_bytes, n as u64);
                    }
                    // Readiness can be spurious: go round and wait again.
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => break,
                }
            },
            push = ctx.server.next_push(&mut client.session) => match push {
                Push::Bytes(bytes) => output.raw(bytes),
                Push::Disconnect(reason) => {
                    debug!(client = info.id, "disconnecting: {reason}");
                    let _ = write(&mut stream, &mut output, stats, &info.evict).await;
                    break;
                }
            },
            _ = sleep_or_forever(idle) => {
                debug!(client = info.id, "idle timeout");
                break;
            }
        }
    }
    let _ = stream.shutdown().await;
}

/// Checks a command before it runs: is it one (`spec`, looked up by its name), with the
/// right number of arguments, allowed before AUTH? The refusal is the error reply.
fn admit<S>(
    client: &mut Client<S>,
    spec: Option<&'static CommandSpec>,
    args: &mut Args,
) -> Result<&'static CommandSpec, Reply> {
    let Some(spec) = spec else {
        return Err(unknown_command(args).into());
    };
    if !spec.arity_ok(args.remaining() + 1) {
        return Err(args.wrong_arity().into());
    }
    spec.check_subcommand(args)?;
    if !client.authenticated && !matches!(spec.name, "auth" | "hello" | "quit" | "reset") {
        return Err(CommandError::coded("NOAUTH", "Authentication required.").into());
    }
    args.set_known_name(spec.name);
    client.last_command = Some(spec.name);
    client.spec = Some(spec);
    Ok(spec)
}

/// Redis's wording: `ERR unknown command 'foo', with args beginning with: 'a' 'b' `.
pub fn unknown_command(args: &Args) -> CommandError {
    let mut text = format!(
        "unknown command '{}', with args beginning with: ",
        String::from_utf8_lossy(&args.raw_name()[..args.raw_name().len().min(128)])
    );
    for arg in args.peek_all() {
        if text.len() > 256 {
            break;
        }
        text.push('\'');
        text.push_str(&String::from_utf8_lossy(&arg[..arg.len().min(128)]));
        text.push_str("' ");
    }
    CommandError::err(text)
}

/// Replies in request order. Ready replies are encoded straight into the output buffer;
/// once a deferred reply is waiting, every later reply queues behind it.
///
/// A reply settled as [`Settled::Resp2Parts`] is not copied in whole: its large parts are
/// kept as they are in `parts`, after the output encoded before them (split off as a part
/// of its own), and the next write sends `parts` then `output` in one vectored write.
#[derive(Default)]
struct Outbox {
    output: BytesMut,
    waiting: VecDeque<(Protocol, Queued)>,
    /// Output to send before `output` (empty unless a settled reply had large parts).
    parts: Vec<Bytes>,
    /// Bytes in `parts`.
    parts_len: usize,
}

/// A part of a [`Settled::Resp2Parts`] reply this long or longer is sent as it is; a
/// shorter one before it is cheaper to copy into the output than to describe to the
/// kernel as one more `iovec`.
const SEND_AS_IS: usize = 512;

/// At most this many parts are handed to one `writev` (Linux accepts 1024).
const MAX_IOVECS: usize = 512;

enum Queued {
    Frame(Frame),
    Raw(Bytes),
    Later(Deferred),
}

impl Outbox {
    fn frame(&mut self, protocol: Protocol, frame: Frame) {
        if self.waiting.is_empty() {
            frame.encode(protocol, &mut self.output);
        } else {
            self.waiting.push_back((protocol, Queued::Frame(frame)));
        }
    }

    fn raw(&mut self, bytes: Bytes) {
        if self.waiting.is_empty() {
            self.output.put(bytes);
        } else {
            self.waiting
                .push_back((Protocol::Resp2, Queued::Raw(bytes)));
        }
    }

    fn later(&mut self, protocol: Protocol, later: Deferred) {
        self.waiting.push_back((protocol, Queued::Later(later)));
    }

    /// Between batches, with everything written: drops buffers a large reply or a long
    /// pipeline grew, so an idle connection holds only small ones.
    fn let_go_of_large_buffers(&mut self) {
        if self.output.capacity() > KEEP_OUTPUT && self.output.is_empty() {
            self.output = BytesMut::new();
        }
        if self.waiting.capacity() > 64 && self.waiting.is_empty() {
            self.waiting = VecDeque::new();
        }
        if self.parts.capacity() > 64 && self.parts.is_empty() {
            self.parts = Vec::new();
        }
    }

    fn must_flush(&self) -> bool {
        self.output.len() + self.parts_len > FLUSH_THRESHOLD || self.waiting.len() > MAX_IN_FLIGHT
    }

    /// Appends a reply's part: copied if short and nothing is queued as it is yet, else
    /// queued as it is behind the output so far. (Once one part is queued, copying the
    /// short ones after it would mean splitting the output buffer at every long part,
    /// and a split-off buffer cannot grow in place: an allocation per part.)
    fn part(&mut self, part: Bytes) {
        if part.len() < SEND_AS_IS && self.parts.is_empty() {
            self.output.extend_from_slice(&part);
            return;
        }
        if !self.output.is_empty() {
            let before = self.output.split().freeze();
            self.parts_len += before.len();
            self.parts.push(before);
        }
        self.parts_len += part.len();
        self.parts.push(part);
    }

    /// Awaits the deferred replies in order and encodes everything queued.
    async fn settle(&mut self) {
        while let Some((protocol, queued)) = self.waiting.pop_front() {
            match queued {
                Queued::Frame(frame) => frame.encode(protocol, &mut self.output),
                Queued::Raw(bytes) => self.output.put(bytes),
                Queued::Later(later) => match later.settle().await {
                    Settled::Resp2Parts(parts) if protocol == Protocol::Resp2 => {
                        for part in parts {
                            self.part(part);
                        }
                    }
                    settled => settled.encode(protocol, &mut self.output),
                },
            }
        }
    }
}

/// Writes all of `output` (after its deferred replies are ready), or fails if the client
/// is evicted first: a client that has stopped reading would otherwise hold this task in
/// `write_all` forever.
async fn write(
    stream: &mut TcpStream,
    outbox: &mut Outbox,
    stats: &Stats,
    evict: &CancellationToken,
) -> std::io::Result<()> {
    outbox.settle().await;
    if !outbox.parts.is_empty() {
        return write_parts(stream, outbox, stats, evict).await;
    }
    let output = &mut outbox.output;
    if output.is_empty() {
        return Ok(());
    }
    // Fast path: the kernel's send buffer nearly always has room for a batch of replies, so
    // try the write straight away. Only a client that has stopped reading makes us wait,
    // and only then is it worth watching for eviction.
    let sent = match stream.try_write(output) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
        Err(e) => return Err(e),
    };
    if sent < output.len() {
        tokio::select! {
            written = stream.write_all(&output[sent..]) => written?,
            _ = evict.cancelled() => {
                return Err(evicted());
            }
        }
    }
    Stats::add(&stats.writes_processed, 1);
    Stats::add(&stats.net_output_bytes, output.len() as u64);
    output.clear();
    Ok(())
}

/// [`write`] when the output has parts kept as they are: all of them, then the output, in
/// vectored writes (usually one).
async fn write_parts(
    stream: &mut TcpStream,
    outbox: &mut Outbox,
    stats: &Stats,
    evict: &CancellationToken,
) -> std::io::Result<()> {
    if !outbox.output.is_empty() {
        let rest = outbox.output.split().freeze();
        outbox.parts_len += rest.len();
        outbox.parts.push(rest);
    }
    let total = outbox.parts_len;
    let parts = std::mem::take(&mut outbox.parts);
    outbox.parts_len = 0;
    // Sent so far: whole parts, then `into` bytes of the next one.
    let (mut done, mut into) = (0, 0);
    while done < parts.len() {
        let slices: Vec<std::io::IoSlice<'_>> = parts[done..]
            .iter()
            .take(MAX_IOVECS)
            .enumerate()
            .map(|(i, part)| std::io::IoSlice::new(if i == 0 { &part[into..] } else { part }))
            .collect();
        let mut sent = match stream.try_write_vectored(&slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                // The client is not reading fast enough: wait for room, or its eviction.
                tokio::select! {
                    ready = stream.writable() => ready?,
                    _ = evict.cancelled() => {
                        return Err(evicted());
                    }
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        while sent > 0 && done < parts.len() {
            let left = parts[done].len() - into;
            if sent >= left {
                sent -= left;
                done += 1;
                into = 0;
            } else {
                into += sent;
                sent = 0;
            }
        }
    }
    Stats::add(&stats.writes_processed, 1);
    Stats::add(&stats.net_output_bytes, total as u64);
    // The parts are dropped here, after the last write, which is what lets their owners
    // (a log's reused read buffer) have them back.
    drop(parts);
    outbox.output.clear();
    Ok(())
}

/// One read from a socket that has just been reported readable, into `input`'s spare
/// room; `WouldBlock` if the readiness was spurious (never waits).
///
/// Why not `try_read_buf`: it forgets readiness only when a read finds nothing, so after
/// every batch the connection would come back, see the socket still marked readable, and
/// spend a `recvfrom` learning that the client has not sent its next batch yet (it is
/// waiting for these replies). Measured on the cache's pipelined GET, 0.7 extra reads per
/// 16-request batch. `AsyncRead::poll_read` (behind `read_buf`) knows better: on an
/// edge-triggered poller (epoll, kqueue) a read that does not fill the buffer has drained
/// the socket, so it forgets readiness then, and the next batch's arrival is a fresh
/// event. One read per batch, as Redis does.
async fn read_ready(stream: &mut TcpStream, input: &mut BytesMut) -> std::io::Result<usize> {
    use std::future::Future;
    use std::task::Poll;
    use tokio::io::AsyncReadExt;

    let read = stream.read_buf(input);
    tokio::pin!(read);
    std::future::poll_fn(|cx| match read.as_mut().poll(cx) {
        Poll::Pending => Poll::Ready(Err(std::io::ErrorKind::WouldBlock.into())),
        ready => ready,
    })
    .await
}

/// Lets every task already queued on this event loop run before this one goes on: the
/// other clients the last poll of the sockets found ready (see
/// `Server::WRITE_AFTER_READS`).
///
/// Not `tokio::task::yield_now`: since tokio 1.23 it defers its wake-up until the
/// scheduler has polled the driver again, so that a task spinning on `yield_now` cannot
/// starve I/O. On a one-threaded loop that costs an extra `epoll_wait` (with a zero
/// timeout) for every round of reads — measured on the cache's `GET -P 1`, 0.53
/// `epoll_wait`s per request against Redis's 0.36 — and it pulls newly ready clients in
/// ahead of the replies already made. Waking ourselves puts the task at the back of the
/// run queue, behind the ready clients and nothing else, which is Redis's order: read
/// every ready client, then write every reply (`beforeSleep`), then wait for events.
/// The I/O driver cannot starve: a connection yields here at most once per batch it read,
/// and the scheduler polls the driver every 61 tasks regardless.
async fn behind_ready_clients() {
    let mut queued = false;
    std::future::poll_fn(|cx| {
        if queued {
            return std::task::Poll::Ready(());
        }
        queued = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

/// Why a write gave up: the client was evicted (over its output limit, killed, or the
/// server is shutting down) while it was not reading.
fn evicted() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "evicted")
}

/// Resolves when the client has closed its end of the connection. If it has sent more
/// requests instead (a pipeline behind a blocking command), a close cannot be seen
/// without reading them, so it stops watching.
async fn peer_closed(stream: &TcpStream) {
    let mut probe = [0u8; 1];
    match stream.peek(&mut probe).await {
        Ok(0) | Err(_) => {}
        Ok(_) => std::future::pending().await,
    }
}

async fn sleep_or_forever(duration: Option<std::time::Duration>) {
    match duration {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

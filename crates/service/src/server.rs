//! The one trait a server implements.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use proto::{Args, Frame, Protocol};

use crate::client::Client;
use crate::command_table::CommandSpec;
use crate::info::InfoSection;

/// What executing a command produced.
#[derive(Debug)]
pub enum Reply {
    /// One reply frame (the common case).
    One(Frame),
    /// Several frames, e.g. `SUBSCRIBE a b c` confirms each channel separately.
    Many(Vec<Frame>),
    /// Reply, then close the connection (QUIT).
    Close(Frame),
    /// Not a command of this server: let the service answer it (connection-level
    /// commands such as PING and CLIENT) or report it unknown.
    Unhandled(Args),
    /// A reply already encoded, in bytes that mean the same in RESP2 and RESP3 (an array
    /// of bulk strings, say): copied into the output as they are. A server that can
    /// write a long reply straight from its own storage (kv's `LRANGE` from a packed
    /// list) skips building a frame per element only to encode each one.
    Encoded(Bytes),
    /// The reply will be ready later (a proxy waiting on a backend). The connection goes
    /// on executing the rest of the pipeline and awaits deferred replies, in order, only
    /// before it writes: that is how a proxy keeps many requests of one client in flight.
    Deferred(Deferred),
}

/// A reply that is still being computed: see [`Reply::Deferred`].
pub struct Deferred(Pin<Box<dyn Future<Output = Settled> + Send + 'static>>);

/// What a [`Deferred`] reply turns out to be.
#[derive(Debug)]
pub enum Settled {
    /// A reply frame, encoded in the client's protocol like any other.
    Frame(Frame),
    /// Whole replies already encoded in RESP2, in order: usually exactly one, a
    /// backend's reply bytes as they came off its socket. A proxy that forwards them
    /// this way never decodes a reply into a [`Frame`] only to encode it again; a RESP2
    /// client gets the bytes copied into its output as they are. A RESP3 client gets
    /// them decoded and re-encoded reply by reply (its nulls differ), which is what
    /// `Frame` replies would have cost.
    ///
    /// Several replies in one are allowed because a reply may stand for the rest of a
    /// batch: kv's sync replication holds every reply after a batch's first
    /// unacknowledged write in one [`Deferred`] (they may not overtake it), encoded in
    /// the connection's protocol, and releases them together.
    Resp2(Bytes),
    /// Exactly one complete RESP2 reply, in parts to be sent one after another: a reply
    /// that embeds large values kept elsewhere (a log's record values, read from its
    /// segment file) without copying them into one buffer first. A RESP2 client's
    /// connection hands the large parts to the socket as they are (one vectored write),
    /// so such a value is copied once, by the kernel, instead of into a reply buffer, then
    /// into the output buffer, then into the socket. A RESP3 client gets the parts joined
    /// and re-encoded, like [`Settled::Resp2`].
    Resp2Parts(Vec<Bytes>),
    /// Whole replies already encoded in RESP3, in order (usually one, as for
    /// [`Settled::Resp2`]): a backend's reply bytes, from a connection that the proxy
    /// opened with `HELLO 3` for its RESP3 clients. A RESP3 client gets the bytes as they
    /// are; a RESP2 client gets them decoded and lowered reply by reply (maps flattened,
    /// doubles as text), as [`Frame`] replies would be.
    Resp3(Bytes),
}

impl Settled {
    /// The reply as a frame (decoding RESP2 bytes), for a caller that must look inside
    /// it — merging the parts of a split MGET, say. Meant for one reply: bytes holding
    /// several decode to an error frame.
    pub fn into_frame(self) -> Frame {
        match self {
            Settled::Frame(frame) => frame,
            Settled::Resp2(bytes) | Settled::Resp3(bytes) => {
                let mut buf = bytes::BytesMut::from(bytes);
                match proto::parse_frame(&mut buf, &proto::Limits::default(), proto::Mode::Reply) {
                    Ok(Some(frame)) if buf.is_empty() => frame,
                    _ => Frame::error("ERR malformed reply from backend"),
                }
            }
            Settled::Resp2Parts(parts) => Settled::Resp2(parts.concat().into()).into_frame(),
        }
    }

    /// Appends the reply to `dst` in `protocol`.
    pub fn encode(self, protocol: Protocol, dst: &mut bytes::BytesMut) {
        match self {
            Settled::Resp2(bytes) if protocol == Protocol::Resp2 => dst.extend_from_slice(&bytes),
            Settled::Resp3(bytes) if protocol == Protocol::Resp3 => dst.extend_from_slice(&bytes),
            Settled::Resp2Parts(parts) if protocol == Protocol::Resp2 => {
                for part in parts {
                    dst.extend_from_slice(&part);
                }
            }
            Settled::Resp2(bytes) | Settled::Resp3(bytes) => reencode(bytes, protocol, dst),
            other => other.into_frame().encode(protocol, dst),
        }
    }
}

/// Replies encoded in the other protocol, decoded one by one and encoded in `protocol`.
fn reencode(bytes: Bytes, protocol: Protocol, dst: &mut bytes::BytesMut) {
    let mut buf = bytes::BytesMut::from(bytes);
    while !buf.is_empty() {
        match proto::parse_frame(&mut buf, &proto::Limits::default(), proto::Mode::Reply) {
            Ok(Some(frame)) => frame.encode(protocol, dst),
            _ => {
                Frame::error("ERR malformed reply from backend").encode(protocol, dst);
                return;
            }
        }
    }
}

impl Deferred {
    /// A reply frame computed later.
    pub fn new(reply: impl Future<Output = Frame> + Send + 'static) -> Self {
        Deferred(Box::pin(async move { Settled::Frame(reply.await) }))
    }

    /// A reply computed later that may be forwarded bytes ([`Settled::Resp2`]).
    pub fn settled(reply: impl Future<Output = Settled> + Send + 'static) -> Self {
        Deferred(Box::pin(reply))
    }

    /// Waits for the reply.
    pub async fn settle(self) -> Settled {
        self.0.await
    }

    /// Waits for the reply, as a frame.
    pub async fn frame(self) -> Frame {
        self.0.await.into_frame()
    }
}

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Deferred")
    }
}

impl From<Frame> for Reply {
    fn from(frame: Frame) -> Reply {
        Reply::One(frame)
    }
}

impl From<proto::CommandError> for Reply {
    fn from(e: proto::CommandError) -> Reply {
        Reply::One(e.to_frame())
    }
}

/// Data the server pushes to a client without a request (pub/sub messages).
#[derive(Debug)]
pub enum Push {
    /// Already-encoded bytes to append to the client's output.
    Bytes(Bytes),
    /// Close the connection (e.g. a subscriber over its output buffer limit).
    Disconnect(String),
}

/// A RESP server built on this crate.
///
/// `execute` sees every command first (after the command-table and AUTH checks), so a
/// server can override a connection-level command (kv implements `SELECT` for 16
/// databases; pubsub restricts commands in subscribed mode) and returns
/// [`Reply::Unhandled`] for the rest.
pub trait Server: Send + Sync + 'static {
    /// Per-connection state the server keeps (selected database, subscriptions...).
    type Session: Default + Send + 'static;

    /// Write a batch's replies only after every other client with input waiting has been
    /// read and served, as Redis does (it queues replies while it handles the ready clients
    /// and writes them all in `beforeSleep`, just before it waits for events again).
    ///
    /// Why it matters on a server that runs one event loop on its own thread: every write
    /// wakes the client that reads it. Written at once, one reply per client turn, those
    /// wake-ups land *between* the server's reads, and the scheduler often runs the woken
    /// client on the server's own core, preempting the loop (kv under `redis-benchmark
    /// -P 16`: 40,000 involuntary context switches per million requests, Redis 16,000).
    /// Deferred to the end of the round, the replies go out back to back and the client
    /// wakes once to find them all (17,000). The price is one extra poll of the connection
    /// per batch, about 10% more instructions for a lone `GET`; off by default.
    const WRITE_AFTER_READS: bool = false;

    /// The Redis version `HELLO` and `INFO` report: the Redis whose behaviour this server
    /// implements. Client libraries turn features on by it (redis-py 8's client-side cache
    /// needs 7.4), so a server claims a version only when it has what that version's
    /// clients use.
    const REDIS_VERSION: &'static str = crate::REDIS_COMPAT_VERSION;

    /// The `server` field of `HELLO`'s reply. Clients check it with the version: redis-py
    /// 8 enables its client-side cache only for a server that says `redis`, so a server
    /// that implements what that cache needs says so (`infralab_server` still names it).
    const HELLO_SERVER: &'static str = "infralab";

    /// Short name for logs and `INFO` (`"kv"`, `"broker"`).
    fn name(&self) -> &'static str;

    /// The commands this server implements; `COMMAND` lists them and the service checks
    /// their arity before `execute` is called.
    fn commands(&self) -> &'static [CommandSpec];

    /// Executes one command.
    fn execute(
        &self,
        client: &mut Client<Self::Session>,
        args: Args,
    ) -> impl Future<Output = Reply> + Send;

    /// Executes one command at once if it needs no waiting, or hands `args` back
    /// (`Err`) for [`Self::execute`]. The connection tries this first.
    ///
    /// Why a second, synchronous entry point: most commands of an in-memory server
    /// never wait, but an `async fn` still builds a future for each one, and a server's
    /// future nests inside the connection's (its size is that of its largest waiting
    /// branch — a blocking pop, a disk flush), so every request copied it a few times
    /// on the way to being polled: about 250 instructions of `memcpy` per `GET` in
    /// kv's profile. The default takes nothing this way.
    fn execute_now(&self, _client: &mut Client<Self::Session>, args: Args) -> Result<Reply, Args> {
        Err(args)
    }

    /// A command was refused before [`Self::execute`] saw it: unknown, wrong number of
    /// arguments, or not authenticated. A server queueing a `MULTI` transaction marks it
    /// failed here, so that its `EXEC` answers `EXECABORT` as Redis's does.
    fn refused(&self, _session: &mut Self::Session) {}

    /// Waits for the next push to this client. The default never pushes.
    fn next_push(&self, _session: &mut Self::Session) -> impl Future<Output = Push> + Send {
        std::future::pending()
    }

    /// A push already waiting for this client, taken without waiting. The connection
    /// calls it after each command, before writing the command's reply, so pushes and
    /// replies reach the client in the order they were produced (a subscriber that
    /// publishes to its own channel sees the message before the `PUBLISH` reply, and no
    /// message queued before an `UNSUBSCRIBE` arrives after its confirmation), as in Redis.
    fn pending_push(&self, _session: &mut Self::Session) -> Option<Bytes> {
        None
    }

    /// Called once the connection has executed every request it had buffered, before it
    /// writes their replies (and before any write of replies cut short: a pipeline whose
    /// replies outgrew the output buffer, a closing error). Pub/sub wakes the subscribers
    /// that a pipeline of `PUBLISH`es reached here: once per batch, not once per message;
    /// kv writes its journal here, so no reply leaves before its write reached the kernel.
    fn batch_executed(&self, _session: &mut Self::Session) {}

    /// `HELLO` switched the connection to another protocol: pushes encoded from now on
    /// must use it.
    fn protocol_changed(&self, _session: &mut Self::Session, _protocol: Protocol) {}

    /// Sections this server adds to `INFO` (fields of a section named like a built-in
    /// one, such as `stats`, are appended to it).
    fn info(&self) -> Vec<InfoSection> {
        Vec::new()
    }

    /// Runtime parameters for `CONFIG GET`, as `(name, value)`.
    fn config_get(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// `CONFIG SET name value`. `None`: not a parameter of this server.
    fn config_set(&self, _name: &str, _value: &str) -> Option<Result<(), String>> {
        None
    }

    /// `CONFIG RESETSTAT`: reset the server's own `INFO` counters (the service resets its
    /// own: commands processed, connections received, bytes).
    fn reset_stats(&self) {}

    /// Called once after the last connection has finished, before `run` returns:
    /// flush to disk here.
    fn shutdown(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_bytes_are_copied_for_resp2_and_re_encoded_for_resp3() {
        let null = || Settled::Resp2(Bytes::from_static(b"$-1\r\n"));
        let mut out = bytes::BytesMut::new();
        null().encode(Protocol::Resp2, &mut out);
        assert_eq!(&out[..], b"$-1\r\n");
        out.clear();
        null().encode(Protocol::Resp3, &mut out);
        assert_eq!(&out[..], b"_\r\n");
        assert_eq!(null().into_frame(), Frame::Null);
    }

    #[test]
    fn resp3_bytes_are_copied_for_resp3_and_lowered_for_resp2() {
        let map = || Settled::Resp3(Bytes::from_static(b"%1\r\n$1\r\nf\r\n,1.5\r\n"));
        let mut out = bytes::BytesMut::new();
        map().encode(Protocol::Resp3, &mut out);
        assert_eq!(&out[..], b"%1\r\n$1\r\nf\r\n,1.5\r\n");
        out.clear();
        map().encode(Protocol::Resp2, &mut out);
        assert_eq!(&out[..], b"*2\r\n$1\r\nf\r\n$3\r\n1.5\r\n");
    }

    #[test]
    fn several_replies_in_one_are_re_encoded_one_by_one() {
        let batch = || Settled::Resp2(Bytes::from_static(b"+OK\r\n$-1\r\n:3\r\n"));
        let mut out = bytes::BytesMut::new();
        batch().encode(Protocol::Resp2, &mut out);
        assert_eq!(&out[..], b"+OK\r\n$-1\r\n:3\r\n");
        out.clear();
        batch().encode(Protocol::Resp3, &mut out);
        assert_eq!(&out[..], b"+OK\r\n_\r\n:3\r\n");
        out.clear();
        Settled::Resp2(Bytes::from_static(b"+OK\r\n$5\r\nab")).encode(Protocol::Resp3, &mut out);
        assert_eq!(&out[..], b"+OK\r\n-ERR malformed reply from backend\r\n");
    }

    #[test]
    fn reply_parts_are_joined_for_resp2_and_re_encoded_for_resp3() {
        let parts = || {
            Settled::Resp2Parts(vec![
                Bytes::from_static(b"*2\r\n$3\r\n"),
                Bytes::from_static(b"abc"),
                Bytes::from_static(b"\r\n$-1\r\n"),
            ])
        };
        let mut out = bytes::BytesMut::new();
        parts().encode(Protocol::Resp2, &mut out);
        assert_eq!(&out[..], b"*2\r\n$3\r\nabc\r\n$-1\r\n");
        out.clear();
        parts().encode(Protocol::Resp3, &mut out);
        assert_eq!(&out[..], b"*2\r\n$3\r\nabc\r\n_\r\n");
    }
}

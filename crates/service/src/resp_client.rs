//! A minimal async RESP client: what a server uses to talk to another server over the
//! network (cache → origin, router → shards, bridge → broker, replica → primary) and what
//! the `ping` healthcheck uses. It reuses `proto`'s encoder and reply parser.
//!
//! Requests can be pipelined: [`RespClient::queue`] several, [`RespClient::flush`] once,
//! then [`RespClient::read_reply`] the same number of times.

use std::io;

use bytes::{Bytes, BytesMut};
use proto::{Frame, FrameParser, Limits, Mode, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};

pub struct RespClient {
    stream: TcpStream,
    input: BytesMut,
    output: BytesMut,
    limits: Limits,
    /// Keeps its place in a reply that arrives over many reads.
    replies: FrameParser,
}

impl RespClient {
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(RespClient {
            stream,
            input: BytesMut::with_capacity(16 * 1024),
            output: BytesMut::with_capacity(4 * 1024),
            limits: Limits::default(),
            replies: FrameParser::default(),
        })
    }

    /// Appends a request (an array of bulk strings) to the output buffer.
    pub fn queue<I, B>(&mut self, words: I)
    where
        I: IntoIterator<Item = B>,
        B: Into<Bytes>,
    {
        Frame::bulk_array(words).encode(Protocol::Resp2, &mut self.output);
    }

    /// Appends an already-built frame.
    pub fn queue_frame(&mut self, frame: &Frame) {
        frame.encode(Protocol::Resp2, &mut self.output);
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> io::Result<()> {
        self.stream.write_all(&self.output).await?;
        self.output.clear();
        Ok(())
    }

    /// Reads the next reply.
    pub async fn read_reply(&mut self) -> io::Result<Frame> {
        loop {
            match self
                .replies
                .next(&mut self.input, &self.limits, Mode::Reply)
            {
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) => {}
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
            self.input.reserve(16 * 1024);
            if self.stream.read_buf(&mut self.input).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed by server",
                ));
            }
        }
    }

    /// Sends one request and reads its reply.
    pub async fn call<I, B>(&mut self, words: I) -> io::Result<Frame>
    where
        I: IntoIterator<Item = B>,
        B: Into<Bytes>,
    {
        self.queue(words);
        self.flush().await?;
        self.read_reply().await
    }
}

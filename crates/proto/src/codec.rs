//! The [`tokio_util::codec`] adapter: [`RespCodec`] plugs the parser and encoder into
//! `Framed`, `FramedRead` and `FramedWrite`. Servers in this workspace drive the parser
//! directly (see `service::connection`) to batch pipelined replies into one write;
//! clients such as the shard router's backend pool use the codec.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::decode::{FrameParser, Limits, Mode, ProtocolError};
use crate::frame::{Frame, Protocol};

/// RESP decoder and encoder with limits, a mode (request or reply) and a dialect.
#[derive(Debug, Clone)]
pub struct RespCodec {
    pub limits: Limits,
    pub mode: Mode,
    pub protocol: Protocol,
    /// How far into a partly arrived frame decoding has got.
    parser: FrameParser,
}

impl RespCodec {
    /// For a server reading requests.
    pub fn server(limits: Limits) -> Self {
        RespCodec {
            limits,
            mode: Mode::Request,
            protocol: Protocol::Resp2,
            parser: FrameParser::default(),
        }
    }

    /// For a client reading replies.
    pub fn client() -> Self {
        RespCodec {
            limits: Limits::default(),
            mode: Mode::Reply,
            protocol: Protocol::Resp2,
            parser: FrameParser::default(),
        }
    }
}

/// Decoding fails on malformed input or on the socket itself.
#[derive(Debug)]
pub enum CodecError {
    Protocol(ProtocolError),
    Io(std::io::Error),
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CodecError::Protocol(e) => e.fmt(f),
            CodecError::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CodecError {}

impl From<std::io::Error> for CodecError {
    fn from(e: std::io::Error) -> Self {
        CodecError::Io(e)
    }
}

impl From<ProtocolError> for CodecError {
    fn from(e: ProtocolError) -> Self {
        CodecError::Protocol(e)
    }
}

impl Decoder for RespCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        Ok(self.parser.next(src, &self.limits, self.mode)?)
    }
}

impl Encoder<Frame> for RespCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        frame.encode(self.protocol, dst);
        Ok(())
    }
}

impl Encoder<&Frame> for RespCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        frame.encode(self.protocol, dst);
        Ok(())
    }
}

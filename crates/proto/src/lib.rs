//! # proto — the Redis serialization protocol (RESP2 and RESP3)
//!
//! Every infralab server speaks RESP, so one codec is read once and `redis-cli` works
//! everywhere. The flow a request takes, as in tokio's mini-redis:
//!
//! ```text
//! bytes ──decode──▶ Frame ──Args::from_frame──▶ Args ──command parser──▶ engine call
//!                                                                          │
//! bytes ◀──encode── Frame ◀────────────── reply ───────────────────────────┘
//! ```
//!
//! - [`frame`]: the value types and the encoder (RESP3 types lowered for RESP2 clients).
//! - [`decode`]: the streaming parser with limits; [`codec`] wraps it for `tokio_util`.
//! - [`inline`]: telnet-style command lines.
//! - [`args`]: a cursor over a command's arguments with Redis's error wording.
//! - [`glob`]: Redis's pattern language (KEYS, SCAN MATCH, PSUBSCRIBE, CONFIG GET).
#![forbid(unsafe_code)]

pub mod args;
pub mod codec;
pub mod decode;
pub mod frame;
pub mod glob;
pub mod inline;
pub mod request;

pub use args::{Args, CommandError};
pub use codec::{CodecError, RespCodec};
pub use decode::{FrameParser, Limits, Mode, ProtocolError, frame_len, parse_frame};
pub use frame::{Frame, Protocol, encode_bulk_array, encode_command};
pub use request::RequestParser;

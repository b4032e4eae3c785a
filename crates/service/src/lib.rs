//! # service — what every infralab server shares
//!
//! A server crate implements [`Server`]: its command table, how to execute a command, and
//! optionally its INFO sections, CONFIG parameters and a shutdown hook. Everything else a
//! Redis-protocol server needs is here, written once:
//!
//! - [`listener`]: bind, accept, `--maxclients`, graceful shutdown that drains connections.
//! - [`connection`]: one task per client that reads every pipelined request available,
//!   executes them in order and writes all replies with one flush.
//! - [`builtin`]: the connection-level commands every server answers the same way — PING,
//!   ECHO, QUIT, HELLO, AUTH, CLIENT, COMMAND, CONFIG, INFO, SELECT 0.
//! - [`settings`]: the shared command-line flags (`--bind`, `--port`, `--requirepass`...).
//! - [`protected`]: protected mode, the rule that refuses remote clients of a server
//!   exposed without a password.
//! - [`protocol_port`]: the port flag and accept loop of a second protocol's listener
//!   (Kafka on the stream server, beanstalkd and SQS on the broker).
//! - [`read_buffer`]: the read buffer a connection takes per batch, one spare per thread
//!   passed from connection to connection.
//! - [`telemetry`]: logging setup and the signal handler.
#![forbid(unsafe_code)]

pub mod builtin;
pub mod client;
pub mod command_table;
pub mod connection;
pub mod http1;
pub mod info;
pub mod listener;
pub mod ping;
pub mod protected;
pub mod protocol_port;
pub mod read_buffer;
pub mod resp_client;
pub mod server;
pub mod settings;
pub mod telemetry;

pub use client::Client;
pub use command_table::CommandSpec;
pub use info::InfoSection;
pub use listener::{Running, spawn, spawn_on_own_thread, spawn_on_own_thread_with};
pub use resp_client::RespClient;
pub use server::{Deferred, Push, Reply, Server, Settled};
pub use settings::ServiceArgs;
pub use tokio_util::sync::CancellationToken;

/// The error type of a server's `run`: any error, sendable across tasks.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The Redis version infralab reports where clients look for one (`INFO`, `HELLO`).
/// Client libraries enable features by this number; infralab implements the Redis 7
/// behaviour of every command it has.
pub const REDIS_COMPAT_VERSION: &str = "7.2.0";

/// infralab's own version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

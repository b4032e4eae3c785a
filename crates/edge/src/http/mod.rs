//! What the three HTTP servers share: the listener with its limits, reading a bounded
//! body, forwarding to an upstream, and the header rules of a proxy.

pub mod body;
pub mod headers;
pub mod listener;
pub mod protected;
pub mod tls;
pub mod upstream;

pub use body::{Body, read_body, text};
pub use listener::{Handler, HttpArgs, Running, spawn};
pub use tls::{Tls, TlsArgs};
pub use upstream::{Upstream, UpstreamError};

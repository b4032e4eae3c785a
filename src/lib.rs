//! The `infralab` library: what the binary composes beyond the server crates — today the
//! demos (`infralab demo <scenario>`), which replay the course's scenarios against the servers
//! and return what happened, so `tests/demo_*.rs` can check it.
#![forbid(unsafe_code)]

pub mod demo;

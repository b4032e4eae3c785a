//! The edge's cache engine: RFC 9111's rules as plain functions and data, no sockets.
//! Read it in this order:
//!
//! 1. [`directives`] — `Cache-Control` parsed into [`CacheControl`].
//! 2. [`storable`] — may a shared cache store this response at all? (§3)
//! 3. [`freshness`] — freshness lifetime (s-maxage, max-age, Expires, heuristic) and the
//!    age calculation (§4.2).
//! 4. [`vary`] — the secondary cache key (§4.1).
//! 5. [`reuse`] — may a stored response answer this request now: fresh, stale allowed,
//!    stale-while-revalidate, or validate first (§4, RFC 5861)?
//! 6. [`validate`] — conditional requests to the origin, merging a 304, and answering
//!    clients' conditional requests (§4.3).
//! 7. [`store`] — the bounded store: variants per URL, LRU eviction, purge by URL or tag.
//! 8. [`partial`] — byte ranges, `206` responses stored as pieces and combined (§3.3, §3.4).
//! 9. [`collapse`] — one origin request for N concurrent misses.
//!
//! Time is passed in (`now: SystemTime`), so every rule is tested with a fixed clock.

pub mod collapse;
pub mod directives;
pub mod freshness;
pub mod partial;
pub mod reuse;
pub mod storable;
pub mod store;
pub mod validate;
pub mod vary;

pub use directives::CacheControl;
pub use reuse::Reuse;
pub use store::{Store, Stored};

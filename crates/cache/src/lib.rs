#![forbid(unsafe_code)]
pub mod frequency_sketch;
pub mod lru;
pub mod memory;
pub mod noeviction;
pub mod policy;
pub mod random;
pub mod store;
pub mod tinylfu;
pub mod ttl;

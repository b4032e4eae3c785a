//! # Memory accounting: what `used_memory` counts
//!
//! `--maxmemory` bounds the bytes the *data* costs, estimated per entry as
//!
//! ```text
//! entry_size = key.len() + value.len() + ENTRY_OVERHEAD
//! ```
//!
//! where [`ENTRY_OVERHEAD`] is the bookkeeping every entry carries, computed from the real
//! type sizes on this platform (166 bytes on x86-64; `INFO memory` shows it as
//! `entry_overhead_bytes`):
//!
//! | part | why |
//! |---|---|
//! | slab slot (`Option<Entry>`, one 64-byte line) | the entry record: hash, expiry, and the key and value themselves if small, else a handle to them |
//! | hash-table bucket (a `Slot`, + its share of empty buckets at load 7/8, + 1 control byte) | key → slot index |
//! | expiry index node (`(u64, Slot)` + B-tree node share) | active expiry, entries with a TTL |
//! | policy bookkeeping (the largest policy's per-slot record) | links, segment, hash, size |
//! | two heap allocation headers | the key-and-value buffer, and the reference count a large value gets when first read |
//!
//! The estimate is what `INFO memory` reports as `used_memory`, and it is *exact with
//! respect to itself*: the store adds an entry's size when it is written and subtracts the
//! same number when it leaves, so the bound is enforced precisely. It is not the process's
//! RSS: connection buffers, the frequency sketch (32 bytes per entry it is sized for), the slab's spare capacity
//! and allocator fragmentation are not counted — as in Redis, whose `used_memory` also
//! excludes fragmentation, you leave headroom between `maxmemory` and the machine.
//!
//! Redis's own per-key overhead is similar in spirit (dictEntry + robj + sds headers,
//! ~50-70 bytes for small strings, plus its expires dict). Its `used_memory` also includes
//! a fixed baseline of about 1 MB, so a like-for-like comparison gives Redis its baseline
//! on top of the budget (`bench/cache.sh` does).

use std::mem::size_of;

use crate::entry::Entry;
use crate::policy::Slot;

/// A heap allocation's bookkeeping in a typical allocator (size class rounding included).
const ALLOCATION_HEADER: usize = 16;

/// The largest per-slot record a policy keeps (W-TinyLFU: two links + a node).
const POLICY_PER_SLOT: usize = 2 * size_of::<Slot>() + 24;

/// Bookkeeping bytes charged to every entry, on top of its key and value.
pub const ENTRY_OVERHEAD: u64 = (size_of::<Option<Entry>>()
    + size_of::<Slot>() + size_of::<Slot>().div_ceil(7) // a table at most 7/8 full
    + 1
    + 2 * size_of::<(u64, Slot)>()
    + POLICY_PER_SLOT
    + 2 * ALLOCATION_HEADER) as u64;

/// The accounted size of an entry.
pub fn entry_size(key_len: usize, value_len: usize) -> u64 {
    (key_len + value_len) as u64 + ENTRY_OVERHEAD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overhead_is_plausible() {
        assert!((100..400).contains(&ENTRY_OVERHEAD), "{ENTRY_OVERHEAD}");
        assert_eq!(entry_size(3, 5), 8 + ENTRY_OVERHEAD);
    }
}

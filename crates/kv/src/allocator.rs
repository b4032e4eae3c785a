//! Giving freed memory back to the operating system.
//!
//! Freeing a value does not shrink the process: `free` hands the memory to the
//! allocator, which keeps it for the next allocation, and returns it to the operating
//! system (`madvise`, "purging") only later. The `infralab` binary links mimalloc
//! (as Redis links jemalloc), which purges freed memory once it has been unused for a
//! delay (a second), but only when it next does work of its own: allocating or freeing a
//! page. A server that has just deleted a 512 MiB value and then sits idle never gives
//! mimalloc that chance, and keeps the 512 MiB for as long as it stays idle (Redis has
//! the same problem with jemalloc and a `MEMORY PURGE` command for it).
//!
//! So once a second kv does the smallest piece of page work there is: it allocates a
//! block too large for mimalloc's size classes (a page of its own, never touched, so it
//! costs no memory) and frees it, which lets mimalloc purge whatever has waited long
//! enough. Safe Rust cannot call the allocator's own `mi_collect`; this gets the same
//! effect through the public allocation interface.

use std::time::Duration;

use service::CancellationToken;

/// Larger than mimalloc's largest size class (512 KiB): a block of its own pages.
const NUDGE: usize = 4 * 1024 * 1024;

/// How often: mimalloc's purge delay.
const EVERY: Duration = Duration::from_secs(1);

/// Lets the allocator return memory freed at least its purge delay (a second) ago.
pub fn return_freed_memory() {
    let block: Vec<u8> = Vec::with_capacity(NUDGE);
    // Keep the compiler from eliding the allocation as unused.
    drop(std::hint::black_box(block));
}

/// [`return_freed_memory`] once a second until `shutdown`.
pub async fn run(shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => return_freed_memory(),
        }
    }
}

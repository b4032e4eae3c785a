#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! With `--dir`, a large value deleted from memory must not stay resident in the
//! checkpoint's cache until the next `SAVE`: a write that frees a lot makes the deletion
//! folded soon (`Storage::freed`), and sled lets go of the value's pages.
//!
//! RSS of this test process (kv runs in it), read from `/proc`. The test binary uses the
//! system allocator, which returns a freed block this large to the kernel at once, so RSS
//! shows what is still referenced. One test in its own file: no other test's memory moves
//! RSS meanwhile. The workspace's `tests/kv_memory.rs` checks the real binary.

mod common;

use std::time::{Duration, Instant};

use common::{call, connect, int, start, temp_dir};

const SIZE: u64 = 64 * 1024 * 1024;

fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// Waits (at most 20 s) for RSS to be at most `bound`; fails with what it was.
async fn rss_falls_to(bound: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = rss();
        if now <= bound {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: RSS {} MiB, expected at most {} MiB",
            now >> 20,
            bound >> 20
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_large_value_leaves_memory_without_a_save() {
    let dir = temp_dir("memory-after-del");
    let server = start(&["--dir", dir.to_str().unwrap()]).await;
    let mut c = connect(&server).await;
    let base = rss();
    let offset = (SIZE - 1).to_string();
    assert_eq!(
        call(&mut c, &["SETRANGE", "big", &offset, "x"]).await,
        int(SIZE as i64)
    );
    // Folded into the checkpoint: memory and sled's cache each hold a copy now.
    assert_eq!(
        call(&mut c, &["SAVE"]).await,
        proto::Frame::Simple("OK".into())
    );
    assert!(rss() > base + SIZE * 3 / 2, "both copies are resident");
    assert_eq!(call(&mut c, &["DEL", "big"]).await, int(1));
    // No SAVE: the deletion is folded on its own, and both copies go.
    rss_falls_to(base + SIZE / 2, "after DEL").await;
    server.stop().await;
    // And the checkpoint no longer has it.
    let server = start(&["--dir", dir.to_str().unwrap()]).await;
    let mut c = connect(&server).await;
    assert_eq!(call(&mut c, &["EXISTS", "big"]).await, int(0));
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

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

use common::{call, connect, int, start, temp_dir};
use testkit::{rss, rss_falls_to};

const SIZE: u64 = 64 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_large_value_leaves_memory_without_a_save() {
    let dir = temp_dir("memory-after-del");
    let server = start(&["--dir", dir.to_str().unwrap()]).await;
    let mut c = connect(&server).await;
    let base = rss("self");
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
    assert!(
        rss("self") > base + SIZE * 3 / 2,
        "both copies are resident"
    );
    assert_eq!(call(&mut c, &["DEL", "big"]).await, int(1));
    // No SAVE: the deletion is folded on its own, and both copies go.
    rss_falls_to("self", base + SIZE / 2, "after DEL").await;
    server.stop().await;
    // And the checkpoint no longer has it.
    let server = start(&["--dir", dir.to_str().unwrap()]).await;
    let mut c = connect(&server).await;
    assert_eq!(call(&mut c, &["EXISTS", "big"]).await, int(0));
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

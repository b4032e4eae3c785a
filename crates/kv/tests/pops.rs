#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! The multi-key pops, SORT ... STORE and MOVE survive a restart: after `SHUTDOWN
//! NOSAVE`, which leaves the journal unfolded as a crash right after the last fsync
//! does (the restart replays it), and after `SHUTDOWN SAVE` (the restart loads the
//! checkpoint). A pop served to a blocked client is journaled like any other.

mod common;

use common::{POP_STEPS, call, check_popped, connect, int, pop_dataset, start, temp_dir};
use proto::Frame;
use service::Running;

/// Sends `SHUTDOWN ...`: no reply, the connection closes, and the server stops.
async fn shut_down(server: Running, how: &'static str) {
    let mut c = connect(&server).await;
    let reply = c.call(["SHUTDOWN", how]).await;
    assert!(reply.is_err(), "SHUTDOWN answered {reply:?}");
    server.wait().await;
}

#[tokio::test]
async fn pops_sorts_and_moves_survive_restarts() {
    let dir = temp_dir("pops");
    let dir_arg = dir.to_str().unwrap();
    let server = start(&["--dir", dir_arg, "--fsync", "always"]).await;
    let mut c = connect(&server).await;
    // A client blocked before the data exists is served by the ZADD: its pop is a write.
    let mut blocked = connect(&server).await;
    blocked.queue(["BZPOPMAX", "pq", "0"]);
    blocked.flush().await.unwrap();
    loop {
        let info = call(&mut c, &["INFO", "clients"]).await;
        if common::frame_text(&info).contains("blocked_clients:1") {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(
        call(&mut c, &["ZADD", "pq", "1", "x", "2", "y"]).await,
        int(2)
    );
    assert_eq!(
        blocked.read_reply().await.unwrap(),
        Frame::Array(vec![
            common::bulk("pq"),
            common::bulk("y"),
            common::bulk("2")
        ])
    );
    for step in POP_STEPS {
        let reply = call(&mut c, step).await;
        assert!(!matches!(reply, Frame::Error(_)), "{step:?}: {reply:?}");
    }
    check_popped(&server).await;
    let before = pop_dataset(&server).await;
    shut_down(server, "NOSAVE").await;

    let server = start(&["--dir", dir_arg]).await;
    assert_eq!(pop_dataset(&server).await, before);
    check_popped(&server).await;
    let mut c = connect(&server).await;
    assert_eq!(
        call(&mut c, &["ZRANGE", "pq", "0", "-1"]).await,
        Frame::Array(vec![common::bulk("x")])
    );
    shut_down(server, "SAVE").await;

    let server = start(&["--dir", dir_arg]).await;
    assert_eq!(pop_dataset(&server).await, before);
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

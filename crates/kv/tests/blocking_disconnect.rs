//! A client that hangs up while blocked in BLPOP is unblocked, as in Redis: the next push
//! stays in the list instead of being handed to a dead connection.
#![allow(clippy::unwrap_used)] // test code: a panic is a test failure

mod common;

use std::time::Duration;

use common::{bulk, call, connect, int, start};

fn blocked_clients(info: &proto::Frame) -> i64 {
    let text = String::from_utf8_lossy(info.as_bytes().unwrap()).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("blocked_clients in {text}"))
}

#[tokio::test]
async fn a_disconnected_blocked_client_is_never_served() {
    let server = start(&[]).await;
    let mut admin = connect(&server).await;

    let mut gone = connect(&server).await;
    gone.queue(["BLPOP", "jobs", "0"]);
    gone.flush().await.unwrap();
    // Wait until the server has it blocked.
    tokio::time::timeout(Duration::from_secs(10), async {
        while blocked_clients(&call(&mut admin, &["INFO", "clients"]).await) != 1 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the client blocks");

    drop(gone);
    // The server notices the hang-up and unblocks it...
    tokio::time::timeout(Duration::from_secs(10), async {
        while blocked_clients(&call(&mut admin, &["INFO", "clients"]).await) != 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the hung-up client is unblocked");

    // ...so a push is kept, and a live blocked client gets it.
    assert_eq!(call(&mut admin, &["RPUSH", "jobs", "a"]).await, int(1));
    assert_eq!(call(&mut admin, &["LLEN", "jobs"]).await, int(1));
    let mut worker = connect(&server).await;
    let got = call(&mut worker, &["BLPOP", "jobs", "1"]).await;
    assert_eq!(got, proto::Frame::Array(vec![bulk("jobs"), bulk("a")]));
    server.stop().await;
}

#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! `infralab demo config-push --against local`: all ten subscribers get the update by push,
//! and the slow one reads it from the queue the bridge fills.

use infralab::demo::{Against, Trace, config_push};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_servers_get_the_push_and_the_slow_one_reads_the_queue() {
    let mut trace = Trace::new();
    let out = config_push::run(Against::Local, &mut trace).await.unwrap();
    assert_eq!(out.receivers, 11, "ten servers and the bridge");
    assert_eq!(out.servers_updated, 10);
    assert!(out.slow_server_got_it);
    assert_eq!(
        out.older_messages, 0,
        "a fresh broker holds only this update"
    );
}

#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! Graceful shutdown of the real binary: SIGTERM with clients connected ends the process
//! promptly with exit status 0.

mod kv_process;

use std::time::Duration;

use kv_process::KvProcess;
use proto::Frame;
use service::RespClient;

#[tokio::test]
async fn kv_exits_cleanly_on_sigterm_with_clients_connected() {
    let mut server = KvProcess::start(&[]);
    let mut clients = Vec::new();
    for i in 0..3 {
        let mut c = RespClient::connect(server.addr).await.unwrap();
        let set = ["SET".to_string(), format!("k{i}"), "v".to_string()];
        assert_eq!(c.call(set).await.unwrap(), Frame::ok());
        clients.push(c);
    }
    server.signal("TERM");
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("kv did not exit within 5 s of SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    let log = server.log();
    assert!(log.contains("shutting down"), "log: {log}");
    drop(clients);
}

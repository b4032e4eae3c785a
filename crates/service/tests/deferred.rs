#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! `Reply::Deferred`: a server (a proxy) answers later; the connection keeps executing the
//! pipeline and still writes every reply in request order.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use proto::{Args, Frame};
use service::{
    CancellationToken, Client, CommandSpec, Deferred, Reply, RespClient, Server, ServiceArgs,
};

/// `SLOW ms text`: replies `text` after `ms` milliseconds, without blocking the pipeline.
struct Slow;

static COMMANDS: &[CommandSpec] = &[CommandSpec::new("slow", 3, &[], "test", "Late echo.")];

impl Server for Slow {
    type Session = ();

    fn name(&self) -> &'static str {
        "slow"
    }

    fn commands(&self) -> &'static [CommandSpec] {
        COMMANDS
    }

    async fn execute(&self, _client: &mut Client<()>, mut args: Args) -> Reply {
        if args.name() != "slow" {
            return Reply::Unhandled(args);
        }
        let ms = args.next_int().unwrap() as u64;
        let text = args.next_bytes().unwrap();
        Reply::Deferred(Deferred::new(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Frame::Bulk(text)
        }))
    }
}

#[tokio::test]
async fn deferred_replies_keep_request_order_among_immediate_ones() {
    let server = service::spawn(
        Arc::new(Slow),
        &ServiceArgs::ephemeral(),
        0,
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let mut c = RespClient::connect(server.addr()).await.unwrap();
    c.queue(["SLOW", "60", "first"]);
    c.queue(["PING"]);
    c.queue(["SLOW", "0", "third"]);
    c.queue(["SLOW", "30", "fourth"]);
    c.queue(["ECHO", "fifth"]);
    c.flush().await.unwrap();
    let mut replies = Vec::new();
    for _ in 0..5 {
        replies.push(c.read_reply().await.unwrap());
    }
    let bulk = |s: &'static str| Frame::Bulk(Bytes::from_static(s.as_bytes()));
    assert_eq!(
        replies,
        [
            bulk("first"),
            Frame::simple("PONG"),
            bulk("third"),
            bulk("fourth"),
            bulk("fifth")
        ]
    );
    server.stop().await;
}

#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! Bitmaps and HyperLogLog are strings: they survive a restart (`--dir`) like any other
//! value, keep their TTL through in-place writes, and answer `TYPE` with `string`.

mod common;

use common::{bulk, call, connect, int, start, temp_dir};
use proto::Frame;

/// The writes of every bit-level command, and what each key holds afterwards.
const WRITES: &[&[&str]] = &[
    &["SETBIT", "daily", "7", "1"],
    &["SETBIT", "daily", "1000", "1"],
    &["SETBIT", "daily", "7", "0"],
    &[
        "BITFIELD", "counters", "SET", "u4", "#0", "9", "INCRBY", "u4", "#1", "3",
    ],
    &["SET", "a", "\u{1}\u{2}"],
    &["BITOP", "XOR", "mixed", "a", "daily"],
    &["PFADD", "visitors", "alice", "bob", "carol"],
    &["PFADD", "other", "dave", "alice"],
    &["PFMERGE", "union", "visitors", "other"],
];

#[tokio::test]
async fn bitmaps_and_sketches_survive_a_restart() {
    let dir = temp_dir("bits");
    let dir_arg = dir.to_str().unwrap();
    let server = start(&["--dir", dir_arg]).await;
    let mut c = connect(&server).await;
    for words in WRITES {
        let reply = call(&mut c, words).await;
        assert!(!matches!(reply, Frame::Error(_)), "{words:?}: {reply:?}");
    }
    assert_eq!(call(&mut c, &["EXPIRE", "daily", "1000"]).await, int(1));
    assert_eq!(call(&mut c, &["SETBIT", "daily", "8", "1"]).await, int(0));
    // A single-key PFCOUNT caches its estimate in the sketch: a write that must persist too.
    assert_eq!(call(&mut c, &["PFCOUNT", "union"]).await, int(4));
    assert_eq!(call(&mut c, &["BITCOUNT", "daily"]).await, int(2));
    let keys = ["daily", "counters", "mixed", "visitors", "union"];
    let mut before = Vec::new();
    for key in keys {
        before.push(call(&mut c, &["GET", key]).await);
    }
    server.stop().await;

    let server = start(&["--dir", dir_arg]).await;
    let mut c = connect(&server).await;
    for (key, value) in keys.iter().zip(&before) {
        assert_eq!(&call(&mut c, &["GET", key]).await, value, "{key}");
    }
    assert_eq!(call(&mut c, &["GETBIT", "daily", "1000"]).await, int(1));
    assert_eq!(call(&mut c, &["GETBIT", "daily", "7"]).await, int(0));
    assert!(matches!(call(&mut c, &["TTL", "daily"]).await, Frame::Integer(t) if t > 990));
    assert_eq!(
        call(
            &mut c,
            &["BITFIELD", "counters", "GET", "u4", "#0", "GET", "u4", "#1"]
        )
        .await,
        Frame::Array(vec![int(9), int(3)])
    );
    assert_eq!(call(&mut c, &["PFCOUNT", "union"]).await, int(4));
    assert_eq!(
        call(&mut c, &["PFCOUNT", "visitors", "other"]).await,
        int(4)
    );
    assert_eq!(call(&mut c, &["PFADD", "union", "bob"]).await, int(0));
    assert_eq!(call(&mut c, &["PFADD", "union", "erin"]).await, int(1));
    assert_eq!(call(&mut c, &["PFCOUNT", "union"]).await, int(5));
    assert_eq!(
        call(&mut c, &["TYPE", "visitors"]).await,
        Frame::Simple("string".into())
    );
    assert_eq!(
        call(&mut c, &["GETRANGE", "visitors", "0", "3"]).await,
        bulk("HYLL")
    );
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

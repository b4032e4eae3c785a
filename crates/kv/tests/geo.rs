#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! Geo sets and the sorted sets the STORE forms compute are sorted sets like any other:
//! they survive a restart (`--dir`) with their scores (the geohashes), their TTLs and
//! the results stored, and the searches answer the same afterwards.

mod common;

use common::{GEO_WRITES, bulk, call, connect, dataset, int, start, temp_dir};
use proto::Frame;

#[tokio::test]
async fn geo_sets_and_stored_results_survive_a_restart() {
    let dir = temp_dir("geo");
    let dir_arg = dir.to_str().unwrap();
    let server = start(&["--dir", dir_arg, "--fsync", "always"]).await;
    let mut c = connect(&server).await;
    for words in GEO_WRITES {
        let reply = call(&mut c, words).await;
        assert!(!matches!(reply, Frame::Error(_)), "{words:?}: {reply:?}");
    }
    let search = [
        "GEOSEARCH",
        "Sicily",
        "FROMMEMBER",
        "Palermo",
        "BYRADIUS",
        "300",
        "km",
        "ASC",
        "WITHDIST",
        "WITHCOORD",
    ];
    let before_search = call(&mut c, &search).await;
    let before = dataset(&server).await;
    let keys: Vec<String> = before
        .iter()
        .map(|(k, _, _)| common::frame_text(k))
        .collect();
    assert_eq!(
        keys,
        [
            "Sicily", "diff", "dists", "inter", "lex", "near", "s1", "top", "union", "z1"
        ]
    );
    server.stop().await;

    let server = start(&["--dir", dir_arg]).await;
    let mut c = connect(&server).await;
    assert_eq!(dataset(&server).await, before);
    assert_eq!(call(&mut c, &search).await, before_search);
    assert_eq!(
        call(&mut c, &["ZRANGE", "lex", "0", "-1"]).await,
        Frame::Array(vec![bulk("a"), bulk("d")])
    );
    assert_eq!(call(&mut c, &["EXISTS", "gone"]).await, int(0));
    assert!(matches!(call(&mut c, &["TTL", "near"]).await, Frame::Integer(t) if t > 990));
    assert_eq!(
        call(&mut c, &["GEOHASH", "Sicily", "Catania"]).await,
        Frame::Array(vec![bulk("sqdtr74hyu0")])
    );
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

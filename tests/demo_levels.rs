#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! `infralab demo levels --against local`: the first request misses at every level, the
//! repeat is served by the nearest level allowed to, a private response is never shared,
//! an edit purges the edges while the browser's copy stays stale, and a crowd of cold
//! requests costs the origin one request; at the database level a materialized view
//! answers like the live aggregate, stays stale after new rows until REFRESH.

use infralab::demo::{Against, Trace, levels};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_down_every_level() {
    let mut trace = Trace::new();
    let out = levels::run(Against::Local, &mut trace).await.unwrap();
    assert_eq!(out.served("eu first"), Some("MISS"));
    assert_eq!(out.served("eu browser repeat"), Some("browser"));
    assert_eq!(out.served("eu second reader"), Some("HIT"));
    assert_eq!(out.served("us first"), Some("MISS"));
    assert_eq!(out.served("us second reader"), Some("HIT"));
    // The us edge is 200 ms from the origin; its miss pays that distance.
    assert!(out.us_miss.as_millis() >= 200, "{:?}", out.us_miss);
    assert!(out.eu_miss.as_millis() >= 20, "{:?}", out.eu_miss);
    // Private: both readers reached a web server (one each: round robin); the browser kept it.
    assert_eq!(out.served("ada (eu) /api/me"), Some("MISS"));
    assert_eq!(out.served("bob (eu) /api/me"), Some("MISS"));
    assert_eq!(out.served("ada /api/me again"), Some("browser"));
    assert_eq!(out.web_servers.len(), 2, "{:?}", out.web_servers);
    // The edit: both edges purged, the edge serves v2, the browser still v1.
    assert_eq!(out.purges.len(), 2);
    assert!(
        out.purges.iter().all(|p| p.ends_with("purged 1")),
        "{:?}",
        out.purges
    );
    assert_eq!(out.served("eu after edit"), Some("MISS"));
    assert_eq!(
        (out.edge_version_after_edit, out.browser_version_after_edit),
        (2, 1)
    );
    assert_eq!(out.crowd_origin_requests, 1);
    // The database level: the materialized result equals the live one, misses the views
    // recorded after it (stale), and catches up at REFRESH.
    let db = &out.database;
    assert!(
        matches!(db.mode, "materialized view" | "summary table"),
        "{}",
        db.mode
    );
    assert_eq!(db.live_top, vec![(50, 400), (49, 392), (48, 384)]);
    assert_eq!(db.materialized_top, db.live_top);
    assert_eq!(db.live_after_views[0], (1, 1008));
    assert_eq!(db.stale_top, db.live_top, "not refreshed yet");
    assert_eq!(db.refreshed_top, db.live_after_views);
    let text = trace.lines().join("\n");
    assert!(text.contains("cache (miss) → kv"), "{text}");
}

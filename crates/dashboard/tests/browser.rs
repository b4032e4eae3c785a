#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! Issue 30's real-browser test: headless Chromium (Debian's `chromium`, which `.ci/run`
//! installs) loads the page of a dashboard over a live topology and runs its script (the
//! `/api/state` fetch, the `/events` stream, the SVG drawing); the test reads the text
//! Chromium rendered — every box says `up`, the cache panel says `hit ratio 0.50`, and a
//! produce made after the page opened arrives through the event stream — and takes a
//! screenshot (into the temp directory, or to `DASHBOARD_SCREENSHOT=path`).

mod common;

use std::path::PathBuf;

use common::chromium::{self, Browser};
use common::{metric, node, until_state};
use redis::AsyncCommands;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_renders_live_numbers() {
    let Some(chromium) = chromium::find() else {
        return;
    };
    let topology = common::start("browser").await;
    let addr = topology.dashboard.running.addr();

    // Known activity: a miss then a hit on the cache, keys through the router.
    let client = |a: &str| redis::Client::open(format!("redis://{a}")).unwrap();
    let mut cache = client(&topology.cache)
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: Option<String> = cache.get("post:1").await.unwrap();
    let _: () = cache.set("post:1", "hello").await.unwrap();
    let _: Option<String> = cache.get("post:1").await.unwrap();
    let mut router = client(&topology.router)
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for i in 0..50 {
        let _: () = router.set(format!("user:{i}"), i).await.unwrap();
    }
    until_state(addr, "the numbers the page should show", |s| {
        metric(s, "cache", "hit_ratio") == Some(0.5)
            && ["cache", "router", "kv-0", "kv-1", "stream"]
                .iter()
                .all(|n| node(s, n)["up"] == true)
    })
    .await;

    let mut browser = Browser::open(&chromium, &topology.dashboard.url()).await;
    let text = browser
        .until_text("live data", |t| {
            t.contains("live ·") && t.contains("hit ratio 0.50")
        })
        .await;
    for name in ["cache", "router", "kv-0", "kv-1", "stream"] {
        let says = browser
            .eval(&format!(
                "document.querySelector('[data-name=\"{name}\"] text.state')?.textContent"
            ))
            .await;
        assert_eq!(says, "up", "{name}'s box; the page says:\n{text}");
    }
    assert!(text.contains("Cache: hit ratio and evictions"), "{text}");
    assert!(
        text.contains("chapter: Caching (docs/chapters.md)"),
        "{text}"
    );
    let charts = browser
        .eval("document.querySelectorAll('polyline').length")
        .await;
    assert!(charts.as_u64() > Some(0), "no chart drawn:\n{text}");

    // Activity after the page opened reaches it through /events.
    let mut stream = client(&topology.stream)
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for _ in 0..3 {
        let _: redis::Value = redis::cmd("PRODUCE")
            .arg("orders")
            .arg("hello")
            .arg("PARTITION")
            .arg(0)
            .query_async(&mut stream)
            .await
            .unwrap();
    }
    browser
        .until_text("the produce, pushed to the page", |t| {
            t.contains("orders.0 3")
        })
        .await;

    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let shot = std::env::var_os("DASHBOARD_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("dashboard-{}.png", std::process::id()))
        });
    std::fs::write(&shot, &png).unwrap();
    eprintln!("screenshot: {}", shot.display());
    browser.close().await;
    topology.stop().await;
}

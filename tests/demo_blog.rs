#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! `infralab demo blog --against local`: the post lands on one shard, the cache misses once
//! then hits, and both consumer groups read the one event.

use infralab::demo::{Against, Trace, blog};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blog_write_cache_aside_and_two_consumer_groups() {
    let mut trace = Trace::new();
    let out = blog::run(Against::Local, &mut trace).await.unwrap();
    assert!(out.shard.starts_with('s'), "shard {:?}", out.shard);
    let title = out.first_read.clone().unwrap();
    assert!(title.starts_with("Why caches need TTLs"));
    assert_eq!(out.second_read.as_deref(), Some(title.as_str()));
    // First read: a miss served from the origin; second: a hit.
    assert_eq!(
        (out.cache_misses, out.cache_hits, out.origin_fetches),
        (1, 1, 1)
    );
    assert_eq!(out.hit_ratio, 0.5);
    assert_eq!(
        out.event.1, 0,
        "a fresh topic: the event is the partition's first record"
    );
    assert_eq!(
        out.groups_saw_event,
        vec![
            ("search-indexer".to_owned(), true),
            ("post-counter".to_owned(), true)
        ]
    );
    assert_eq!(out.author_posts, 1);
    // The trace narrates every step.
    let text = trace.lines().join("\n");
    for step in [
        "app → router  SET post:",
        "reader → cache  GET post:",
        "app → stream  PRODUCE posts",
        "post-counter → stream  GROUP.COMMIT",
    ] {
        assert!(text.contains(step), "missing {step:?} in\n{text}");
    }
}

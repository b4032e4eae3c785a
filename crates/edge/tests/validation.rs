//! Validation, Vary, stale extensions, invalidation and collapsing through a real edge.

mod common;

use std::time::Duration;

use common::{Lab, eventually, send};

#[tokio::test]
async fn a_stale_response_is_revalidated_and_the_304s_headers_are_stored() {
    let lab = Lab::start().await;
    // First max-age=0 (stale at once), then the origin's 304 says max-age=600.
    let path = "/test?cc=max-age=0&then=max-age=600&etag=%22v1%22";
    assert_eq!(lab.get(path, &[]).await.x_cache(), "MISS");
    let second = lab.get(path, &[]).await;
    assert_eq!(second.x_cache(), "REVALIDATED");
    assert_eq!(second.body, format!("{path} #1\n"), "body from the cache");
    assert_eq!(
        second.header("cache-control"),
        "max-age=600",
        "header from the 304"
    );
    let third = lab.get(path, &[]).await;
    assert_eq!(third.x_cache(), "HIT", "fresh again after the 304");
    assert_eq!(lab.stat("origin_requests").await, "2");
    lab.stop().await;
}

#[tokio::test]
async fn last_modified_validates_with_if_modified_since() {
    let lab = Lab::start().await;
    let path = "/test?cc=no-cache&lm=3600";
    assert_eq!(lab.get(path, &[]).await.x_cache(), "MISS");
    // no-cache: stored, but validated before every reuse.
    let reply = lab.get(path, &[]).await;
    assert_eq!(reply.x_cache(), "REVALIDATED");
    assert_eq!(reply.body, format!("{path} #1\n"));
    lab.stop().await;
}

#[tokio::test]
async fn clients_conditional_requests_are_answered_from_the_cache() {
    let lab = Lab::start().await;
    let path = "/test?cc=max-age=600&etag=%22v1%22&lm=3600";
    let first = lab.get(path, &[]).await;
    let reply = lab.get(path, &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(reply.status, 304);
    assert_eq!(reply.x_cache(), "HIT");
    assert_eq!(reply.body, "");
    assert_eq!(reply.header("etag"), "\"v1\"");
    let other = lab.get(path, &[("if-none-match", "\"v0\"")]).await;
    assert_eq!(other.status, 200);
    let since = first.header("last-modified").to_owned();
    let reply = lab
        .get(path, &[("if-modified-since", since.as_str())])
        .await;
    assert_eq!(reply.status, 304);
    assert_eq!(lab.stat("origin_requests").await, "1");
    // On a miss the client's condition is not forwarded: the edge fetches the whole
    // response (to store it) and answers the condition itself.
    let fresh = "/test?cc=max-age=600&etag=%22v2%22";
    let reply = lab.get(fresh, &[("if-none-match", "\"v2\"")]).await;
    assert_eq!((reply.status.as_u16(), reply.x_cache()), (304, "MISS"));
    assert_eq!(lab.get(fresh, &[]).await.x_cache(), "HIT");
    lab.stop().await;
}

#[tokio::test]
async fn vary_keeps_one_variant_per_request_header_value() {
    let lab = Lab::start().await;
    let path = "/test?cc=max-age=600&vary=accept-language";
    let en = [("accept-language", "en")];
    let fr = [("accept-language", "fr")];
    assert_eq!(lab.get(path, &en).await.x_cache(), "MISS");
    let french = lab.get(path, &fr).await;
    assert_eq!(french.x_cache(), "MISS");
    assert!(french.body.ends_with("lang=fr\n"));
    let english = lab.get(path, &en).await;
    assert_eq!(english.x_cache(), "HIT");
    assert!(english.body.ends_with("lang=en\n"), "{}", english.body);
    assert_eq!(
        lab.get(path, &[]).await.x_cache(),
        "MISS",
        "absent is its own variant"
    );
    // Vary: * is never reused.
    let star = "/test?cc=max-age=600&vary=*";
    lab.get(star, &[]).await;
    assert_eq!(lab.get(star, &[]).await.x_cache(), "MISS");
    lab.stop().await;
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_and_refreshes_in_the_background() {
    let lab = Lab::start().await;
    let path = "/test?cc=max-age=0,stale-while-revalidate=60&then=max-age=600&etag=%22a%22";
    lab.get(path, &[]).await;
    let stale = lab.get(path, &[]).await;
    assert_eq!(stale.x_cache(), "STALE");
    eventually("the background revalidation", || async {
        lab.stat("origin_requests").await == "2"
    })
    .await;
    assert_eq!(lab.get(path, &[]).await.x_cache(), "HIT");
    lab.stop().await;
}

#[tokio::test]
async fn stale_if_error_serves_stale_when_the_origin_is_down() {
    let lab = Lab::start().await;
    let tolerant = "/test?cc=max-age=0,stale-if-error=60";
    let strict = "/test?cc=max-age=0";
    let must = "/test?cc=max-age=0,must-revalidate,stale-if-error=60";
    for path in [tolerant, strict, must] {
        lab.get(path, &[]).await;
    }
    let Lab { web, edge } = lab;
    web.stop().await;
    let reply = common::get(edge.addr(), tolerant, &[]).await;
    assert_eq!((reply.status.as_u16(), reply.x_cache()), (200, "STALE"));
    assert_eq!(common::get(edge.addr(), strict, &[]).await.status, 502);
    // must-revalidate: never stale, and 504 when the origin cannot be asked (§5.2.2.2).
    assert_eq!(common::get(edge.addr(), must, &[]).await.status, 504);
    edge.stop().await;
}

#[tokio::test]
async fn unsafe_methods_invalidate_the_uri_and_its_location() {
    let lab = Lab::start().await;
    let page = "/test?cc=max-age=600";
    let other = "/test?cc=max-age=600&other";
    for path in [page, other] {
        lab.get(path, &[]).await;
        assert_eq!(lab.get(path, &[]).await.x_cache(), "HIT");
    }
    let post = send(lab.edge.addr(), "POST", page, &[], "edit").await;
    assert_eq!(post.status, 200);
    assert_eq!(lab.get(page, &[]).await.x_cache(), "MISS");
    // A POST elsewhere whose Location names `other`.
    let target = "/test?location=/test%3Fcc%3Dmax-age%3D600%26other";
    send(lab.edge.addr(), "POST", target, &[], "").await;
    assert_eq!(lab.get(other, &[]).await.x_cache(), "MISS");
    // Another host's URL in Location is not ours to invalidate (RFC 9111 §4.4).
    lab.get(other, &[]).await;
    let foreign = "/test?location=http://elsewhere.example/test%3Fcc%3Dmax-age%3D600%26other";
    send(lab.edge.addr(), "POST", foreign, &[], "").await;
    assert_eq!(lab.get(other, &[]).await.x_cache(), "HIT");
    lab.stop().await;
}

#[tokio::test]
async fn purge_by_url_and_by_surrogate_key() {
    let lab = Lab::start().await;
    let a = "/test?cc=max-age=600&tag=post-1%20posts";
    let b = "/test?cc=max-age=600&tag=post-2%20posts";
    for path in [a, b] {
        lab.get(path, &[]).await;
    }
    let purged = send(lab.edge.addr(), "PURGE", a, &[], "").await;
    assert_eq!(
        (purged.status.as_u16(), purged.body.as_str()),
        (200, "purged 1\n")
    );
    assert_eq!(lab.get(a, &[]).await.x_cache(), "MISS");
    let purged = send(
        lab.edge.addr(),
        "PURGE",
        "/",
        &[("surrogate-key", "posts")],
        "",
    )
    .await;
    assert_eq!(purged.body, "purged 2\n");
    assert_eq!(lab.get(a, &[]).await.x_cache(), "MISS");
    assert_eq!(lab.get(b, &[]).await.x_cache(), "MISS");
    lab.stop().await;
}

#[tokio::test]
async fn head_and_ranges_are_served_from_a_cached_get() {
    let lab = Lab::start().await;
    let path = "/test?cc=max-age=600";
    let full = lab.get(path, &[]).await;
    let head = send(lab.edge.addr(), "HEAD", path, &[], "").await;
    assert_eq!(head.x_cache(), "HIT");
    assert_eq!(head.body, "");
    assert_eq!(head.header("content-length"), full.body.len().to_string());
    let part = lab.get(path, &[("range", "bytes=0-4")]).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.x_cache(), "HIT");
    assert_eq!(part.body, full.body[..5]);
    assert_eq!(
        part.header("content-range"),
        format!("bytes 0-4/{}", full.body.len())
    );
    // A HEAD miss fills the cache with a GET.
    let cold = "/test?cc=max-age=600&head";
    assert_eq!(
        send(lab.edge.addr(), "HEAD", cold, &[], "").await.x_cache(),
        "MISS"
    );
    assert_eq!(lab.get(cold, &[]).await.x_cache(), "HIT");
    lab.stop().await;
}

/// RFC 9111 §3.3/§3.4: a `206` is stored as a piece; a range inside what is held is a HIT;
/// pieces with the same strong ETag combine, and once they cover the object it is a
/// complete response that answers a plain GET.
#[tokio::test]
async fn partial_responses_are_stored_combined_and_completed() {
    let lab = Lab::start().await;
    let path = "/test?cc=max-age=600&etag=%22r1%22&ranges=1&size=100";
    let digits = |first: usize, last: usize| -> String {
        (first..=last)
            .map(|i| char::from(b'0' + (i % 10) as u8))
            .collect()
    };
    let first = lab.get(path, &[("range", "bytes=0-39")]).await;
    assert_eq!((first.status.as_u16(), first.x_cache()), (206, "MISS"));
    assert_eq!(first.header("content-range"), "bytes 0-39/100");
    // Inside the stored piece: from the cache.
    let inside = lab.get(path, &[("range", "bytes=10-19")]).await;
    assert_eq!((inside.status.as_u16(), inside.x_cache()), (206, "HIT"));
    assert_eq!(inside.header("content-range"), "bytes 10-19/100");
    assert_eq!(inside.body, digits(10, 19));
    // Past it: the origin, and the new piece joins the first.
    let second = lab.get(path, &[("range", "bytes=40-79")]).await;
    assert_eq!((second.status.as_u16(), second.x_cache()), (206, "MISS"));
    let across = lab.get(path, &[("range", "bytes=30-49")]).await;
    assert_eq!((across.status.as_u16(), across.x_cache()), (206, "HIT"));
    assert_eq!(across.body, digits(30, 49));
    // An If-Range naming another version is not served from these pieces.
    let other = lab
        .get(path, &[("range", "bytes=0-9"), ("if-range", "\"r0\"")])
        .await;
    assert_eq!(other.x_cache(), "MISS");
    // A plain GET while only pieces are held goes to the origin...
    let origin_before = lab.stat("origin_requests").await;
    // ...but first the last piece: now the pieces cover the object.
    let last = lab.get(path, &[("range", "bytes=80-")]).await;
    assert_eq!((last.status.as_u16(), last.x_cache()), (206, "MISS"));
    let whole = lab.get(path, &[]).await;
    assert_eq!((whole.status.as_u16(), whole.x_cache()), (200, "HIT"));
    assert_eq!(whole.body, digits(0, 99));
    assert_eq!(whole.header("content-length"), "100");
    assert_eq!(whole.header("content-range"), "");
    let suffix = lab.get(path, &[("range", "bytes=-5")]).await;
    assert_eq!((suffix.status.as_u16(), suffix.x_cache()), (206, "HIT"));
    assert_eq!(suffix.body, digits(95, 99));
    assert_eq!(
        lab.stat("origin_requests")
            .await
            .parse::<u64>()
            .expect("a count"),
        origin_before.parse::<u64>().expect("a count") + 1,
        "only the last piece went to the origin"
    );
    lab.stop().await;
}

/// A range of a stale complete response revalidates it and is cut from it: the complete
/// response is not replaced by a piece.
#[tokio::test]
async fn a_range_of_a_stale_response_is_revalidated_then_cut() {
    let lab = Lab::start().await;
    let path = "/test?cc=max-age=0&etag=%22z%22&ranges=1&size=100";
    assert_eq!(lab.get(path, &[]).await.x_cache(), "MISS");
    let part = lab.get(path, &[("range", "bytes=0-9")]).await;
    assert_eq!((part.status.as_u16(), part.x_cache()), (206, "REVALIDATED"));
    assert_eq!(part.body, "0123456789");
    assert_eq!(part.header("content-range"), "bytes 0-9/100");
    let whole = lab.get(path, &[]).await;
    assert_eq!(
        (whole.status.as_u16(), whole.x_cache()),
        (200, "REVALIDATED")
    );
    assert_eq!(whole.body.len(), 100);
    lab.stop().await;
}

/// Without a strong validator nothing proves two pieces are of one version: the newer
/// piece replaces the older instead of joining it.
#[tokio::test]
async fn pieces_without_a_strong_etag_are_not_combined() {
    let lab = Lab::start().await;
    let path = "/test?cc=max-age=600&etag=W/%22r1%22&ranges=1&size=100";
    assert_eq!(
        lab.get(path, &[("range", "bytes=0-49")]).await.x_cache(),
        "MISS"
    );
    assert_eq!(
        lab.get(path, &[("range", "bytes=0-9")]).await.x_cache(),
        "HIT"
    );
    assert_eq!(
        lab.get(path, &[("range", "bytes=50-99")]).await.x_cache(),
        "MISS"
    );
    assert_eq!(
        lab.get(path, &[("range", "bytes=60-69")]).await.x_cache(),
        "HIT"
    );
    // The first piece was replaced, and the two were never made whole.
    assert_eq!(
        lab.get(path, &[("range", "bytes=0-9")]).await.x_cache(),
        "MISS"
    );
    assert_eq!(lab.get(path, &[]).await.x_cache(), "MISS");
    lab.stop().await;
}

#[tokio::test]
async fn concurrent_misses_are_collapsed_into_one_origin_request() {
    let lab = Lab::start().await;
    let path = "/test?cc=max-age=600&delay=300";
    let addr = lab.edge.addr();
    let clients: Vec<_> = (0..50)
        .map(|_| tokio::spawn(common::get(addr, path, &[])))
        .collect();
    for client in clients {
        let reply = client.await.expect("client");
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.body,
            format!("{path} #1\n"),
            "every client got fetch #1"
        );
    }
    assert_eq!(lab.stat("origin_requests").await, "1");
    lab.stop().await;
}

#[tokio::test]
async fn a_private_response_is_not_shared_with_collapsed_requests() {
    let lab = Lab::start().await;
    let path = "/test?cc=private&delay=200";
    let addr = lab.edge.addr();
    let clients: Vec<_> = (0..5)
        .map(|_| tokio::spawn(common::get(addr, path, &[])))
        .collect();
    let mut bodies = Vec::new();
    for client in clients {
        bodies.push(client.await.expect("client").body);
    }
    bodies.sort();
    bodies.dedup();
    assert_eq!(
        bodies.len(),
        5,
        "each client got its own response: {bodies:?}"
    );
    lab.stop().await;
}

#[tokio::test]
async fn memory_is_bounded_by_evicting_the_least_recently_used() {
    let lab = Lab::with(|args| args.max_memory = 4096).await;
    for i in 0..20 {
        lab.get(&format!("/test?cc=max-age=600&n={i}"), &[]).await;
    }
    let used: usize = lab.stat("used_memory").await.parse().expect("number");
    assert!(used <= 4096, "used {used}");
    assert!(lab.stat("evictions").await.parse::<u64>().expect("n") > 0);
    assert_eq!(
        lab.get("/test?cc=max-age=600&n=0", &[]).await.x_cache(),
        "MISS"
    );
    assert_eq!(
        lab.get("/test?cc=max-age=600&n=19", &[]).await.x_cache(),
        "HIT"
    );
    lab.stop().await;
}

#[tokio::test]
async fn origin_latency_is_simulated() {
    let lab = Lab::with(|args| args.origin_latency = 200).await;
    let start = std::time::Instant::now();
    lab.get("/test?cc=max-age=60", &[]).await;
    assert!(start.elapsed() >= Duration::from_millis(200));
    lab.stop().await;
}

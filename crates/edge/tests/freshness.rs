//! RFC 9111 freshness through a real edge in front of a real origin (`infralab web`'s
//! `/test` page sends the headers each test asks for).

mod common;

use common::Lab;

/// Two GETs of `path`; returns the X-Cache of each.
async fn twice(lab: &Lab, path: &str) -> (String, String) {
    let first = lab.get(path, &[]).await;
    let second = lab.get(path, &[]).await;
    (first.x_cache().to_owned(), second.x_cache().to_owned())
}

#[tokio::test]
async fn max_age_makes_a_miss_then_a_hit_with_one_origin_request() {
    let lab = Lab::start().await;
    let first = lab.get("/test?cc=max-age=60", &[]).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.x_cache(), "MISS");
    assert!(
        first.header("via").contains("1.1 edge"),
        "{:?}",
        first.headers
    );
    let second = lab.get("/test?cc=max-age=60", &[]).await;
    assert_eq!(second.x_cache(), "HIT");
    assert_eq!(second.body, first.body, "the stored body");
    assert_eq!(second.body, "/test?cc=max-age=60 #1\n");
    assert!(second.header("age").parse::<u64>().is_ok());
    assert_eq!(lab.stat("origin_requests").await, "1");
    assert_eq!(lab.stat("hits").await, "1");
    assert_eq!(lab.stat("hit_ratio").await, "0.500");
    lab.stop().await;
}

#[tokio::test]
async fn s_maxage_wins_over_max_age_in_a_shared_cache() {
    let lab = Lab::start().await;
    assert_eq!(twice(&lab, "/test?cc=max-age=0,s-maxage=60").await.1, "HIT");
    assert_eq!(
        twice(&lab, "/test?cc=max-age=60,s-maxage=0").await.1,
        "MISS"
    );
    lab.stop().await;
}

#[tokio::test]
async fn expires_gives_freshness_and_an_invalid_one_is_already_expired() {
    let lab = Lab::start().await;
    assert_eq!(twice(&lab, "/test?expires=60").await.1, "HIT");
    assert_eq!(twice(&lab, "/test?expires=0").await.1, "MISS");
    assert_eq!(twice(&lab, "/test?expires=-10").await.1, "MISS");
    assert_eq!(twice(&lab, "/test?expires=bad").await.1, "MISS");
    // max-age wins over Expires.
    assert_eq!(twice(&lab, "/test?expires=60&cc=max-age=0").await.1, "MISS");
    lab.stop().await;
}

#[tokio::test]
async fn heuristic_freshness_from_last_modified_only_for_heuristically_cacheable_statuses() {
    let lab = Lab::start().await;
    // Modified 10,000 s ago: fresh for 1,000 s on a guess.
    assert_eq!(twice(&lab, "/test?lm=10000").await.1, "HIT");
    assert_eq!(twice(&lab, "/test?lm=10000&status=404").await.1, "HIT");
    assert_eq!(twice(&lab, "/test?lm=10000&status=201").await.1, "MISS");
    // A status that is not heuristically cacheable is stored with explicit freshness.
    assert_eq!(twice(&lab, "/test?status=302&cc=max-age=60").await.1, "HIT");
    assert_eq!(twice(&lab, "/test?status=302&lm=10000").await.1, "MISS");
    // No validator, no freshness: nothing to go on.
    assert_eq!(twice(&lab, "/test?x=1").await.1, "MISS");
    lab.stop().await;
}

#[tokio::test]
async fn age_counts_what_the_response_arrived_with() {
    let lab = Lab::start().await;
    lab.get("/test?cc=max-age=600&age=100", &[]).await;
    let hit = lab.get("/test?cc=max-age=600&age=100", &[]).await;
    assert_eq!(hit.x_cache(), "HIT");
    let age: u64 = hit.header("age").parse().expect("Age");
    assert!((100..110).contains(&age), "age {age}");
    // Already older than its max-age on arrival: stale at once.
    assert_eq!(twice(&lab, "/test?cc=max-age=60&age=100").await.1, "MISS");
    // A Date 100 s in the past counts too (apparent age).
    assert_eq!(twice(&lab, "/test?cc=max-age=60&date=-100").await.1, "MISS");
    lab.stop().await;
}

#[tokio::test]
async fn no_store_private_and_authorization_are_not_stored() {
    let lab = Lab::start().await;
    assert_eq!(twice(&lab, "/test?cc=max-age=60,no-store").await.1, "MISS");
    assert_eq!(twice(&lab, "/test?cc=max-age=60,private").await.1, "MISS");
    let auth = [("authorization", "Bearer x")];
    lab.get("/test?cc=max-age=60&a=1", &auth).await;
    assert_eq!(
        lab.get("/test?cc=max-age=60&a=1", &auth).await.x_cache(),
        "MISS"
    );
    // ...unless the response says it may be shared.
    lab.get("/test?cc=max-age=60,public&a=2", &auth).await;
    assert_eq!(
        lab.get("/test?cc=max-age=60,public&a=2", &auth)
            .await
            .x_cache(),
        "HIT"
    );
    // must-understand with a status it understands overrides no-store.
    assert_eq!(
        twice(&lab, "/test?cc=max-age=60,no-store,must-understand")
            .await
            .1,
        "HIT"
    );
    // ...and with one it does not know, it is not stored at all.
    let unknown = twice(&lab, "/test?cc=max-age=60,must-understand&status=299").await;
    assert_eq!(unknown.1, "MISS");
    lab.stop().await;
}

#[tokio::test]
async fn request_no_store_is_not_stored() {
    let lab = Lab::start().await;
    lab.get("/test?cc=max-age=60", &[("cache-control", "no-store")])
        .await;
    assert_eq!(lab.get("/test?cc=max-age=60", &[]).await.x_cache(), "MISS");
    lab.stop().await;
}

#[tokio::test]
async fn cdn_cache_control_takes_precedence_over_cache_control() {
    let lab = Lab::start().await;
    assert_eq!(
        twice(&lab, "/test?cc=no-store&cdn=max-age=60").await.1,
        "HIT"
    );
    assert_eq!(
        twice(&lab, "/test?cc=max-age=60&cdn=no-store").await.1,
        "MISS"
    );
    lab.stop().await;
}

#[tokio::test]
async fn request_directives_max_age_min_fresh_max_stale_only_if_cached() {
    let lab = Lab::start().await;
    let path = "/test?cc=max-age=600&age=100";
    lab.get(path, &[]).await;
    let cc = |v| [("cache-control", v)];
    // Older than the client accepts: refetched.
    assert_eq!(lab.get(path, &cc("max-age=50")).await.x_cache(), "MISS");
    // Fresh for less time than the client needs: refetched.
    let reply = lab.get("/test?cc=max-age=100", &[]).await;
    assert_eq!(reply.x_cache(), "MISS");
    assert_eq!(
        lab.get("/test?cc=max-age=100", &cc("min-fresh=200"))
            .await
            .x_cache(),
        "MISS"
    );
    // Stale but the client takes stale.
    let stale = "/test?cc=max-age=10&age=20";
    lab.get(stale, &[]).await;
    assert_eq!(lab.get(stale, &cc("max-stale=60")).await.x_cache(), "STALE");
    assert_eq!(lab.get(stale, &cc("max-stale")).await.x_cache(), "STALE");
    // ...except where the origin said must-revalidate.
    let strict = "/test?cc=max-age=10,must-revalidate&age=20";
    lab.get(strict, &[]).await;
    assert_eq!(lab.get(strict, &cc("max-stale")).await.x_cache(), "MISS");
    // only-if-cached: from the cache or 504.
    assert_eq!(
        lab.get("/test?never", &cc("only-if-cached")).await.status,
        504
    );
    assert_eq!(
        lab.get("/test?cc=max-age=100", &cc("only-if-cached"))
            .await
            .x_cache(),
        "HIT"
    );
    lab.stop().await;
}

#[tokio::test]
async fn request_no_cache_and_pragma_no_cache_revalidate() {
    let lab = Lab::start().await;
    let path = "/test?cc=max-age=600&etag=%22v1%22";
    lab.get(path, &[]).await;
    assert_eq!(lab.get(path, &[]).await.x_cache(), "HIT");
    let reply = lab.get(path, &[("cache-control", "no-cache")]).await;
    assert_eq!(reply.x_cache(), "REVALIDATED");
    assert_eq!(reply.body, format!("{path} #1\n"), "the stored body");
    assert_eq!(
        lab.get(path, &[("pragma", "no-cache")]).await.x_cache(),
        "REVALIDATED"
    );
    // Pragma is ignored when Cache-Control is present.
    let both = [("pragma", "no-cache"), ("cache-control", "max-stale")];
    assert_eq!(lab.get(path, &both).await.x_cache(), "HIT");
    assert_eq!(lab.stat("revalidated").await, "2");
    lab.stop().await;
}

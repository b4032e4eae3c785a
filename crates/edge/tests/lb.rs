//! The load balancer in front of real origins: policies, stickiness, ejection and
//! re-admission, rate limits, X-Forwarded-For.

mod common;

use std::collections::HashMap;

use common::{eventually, get, send, start_web, stat};
use edge::http::Running;
use edge::lb::{self, Policy};
use tokio_util::sync::CancellationToken;

async fn webs(n: usize) -> Vec<Running> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(start_web(&format!("web-{i}")).await);
    }
    out
}

async fn balancer(backends: &[String], tweak: impl FnOnce(&mut lb::Args)) -> Running {
    let mut args = lb::Args::ephemeral(backends);
    tweak(&mut args);
    lb::start(args, CancellationToken::new())
        .await
        .expect("lb starts")
}

fn addrs(webs: &[Running]) -> Vec<String> {
    webs.iter().map(|w| w.addr().to_string()).collect()
}

/// How many of `n` GETs of `path` each backend served.
async fn spread(lb: &Running, n: usize, path: &str) -> HashMap<String, usize> {
    let mut served = HashMap::new();
    for _ in 0..n {
        let reply = get(lb.addr(), path, &[]).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        *served
            .entry(reply.header("x-served-by").to_owned())
            .or_default() += 1;
    }
    served
}

#[tokio::test]
async fn round_robin_spreads_evenly_and_sets_x_forwarded_for() {
    let webs = webs(3).await;
    let lb = balancer(&addrs(&webs), |_| {}).await;
    let served = spread(&lb, 30, "/health").await;
    assert_eq!(served.len(), 3);
    assert!(served.values().all(|&n| n == 10), "{served:?}");
    let reply = get(lb.addr(), "/health", &[]).await;
    assert_eq!(reply.header("x-echo-forwarded-for"), "127.0.0.1");
    assert!(reply.header("via").contains("lb"));
    lb.stop().await;
}

#[tokio::test]
async fn least_connections_avoids_the_busy_backend() {
    let webs = webs(2).await;
    let lb = balancer(&addrs(&webs), |a| a.policy = Policy::LeastConnections).await;
    let addr = lb.addr();
    let slow = tokio::spawn(async move { get(addr, "/test?delay=1500", &[]).await });
    eventually("the slow request is in flight", || async {
        get(addr, "/_lb/stats", &[]).await.body.contains("active=1")
    })
    .await;
    let busy = get(addr, "/_lb/stats", &[]).await.body;
    let served = spread(&lb, 6, "/health").await;
    assert_eq!(
        served.len(),
        1,
        "all went to the idle one: {served:?} ({busy})"
    );
    let slow = slow.await.expect("slow");
    assert!(
        !served.contains_key(slow.header("x-served-by")),
        "{served:?}"
    );
    lb.stop().await;
}

#[tokio::test]
async fn consistent_hashing_sends_a_key_to_one_backend() {
    let webs = webs(3).await;
    let lb = balancer(&addrs(&webs), |a| a.policy = Policy::Hash).await;
    for post in 1..=3 {
        let served = spread(&lb, 5, &format!("/posts/{post}")).await;
        assert_eq!(served.len(), 1, "/posts/{post}: {served:?}");
    }
    let mut backends = std::collections::HashSet::new();
    for i in 0..30 {
        backends.insert(
            get(lb.addr(), &format!("/static/{i}.css"), &[])
                .await
                .header("x-served-by")
                .to_owned(),
        );
    }
    assert_eq!(backends.len(), 3, "different paths spread");
    lb.stop().await;
    let by_user = balancer(&addrs(&webs), |a| {
        a.policy = Policy::Hash;
        a.hash_on = "header:x-user".into();
    })
    .await;
    let first = get(by_user.addr(), "/health", &[("x-user", "ada")]).await;
    for path in ["/posts/1", "/static/a.css", "/health"] {
        let again = get(by_user.addr(), path, &[("x-user", "ada")]).await;
        assert_eq!(again.header("x-served-by"), first.header("x-served-by"));
    }
    by_user.stop().await;
}

#[tokio::test]
async fn sticky_sessions_keep_a_client_on_its_backend() {
    let webs = webs(3).await;
    let lb = balancer(&addrs(&webs), |a| a.sticky = true).await;
    let first = get(lb.addr(), "/api/me", &[]).await;
    let set_cookie = first.header("set-cookie").to_owned();
    assert!(set_cookie.starts_with("infralab_lb="), "{set_cookie}");
    let cookie = set_cookie.split(';').next().expect("pair").to_owned();
    for _ in 0..10 {
        let again = get(lb.addr(), "/api/me", &[("cookie", cookie.as_str())]).await;
        assert_eq!(again.header("x-served-by"), first.header("x-served-by"));
        assert_eq!(
            again.header("set-cookie"),
            "",
            "no new cookie when it is honoured"
        );
    }
    // Without the cookie: round robin as usual.
    assert_eq!(spread(&lb, 6, "/api/me").await.len(), 3);
    lb.stop().await;
}

#[tokio::test]
async fn a_dead_backend_is_failed_over_ejected_and_readmitted() {
    let webs = webs(1).await;
    let dead = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        listener.local_addr().expect("addr").to_string()
    };
    let mut backends = addrs(&webs);
    backends.push(dead.clone());
    // Health checks rarely, so ejection here is passive.
    let lb = balancer(&backends, |a| a.health_interval_ms = 60_000).await;
    for _ in 0..10 {
        let reply = get(lb.addr(), "/health", &[]).await;
        assert_eq!(reply.status, 200, "retried on the live backend");
    }
    let stats = get(lb.addr(), "/_lb/stats", &[]).await.body;
    assert!(
        stats.contains(&format!("backend:{dead} healthy=false")),
        "{stats}"
    );
    lb.stop().await;

    // Active checks: the origin reports itself down, then up again.
    let web = &webs[0];
    let lb = balancer(&addrs(&webs), |a| a.health_interval_ms = 20).await;
    send(web.addr(), "PUT", "/_web/health", &[], "down").await;
    eventually("ejected by the health check", || async {
        get(lb.addr(), "/_lb/stats", &[])
            .await
            .body
            .contains("healthy=false")
    })
    .await;
    assert_eq!(get(lb.addr(), "/posts/1", &[]).await.status, 503);
    send(web.addr(), "PUT", "/_web/health", &[], "up").await;
    eventually("re-admitted by the health check", || async {
        get(lb.addr(), "/_lb/stats", &[])
            .await
            .body
            .contains("healthy=true")
    })
    .await;
    assert_eq!(get(lb.addr(), "/posts/1", &[]).await.status, 200);
    lb.stop().await;
}

#[tokio::test]
async fn a_client_over_its_rate_gets_429_with_retry_after() {
    let webs = webs(1).await;
    let lb = balancer(&addrs(&webs), |a| {
        a.rate_limit = 1;
        a.rate_burst = Some(3);
    })
    .await;
    for _ in 0..3 {
        assert_eq!(get(lb.addr(), "/health", &[]).await.status, 200);
    }
    let refused = get(lb.addr(), "/health", &[]).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("retry-after"), "1");
    assert_eq!(stat(lb.addr(), "/_lb/stats", "rate_limited").await, "1");
    lb.stop().await;
}

//! The edge as users poke it: with curl, the tool the README's session uses.

mod common;

use std::process::Command;

use common::Lab;

/// `curl -si ARGS... URL` → the response head and body as text.
fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .arg("-si")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("curl is needed for this test ({e}): run .ci/run to install it")
        });
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    response.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_sees_miss_hit_304_and_revalidated() {
    let lab = Lab::start().await;
    let base = format!("http://{}", lab.edge.addr());
    let post = format!("{base}/posts/1");
    let lab_ref = &lab;
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            curl(&args)
        })
    };
    let first = run(vec![post.clone()]).await.expect("curl");
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert_eq!(header(&first, "x-cache"), Some("MISS"));
    let etag = header(&first, "etag").expect("an ETag").to_owned();
    let second = run(vec![post.clone()]).await.expect("curl");
    assert_eq!(header(&second, "x-cache"), Some("HIT"));
    assert!(header(&second, "age").is_some());
    let conditional = run(vec![
        "-H".into(),
        format!("If-None-Match: {etag}"),
        post.clone(),
    ])
    .await
    .expect("curl");
    assert!(conditional.starts_with("HTTP/1.1 304"), "{conditional}");
    let head = run(vec!["-I".into(), post.clone()]).await.expect("curl");
    assert_eq!(header(&head, "x-cache"), Some("HIT"));
    let test = format!("{base}/test?cc=max-age=0&etag=%22v1%22");
    run(vec![test.clone()]).await.expect("curl");
    let revalidated = run(vec![test]).await.expect("curl");
    assert_eq!(
        header(&revalidated, "x-cache"),
        Some("REVALIDATED"),
        "{revalidated}"
    );
    assert!(revalidated.ends_with("#1\n"), "{revalidated}");
    let purge = run(vec!["-X".into(), "PURGE".into(), post.clone()])
        .await
        .expect("curl");
    assert!(purge.contains("purged 1"), "{purge}");
    let after = run(vec![post]).await.expect("curl");
    assert_eq!(header(&after, "x-cache"), Some("MISS"));
    assert_eq!(lab_ref.stat("origin_requests").await, "4");
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_speaks_http2_over_cleartext_to_the_edge() {
    let lab = Lab::start().await;
    let url = format!("http://{}/test?cc=max-age=60", lab.edge.addr());
    let run =
        |url: String| tokio::task::spawn_blocking(move || curl(&["--http2-prior-knowledge", &url]));
    let first = run(url.clone()).await.expect("curl");
    assert!(first.starts_with("HTTP/2 200"), "{first}");
    assert_eq!(header(&first, "x-cache"), Some("MISS"));
    let second = run(url).await.expect("curl");
    assert_eq!(header(&second, "x-cache"), Some("HIT"));
    lab.stop().await;
}

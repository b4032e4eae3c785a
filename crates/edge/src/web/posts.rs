//! The blog's resources: posts (with validators and surrogate keys), static assets
//! (immutable), and `/api/me` (private).

use std::time::SystemTime;

use bytes::Bytes;
use hyper::header::{self, HeaderMap};
use hyper::{Method, Response, StatusCode};

use super::{Web, respond};
use crate::http::{Body, text};

/// `GET /posts/:id`: HTML, or JSON for `Accept: application/json`.
pub async fn get(web: &Web, id: &str, request: &HeaderMap) -> Response<Body> {
    let Ok(id) = id.parse::<u64>() else {
        return text(StatusCode::NOT_FOUND, "no such post\n");
    };
    let (post, source) = match web.posts.load(id).await {
        Ok(Some(found)) => found,
        Ok(None) => return text(StatusCode::NOT_FOUND, "no such post\n"),
        Err(e) => return text(StatusCode::SERVICE_UNAVAILABLE, &format!("posts: {e}\n")),
    };
    let json = request
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    let kind = if json { "json" } else { "html" };
    let etag = format!("\"{id}-v{}-{kind}\"", post.version);
    let last_modified = httpdate::fmt_http_date(post.modified);
    let headers = [
        (
            "cache-control",
            format!(
                "public, max-age={}, stale-while-revalidate=30, stale-if-error=300",
                web.post_max_age
            ),
        ),
        ("etag", etag.clone()),
        ("last-modified", last_modified),
        ("vary", "Accept".to_owned()),
        ("surrogate-key", format!("post-{id} posts")),
        // Which level below the origin answered: memory, the remote cache, or kv.
        ("x-data-source", source.as_str().to_owned()),
    ];
    if not_modified(request, &etag, post.modified) {
        return respond(StatusCode::NOT_MODIFIED, &headers, Bytes::new());
    }
    let (content_type, body) = if json {
        (
            "application/json",
            format!(
                "{{\"id\":{id},\"title\":{:?},\"body\":{:?},\"version\":{},\"served_by\":{:?}}}\n",
                post.title, post.body, post.version, web.name
            ),
        )
    } else {
        (
            "text/html; charset=utf-8",
            format!(
                "<!doctype html><title>{t}</title><h1>{t}</h1><p>{}</p><p>version {} from {}</p>\n",
                post.body,
                post.version,
                web.name,
                t = post.title
            ),
        )
    };
    let mut response = respond(StatusCode::OK, &headers, Bytes::from(body));
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    response
}

/// The origin's own answer to a conditional GET.
fn not_modified(request: &HeaderMap, etag: &str, modified: SystemTime) -> bool {
    if let Some(inm) = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        return inm
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == etag);
    }
    request
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .is_some_and(|since| modified <= since)
}

/// `PUT /posts/:id`: store the new text, then purge the edges by surrogate key.
pub async fn edit(web: &Web, id: &str, content: Bytes) -> Response<Body> {
    let Ok(id) = id.parse::<u64>() else {
        return text(StatusCode::NOT_FOUND, "no such post\n");
    };
    let post = match web
        .posts
        .save(id, String::from_utf8_lossy(&content).into_owned())
        .await
    {
        Ok(post) => post,
        Err(e) => return text(StatusCode::SERVICE_UNAVAILABLE, &format!("posts: {e}\n")),
    };
    let version = post.version;
    let mut report = format!("post {id} is now version {version}\n");
    for edge in &web.edges {
        let mut headers = HeaderMap::new();
        if let Ok(v) = header::HeaderValue::from_str(&format!("post-{id}")) {
            headers.insert("surrogate-key", v);
        }
        let method = Method::from_bytes(b"PURGE").unwrap_or(Method::DELETE);
        let line = match edge.send(method, "/", headers, Bytes::new()).await {
            Ok(r) => format!(
                "purge {}: {}",
                edge.base(),
                String::from_utf8_lossy(r.body()).trim()
            ),
            Err(e) => format!("purge {}: {e}", edge.base()),
        };
        report.push_str(&line);
        report.push('\n');
    }
    text(StatusCode::OK, &report)
}

/// `GET /static/:name`: content-addressed in spirit, so cached for a year, immutable.
pub fn asset(name: &str) -> Response<Body> {
    let body = format!("/* {name}: a static asset */\nbody {{ font-family: serif; }}\n");
    let etag = format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(body.as_bytes()));
    respond(
        StatusCode::OK,
        &[
            (
                "cache-control",
                "public, max-age=31536000, immutable".into(),
            ),
            ("content-type", "text/css".into()),
            ("etag", etag),
        ],
        Bytes::from(body),
    )
}

/// `GET /api/me`: one user's data. `private`: a browser may keep it, an edge must not.
pub fn me(count: u64) -> Response<Body> {
    respond(
        StatusCode::OK,
        &[
            ("cache-control", "private, max-age=60".into()),
            ("content-type", "application/json".into()),
        ],
        Bytes::from(format!("{{\"user\":\"ada\",\"visits\":{count}}}\n")),
    )
}

//! May this stored response answer this request now? (RFC 9111 §4, §4.2.4, RFC 5861)
//!
//! Fresh responses are served; stale ones only where someone allowed it. The response's
//! directives (`no-cache`, `must-revalidate`...) and the request's (`max-age`,
//! `min-fresh`, `max-stale`, `no-cache`) each narrow what the other allows.

use std::time::{Duration, SystemTime};

use hyper::header::HeaderValue;
use hyper::{HeaderMap, header};

use super::directives::CacheControl;
use super::store::Stored;

/// What to do with a stored response for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Fresh, and fresh enough for the client: serve it (`X-Cache: HIT`).
    Fresh,
    /// Stale, but the client said stale is fine (`max-stale`): serve it (`STALE`).
    StaleAllowed,
    /// Stale within `stale-while-revalidate`: serve it now and validate in the background.
    StaleWhileRevalidate,
    /// Validate with the origin first. `stale_if_error`: if the origin fails, the stale
    /// response may still be served (RFC 5861).
    Validate { stale_if_error: bool },
}

/// The request's directives, with HTTP/1.0's `Pragma: no-cache` read as `no-cache` when
/// there is no `Cache-Control` (RFC 9111 §5.4).
pub fn request_directives(headers: &HeaderMap) -> CacheControl {
    match CacheControl::from_headers(headers, header::CACHE_CONTROL.as_str()) {
        Some(cc) => cc,
        None => CacheControl {
            no_cache: headers
                .get_all(header::PRAGMA)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| {
                    v.split(',')
                        .any(|d| d.trim().eq_ignore_ascii_case("no-cache"))
                }),
            ..CacheControl::default()
        },
    }
}

/// Decides how `stored` may answer a request with directives `request` at `now`.
pub fn decide(stored: &Stored, request: &CacheControl, now: SystemTime) -> Reuse {
    let age = stored.age(now);
    let (lifetime, _) = stored.lifetime();
    let staleness = age.saturating_sub(lifetime);
    let stale_if_error = stored
        .cc
        .stale_if_error
        .into_iter()
        .chain(request.stale_if_error)
        .any(|window| staleness <= window);
    let validate = Reuse::Validate { stale_if_error };

    if stored.cc.no_cache || request.no_cache {
        return validate;
    }
    // The client's limits: not older than max-age, fresh for min-fresh more seconds.
    if request.max_age.is_some_and(|max| age > max) {
        return validate;
    }
    if request
        .min_fresh
        .is_some_and(|min| lifetime.saturating_sub(age) < min)
    {
        return validate;
    }
    if age < lifetime {
        return Reuse::Fresh;
    }
    // Stale. must-revalidate (proxy-revalidate, s-maxage for a shared cache) forbids
    // serving it without validation whatever the client or an extension says (§4.2.4).
    if stored.cc.must_revalidate || stored.cc.proxy_revalidate || stored.cc.s_maxage.is_some() {
        return Reuse::Validate {
            stale_if_error: false,
        };
    }
    match request.max_stale {
        Some(None) => return Reuse::StaleAllowed,
        Some(Some(max)) if staleness <= max => return Reuse::StaleAllowed,
        _ => {}
    }
    if request.max_age.is_none()
        && stored
            .cc
            .stale_while_revalidate
            .is_some_and(|window| staleness <= window)
    {
        return Reuse::StaleWhileRevalidate;
    }
    validate
}

/// Seconds, rounded down, for the `Age` header.
pub fn age_header(age: Duration) -> HeaderValue {
    HeaderValue::from(age.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::freshness::Timing;
    use crate::cache::vary::SecondaryKey;
    use bytes::Bytes;
    use hyper::StatusCode;

    const T0: u64 = 1_700_000_000;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + secs)
    }

    /// A response stored at t=0 with `Cache-Control: cc`.
    fn stored(cc: &str) -> Stored {
        let mut h = HeaderMap::new();
        h.insert(
            "date",
            httpdate::fmt_http_date(at(0)).parse().expect("date"),
        );
        h.insert("cache-control", cc.parse().expect("cc"));
        Stored::new(
            StatusCode::OK,
            h,
            Bytes::new(),
            Timing {
                request_time: at(0),
                response_time: at(0),
            },
            SecondaryKey::default(),
        )
    }

    fn req(cc: &str) -> CacheControl {
        CacheControl::parse(cc)
    }

    #[test]
    fn fresh_until_max_age_then_validate() {
        let s = stored("max-age=10");
        assert_eq!(decide(&s, &req(""), at(9)), Reuse::Fresh);
        assert_eq!(
            decide(&s, &req(""), at(10)),
            Reuse::Validate {
                stale_if_error: false
            }
        );
    }

    #[test]
    fn response_no_cache_always_validates() {
        let s = stored("max-age=100, no-cache");
        assert!(matches!(
            decide(&s, &req(""), at(1)),
            Reuse::Validate { .. }
        ));
    }

    #[test]
    fn request_directives_narrow_freshness() {
        let s = stored("max-age=100");
        assert!(matches!(
            decide(&s, &req("no-cache"), at(1)),
            Reuse::Validate { .. }
        ));
        assert!(matches!(
            decide(&s, &req("max-age=5"), at(6)),
            Reuse::Validate { .. }
        ));
        assert_eq!(decide(&s, &req("max-age=5"), at(5)), Reuse::Fresh);
        assert!(matches!(
            decide(&s, &req("min-fresh=50"), at(60)),
            Reuse::Validate { .. }
        ));
        assert_eq!(decide(&s, &req("min-fresh=50"), at(40)), Reuse::Fresh);
    }

    #[test]
    fn max_stale_allows_stale_unless_must_revalidate() {
        let s = stored("max-age=10");
        assert_eq!(decide(&s, &req("max-stale"), at(1000)), Reuse::StaleAllowed);
        assert_eq!(decide(&s, &req("max-stale=5"), at(14)), Reuse::StaleAllowed);
        assert!(matches!(
            decide(&s, &req("max-stale=5"), at(16)),
            Reuse::Validate { .. }
        ));
        for cc in [
            "max-age=10, must-revalidate",
            "max-age=10, proxy-revalidate",
            "s-maxage=10",
        ] {
            assert!(
                matches!(
                    decide(&stored(cc), &req("max-stale"), at(20)),
                    Reuse::Validate { .. }
                ),
                "{cc}"
            );
        }
    }

    #[test]
    fn stale_while_revalidate_and_stale_if_error_windows() {
        let s = stored("max-age=10, stale-while-revalidate=30, stale-if-error=60");
        assert_eq!(decide(&s, &req(""), at(20)), Reuse::StaleWhileRevalidate);
        assert_eq!(
            decide(&s, &req(""), at(50)),
            Reuse::Validate {
                stale_if_error: true
            }
        );
        assert_eq!(
            decide(&s, &req(""), at(80)),
            Reuse::Validate {
                stale_if_error: false
            }
        );
    }

    #[test]
    fn pragma_no_cache_only_without_cache_control() {
        let mut h = HeaderMap::new();
        h.insert("pragma", "no-cache".parse().expect("v"));
        assert!(request_directives(&h).no_cache);
        h.insert("cache-control", "max-age=60".parse().expect("v"));
        assert!(!request_directives(&h).no_cache);
    }
}

//! How long a stored response stays fresh, and how old it is now (RFC 9111 §4.2).
//!
//! A response is *fresh* while its current age is below its freshness lifetime; after
//! that it is *stale*, and a cache may reuse it only after validating it with the origin
//! (or where the client or an RFC 5861 extension allows stale). All times are wall-clock
//! (`SystemTime`): `Date`, `Expires` and `Last-Modified` are, and tests pass their own `now`.

use std::time::{Duration, SystemTime};

use hyper::{HeaderMap, StatusCode, header};

use super::directives::{CacheControl, DELTA_SECONDS_MAX};

/// Heuristic freshness is this fraction of the time since `Last-Modified` (§4.2.2's
/// "10% of the interval" that caches commonly use)...
const HEURISTIC_FRACTION: u32 = 10;
/// ...capped at a day, so an ancient file is not cached for years on a guess.
const HEURISTIC_MAX: Duration = Duration::from_secs(24 * 60 * 60);

/// Statuses a cache may store with heuristic freshness, without explicit freshness
/// information (RFC 9110 §15.1: "heuristically cacheable").
pub fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// When a stored response was requested and received: the two instants the age
/// calculation needs besides the response's own `Date` and `Age`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// When the cache sent the request that produced the response.
    pub request_time: SystemTime,
    /// When the response arrived.
    pub response_time: SystemTime,
}

/// A field holding an HTTP-date, if it parses.
pub fn date_field(headers: &HeaderMap, name: header::HeaderName) -> Option<SystemTime> {
    let value = headers.get(name)?.to_str().ok()?;
    httpdate::parse_http_date(value).ok()
}

/// The `Age` a response arrived with (0 if absent or invalid; §5.1).
fn age_value(headers: &HeaderMap) -> Duration {
    headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(DELTA_SECONDS_MAX)))
        .unwrap_or_default()
}

fn since(later: SystemTime, earlier: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or_default()
}

/// The response's current age (§4.2.3), from three sources that each might lie a little:
/// the age it says it had (`Age`, plus the time the request took, because the age might
/// have grown on the way), the age its `Date` implies (clock skew aside), and the time it
/// has spent in this cache since. The larger estimate of the first two wins: a cache may
/// overestimate an age, never underestimate it.
pub fn current_age(headers: &HeaderMap, timing: Timing, now: SystemTime) -> Duration {
    let date = date_field(headers, header::DATE).unwrap_or(timing.response_time);
    let apparent_age = since(timing.response_time, date);
    let response_delay = since(timing.response_time, timing.request_time);
    let corrected_age_value = age_value(headers) + response_delay;
    let corrected_initial_age = apparent_age.max(corrected_age_value);
    let resident_time = since(now, timing.response_time);
    corrected_initial_age + resident_time
}

/// Where a response's freshness lifetime came from (what a learner sees in `X-Cache-Info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    SMaxAge,
    MaxAge,
    Expires,
    /// 10% of the time since `Last-Modified`.
    Heuristic,
    /// Nothing to go on: stale at once.
    None,
}

/// The freshness lifetime of a response as a shared cache computes it (§4.2.1): the
/// first of `s-maxage`, `max-age`, `Expires - Date`, then a heuristic from
/// `Last-Modified` if the status (or `public`) allows one.
pub fn lifetime(
    status: StatusCode,
    headers: &HeaderMap,
    cc: &CacheControl,
    timing: Timing,
) -> (Duration, Source) {
    if let Some(s) = cc.s_maxage {
        return (s, Source::SMaxAge);
    }
    if let Some(s) = cc.max_age {
        return (s, Source::MaxAge);
    }
    let date = date_field(headers, header::DATE).unwrap_or(timing.response_time);
    if headers.contains_key(header::EXPIRES) {
        // An invalid Expires ("0") means already expired (§5.3).
        let lifetime = date_field(headers, header::EXPIRES)
            .map(|expires| since(expires, date))
            .unwrap_or_default();
        return (lifetime, Source::Expires);
    }
    if (heuristically_cacheable(status) || cc.public)
        && let Some(modified) = date_field(headers, header::LAST_MODIFIED)
    {
        let lifetime = (since(date, modified) / HEURISTIC_FRACTION).min(HEURISTIC_MAX);
        return (lifetime, Source::Heuristic);
    }
    (Duration::ZERO, Source::None)
}

/// Whether a response carries explicit freshness information (one of the conditions
/// for storing a response whose status is not heuristically cacheable, §3).
pub fn has_explicit_freshness(headers: &HeaderMap, cc: &CacheControl) -> bool {
    cc.s_maxage.is_some() || cc.max_age.is_some() || headers.contains_key(header::EXPIRES)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().expect("header value"));
        }
        h
    }

    fn timing(req: u64, resp: u64) -> Timing {
        Timing {
            request_time: at(req),
            response_time: at(resp),
        }
    }

    #[test]
    fn s_maxage_beats_max_age_beats_expires() {
        let h = headers(&[
            ("date", httpdate::fmt_http_date(at(0))),
            ("expires", httpdate::fmt_http_date(at(500))),
        ]);
        let t = timing(0, 0);
        let both = CacheControl::parse("max-age=10, s-maxage=20");
        assert_eq!(
            lifetime(StatusCode::OK, &h, &both, t).0,
            Duration::from_secs(20)
        );
        let max_age = CacheControl::parse("max-age=10");
        assert_eq!(
            lifetime(StatusCode::OK, &h, &max_age, t).0,
            Duration::from_secs(10)
        );
        let none = CacheControl::default();
        assert_eq!(
            lifetime(StatusCode::OK, &h, &none, t),
            (Duration::from_secs(500), Source::Expires)
        );
    }

    #[test]
    fn invalid_expires_is_already_expired() {
        let h = headers(&[("expires", "0".into())]);
        let (life, source) = lifetime(StatusCode::OK, &h, &CacheControl::default(), timing(0, 0));
        assert_eq!((life, source), (Duration::ZERO, Source::Expires));
    }

    #[test]
    fn heuristic_is_a_tenth_of_the_age_of_the_content() {
        let h = headers(&[
            ("date", httpdate::fmt_http_date(at(1000))),
            ("last-modified", httpdate::fmt_http_date(at(0))),
        ]);
        let cc = CacheControl::default();
        assert_eq!(
            lifetime(StatusCode::OK, &h, &cc, timing(1000, 1000)),
            (Duration::from_secs(100), Source::Heuristic)
        );
        // Not for a status that is not heuristically cacheable...
        assert_eq!(
            lifetime(StatusCode::CREATED, &h, &cc, timing(1000, 1000)).1,
            Source::None
        );
        // ...unless the response says public.
        let public = CacheControl::parse("public");
        assert_eq!(
            lifetime(StatusCode::CREATED, &h, &public, timing(1000, 1000)).1,
            Source::Heuristic
        );
    }

    #[test]
    fn age_takes_the_larger_estimate_and_grows_while_stored() {
        // Date says 10 s old on arrival; Age says 30 and the request took 2 s.
        let h = headers(&[
            ("date", httpdate::fmt_http_date(at(90))),
            ("age", "30".into()),
        ]);
        let t = timing(98, 100);
        assert_eq!(current_age(&h, t, at(100)), Duration::from_secs(32));
        assert_eq!(current_age(&h, t, at(110)), Duration::from_secs(42));
        // A Date in the future (clock skew) does not make the age negative.
        let skewed = headers(&[("date", httpdate::fmt_http_date(at(200)))]);
        assert_eq!(
            current_age(&skewed, timing(100, 100), at(105)),
            Duration::from_secs(5)
        );
    }
}

//! `Cache-Control` (RFC 9111 §5.2): the directives a request and a response carry.
//!
//! One parser for both directions; which directives mean something depends on who sent
//! them. The grammar is a comma-separated list of `token [ "=" ( token / quoted-string ) ]`,
//! case-insensitive names; the list may span several field lines. Values are parsed
//! leniently where the RFC says recipients ought to (`max-age="60"`), and a directive that
//! appears twice keeps its first value (§4.2.1).

use std::time::Duration;

use hyper::HeaderMap;

use crate::http::headers::joined;

/// Seconds the RFC says stand for "larger than anything" (§1.2.2: 2^31).
pub const DELTA_SECONDS_MAX: u64 = 2_147_483_648;

/// The parsed directives of one message. Unknown directives are ignored (§5.2.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheControl {
    /// `max-age=N` (response: freshness lifetime; request: the oldest response acceptable).
    pub max_age: Option<Duration>,
    /// `s-maxage=N`: a shared cache's freshness lifetime, overriding `max-age`.
    pub s_maxage: Option<Duration>,
    /// `max-stale[=N]` (request): a stale response is acceptable, by up to N (any if no N).
    pub max_stale: Option<Option<Duration>>,
    /// `min-fresh=N` (request): the response must stay fresh for N more seconds.
    pub min_fresh: Option<Duration>,
    /// `no-cache`: may store, but must validate with the origin before every reuse.
    pub no_cache: bool,
    /// `no-store`: must not store any part of the request or the response.
    pub no_store: bool,
    /// `private`: for one user's cache only; a shared cache must not store it.
    pub private: bool,
    /// `public`: may be stored even where it would not be by default (Authorization).
    pub public: bool,
    /// `must-revalidate`: once stale, never served without a successful validation.
    pub must_revalidate: bool,
    /// `proxy-revalidate`: `must-revalidate` for shared caches only.
    pub proxy_revalidate: bool,
    /// `must-understand`: store only if the status code's caching rules are understood.
    pub must_understand: bool,
    /// `only-if-cached` (request): answer from the cache or with `504`, never the origin.
    pub only_if_cached: bool,
    /// `immutable`: the body will not change while fresh (RFC 8246).
    pub immutable: bool,
    /// `stale-while-revalidate=N` (RFC 5861): serve stale for up to N seconds while a
    /// validation runs in the background.
    pub stale_while_revalidate: Option<Duration>,
    /// `stale-if-error=N` (RFC 5861): serve stale for up to N seconds when the origin fails.
    pub stale_if_error: Option<Duration>,
}

impl CacheControl {
    /// Parses every `name` field line of `headers` (`cache-control`, `cdn-cache-control`).
    pub fn from_headers(headers: &HeaderMap, name: &str) -> Option<CacheControl> {
        joined(headers, name).map(|value| CacheControl::parse(&value))
    }

    /// Parses one (joined) field value.
    pub fn parse(value: &str) -> CacheControl {
        let mut cc = CacheControl::default();
        for (name, arg) in split_directives(value) {
            let name = name.to_ascii_lowercase();
            let seconds = || arg.as_deref().map(delta_seconds);
            match name.as_str() {
                // A max-age without a valid value makes the response stale (§4.2.1).
                "max-age" => first(&mut cc.max_age, seconds().unwrap_or(Duration::ZERO)),
                "s-maxage" => first(&mut cc.s_maxage, seconds().unwrap_or(Duration::ZERO)),
                "min-fresh" => first(&mut cc.min_fresh, seconds().unwrap_or(Duration::ZERO)),
                "max-stale" => first(&mut cc.max_stale, seconds()),
                "stale-while-revalidate" => first(
                    &mut cc.stale_while_revalidate,
                    seconds().unwrap_or_default(),
                ),
                "stale-if-error" => first(&mut cc.stale_if_error, seconds().unwrap_or_default()),
                // The qualified forms (`no-cache="Set-Cookie"`) are treated as the
                // unqualified ones, which the RFC allows (§5.2.2.4, §5.2.2.7).
                "no-cache" => cc.no_cache = true,
                "no-store" => cc.no_store = true,
                "private" => cc.private = true,
                "public" => cc.public = true,
                "must-revalidate" => cc.must_revalidate = true,
                "proxy-revalidate" => cc.proxy_revalidate = true,
                "must-understand" => cc.must_understand = true,
                "only-if-cached" => cc.only_if_cached = true,
                "immutable" => cc.immutable = true,
                _ => {}
            }
        }
        cc
    }
}

fn first<T>(slot: &mut Option<T>, value: T) {
    if slot.is_none() {
        *slot = Some(value);
    }
}

/// `delta-seconds` (§1.2.2): digits; an overflow is 2^31; anything else is 0.
fn delta_seconds(text: &str) -> Duration {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Duration::ZERO;
    }
    let seconds = text.parse::<u64>().unwrap_or(DELTA_SECONDS_MAX);
    Duration::from_secs(seconds.min(DELTA_SECONDS_MAX))
}

/// Splits `a, b=1, c="x, y"` into `(name, Some(value))` pairs, commas inside quotes kept.
fn split_directives(value: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut rest = value;
    while !rest.is_empty() {
        // One directive ends at the first comma outside a quoted string.
        let mut in_quotes = false;
        let mut escaped = false;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if in_quotes => escaped = true,
                '"' => in_quotes = !in_quotes,
                ',' if !in_quotes => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let item = rest[..end].trim();
        rest = rest.get(end + 1..).unwrap_or("");
        if item.is_empty() {
            continue;
        }
        let (name, arg) = match item.split_once('=') {
            Some((name, arg)) => {
                let arg = arg.trim();
                let arg = arg
                    .strip_prefix('"')
                    .and_then(|a| a.strip_suffix('"'))
                    .unwrap_or(arg);
                (name.trim(), Some(arg.to_owned()))
            }
            None => (item, None),
        };
        out.push((name.to_owned(), arg));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Option<Duration> {
        Some(Duration::from_secs(n))
    }

    #[test]
    fn parses_response_directives() {
        let cc = CacheControl::parse("public, max-age=60, s-maxage=\"120\", must-revalidate");
        assert!(cc.public && cc.must_revalidate);
        assert_eq!(cc.max_age, secs(60));
        assert_eq!(cc.s_maxage, secs(120));
    }

    #[test]
    fn names_are_case_insensitive_and_quotes_keep_commas() {
        let cc = CacheControl::parse("No-Cache=\"set-cookie, x\", PRIVATE, Max-Age=5");
        assert!(cc.no_cache && cc.private);
        assert_eq!(cc.max_age, secs(5));
    }

    #[test]
    fn max_stale_with_and_without_a_value() {
        assert_eq!(CacheControl::parse("max-stale").max_stale, Some(None));
        assert_eq!(
            CacheControl::parse("max-stale=10").max_stale,
            Some(secs(10))
        );
        assert_eq!(CacheControl::parse("max-age=1").max_stale, None);
    }

    #[test]
    fn invalid_and_huge_values() {
        assert_eq!(CacheControl::parse("max-age=abc").max_age, secs(0));
        assert_eq!(CacheControl::parse("max-age=-1").max_age, secs(0));
        assert_eq!(
            CacheControl::parse("max-age=99999999999999999999999").max_age,
            secs(DELTA_SECONDS_MAX)
        );
    }

    proptest::proptest! {
        /// Any header value parses (hostile input never panics), and directives written
        /// in any case, with any spacing, come back with their values.
        #[test]
        fn any_input_parses_and_written_directives_come_back(
            junk in ".{0,200}",
            max_age in 0u64..100_000,
            stale in proptest::option::of(0u64..100_000),
            upper in proptest::bool::ANY,
            spaces in 0usize..3,
        ) {
            let _ = CacheControl::parse(&junk);
            let pad = " ".repeat(spaces);
            let mut text = format!("{pad}max-age={max_age}{pad},{pad}no-cache");
            if let Some(s) = stale {
                text.push_str(&format!(",max-stale={s}"));
            }
            if upper {
                text = text.to_uppercase();
            }
            let cc = CacheControl::parse(&text);
            proptest::prop_assert_eq!(cc.max_age, secs(max_age));
            proptest::prop_assert!(cc.no_cache);
            proptest::prop_assert_eq!(cc.max_stale, stale.map(secs));
        }
    }

    #[test]
    fn first_occurrence_wins() {
        assert_eq!(
            CacheControl::parse("max-age=1, max-age=100").max_age,
            secs(1)
        );
    }
}

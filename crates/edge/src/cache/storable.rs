//! May a shared cache store this response at all? (RFC 9111 §3)
//!
//! Every condition must hold; the first that fails is returned, so the edge can say why
//! it did not store something (`X-Cache-Info`).

use hyper::{HeaderMap, Method, StatusCode, header};

use super::directives::CacheControl;
use super::freshness::{has_explicit_freshness, heuristically_cacheable};
use super::partial::content_range;
use super::vary::{Vary, vary_of};

/// Why a response was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    /// Only responses to GET are stored (HEAD is answered from them).
    Method,
    /// `no-store` in the request: store no part of the exchange.
    RequestNoStore,
    /// `no-store` in the response.
    ResponseNoStore,
    /// `private`: for the user's own cache, not a shared one.
    Private,
    /// The request had `Authorization` and the response did not say it may be shared.
    Authorization,
    /// A status this cache does not store: a `206` that is not one range of a known
    /// length, an unknown status with `must-understand`, or one with no freshness
    /// information.
    Status,
    /// Nothing says how long it stays fresh, and its status allows no heuristic.
    NoFreshness,
    /// `Vary: *`: no later request can be known to match.
    VaryStar,
}

/// Statuses whose caching rules this cache implements (for `must-understand`, §5.2.2.3).
fn understood(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 302 | 303 | 307 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Checks §3's conditions for a shared cache.
pub fn check(
    method: &Method,
    request: &HeaderMap,
    request_cc: &CacheControl,
    status: StatusCode,
    response: &HeaderMap,
    response_cc: &CacheControl,
) -> Result<(), NotStored> {
    if method != Method::GET {
        return Err(NotStored::Method);
    }
    if request_cc.no_store {
        return Err(NotStored::RequestNoStore);
    }
    // Partial content is stored as pieces of one range each (§3.3): a multipart answer,
    // or a piece of an object of unknown length, passes through.
    let one_piece = || content_range(response).is_some_and(|r| r.complete.is_some());
    if status.is_informational() || (status == StatusCode::PARTIAL_CONTENT && !one_piece()) {
        return Err(NotStored::Status);
    }
    if response_cc.must_understand {
        // A cache that understands the status may ignore no-store (§5.2.2.3).
        if !understood(status) {
            return Err(NotStored::Status);
        }
    } else if response_cc.no_store {
        return Err(NotStored::ResponseNoStore);
    }
    if response_cc.private {
        return Err(NotStored::Private);
    }
    if request.contains_key(header::AUTHORIZATION)
        && !(response_cc.public || response_cc.s_maxage.is_some() || response_cc.must_revalidate)
    {
        return Err(NotStored::Authorization);
    }
    if vary_of(response) == Vary::Star {
        return Err(NotStored::VaryStar);
    }
    let heuristic = heuristically_cacheable(status) && response.contains_key(header::LAST_MODIFIED);
    if has_explicit_freshness(response, response_cc)
        || response_cc.public
        || heuristic
        // Stored without freshness, to be validated before each reuse.
        || (response_cc.no_cache && heuristically_cacheable(status))
    {
        Ok(())
    } else if heuristically_cacheable(status) {
        Err(NotStored::NoFreshness)
    } else {
        Err(NotStored::Status)
    }
}

//! Sticky sessions ("session affinity"): the balancer sets a cookie naming the backend
//! that served a client's first request, and sends the client's later requests there
//! while it is healthy — for servers that keep session state in memory. The price: load
//! follows sessions, not requests, and a backend's departure loses its sessions.

use hyper::HeaderMap;
use hyper::header::{self, HeaderValue};

/// The value of cookie `name` in a request, if any.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// `Set-Cookie: name=id; Path=/; HttpOnly; SameSite=Lax`.
pub fn set_cookie(name: &str, id: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("{name}={id}; Path=/; HttpOnly; SameSite=Lax")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cookie_among_others() {
        let mut h = HeaderMap::new();
        h.append("cookie", "a=1; infralab_lb=abc".parse().expect("v"));
        h.append("cookie", "b=2".parse().expect("v"));
        assert_eq!(cookie(&h, "infralab_lb"), Some("abc"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
    }
}

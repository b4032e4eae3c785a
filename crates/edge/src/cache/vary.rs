//! `Vary` (RFC 9111 §4.1): one URL, several stored responses ("variants").
//!
//! The primary cache key is the URL. A response that says `Vary: Accept-Encoding, Accept`
//! was chosen by those request headers, so it may only answer a later request whose
//! values of those headers match the ones of the request that produced it: that list of
//! (header, value) pairs is the variant's *secondary key*. `Vary: *` matches nothing.

use hyper::HeaderMap;
use hyper::header::{self, HeaderName};

use crate::http::headers::joined;

/// What a response's `Vary` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vary {
    /// The request headers that chose this response (lowercase names, no duplicates).
    Fields(Vec<HeaderName>),
    /// `Vary: *`: chosen by something outside the request headers.
    Star,
}

/// Reads every `Vary` line of a response.
pub fn vary_of(response: &HeaderMap) -> Vary {
    let mut fields: Vec<HeaderName> = Vec::new();
    for value in response.get_all(header::VARY) {
        let Ok(value) = value.to_str() else { continue };
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return Vary::Star;
            }
            if let Ok(name) = HeaderName::from_bytes(name.as_bytes())
                && !fields.contains(&name)
            {
                fields.push(name);
            }
        }
    }
    Vary::Fields(fields)
}

/// A variant's secondary key: each varied header and the request's value for it (`None`
/// when the request did not send it: absent only matches absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecondaryKey(Vec<(HeaderName, Option<String>)>);

impl SecondaryKey {
    /// The secondary key of `request` under `fields`.
    pub fn of(fields: &[HeaderName], request: &HeaderMap) -> SecondaryKey {
        SecondaryKey(
            fields
                .iter()
                .map(|name| (name.clone(), normalized(request, name)))
                .collect(),
        )
    }

    /// Whether `request` selects this variant.
    pub fn matches(&self, request: &HeaderMap) -> bool {
        self.0
            .iter()
            .all(|(name, value)| normalized(request, name) == *value)
    }

    /// Bytes it takes, for memory accounting.
    pub fn len(&self) -> usize {
        self.0
            .iter()
            .map(|(n, v)| n.as_str().len() + v.as_ref().map_or(0, String::len))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A header's value with its lines joined and the whitespace around commas dropped, so
/// `gzip,br` and `gzip, br` select the same variant (§4.1 allows such normalisation).
fn normalized(request: &HeaderMap, name: &HeaderName) -> Option<String> {
    joined(request, name).map(|v| v.split(',').map(str::trim).collect::<Vec<_>>().join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().expect("value"));
        }
        h
    }

    #[test]
    fn reads_fields_and_star() {
        let fields = vary_of(&map(&[
            ("vary", "Accept-Encoding, accept"),
            ("vary", "Accept"),
        ]));
        assert_eq!(
            fields,
            Vary::Fields(vec![header::ACCEPT_ENCODING, header::ACCEPT])
        );
        assert_eq!(vary_of(&map(&[("vary", "accept, *")])), Vary::Star);
    }

    #[test]
    fn a_variant_matches_only_equal_values() {
        let fields = [header::ACCEPT_ENCODING];
        let key = SecondaryKey::of(&fields, &map(&[("accept-encoding", "gzip, br")]));
        assert!(key.matches(&map(&[("accept-encoding", "gzip,br")])));
        assert!(!key.matches(&map(&[("accept-encoding", "gzip")])));
        assert!(!key.matches(&map(&[])));
        let absent = SecondaryKey::of(&fields, &map(&[]));
        assert!(absent.matches(&map(&[])));
        assert!(!absent.matches(&map(&[("accept-encoding", "gzip")])));
    }
}

//! The bounded store: URL → variants, least recently used out first.
//!
//! Memory is counted per entry (body + headers + keys + a fixed overhead) against
//! `--max-memory`; inserting past it evicts the least recently used variants until the
//! new one fits. Tags (`Surrogate-Key`, `Cache-Tag`) index the URLs that carry them, for
//! purges by event.
//!
//! ## Exact LRU without a write per hit
//!
//! Recency is a tick: a counter that every access advances. A hit is the hot path of a
//! CDN node, and a hit that had to reorder a shared list (or a `BTreeMap` by tick) would
//! need the store's lock exclusively, so every hit on every thread would queue behind
//! every other. Here a hit only *stamps* the variant with a new tick (an atomic store),
//! under a shared read lock. The order by tick (`recency`) is brought up to date lazily,
//! when room is needed: it holds each variant once, at the tick it had when last
//! *recorded* there, which is never later than its stamp. Eviction pops the smallest
//! recorded tick; if that variant was stamped since, it is recorded again at its stamp
//! and the next smallest is tried. The first one whose record equals its stamp is the
//! least recently used of all (every other stamp is at least its own record, which is at
//! least this one): exact LRU, paid for at eviction time, at most one re-record per hit.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use hyper::{HeaderMap, StatusCode, header};

use super::directives::CacheControl;
use super::freshness::{self, Source, Timing};
use super::partial::Pieces;
use super::vary::SecondaryKey;

/// Fixed cost charged per stored variant besides its bytes (maps, Arc, bookkeeping).
const OVERHEAD: usize = 256;
/// Variants one URL may have: a client cannot grow one key without bound by sending a
/// new value of a varied header each time (the oldest variant leaves).
const MAX_VARIANTS: usize = 32;

/// A stored response: what the origin sent, when, and which requests it answers.
#[derive(Debug, Clone)]
pub struct Stored {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub timing: Timing,
    /// The request header values that select this variant.
    pub secondary: SecondaryKey,
    /// The response's caching directives (`CDN-Cache-Control` if it had one).
    pub cc: CacheControl,
    /// `Surrogate-Key` / `Cache-Tag` values, for purges by tag.
    pub tags: Vec<String>,
    /// For a stored `206` (status `206`, empty `body`): the pieces of the representation
    /// held so far ([`super::partial`]).
    pub partial: Option<Arc<Pieces>>,
}

impl Stored {
    pub fn new(
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        timing: Timing,
        secondary: SecondaryKey,
    ) -> Stored {
        let cc = response_directives(&headers);
        let tags = tags_of(&headers);
        Stored {
            status,
            headers,
            body,
            timing,
            secondary,
            cc,
            tags,
            partial: None,
        }
    }

    /// A partial response: the headers of the latest `206`, and the pieces held.
    pub fn partial(
        headers: HeaderMap,
        pieces: Pieces,
        timing: Timing,
        secondary: SecondaryKey,
    ) -> Stored {
        Stored {
            partial: Some(Arc::new(pieces)),
            ..Stored::new(
                StatusCode::PARTIAL_CONTENT,
                headers,
                Bytes::new(),
                timing,
                secondary,
            )
        }
    }

    /// Age now (§4.2.3).
    pub fn age(&self, now: SystemTime) -> std::time::Duration {
        freshness::current_age(&self.headers, self.timing, now)
    }

    /// Freshness lifetime (§4.2.1) and where it came from.
    pub fn lifetime(&self) -> (std::time::Duration, Source) {
        freshness::lifetime(self.status, &self.headers, &self.cc, self.timing)
    }

    /// Bytes charged against `--max-memory`.
    pub fn size(&self, key: &str) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len())
            .sum();
        let pieces = self.partial.as_ref().map_or(0, |p| p.held());
        OVERHEAD + key.len() + headers + self.body.len() + pieces + self.secondary.len()
    }
}

/// The directives a shared CDN cache obeys: `CDN-Cache-Control` when present (RFC 9213:
/// it targets CDNs and takes precedence), else `Cache-Control`.
pub fn response_directives(headers: &HeaderMap) -> CacheControl {
    CacheControl::from_headers(headers, "cdn-cache-control")
        .or_else(|| CacheControl::from_headers(headers, header::CACHE_CONTROL.as_str()))
        .unwrap_or_default()
}

/// `Surrogate-Key: a b` (Fastly, space-separated) and `Cache-Tag: a,b` (Cloudflare).
fn tags_of(headers: &HeaderMap) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for (name, separator) in [("surrogate-key", ' '), ("cache-tag", ',')] {
        for value in headers.get_all(name) {
            let Ok(value) = value.to_str() else { continue };
            for tag in value
                .split(separator)
                .map(str::trim)
                .filter(|t| !t.is_empty())
            {
                if !tags.iter().any(|t| t == tag) {
                    tags.push(tag.to_owned());
                }
            }
        }
    }
    tags
}

struct Variant {
    stored: Arc<Stored>,
    /// The tick of its last use (a hit stamps it through a shared reference).
    used_at: AtomicU64,
    /// The tick under which `recency` holds it (at most `used_at`).
    recorded: u64,
    size: usize,
}

impl Variant {
    fn used_at(&self) -> u64 {
        self.used_at.load(Ordering::Relaxed)
    }
}

/// The store. Lookups take `&self` and writes `&mut self`: the edge keeps it behind a
/// read-write lock, so hits on every thread proceed together; the lock is held only for
/// map operations (never across an await).
pub struct Store {
    entries: HashMap<String, Vec<Variant>>,
    /// recorded tick → URL: the recency order, brought up to date at eviction (see the
    /// module docs).
    recency: BTreeMap<u64, String>,
    tags: HashMap<String, HashSet<String>>,
    next_tick: AtomicU64,
    used: usize,
    max: usize,
    evictions: u64,
}

impl Store {
    pub fn new(max_bytes: usize) -> Store {
        Store {
            entries: HashMap::new(),
            recency: BTreeMap::new(),
            tags: HashMap::new(),
            next_tick: AtomicU64::new(0),
            used: 0,
            max: max_bytes,
            evictions: 0,
        }
    }

    fn tick(&self) -> u64 {
        self.next_tick.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The variant of `key` that `request` selects, stamped as recently used.
    pub fn get(&self, key: &str, request: &HeaderMap) -> Option<Arc<Stored>> {
        let variant = self
            .entries
            .get(key)?
            .iter()
            .find(|v| v.stored.secondary.matches(request))?;
        variant.used_at.store(self.tick(), Ordering::Relaxed);
        Some(variant.stored.clone())
    }

    /// Stores `stored` under `key`, replacing the variant with the same secondary key,
    /// then evicts least recently used variants until the store fits. Returns false if
    /// the response alone is larger than the whole store.
    pub fn insert(&mut self, key: &str, stored: Arc<Stored>) -> bool {
        let size = stored.size(key);
        if size > self.max {
            return false;
        }
        let tick = self.tick();
        let tags = stored.tags.clone();
        let variants = self.entries.entry(key.to_owned()).or_default();
        let mut freed = Vec::new();
        if let Some(i) = variants
            .iter()
            .position(|v| v.stored.secondary == stored.secondary)
        {
            freed.push(variants.remove(i));
        } else if variants.len() >= MAX_VARIANTS
            && let Some(i) = (0..variants.len()).min_by_key(|&i| variants[i].used_at())
        {
            freed.push(variants.remove(i));
        }
        variants.push(Variant {
            stored,
            used_at: AtomicU64::new(tick),
            recorded: tick,
            size,
        });
        for old in freed {
            self.used -= old.size;
            self.recency.remove(&old.recorded);
        }
        self.used += size;
        self.recency.insert(tick, key.to_owned());
        for tag in tags {
            self.tags.entry(tag).or_default().insert(key.to_owned());
        }
        while self.used > self.max {
            if !self.evict_one() {
                break;
            }
        }
        true
    }

    /// Evicts the least recently used variant: the first in `recency` not used since it
    /// was recorded there (those that were are recorded again, at their last use).
    fn evict_one(&mut self) -> bool {
        loop {
            let Some((recorded, key)) = self.recency.pop_first() else {
                return false;
            };
            let Some(variants) = self.entries.get_mut(&key) else {
                continue;
            };
            let Some(i) = variants.iter().position(|v| v.recorded == recorded) else {
                continue;
            };
            let used_at = variants[i].used_at();
            if used_at > recorded {
                variants[i].recorded = used_at;
                self.recency.insert(used_at, key);
                continue;
            }
            let gone = variants.remove(i);
            self.used -= gone.size;
            self.evictions += 1;
            if variants.is_empty() {
                self.entries.remove(&key);
                self.untag(&key, &gone.stored.tags);
            }
            return true;
        }
    }

    /// Drops `key` from the tag index once its last variant is gone, so the index never
    /// outgrows the store.
    fn untag(&mut self, key: &str, tags: &[String]) {
        for tag in tags {
            if let Some(keys) = self.tags.get_mut(tag) {
                keys.remove(key);
                if keys.is_empty() {
                    self.tags.remove(tag);
                }
            }
        }
    }

    /// Removes every variant of `key`; returns how many there were.
    pub fn remove(&mut self, key: &str) -> usize {
        let Some(variants) = self.entries.remove(key) else {
            return 0;
        };
        for v in &variants {
            self.used -= v.size;
            self.recency.remove(&v.recorded);
            self.untag(key, &v.stored.tags);
        }
        variants.len()
    }

    /// Removes every URL tagged `tag`; returns how many variants went.
    pub fn purge_tag(&mut self, tag: &str) -> usize {
        let Some(keys) = self.tags.remove(tag) else {
            return 0;
        };
        keys.iter().map(|k| self.remove(k)).sum()
    }

    /// Bytes in use.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Stored variants.
    pub fn len(&self) -> usize {
        self.recency.len()
    }

    pub fn is_empty(&self) -> bool {
        self.recency.is_empty()
    }

    /// Variants evicted for room so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::vary::Vary;
    use crate::cache::vary::vary_of;
    use std::time::Duration;

    fn response(body: &str, extra: &[(&'static str, &'static str)]) -> Arc<Stored> {
        let mut h = HeaderMap::new();
        for (k, v) in extra {
            h.append(*k, v.parse().expect("value"));
        }
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        Arc::new(Stored::new(
            StatusCode::OK,
            h,
            Bytes::copy_from_slice(body.as_bytes()),
            Timing {
                request_time: now,
                response_time: now,
            },
            SecondaryKey::default(),
        ))
    }

    #[test]
    fn least_recently_used_leaves_first() {
        let one = response(&"x".repeat(100), &[]).size("/a");
        let mut store = Store::new(one * 3);
        for key in ["/a", "/b", "/c"] {
            assert!(store.insert(key, response(&"x".repeat(100), &[])));
        }
        assert!(store.get("/a", &HeaderMap::new()).is_some());
        store.insert("/d", response(&"x".repeat(100), &[]));
        assert!(
            store.get("/b", &HeaderMap::new()).is_none(),
            "b was the LRU"
        );
        assert!(store.get("/a", &HeaderMap::new()).is_some());
        assert_eq!(store.evictions(), 1);
        assert!(store.used() <= one * 3);
    }

    /// Hits only stamp their variant; eviction still takes the least recently used of
    /// all, in the order of the last hits, however stale the recency records are.
    #[test]
    fn eviction_follows_the_last_hits_not_the_insertion_order() {
        let one = response(&"x".repeat(100), &[]).size("/a");
        let mut store = Store::new(one * 3);
        for key in ["/a", "/b", "/c"] {
            assert!(store.insert(key, response(&"x".repeat(100), &[])));
        }
        let none = HeaderMap::new();
        for key in ["/c", "/a", "/c", "/b", "/a"] {
            assert!(store.get(key, &none).is_some());
        }
        // Last uses: c, b, a (oldest first).
        store.insert("/d", response(&"x".repeat(100), &[]));
        assert!(store.get("/c", &none).is_none(), "c was the LRU");
        store.insert("/e", response(&"x".repeat(100), &[]));
        assert!(store.get("/b", &none).is_none(), "then b");
        for key in ["/a", "/d", "/e"] {
            assert!(store.get(key, &none).is_some(), "{key} stays");
        }
        assert_eq!(store.evictions(), 2);
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn variants_share_a_url_and_replace_their_own() {
        let mut store = Store::new(1 << 20);
        let mut gzip = HeaderMap::new();
        gzip.insert("accept-encoding", "gzip".parse().expect("value"));
        let plain = HeaderMap::new();
        let Vary::Fields(fields) = vary_of(&{
            let mut h = HeaderMap::new();
            h.insert("vary", "accept-encoding".parse().expect("value"));
            h
        }) else {
            panic!("fields")
        };
        for (req, body) in [(&gzip, "gz"), (&plain, "plain"), (&gzip, "gz2")] {
            let mut stored = (*response(body, &[])).clone();
            stored.secondary = SecondaryKey::of(&fields, req);
            store.insert("/p", Arc::new(stored));
        }
        assert_eq!(store.len(), 2);
        let body = |req: &HeaderMap| store.get("/p", req).map(|s| s.body.clone());
        assert_eq!(body(&gzip).as_deref(), Some(&b"gz2"[..]));
        assert_eq!(body(&plain).as_deref(), Some(&b"plain"[..]));
    }

    #[test]
    fn purge_by_url_and_by_tag() {
        let mut store = Store::new(1 << 20);
        store.insert(
            "/posts/1",
            response("1", &[("surrogate-key", "post-1 posts")]),
        );
        store.insert("/posts/2", response("2", &[("cache-tag", "post-2, posts")]));
        store.insert("/about", response("a", &[]));
        assert_eq!(store.remove("/about"), 1);
        assert_eq!(store.purge_tag("posts"), 2);
        assert!(store.is_empty());
        assert_eq!(store.used(), 0);
        assert!(
            store.tags.is_empty(),
            "the tag index empties with the store"
        );
    }

    #[test]
    fn an_object_larger_than_the_store_is_not_stored() {
        let mut store = Store::new(100);
        assert!(!store.insert("/big", response(&"x".repeat(1000), &[])));
        assert!(store.is_empty());
    }
}

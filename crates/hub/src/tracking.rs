//! `CLIENT TRACKING`: the server remembers what each client may have cached, and tells it
//! when that changes — client-side caching, the first of the course's caching levels.
//!
//! A client-side cache answers a repeated `GET` from the application's own memory: no
//! network round trip at all. Its problem is staleness, and Redis 6 solved it in the
//! server: a client that turned tracking on is sent an *invalidation* (`invalidate
//! [keys]`, a RESP3 push) when a key it read changes, and drops the key from its cache.
//! Two ways to decide who hears about which key:
//!
//! - **Default mode**: the server remembers, per key, the clients that read it (the
//!   *tracking table*). A write to the key invalidates it for each of them, once: the
//!   entry is then forgotten until the client reads the key again. Precise, and costs
//!   server memory per key cached, so the table is bounded (`tracking-table-max-keys`):
//!   when it is full, a key is evicted from it and its readers are told to drop it, so a
//!   client never keeps serving a key nobody watches any more.
//! - **BCAST** (broadcast): the client names key prefixes (`PREFIX user:`), and hears of
//!   every change to a key with one of them, whether it read the key or not. No memory
//!   per key; more messages.
//!
//! Options refine it: `OPTIN` tracks only the reads that follow `CLIENT CACHING yes`,
//! `OPTOUT` all but those after `CLIENT CACHING no`; `NOLOOP` spares a client the
//! invalidations of its own writes; `REDIRECT id` sends them to another connection —
//! with RESP2, which has no pushes, that connection subscribes to `__redis__:invalidate`
//! and receives them as messages. `FLUSHDB`/`FLUSHALL` invalidate everything: the message
//! carries a null instead of keys.
//!
//! This module is the engine: who tracks what. It decides *which* client must drop
//! *which* keys; [`crate::tracker`] encodes the messages and queues them.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use proto::CommandError;

/// Redis's default `tracking-table-max-keys`.
pub const DEFAULT_MAX_KEYS: usize = 1_000_000;

/// `CLIENT TRACKING on` options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub redirect: Option<u64>,
    pub bcast: bool,
    pub prefixes: Vec<Bytes>,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
}

/// A tracking client.
#[derive(Debug, Clone, Default)]
struct Tracked {
    options: Options,
    /// `CLIENT CACHING yes|no` given for the next command.
    caching: Option<bool>,
    /// The redirect target is gone (`TRACKINGINFO`'s `broken_redirect`).
    broken_redirect: bool,
}

/// Who must drop which keys (`None`: everything, after a flush).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalidation {
    pub client: u64,
    pub keys: Option<Vec<Bytes>>,
}

/// Every tracking client, the keys each may have cached, and the prefixes of the
/// broadcasting ones.
#[derive(Debug)]
pub struct Tracking {
    clients: HashMap<u64, Tracked>,
    /// Default mode: key → the clients that read it since it last changed. Keys, not
    /// (database, key): like Redis, tracking ignores the database.
    readers: HashMap<Bytes, HashSet<u64>>,
    /// BCAST: prefix → its clients.
    prefixes: BTreeMap<Bytes, HashSet<u64>>,
    max_keys: usize,
}

impl Default for Tracking {
    fn default() -> Self {
        Tracking {
            clients: HashMap::new(),
            readers: HashMap::new(),
            prefixes: BTreeMap::new(),
            max_keys: DEFAULT_MAX_KEYS,
        }
    }
}

impl Tracking {
    /// Is any client tracking? (While none is, writes need not be watched for it.)
    pub fn is_active(&self) -> bool {
        !self.clients.is_empty()
    }

    pub fn is_tracking(&self, client: u64) -> bool {
        self.clients.contains_key(&client)
    }

    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// `CONFIG SET tracking-table-max-keys` (0: no limit). Returns the invalidations of
    /// the keys evicted to get under the new limit.
    pub fn set_max_keys(&mut self, max: usize) -> Vec<Invalidation> {
        self.max_keys = max;
        self.evict_over_limit()
    }

    /// Keys in the tracking table (`INFO`'s `tracking_total_keys`).
    pub fn keys(&self) -> usize {
        self.readers.len()
    }

    pub fn prefixes(&self) -> usize {
        self.prefixes.len()
    }

    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// `CLIENT TRACKING on ...`, with Redis's checks. `redirect_exists` tells whether
    /// the redirect target is connected.
    pub fn enable(
        &mut self,
        client: u64,
        mut options: Options,
        redirect_exists: bool,
    ) -> Result<(), CommandError> {
        let err = |m: &str| Err(CommandError::err(m));
        if !options.bcast && !options.prefixes.is_empty() {
            return err("PREFIX option requires BCAST mode to be enabled");
        }
        let current = self.clients.get(&client);
        if let Some(old) = current
            && old.options.bcast != options.bcast
        {
            return err(
                "You can't switch BCAST mode on/off before disabling tracking for this client, \
                 and then re-enabling it with a different mode.",
            );
        }
        if options.bcast && (options.optin || options.optout) {
            return err("OPTIN and OPTOUT are not compatible with BCAST");
        }
        if options.optin && options.optout {
            return err("You can't use both OPTIN and OPTOUT");
        }
        if let Some(old) = current
            && (options.optin && old.options.optout || options.optout && old.options.optin)
        {
            return err(
                "You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, \
                 and then re-enabling it with a different mode.",
            );
        }
        if let Some(id) = options.redirect
            && !redirect_exists
        {
            return err(&format!(
                "The client ID you want redirect to does not exist ({id})"
            ));
        }
        let mut all: Vec<Bytes> = current
            .map(|c| c.options.prefixes.clone())
            .unwrap_or_default();
        for p in std::mem::take(&mut options.prefixes) {
            if all.contains(&p) {
                continue;
            }
            if let Some(other) = all.iter().find(|o| o.starts_with(&p) || p.starts_with(o)) {
                return err(&format!(
                    "Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single \
                     client must not overlap.",
                    String::from_utf8_lossy(&p),
                    String::from_utf8_lossy(other)
                ));
            }
            all.push(p);
        }
        if options.bcast && all.is_empty() {
            // BCAST without a prefix: every key (the empty prefix).
            all.push(Bytes::new());
        }
        for p in &all {
            self.prefixes.entry(p.clone()).or_default().insert(client);
        }
        options.prefixes = all;
        self.clients.insert(
            client,
            Tracked {
                options,
                ..Tracked::default()
            },
        );
        Ok(())
    }

    /// `CLIENT TRACKING off`, and a tracking client's disconnection. Its entries in the
    /// key table go when those keys next change (or are evicted), as in Redis.
    pub fn disable(&mut self, client: u64) {
        let Some(tracked) = self.clients.remove(&client) else {
            return;
        };
        for p in tracked.options.prefixes {
            if let Some(ids) = self.prefixes.get_mut(&p) {
                ids.remove(&client);
                if ids.is_empty() {
                    self.prefixes.remove(&p);
                }
            }
        }
    }

    /// `CLIENT CACHING yes|no`: applies to the client's next command.
    pub fn caching(&mut self, client: u64, yes: bool) -> Result<(), CommandError> {
        let Some(t) = self.clients.get_mut(&client) else {
            return Err(CommandError::err(
                "CLIENT CACHING can be called only when the client is in tracking mode with \
                 OPTIN or OPTOUT mode enabled",
            ));
        };
        match (yes, t.options.optin, t.options.optout) {
            (true, true, _) | (false, _, true) => {
                t.caching = Some(yes);
                Ok(())
            }
            (true, ..) => Err(CommandError::err(
                "CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
            )),
            (false, ..) => Err(CommandError::err(
                "CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
            )),
        }
    }

    /// A command other than `CLIENT CACHING` ran: the one-shot `CACHING` is spent.
    pub fn command_done(&mut self, client: u64) {
        if let Some(t) = self.clients.get_mut(&client) {
            t.caching = None;
        }
    }

    /// Does a read by `client` now get tracked? (Default mode, subject to OPTIN/OPTOUT.)
    pub fn tracks_reads(&self, client: u64) -> bool {
        self.clients.get(&client).is_some_and(|t| {
            let o = &t.options;
            let opted_out =
                o.optin && t.caching != Some(true) || o.optout && t.caching == Some(false);
            !o.bcast && !opted_out
        })
    }

    /// `client` read `keys`: remember that it may cache them. Returns the invalidations
    /// of keys evicted to keep the table within `tracking-table-max-keys`.
    pub fn remember(&mut self, client: u64, keys: &[Bytes]) -> Vec<Invalidation> {
        if !self.tracks_reads(client) {
            return Vec::new();
        }
        for key in keys {
            match self.readers.get_mut(key) {
                Some(ids) => {
                    ids.insert(client);
                }
                None => {
                    self.readers
                        .insert(Bytes::copy_from_slice(key), HashSet::from([client]));
                }
            }
        }
        self.evict_over_limit()
    }

    /// Redis evicts arbitrary keys when the table is over its limit, telling their
    /// readers to drop them: a key the server no longer watches must not stay cached.
    fn evict_over_limit(&mut self) -> Vec<Invalidation> {
        let mut out = Vec::new();
        while self.max_keys > 0 && self.readers.len() > self.max_keys {
            let Some(key) = self.readers.keys().next().cloned() else {
                break;
            };
            if let Some(ids) = self.readers.remove(&key) {
                for client in ids {
                    if self.clients.contains_key(&client) {
                        out.push(Invalidation {
                            client,
                            keys: Some(vec![key.clone()]),
                        });
                    }
                }
            }
        }
        out
    }

    /// `keys` changed (by `writer`, if a client wrote them): who must drop which. Each
    /// default-mode reader hears once and is forgotten; each broadcasting client hears
    /// of the keys under its prefixes. `NOLOOP` clients are spared their own writes.
    pub fn invalidate(&mut self, keys: &[Bytes], writer: Option<u64>) -> Vec<Invalidation> {
        let mut per_client: BTreeMap<u64, Vec<Bytes>> = BTreeMap::new();
        let spared = |clients: &HashMap<u64, Tracked>, id: u64| {
            writer == Some(id) && clients.get(&id).is_some_and(|t| t.options.noloop)
        };
        for key in keys {
            if let Some(ids) = self.readers.remove(key) {
                for id in ids {
                    let live = self.clients.get(&id).is_some_and(|t| !t.options.bcast);
                    if live && !spared(&self.clients, id) {
                        per_client.entry(id).or_default().push(key.clone());
                    }
                }
            }
            if self.prefixes.is_empty() {
                continue;
            }
            for (prefix, ids) in &self.prefixes {
                if key.starts_with(prefix) {
                    for &id in ids {
                        if !spared(&self.clients, id) {
                            per_client.entry(id).or_default().push(key.clone());
                        }
                    }
                }
            }
        }
        per_client
            .into_iter()
            .map(|(client, mut keys)| {
                keys.dedup();
                Invalidation {
                    client,
                    keys: Some(keys),
                }
            })
            .collect()
    }

    /// A database was flushed or swapped: every tracking client drops everything, and
    /// the key table is emptied.
    pub fn invalidate_all(&mut self) -> Vec<Invalidation> {
        self.readers.clear();
        self.clients
            .keys()
            .map(|&client| Invalidation { client, keys: None })
            .collect()
    }

    /// Where `client`'s invalidations go: itself, or its redirect target.
    pub fn redirect(&self, client: u64) -> Option<u64> {
        self.clients.get(&client)?.options.redirect
    }

    /// The redirect target of `client` disconnected.
    pub fn redirect_broken(&mut self, client: u64) {
        if let Some(t) = self.clients.get_mut(&client) {
            t.broken_redirect = true;
        }
    }

    /// `CLIENT GETREDIR`: -1 without tracking, 0 without a redirect, else the target.
    pub fn getredir(&self, client: u64) -> i64 {
        match self.clients.get(&client) {
            None => -1,
            Some(t) => t.options.redirect.map_or(0, |id| id as i64),
        }
    }

    /// `CLIENT TRACKINGINFO`: flags, redirect, prefixes.
    pub fn info(&self, client: u64) -> (Vec<&'static str>, i64, Vec<Bytes>) {
        let Some(t) = self.clients.get(&client) else {
            return (vec!["off"], -1, Vec::new());
        };
        let o = &t.options;
        let mut flags = vec!["on"];
        for (on, flag) in [
            (o.bcast, "bcast"),
            (o.optin, "optin"),
            (o.optout, "optout"),
            (t.caching == Some(true), "caching-yes"),
            (t.caching == Some(false), "caching-no"),
            (o.noloop, "noloop"),
            (t.broken_redirect, "broken_redirect"),
        ] {
            if on {
                flags.push(flag);
            }
        }
        let prefixes = if o.bcast {
            o.prefixes.clone()
        } else {
            Vec::new()
        };
        (flags, self.getredir(client), prefixes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn on(t: &mut Tracking, id: u64, options: Options) {
        t.enable(id, options, true).unwrap();
    }

    #[test]
    fn default_mode_invalidates_each_reader_once() {
        let mut t = Tracking::default();
        on(&mut t, 1, Options::default());
        on(&mut t, 2, Options::default());
        t.remember(1, &[b("a"), b("b")]);
        t.remember(2, &[b("a")]);
        let mut got = t.invalidate(&[b("a")], None);
        got.sort_by_key(|i| i.client);
        assert_eq!(
            got,
            vec![
                Invalidation {
                    client: 1,
                    keys: Some(vec![b("a")])
                },
                Invalidation {
                    client: 2,
                    keys: Some(vec![b("a")])
                },
            ]
        );
        assert!(
            t.invalidate(&[b("a")], None).is_empty(),
            "forgotten until read again"
        );
        assert_eq!(t.keys(), 1);
    }

    #[test]
    fn noloop_spares_the_writer_and_optin_needs_caching_yes() {
        let mut t = Tracking::default();
        on(
            &mut t,
            1,
            Options {
                noloop: true,
                ..Options::default()
            },
        );
        t.remember(1, &[b("k")]);
        assert!(t.invalidate(&[b("k")], Some(1)).is_empty());
        on(
            &mut t,
            2,
            Options {
                optin: true,
                ..Options::default()
            },
        );
        t.remember(2, &[b("x")]);
        assert_eq!(t.keys(), 0, "OPTIN: not tracked without CACHING yes");
        t.caching(2, true).unwrap();
        t.remember(2, &[b("x")]);
        t.command_done(2);
        t.remember(2, &[b("y")]);
        assert_eq!(t.keys(), 1, "CACHING yes covers one command");
        assert!(t.caching(2, false).is_err());
    }

    #[test]
    fn bcast_prefixes_and_their_checks() {
        let mut t = Tracking::default();
        let bcast = |p: &[&str]| Options {
            bcast: true,
            prefixes: p.iter().map(|s| b(s)).collect(),
            ..Options::default()
        };
        on(&mut t, 1, bcast(&["user:"]));
        assert_eq!(
            t.invalidate(&[b("user:1"), b("post:1")], None),
            vec![Invalidation {
                client: 1,
                keys: Some(vec![b("user:1")])
            }]
        );
        assert!(
            t.enable(1, bcast(&["us"]), true).is_err(),
            "overlapping prefix"
        );
        assert!(
            t.enable(1, Options::default(), true).is_err(),
            "BCAST switch"
        );
        assert!(
            t.enable(
                3,
                Options {
                    prefixes: vec![b("a")],
                    ..Options::default()
                },
                true
            )
            .is_err()
        );
        assert!(
            t.enable(
                4,
                Options {
                    redirect: Some(9),
                    ..Options::default()
                },
                false
            )
            .is_err()
        );
        assert_eq!(t.info(1), (vec!["on", "bcast"], 0, vec![b("user:")]));
        t.disable(1);
        assert_eq!(t.prefixes(), 0);
        assert_eq!(t.getredir(1), -1);
    }

    #[test]
    fn the_table_is_bounded_and_evicted_keys_are_invalidated() {
        let mut t = Tracking::default();
        t.set_max_keys(2);
        on(&mut t, 1, Options::default());
        assert!(t.remember(1, &[b("a"), b("b")]).is_empty());
        let evicted = t.remember(1, &[b("c")]);
        assert_eq!(evicted.len(), 1);
        assert_eq!(t.keys(), 2);
        let gone = &evicted[0].keys.as_ref().unwrap()[0];
        assert!(t.invalidate(std::slice::from_ref(gone), None).is_empty());
    }
}

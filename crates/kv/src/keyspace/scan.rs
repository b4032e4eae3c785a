//! Walking a database: `KEYS`, `SCAN`, `RANDOMKEY`, and the active expiry
//! sweep over the keys that have a TTL.

use std::ops::Bound;

use bytes::Bytes;
use proto::glob::glob_match;

use super::{Change, Keyspace};

#[derive(Debug, Clone, PartialEq)]
pub struct ScanPage {
    /// Pass back to continue; 0 when the iteration is complete.
    pub cursor: u64,
    pub keys: Vec<Bytes>,
}

impl Keyspace {
    /// `KEYS pattern`: every live key matching a Redis glob.
    pub fn keys(&self, db: usize, pattern: &[u8], now: u64) -> Vec<Bytes> {
        let all = pattern == b"*";
        self.dbs[db]
            .entries
            .iter()
            .filter(|(slot, entry)| {
                !entry.is_expired(now) && (all || glob_match(pattern, &slot.key))
            })
            .map(|(slot, _)| slot.key.to_bytes())
            .collect()
    }

    /// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`: visits about `count` keys
    /// from the cursor's bucket on, whole buckets at a time. The cursor is Redis's
    /// reverse-binary bucket count: see [`super::table`] for why a key present
    /// throughout is returned exactly once even when the table doubles between pages.
    pub fn scan(
        &self,
        db: usize,
        cursor: u64,
        count: usize,
        pattern: Option<&[u8]>,
        type_name: Option<&str>,
        now: u64,
    ) -> ScanPage {
        let mut keys = Vec::new();
        let cursor = self.dbs[db].entries.scan(cursor, count, |slot, entry| {
            let wanted = !entry.is_expired(now)
                && pattern.is_none_or(|p| glob_match(p, &slot.key))
                && type_name.is_none_or(|t| t.eq_ignore_ascii_case(entry.value.type_name()));
            if wanted {
                keys.push(slot.key.to_bytes());
            }
        });
        ScanPage { cursor, keys }
    }

    /// `RANDOMKEY`: the first live key at or after a random position. `random` supplies
    /// positions (injected so tests are deterministic).
    pub fn random_key(
        &mut self,
        db: usize,
        now: u64,
        mut random: impl FnMut() -> u64,
    ) -> Option<Bytes> {
        // Expired keys found on the way are deleted, as Redis does; give up on sampling
        // after a few tries and walk in order, so a database full of expired keys ends.
        for _ in 0..16 {
            let d = &self.dbs[db];
            let (slot, entry) = d.entries.first_from(random())?;
            if !entry.is_expired(now) {
                return Some(slot.key.to_bytes());
            }
            let key = slot.key.to_bytes();
            self.live(db, &key, now);
        }
        self.dbs[db]
            .entries
            .iter()
            .find(|(_, e)| !e.is_expired(now))
            .map(|(slot, _)| slot.key.to_bytes())
    }

    // ----- active expiry ---------------------------------------------------------------

    /// One round of the active expiry sweep on `db`: examines up to `sample` keys that
    /// have a TTL, continuing where the previous round stopped, and deletes the expired
    /// ones. Returns `(examined, expired)`; the caller repeats while more than 25% of a
    /// sample was expired.
    pub fn sweep(&mut self, db: usize, now: u64, sample: usize) -> (usize, usize) {
        let d = &mut self.dbs[db];
        let start = match d.sweep_cursor.take() {
            Some(slot) => Bound::Excluded(slot),
            None => Bound::Unbounded,
        };
        let mut examined = 0;
        let mut due = Vec::new();
        let mut last = None;
        for (slot, &at) in d.expires.range((start, Bound::Unbounded)).take(sample) {
            examined += 1;
            if at <= now {
                due.push(slot.clone());
            }
            last = Some(slot);
        }
        // A short sample means we reached the end: start from the beginning next time.
        d.sweep_cursor = if examined == sample {
            last.cloned()
        } else {
            None
        };
        let expired = due.len();
        for slot in due {
            if let Some(old) = self.dbs[db].take(&slot) {
                debug_assert!(old.is_expired(now));
                self.stats.expired_keys += 1;
                self.journal.expired(Change::Remove {
                    db,
                    key: slot.key.to_bytes(),
                });
            }
        }
        (examined, expired)
    }

    /// Does `db` have any key with a TTL? (The sweep skips databases without.)
    pub fn has_volatile(&self, db: usize) -> bool {
        !self.dbs[db].expires.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use crate::keyspace::testing::{b, set};
    use crate::keyspace::*;

    #[test]
    fn expired_keys_are_never_returned_counted_or_scanned() {
        let mut ks = Keyspace::new(true);
        set(&mut ks, "a", "1", Ttl::At(1_000), 0);
        set(&mut ks, "b", "2", Ttl::Clear, 0);
        assert_eq!(ks.dbsize(0, 999), 2);
        assert_eq!(ks.dbsize(0, 1_000), 1);
        assert_eq!(ks.keys(0, b"*", 1_000), vec![b("b")]);
        assert_eq!(ks.scan(0, 0, 10, None, None, 1_000).keys, vec![b("b")]);
        assert_eq!(ks.get(0, &b("a"), 1_000), Ok(None));
        assert_eq!(ks.stats().expired_keys, 1);
        let (changes, _) = ks.drain_changes();
        assert_eq!(changes.last(), Some(&Change::Remove { db: 0, key: b("a") }));
    }

    #[test]
    fn the_sweep_reclaims_keys_nobody_touches() {
        // Nine keys in ten expire, so that the first sample (from a seeded, random place
        // in the table) finds more than a quarter expired and the sweep goes on: with one
        // in two, a sample of 20 found five or fewer about once in fifty runs.
        let mut ks = Keyspace::new(false);
        for i in 0..1_000 {
            let ttl = if i % 10 != 0 {
                Ttl::At(100)
            } else {
                Ttl::At(10_000)
            };
            set(&mut ks, &format!("k{i}"), "v", ttl, 0);
        }
        let mut rounds = 0;
        loop {
            let (examined, expired) = ks.sweep(0, 100, SWEEP_SAMPLE);
            rounds += 1;
            if examined == 0 || expired * 4 <= examined {
                break;
            }
        }
        assert!(rounds > 1);
        // Keep cycling, as the server does, until a full pass finds nothing.
        for _ in 0..1_000 {
            ks.sweep(0, 100, SWEEP_SAMPLE);
        }
        assert_eq!(ks.dbs[0].entries.len(), 100);
        assert_eq!(ks.stats().expired_keys, 900);
    }

    #[test]
    fn scan_returns_every_key_present_throughout_despite_churn() {
        let mut ks = Keyspace::new(false);
        for i in 0..500 {
            set(&mut ks, &format!("stable{i}"), "v", Ttl::Clear, 0);
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut round = 0;
        loop {
            let page = ks.scan(0, cursor, 7, None, None, 0);
            seen.extend(page.keys);
            // Churn between pages: add and remove other keys.
            for j in 0..20 {
                set(&mut ks, &format!("new{round}-{j}"), "v", Ttl::Clear, 0);
            }
            let del = Mutation::Del {
                keys: (0..10)
                    .map(|j| b(&format!("new{}-{j}", round / 2)))
                    .collect(),
            };
            ks.apply(0, del, 0).unwrap();
            round += 1;
            cursor = page.cursor;
            if cursor == 0 {
                break;
            }
        }
        for i in 0..500 {
            assert!(seen.contains(&b(&format!("stable{i}"))), "stable{i} missed");
        }
    }
}

//! Encodings: the names Redis gives the memory layouts of a value, and the thresholds
//! (`CONFIG SET hash-max-listpack-entries 128`, ...) that choose between them.
//!
//! Redis keeps a small collection in one compact buffer — a *listpack*, or an *intset*
//! for a set of integers — because for a few dozen elements a linear scan of contiguous
//! bytes beats a hash table's pointer chasing, at a fraction of the memory. Past a size
//! threshold, or once one element is long, it converts the value to the general structure
//! (`hashtable`, `skiplist`, `quicklist`), which stays fast as the collection grows.
//! `OBJECT ENCODING key` shows which one a key uses.
//!
//! kv's lists really are packed (see [`crate::types::list`]): a list that fits in one
//! chunk is a `listpack`, a longer one a chain of them, a `quicklist`, and
//! `list-max-listpack-size` sets the chunk size. Its hashes and sets are packed too (see
//! [`crate::types::packed`]) up to Redis's *default* thresholds (128 elements, none longer
//! than 64 bytes), then move to an ordered map for good; its sorted sets have one layout.
//! `OBJECT ENCODING` names the encoding Redis would use for the same contents under the
//! thresholds `CONFIG SET` gave — the thresholds choose the name, not kv's layout. One
//! difference: Redis never converts a value back to the compact form when it shrinks,
//! while kv's answer follows the current contents.
//!
//! Strings: `int` for a canonical 64-bit integer, `embstr` up to 44 bytes (Redis
//! allocates those together with their object header), `raw` beyond.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::value::Value;

/// The thresholds, as `CONFIG GET` names them, with Redis 7's defaults.
pub struct Thresholds {
    values: [AtomicI64; PARAMS.len()],
}

/// `(name, default)`; the index is the parameter's slot in [`Thresholds::values`].
const PARAMS: [(&str, i64); 8] = [
    ("list-max-listpack-size", -2),
    ("hash-max-listpack-entries", 128),
    ("hash-max-listpack-value", 64),
    ("set-max-intset-entries", 512),
    ("set-max-listpack-entries", 128),
    ("set-max-listpack-value", 64),
    ("zset-max-listpack-entries", 128),
    ("zset-max-listpack-value", 64),
];
const LIST_SIZE: usize = 0;
const HASH_ENTRIES: usize = 1;
const HASH_VALUE: usize = 2;
const INTSET_ENTRIES: usize = 3;
const SET_ENTRIES: usize = 4;
const SET_VALUE: usize = 5;
const ZSET_ENTRIES: usize = 6;
const ZSET_VALUE: usize = 7;

/// Redis's older names for the same parameters (`ziplist` was the listpack's predecessor).
fn canonical(name: &str) -> String {
    name.replace("ziplist", "listpack")
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            values: PARAMS.map(|(_, default)| AtomicI64::new(default)),
        }
    }
}

impl Thresholds {
    fn get(&self, slot: usize) -> i64 {
        self.values[slot].load(Ordering::Relaxed)
    }

    /// Every parameter with its value, for `CONFIG GET`.
    pub fn config_get(&self) -> Vec<(String, String)> {
        PARAMS
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (name.to_string(), self.get(i).to_string()))
            .collect()
    }

    /// `CONFIG SET`: `None` if `name` is not one of these.
    pub fn config_set(&self, name: &str, value: &str) -> Option<Result<(), String>> {
        let name = canonical(name);
        let slot = PARAMS.iter().position(|(n, _)| *n == name)?;
        let parsed = value
            .parse::<i64>()
            .map_err(|_| "argument couldn't be parsed into an integer".to_string());
        Some(parsed.and_then(|n| {
            let valid = if slot == LIST_SIZE {
                (-5..=i64::from(u16::MAX)).contains(&n) && n != 0
            } else {
                n >= 0
            };
            if !valid {
                return Err("argument must be between -5 and 65535 (not 0)".to_string());
            }
            self.values[slot].store(n, Ordering::Relaxed);
            if slot == LIST_SIZE {
                crate::types::list::set_chunk_limit(list_chunk_bytes(n));
            }
            Ok(())
        }))
    }

    /// The name `OBJECT ENCODING` gives `value`.
    pub fn name(&self, value: &Value) -> &'static str {
        let small = |len: usize, entries: usize, longest: usize, value_slot: usize| {
            len as i64 <= self.get(entries) && longest as i64 <= self.get(value_slot)
        };
        match value {
            Value::String(s) if is_int(s) => "int",
            Value::String(s) if s.len() <= 44 => "embstr",
            Value::String(_) => "raw",
            Value::List(l) if l.chunk_count() <= 1 => "listpack",
            Value::List(_) => "quicklist",
            Value::Hash(h) => {
                let longest = h.iter().map(|(f, v)| f.len().max(v.len())).max();
                if small(h.len(), HASH_ENTRIES, longest.unwrap_or(0), HASH_VALUE) {
                    "listpack"
                } else {
                    "hashtable"
                }
            }
            Value::Set(s) => {
                if s.len() as i64 <= self.get(INTSET_ENTRIES) && s.iter().all(is_int) {
                    return "intset";
                }
                let longest = s.iter().map(<[u8]>::len).max().unwrap_or(0);
                if small(s.len(), SET_ENTRIES, longest, SET_VALUE) {
                    "listpack"
                } else {
                    "hashtable"
                }
            }
            Value::ZSet(z) => {
                let longest = z.slots().keys().map(|m| m.key().len()).max();
                if small(z.len(), ZSET_ENTRIES, longest.unwrap_or(0), ZSET_VALUE) {
                    "listpack"
                } else {
                    "skiplist"
                }
            }
        }
    }
}

/// `list-max-listpack-size` as a chunk size in bytes: -1..-5 are 4, 8, 16, 32 and 64 KiB
/// (Redis's meaning); a positive count of elements is approximated as that many 16-byte
/// elements, since kv's chunks are bounded by bytes, not by count.
fn list_chunk_bytes(setting: i64) -> usize {
    if setting < 0 {
        4096 << (setting.unsigned_abs().min(5) - 1)
    } else {
        (setting as usize).saturating_mul(16).max(64)
    }
}

/// Is this the canonical text of a 64-bit integer (what Redis stores as `int`)?
fn is_int(text: &[u8]) -> bool {
    text.len() <= 20
        && proto::decode::parse_int(text).is_some_and(|n| n.to_string().as_bytes() == text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_sizes_follow_redis() {
        assert_eq!(list_chunk_bytes(-1), 4096);
        assert_eq!(list_chunk_bytes(-2), 8192);
        assert_eq!(list_chunk_bytes(-5), 65536);
        assert_eq!(list_chunk_bytes(128), 2048);
    }

    #[test]
    fn integers_are_canonical() {
        assert!(is_int(b"0"));
        assert!(is_int(b"-42"));
        assert!(!is_int(b"042"));
        assert!(!is_int(b"+1"));
        assert!(!is_int(b"1.0"));
        assert!(!is_int(b"99999999999999999999"));
    }

    #[test]
    fn thresholds_choose_the_names() {
        let t = Thresholds::default();
        let set = |members: &[&str]| {
            Value::Set(
                members
                    .iter()
                    .map(|m| bytes::Bytes::from(m.to_string()))
                    .collect(),
            )
        };
        assert_eq!(t.name(&set(&["1", "2"])), "intset");
        assert_eq!(t.name(&set(&["1", "a"])), "listpack");
        assert_eq!(t.config_set("set-max-listpack-entries", "1"), Some(Ok(())));
        assert_eq!(t.name(&set(&["1", "a"])), "hashtable");
        assert_eq!(t.config_set("set-max-intset-entries", "1"), Some(Ok(())));
        assert_eq!(t.name(&set(&["1", "2"])), "hashtable");
        assert!(matches!(
            t.config_set("zset-max-ziplist-entries", "x"),
            Some(Err(_))
        ));
        assert_eq!(t.config_set("nope", "1"), None);
    }
}

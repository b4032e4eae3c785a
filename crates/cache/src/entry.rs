//! # One cached key: its record in the slab
//!
//! A read of a large cache is *memory-bound*: the CPU spends its time waiting for cache
//! lines, not computing. Every pointer a lookup follows is another wait — in Redis the
//! chain is bucket → dictEntry → key → value object. So the record is laid out around
//! the lookup:
//!
//! - **One cache line.** The record is 64 bytes and 64-byte aligned, so the slab slot a
//!   probe lands on is exactly one line (a 72-byte record straddles two most of the time).
//! - **Small keys and values inside it.** Up to [`INLINE`] bytes of key and value
//!   together (a session id and a counter, `redis-benchmark`'s keys and 3-byte values)
//!   live *in* the record: the line that holds the hash also holds the key to compare
//!   and the value to reply with, and a write allocates nothing.
//! - **Larger ones in one allocation**, key followed by value (`key ++ value`): comparing
//!   the key has then already brought the start of the value into cache.
//!
//! Memory accounting charges every entry the same overhead either way
//! ([`crate::memory::ENTRY_OVERHEAD`]), so where a key lives never changes what fits.

use bytes::Bytes;

use crate::memory::entry_size;
use crate::policy::EntryMeta;

/// Key and value bytes that fit inside the record.
pub const INLINE: usize = 44;

/// Values up to this size are copied out of the store on a read; larger ones are shared
/// (a reference count, so a read of a 1 MB value does not copy it under the lock). For a
/// small value the copy is cheaper than the shared count: no atomic, no extra cache line.
pub(crate) const COPY_OUT_LIMIT: usize = 512;

/// Where the key's and value's bytes are: `key ++ value` either way.
#[derive(Debug, Clone)]
enum Data {
    Inline {
        key_len: u8,
        len: u8,
        negative: bool,
        bytes: [u8; INLINE],
    },
    Heap {
        key_len: u32,
        negative: bool,
        bytes: Bytes,
    },
}

/// One cached key (see the module docs).
#[derive(Debug, Clone)]
#[repr(align(64))]
pub struct Entry {
    hash: u64,
    /// Absolute expiry in unix milliseconds; 0: none (no real expiry is at 0: a time in
    /// the past is refused or deletes the key).
    expires_at: u64,
    data: Data,
}

impl Entry {
    /// A record for `key` with `value`, or a negative entry (the origin has no such key)
    /// when `value` is `None`. `hash` is the key's hash in the store.
    pub fn new(key: &[u8], value: Option<&[u8]>, expires_at: Option<u64>, hash: u64) -> Self {
        let negative = value.is_none();
        let value = value.unwrap_or_default();
        let len = key.len() + value.len();
        let data = match (u8::try_from(key.len()), u8::try_from(len)) {
            (Ok(key_len), Ok(len_u8)) if len <= INLINE => {
                let mut bytes = [0u8; INLINE];
                bytes[..key.len()].copy_from_slice(key);
                bytes[key.len()..len].copy_from_slice(value);
                Data::Inline {
                    key_len,
                    len: len_u8,
                    negative,
                    bytes,
                }
            }
            _ => {
                let mut bytes = Vec::with_capacity(len);
                bytes.extend_from_slice(key);
                bytes.extend_from_slice(value);
                Data::Heap {
                    key_len: key.len() as u32,
                    negative,
                    bytes: Bytes::from(bytes),
                }
            }
        };
        Entry {
            hash,
            expires_at: expires_at.unwrap_or(0),
            data,
        }
    }

    /// `key ++ value` and where the key ends.
    fn parts(&self) -> (&[u8], usize) {
        match &self.data {
            Data::Inline {
                key_len,
                len,
                bytes,
                ..
            } => (
                bytes.get(..*len as usize).unwrap_or_default(),
                *key_len as usize,
            ),
            Data::Heap { key_len, bytes, .. } => (bytes, *key_len as usize),
        }
    }

    pub fn key(&self) -> &[u8] {
        let (bytes, key_len) = self.parts();
        bytes.get(..key_len).unwrap_or_default()
    }

    /// The value's bytes; `None` for a negative entry.
    pub fn value_bytes(&self) -> Option<&[u8]> {
        if !self.has_value() {
            return None;
        }
        let (bytes, key_len) = self.parts();
        bytes.get(key_len..)
    }

    /// The value, to hand to a reply (copied if small, shared if large).
    pub fn value(&self) -> Option<Bytes> {
        let value = self.value_bytes()?;
        Some(match &self.data {
            Data::Heap { key_len, bytes, .. } if value.len() > COPY_OUT_LIMIT => {
                bytes.slice(*key_len as usize..)
            }
            _ => Bytes::copy_from_slice(value),
        })
    }

    pub fn has_value(&self) -> bool {
        match self.data {
            Data::Inline { negative, .. } | Data::Heap { negative, .. } => !negative,
        }
    }

    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// Absolute expiry in unix milliseconds, if any.
    pub fn expires_at(&self) -> Option<u64> {
        (self.expires_at != 0).then_some(self.expires_at)
    }

    pub fn set_expires_at(&mut self, at: Option<u64>) {
        self.expires_at = at.unwrap_or(0);
    }

    /// The accounted size ([`crate::memory`]).
    pub fn size(&self) -> u64 {
        let (bytes, _) = self.parts();
        entry_size(0, bytes.len())
    }

    pub fn meta(&self) -> EntryMeta {
        EntryMeta {
            hash: self.hash,
            size: self.size(),
            expires_at: self.expires_at(),
        }
    }

    pub fn expired(&self, now: u64) -> bool {
        self.expires_at().is_some_and(|at| at <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Option<Entry>>(), 64);
        assert_eq!(std::mem::align_of::<Entry>(), 64);
    }

    #[test]
    fn inline_and_heap_entries_read_back_whole() {
        for (key, value) in [
            (&b"k"[..], &b""[..]),
            (b"key:000000012345", b"xxx"),
            (&[7u8; 40][..], &[9u8; 4][..]),    // exactly INLINE
            (&[7u8; 40][..], &[9u8; 5][..]),    // one byte over: heap
            (&[1u8; 300][..], &[2u8; 600][..]), // shared on read
        ] {
            let e = Entry::new(key, Some(value), Some(5), 1);
            assert_eq!(e.key(), key);
            assert_eq!(e.value_bytes(), Some(value));
            assert_eq!(e.value().as_deref(), Some(value));
            assert_eq!(e.size(), entry_size(key.len(), value.len()));
            assert_eq!(e.expires_at(), Some(5));
        }
        let negative = Entry::new(b"gone", None, None, 2);
        assert_eq!(negative.key(), b"gone");
        assert!(!negative.has_value());
        assert_eq!(negative.value(), None);
        assert_eq!(negative.expires_at(), None);
    }
}

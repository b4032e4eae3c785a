//! [`SmallBytes`]: a byte string that keeps short contents inside itself.
//!
//! Keys and string values are mostly short: `user:1001`, `42`, a 16-byte token. Stored as
//! a `Bytes`, each costs a 32-byte header where it sits *plus* an allocation of its own for
//! the contents (16 bytes at least), and the first clone of such a `Bytes` (a `GET`, a
//! `SCAN`) allocates a further shared header to count references. Redis avoids the same
//! cost with its `embstr` encoding: a string of up to 44 bytes is allocated together with
//! its object header, in one block.
//!
//! `SmallBytes` is 24 bytes: a one-byte tag, then either the contents themselves (up to
//! [`INLINE`] bytes, no allocation at all) or a pointer to them:
//!
//! | variant | contents | costs beyond the 24 bytes | a read (`to_bytes`) |
//! |---|---|---|---|
//! | `Inline` | up to 22 bytes | nothing | copies them (as small as a reference count) |
//! | `Boxed` | up to [`SHARED_FROM`] bytes | one allocation of exactly the length | copies them |
//! | `Shared` | longer | a `Bytes` header (32 bytes) and its buffer | clones the `Bytes`: no copy |
//!
//! Long values stay shared because a reply copies a string into the connection's output
//! buffer anyway; copying a 64 MiB value once more per `GET` would double the work, while
//! copying a 100-byte one costs less than the memory a shared header would keep.
//!
//! The tag has room for more values than its three variants, which Rust can use for the
//! tag of an enum around it.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Contents up to this long live inside the value.
pub const INLINE: usize = 22;
/// Contents this long or longer are kept as a shared `Bytes` (see the module docs).
pub const SHARED_FROM: usize = 1024;

/// A byte string, inline when short (see the module docs).
#[derive(Clone)]
pub enum SmallBytes {
    Inline { len: u8, bytes: [u8; INLINE] },
    Boxed(Box<[u8]>),
    Shared(Box<Bytes>),
}

impl Default for SmallBytes {
    fn default() -> Self {
        SmallBytes::Inline {
            len: 0,
            bytes: [0; INLINE],
        }
    }
}

impl SmallBytes {
    /// A copy of `b` in an allocation of its own (or none): never a view into another
    /// buffer, so storing it pins nothing (request arguments are slices of the
    /// connection's read buffer).
    pub fn copy(b: &[u8]) -> Self {
        match b.len() {
            n if n <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..n].copy_from_slice(b);
                SmallBytes::Inline {
                    len: n as u8,
                    bytes,
                }
            }
            n if n < SHARED_FROM => SmallBytes::Boxed(b.into()),
            _ => SmallBytes::Shared(Box::new(Bytes::copy_from_slice(b))),
        }
    }

    /// A record of request bytes that lives no longer than the request: the journal's
    /// record of a `SET`, encoded and dropped before the command returns. A long value
    /// shares the request's buffer instead of being copied; never store one in the map
    /// (it would keep the whole read buffer alive), use [`SmallBytes::copy`] there.
    pub fn view(b: &Bytes) -> Self {
        if b.len() <= INLINE {
            SmallBytes::copy(b)
        } else {
            SmallBytes::Shared(Box::new(b.clone()))
        }
    }

    /// The contents as a `Bytes` for a reply or a journal record: a copy when short, the
    /// shared buffer when long.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            SmallBytes::Shared(b) => Bytes::clone(b),
            short => Bytes::copy_from_slice(short),
        }
    }

    /// The contents to change in place (`SETBIT`, `SETRANGE`): no copy when nothing else
    /// shares them.
    pub fn into_bytes_mut(self) -> BytesMut {
        match self {
            SmallBytes::Boxed(b) => BytesMut::from(Bytes::from(b)),
            SmallBytes::Shared(b) => b
                .try_into_mut()
                .unwrap_or_else(|shared| BytesMut::from(&shared[..])),
            inline => BytesMut::from(&inline[..]),
        }
    }

    /// Runs `f` on the contents, changed where they are: a write that keeps the length
    /// (a `SETBIT` inside the string, a `BITFIELD SET`, a HyperLogLog register) costs no
    /// allocation and no copy. Short contents (inline or boxed) are owned outright; long
    /// ones are shared with any reply still holding them, so they are taken back whole
    /// and copied only if a reply does (what [`Self::into_bytes_mut`] does).
    pub fn edit<R>(&mut self, f: impl FnOnce(&mut [u8]) -> R) -> R {
        match self {
            SmallBytes::Inline { len, bytes } => f(&mut bytes[..usize::from(*len)]),
            SmallBytes::Boxed(b) => f(b),
            SmallBytes::Shared(b) => {
                let mut owned = std::mem::take(&mut **b)
                    .try_into_mut()
                    .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
                let answer = f(&mut owned);
                **b = owned.freeze();
                answer
            }
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            SmallBytes::Inline { len, bytes } => &bytes[..usize::from(*len)],
            SmallBytes::Boxed(b) => b,
            SmallBytes::Shared(b) => b,
        }
    }
}

/// Takes a buffer built for the keyspace (an `INCR` result, an `APPEND`ed string): a long
/// one is kept as it is, a short one copied in. Request bytes go through
/// [`SmallBytes::copy`] instead, so that a long value never keeps the read buffer alive.
impl From<Bytes> for SmallBytes {
    fn from(b: Bytes) -> Self {
        if b.len() < SHARED_FROM {
            SmallBytes::copy(&b)
        } else {
            SmallBytes::Shared(Box::new(b))
        }
    }
}

impl From<&[u8]> for SmallBytes {
    fn from(b: &[u8]) -> Self {
        SmallBytes::copy(b)
    }
}

impl From<Vec<u8>> for SmallBytes {
    fn from(b: Vec<u8>) -> Self {
        SmallBytes::from(Bytes::from(b))
    }
}

impl Deref for SmallBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for SmallBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

// Equal, ordered and hashed by contents, never by variant: a 30-byte key is the same key
// whether it was built boxed or shared.
impl PartialEq for SmallBytes {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for SmallBytes {}

impl PartialOrd for SmallBytes {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SmallBytes {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

impl Hash for SmallBytes {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl PartialEq<[u8]> for SmallBytes {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_slice() == other
    }
}

impl fmt::Debug for SmallBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&Bytes::copy_from_slice(self), f)
    }
}

/// The same bytes on disk and on the wire as a `Bytes` (a length and the contents), so
/// the journal, the checkpoint and `DUMP` did not change with the representation.
impl Serialize for SmallBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self)
    }
}

impl<'de> Deserialize<'de> for SmallBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Bytes::deserialize(d).map(SmallBytes::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_contents_are_inline_and_long_ones_shared() {
        assert_eq!(std::mem::size_of::<SmallBytes>(), 24);
        assert!(matches!(
            SmallBytes::copy(&[7; INLINE]),
            SmallBytes::Inline { .. }
        ));
        assert!(matches!(
            SmallBytes::copy(&[7; INLINE + 1]),
            SmallBytes::Boxed(_)
        ));
        let long = Bytes::from(vec![7; SHARED_FROM]);
        let kept = SmallBytes::from(long.clone());
        assert!(matches!(&kept, SmallBytes::Shared(b) if b.as_ptr() == long.as_ptr()));
        for n in [0, 1, INLINE, INLINE + 1, SHARED_FROM - 1, SHARED_FROM, 5000] {
            let b: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let s = SmallBytes::copy(&b);
            assert_eq!(&s[..], &b[..]);
            assert_eq!(s.to_bytes(), b);
            assert_eq!(s.clone().into_bytes_mut(), b[..]);
            assert_eq!(s, SmallBytes::from(Bytes::from(b.clone())));
        }
    }

    /// `edit` changes the contents of every variant where they are, and never the bytes a
    /// reply still holds.
    #[test]
    fn editing_changes_the_contents_in_place_and_spares_shared_readers() {
        for n in [1, INLINE, INLINE + 1, SHARED_FROM, 5000] {
            let mut s = SmallBytes::copy(&vec![0; n]);
            let variant = std::mem::discriminant(&s);
            let reply = s.to_bytes();
            let was = s.edit(|b| std::mem::replace(&mut b[n - 1], 9));
            assert_eq!(was, 0);
            assert_eq!(s.len(), n);
            assert_eq!(s[n - 1], 9);
            assert_eq!(
                reply[n - 1],
                0,
                "a reply taken before the edit is unchanged"
            );
            assert_eq!(std::mem::discriminant(&s), variant);
        }
        // Boxed: the same allocation, no copy.
        let mut s = SmallBytes::copy(&[0; 100]);
        let before = s.as_ptr();
        s.edit(|b| b[0] = 1);
        assert_eq!((s.as_ptr(), s[0]), (before, 1));
    }

    #[test]
    fn order_and_equality_follow_the_contents() {
        let a = SmallBytes::copy(&[1; 30]);
        let b = SmallBytes::Shared(Box::new(Bytes::from(vec![1; 30])));
        assert_eq!(a, b);
        assert_eq!(a.cmp(&b), Ordering::Equal);
        assert!(SmallBytes::copy(b"a") < SmallBytes::copy(&[b'a'; 40]));
        assert!(SmallBytes::copy(b"b") > SmallBytes::copy(&[b'a'; 40]));
    }

    #[test]
    fn the_byte_format_is_that_of_bytes() {
        let opts = bincode::DefaultOptions::new();
        use bincode::Options;
        for n in [0, 5, 100, 2000] {
            let b = Bytes::from(vec![3u8; n]);
            let ours = opts.serialize(&SmallBytes::copy(&b)).unwrap();
            assert_eq!(ours, opts.serialize(&b).unwrap());
            let back: SmallBytes = opts.deserialize(&ours).unwrap();
            assert_eq!(back, SmallBytes::copy(&b));
        }
    }
}

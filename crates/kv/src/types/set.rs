//! A Redis set: unique members inside one key.
//!
//! Small sets are packed (see [`super::packed`]): the members in one buffer, in the
//! maps' order (by hash of member). Past [`MAX_ENTRIES`] members or one longer than
//! [`MAX_ELEMENT`] bytes, the set moves to a map ordered by hash of member (see
//! [`super`]) for good.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};

use super::packed::{MAX_ELEMENT, MAX_ENTRIES, Packed};
use super::{ELEMENT_OVERHEAD, ElementBytes, pick, random_entries, random_items, scan_slots};
use crate::keyspace::Slot;

/// A set's members (see the module docs).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(from = "Vec<Bytes>")]
pub struct Set {
    members: Members,
}

#[derive(Debug, Clone, PartialEq)]
enum Members {
    Packed(Packed),
    /// Boxed, as a hash's table: a `Set` is 24 bytes and needs no box of its own.
    Table(Box<Table>),
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Table {
    map: BTreeMap<Slot, ()>,
    /// Payload plus [`ELEMENT_OVERHEAD`] per member: the memory estimate.
    bytes: usize,
}

impl Default for Members {
    fn default() -> Self {
        Members::Packed(Packed::default())
    }
}

impl Set {
    /// A packed set counts by walking (at most 128 members): no count of its own keeps
    /// a `Set` at 16 bytes and a [`crate::value::Value`] at 24.
    pub fn len(&self) -> usize {
        match &self.members {
            Members::Packed(p) => p.spans().count(),
            Members::Table(t) => t.map.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        match &self.members {
            Members::Packed(p) => p.capacity() == 0,
            Members::Table(t) => t.map.is_empty(),
        }
    }

    /// Is it still in the packed form? (`OBJECT ENCODING`'s `listpack` or `intset`.)
    pub fn is_packed(&self) -> bool {
        matches!(self.members, Members::Packed(_))
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        match &self.members {
            Members::Packed(p) => p.iter().any(|m| m == member),
            Members::Table(t) => t
                .map
                .contains_key(&Slot::new(Bytes::copy_from_slice(member))),
        }
    }

    /// `true` if the member is new.
    pub fn insert(&mut self, member: &[u8]) -> bool {
        if self.is_packed()
            && (member.len() > MAX_ELEMENT || self.len() >= MAX_ENTRIES)
            && !self.contains(member)
        {
            self.unpack();
        }
        match &mut self.members {
            Members::Packed(p) => {
                let new = !p.iter().any(|m| m == member);
                if new {
                    p.insert(p.position(member, 1), &[member]);
                }
                new
            }
            Members::Table(t) => {
                let new = t
                    .map
                    .insert(Slot::new(Bytes::copy_from_slice(member)), ())
                    .is_none();
                if new {
                    t.bytes += member.len() + ELEMENT_OVERHEAD;
                }
                new
            }
        }
    }

    /// `true` if the member was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match &mut self.members {
            Members::Packed(p) => match p.spans().find(|&s| p.get(s) == member) {
                Some(s) => {
                    p.remove(s, s);
                    true
                }
                None => false,
            },
            Members::Table(t) => {
                let gone = t
                    .map
                    .remove(&Slot::new(Bytes::copy_from_slice(member)))
                    .is_some();
                if gone {
                    t.bytes -= member.len() + ELEMENT_OVERHEAD;
                }
                gone
            }
        }
    }

    /// Moves the members to the map, for good.
    fn unpack(&mut self) {
        if let Members::Packed(p) = &self.members {
            let map = p
                .iter()
                .map(|m| (Slot::new(Bytes::copy_from_slice(m)), ()))
                .collect();
            let bytes = p.iter().map(|m| m.len() + ELEMENT_OVERHEAD).sum();
            self.members = Members::Table(Box::new(Table { map, bytes }));
        }
    }

    /// The members, in hash order (in either form).
    pub fn iter(&self) -> Box<dyn Iterator<Item = &[u8]> + '_> {
        match &self.members {
            Members::Packed(p) => Box::new(p.iter()),
            Members::Table(t) => Box::new(t.map.keys().map(|slot| &slot.key()[..])),
        }
    }

    /// One page of `SSCAN` (see [`scan_slots`]). A packed set is returned whole, with
    /// cursor 0, as Redis returns a listpack or an intset.
    pub fn scan(
        &self,
        cursor: u64,
        count: usize,
        pattern: Option<&[u8]>,
        mut emit: impl FnMut(&[u8]),
    ) -> u64 {
        match &self.members {
            Members::Table(t) => scan_slots(&t.map, cursor, count, pattern, |m, ()| emit(m)),
            Members::Packed(p) => {
                p.iter()
                    .filter(|m| pattern.is_none_or(|pat| proto::glob::glob_match(pat, m)))
                    .for_each(emit);
                0
            }
        }
    }

    /// `SRANDMEMBER`'s picks (see [`random_entries`]).
    pub fn random(&self, count: i64) -> Vec<&[u8]> {
        match &self.members {
            Members::Table(t) => random_entries(&t.map, count)
                .into_iter()
                .map(|(m, ())| &m[..])
                .collect(),
            Members::Packed(p) => random_items(&p.iter().collect::<Vec<_>>(), count),
        }
    }

    /// One member chosen by `random` (any u64): what `SPOP` removes.
    pub fn pick(&self, random: u64) -> Option<&[u8]> {
        match &self.members {
            Members::Table(t) => pick(&t.map, random).map(|(slot, ())| &slot.key()[..]),
            Members::Packed(p) => p.iter().nth((random % self.len().max(1) as u64) as usize),
        }
    }

    /// Bytes held: a packed set's buffer and header, or the map's estimate (payload plus
    /// [`ELEMENT_OVERHEAD`] per member, kept up to date in both forms).
    pub fn memory(&self) -> usize {
        match &self.members {
            Members::Packed(p) => p.capacity(),
            Members::Table(t) => t.bytes,
        }
    }
}

/// Equal when they hold the same members, whatever their form and order.
impl PartialEq for Set {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|m| other.contains(m))
    }
}

impl From<Vec<Bytes>> for Set {
    fn from(members: Vec<Bytes>) -> Self {
        members.into_iter().collect()
    }
}

impl FromIterator<Bytes> for Set {
    fn from_iter<I: IntoIterator<Item = Bytes>>(iter: I) -> Self {
        let mut set = Set::default();
        for m in iter {
            set.insert(&m);
        }
        set
    }
}

/// On disk and in `DUMP`: the list of members (counted up front, as bincode needs).
impl Serialize for Set {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for m in self.iter() {
            seq.serialize_element(&ElementBytes(m))?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same writes to a set that moves to the map midway and to a model.
    #[test]
    fn packed_and_table_agree_with_a_model() {
        let mut s = Set::default();
        let mut model = std::collections::HashSet::new();
        for i in 0..600u32 {
            let m = format!("m{}", (i * 7) % 200);
            if i % 3 == 2 {
                assert_eq!(s.remove(m.as_bytes()), model.remove(&m));
            } else {
                assert_eq!(s.insert(m.as_bytes()), model.insert(m.clone()));
            }
            assert_eq!(s.len(), model.len());
            assert_eq!(s.iter().count(), model.len());
        }
        assert!(!s.is_packed());
        for m in &model {
            assert!(s.contains(m.as_bytes()));
        }
        let mut small: Set = [Bytes::from("a"), Bytes::from("b")].into_iter().collect();
        assert!(small.is_packed());
        assert_eq!(small.random(-5).len(), 5);
        assert_eq!(small.random(5).len(), 2);
        assert!(small.pick(7).is_some());
        assert!(small.insert(&[b'x'; MAX_ELEMENT + 1]));
        assert!(!small.is_packed());
        assert!(small.contains(b"a"));
    }
}

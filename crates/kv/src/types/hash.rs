//! A Redis hash: a map of fields to values inside one key.
//!
//! Small hashes are packed (see [`super::packed`]): fields and values alternate in one
//! buffer, in the maps' order (by hash of field). Past [`MAX_ENTRIES`] fields or a field or
//! value longer than [`MAX_ELEMENT`] bytes, the hash moves to a map ordered by hash of
//! field (see [`super`]) for good.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};

use super::packed::{MAX_ELEMENT, MAX_ENTRIES, Packed, Span};
use super::{ELEMENT_OVERHEAD, ElementBytes, random_entries, random_items, scan_slots};
use crate::keyspace::Slot;

/// A hash's fields (see the module docs).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(from = "Vec<(Bytes, Bytes)>")]
pub struct Hash {
    /// No count of its own: 16 bytes, so a [`crate::value::Value`] stays 24. A packed
    /// hash counts by walking (at most 128 fields), a map knows its length.
    fields: Fields,
}

/// 16 bytes (the table is boxed), so that a `Hash` is 24 and sits in its
/// [`crate::value::Value`] with no box of its own.
#[derive(Debug, Clone, PartialEq)]
enum Fields {
    /// field, value, field, value...
    Packed(Packed),
    Table(Box<Table>),
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Table {
    map: BTreeMap<Slot, Bytes>,
    /// Payload plus [`ELEMENT_OVERHEAD`] per field: the memory estimate.
    bytes: usize,
}

impl Default for Fields {
    fn default() -> Self {
        Fields::Packed(Packed::default())
    }
}

/// The places of `field` and its value in a packed hash.
fn find(p: &Packed, field: &[u8]) -> Option<(Span, Span)> {
    let mut spans = p.spans();
    while let (Some(f), Some(v)) = (spans.next(), spans.next()) {
        if p.get(f) == field {
            return Some((f, v));
        }
    }
    None
}

impl Hash {
    pub fn len(&self) -> usize {
        match &self.fields {
            Fields::Packed(p) => p.spans().count() / 2,
            Fields::Table(t) => t.map.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        match &self.fields {
            Fields::Packed(p) => p.capacity() == 0,
            Fields::Table(t) => t.map.is_empty(),
        }
    }

    /// Is it still in the packed form? (`OBJECT ENCODING`'s `listpack`.)
    pub fn is_packed(&self) -> bool {
        matches!(self.fields, Fields::Packed(_))
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match &self.fields {
            Fields::Packed(p) => find(p, field).map(|(_, v)| p.get(v)),
            Fields::Table(t) => t
                .map
                .get(&Slot::new(Bytes::copy_from_slice(field)))
                .map(|v| &v[..]),
        }
    }

    /// Sets a field; `true` if it is new.
    pub fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        if let Fields::Packed(p) = &self.fields
            && (field.len() > MAX_ELEMENT || value.len() > MAX_ELEMENT || self.len() >= MAX_ENTRIES)
            && find(p, field).is_none_or(|_| value.len() > MAX_ELEMENT)
        {
            self.unpack();
        }
        let old = match &mut self.fields {
            Fields::Packed(p) => match find(p, field) {
                Some((_, v)) => {
                    let old = v.end - v.data;
                    p.replace(v, value);
                    Some(old)
                }
                None => {
                    p.insert(p.position(field, 2), &[field, value]);
                    None
                }
            },
            Fields::Table(t) => {
                let old = t.map.insert(
                    Slot::new(Bytes::copy_from_slice(field)),
                    Bytes::copy_from_slice(value),
                );
                t.bytes += value.len();
                match &old {
                    Some(old) => t.bytes -= old.len(),
                    None => t.bytes += field.len() + ELEMENT_OVERHEAD,
                }
                old.map(|old| old.len())
            }
        };
        old.is_none()
    }

    /// Removes a field; `true` if it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        let old = match &mut self.fields {
            Fields::Packed(p) => find(p, field).map(|(f, v)| {
                p.remove(f, v);
                v.end - v.data
            }),
            Fields::Table(t) => {
                let old = t.map.remove(&Slot::new(Bytes::copy_from_slice(field)));
                if let Some(old) = &old {
                    t.bytes -= field.len() + old.len() + ELEMENT_OVERHEAD;
                }
                old.map(|old| old.len())
            }
        };
        old.is_some()
    }

    /// Moves the fields to the map, for good.
    fn unpack(&mut self) {
        if self.is_packed() {
            let map: BTreeMap<Slot, Bytes> = self
                .iter()
                .map(|(f, v)| {
                    let field = Slot::new(Bytes::copy_from_slice(f));
                    (field, Bytes::copy_from_slice(v))
                })
                .collect();
            let bytes = self
                .iter()
                .map(|(f, v)| f.len() + v.len() + ELEMENT_OVERHEAD)
                .sum();
            self.fields = Fields::Table(Box::new(Table { map, bytes }));
        }
    }

    /// Fields and values, in hash order (in either form).
    pub fn iter(&self) -> Box<dyn Iterator<Item = (&[u8], &[u8])> + '_> {
        match &self.fields {
            Fields::Packed(p) => {
                let mut elements = p.iter();
                Box::new(std::iter::from_fn(move || {
                    Some((elements.next()?, elements.next()?))
                }))
            }
            Fields::Table(t) => Box::new(t.map.iter().map(|(slot, v)| (&slot.key()[..], &v[..]))),
        }
    }

    /// One page of `HSCAN` (see [`scan_slots`]). A packed hash is returned whole, with
    /// cursor 0, as Redis returns a listpack.
    pub fn scan(
        &self,
        cursor: u64,
        count: usize,
        pattern: Option<&[u8]>,
        mut emit: impl FnMut(&[u8], &[u8]),
    ) -> u64 {
        match &self.fields {
            Fields::Table(t) => scan_slots(&t.map, cursor, count, pattern, |f, v| emit(f, v)),
            Fields::Packed(_) => {
                for (f, v) in self.iter() {
                    if pattern.is_none_or(|p| proto::glob::glob_match(p, f)) {
                        emit(f, v);
                    }
                }
                0
            }
        }
    }

    /// `HRANDFIELD`'s picks (see [`random_entries`]).
    pub fn random(&self, count: i64) -> Vec<(&[u8], &[u8])> {
        match &self.fields {
            Fields::Table(t) => random_entries(&t.map, count)
                .into_iter()
                .map(|(f, v)| (&f[..], &v[..]))
                .collect(),
            Fields::Packed(_) => random_items(&self.iter().collect::<Vec<_>>(), count),
        }
    }

    /// Bytes held: a packed hash's buffer, or the map's estimate.
    pub fn memory(&self) -> usize {
        match &self.fields {
            Fields::Packed(p) => p.capacity(),
            Fields::Table(t) => t.bytes,
        }
    }
}

/// Equal when they hold the same fields and values, whatever their form and order (a
/// packed hash keeps the order fields were set in, which a reload may change).
impl PartialEq for Hash {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(f, v)| other.get(f) == Some(v))
    }
}

impl From<Vec<(Bytes, Bytes)>> for Hash {
    fn from(pairs: Vec<(Bytes, Bytes)>) -> Self {
        let mut hash = Hash::default();
        for (field, value) in pairs {
            hash.insert(&field, &value);
        }
        hash
    }
}

/// On disk and in `DUMP`: the list of (field, value) pairs; the form is rebuilt on load.
/// (bincode needs the length up front: the pairs are counted, not collected.)
impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for (f, v) in self.iter() {
            seq.serialize_element(&(ElementBytes(f), ElementBytes(v)))?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_memory() {
        let mut h = Hash::default();
        assert!(h.insert(b"f", b"v"));
        assert!(!h.insert(b"f", b"vv"));
        assert_eq!(h.get(b"f"), Some(&b"vv"[..]));
        // Packed: the buffer (two one-byte lengths, "f", "vv").
        assert_eq!(h.memory(), 5);
        assert!(h.remove(b"f"));
        assert_eq!(h.len(), 0);
    }

    /// The packed form and the map must hold the same thing: the same random writes to
    /// a hash that moves to the map midway and to a model.
    #[test]
    fn packed_and_table_agree_with_a_model() {
        let mut h = Hash::default();
        let mut model = std::collections::HashMap::new();
        for i in 0..400u32 {
            let field = format!("f{}", (i * 7) % 150);
            let value = if i == 300 {
                "v".repeat(100)
            } else {
                format!("v{i}")
            };
            if i % 5 == 4 {
                assert_eq!(h.remove(field.as_bytes()), model.remove(&field).is_some());
            } else {
                let new = model.insert(field.clone(), value.clone()).is_none();
                assert_eq!(h.insert(field.as_bytes(), value.as_bytes()), new);
            }
            assert_eq!(h.len(), model.len());
            if i == 100 {
                assert!(h.is_packed());
            }
        }
        assert!(!h.is_packed());
        for (f, v) in &model {
            assert_eq!(h.get(f.as_bytes()), Some(v.as_bytes()));
        }
        assert_eq!(h.iter().count(), model.len());
        // A long value moves a small hash to the map too.
        let mut small = Hash::default();
        small.insert(b"a", b"1");
        small.insert(b"b", &[b'x'; MAX_ELEMENT + 1]);
        assert!(!small.is_packed());
        assert_eq!(small.get(b"a"), Some(&b"1"[..]));
    }
}

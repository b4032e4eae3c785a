//! A Redis hash: a map of fields to values inside one key.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize, Serializer};

use super::ELEMENT_OVERHEAD;
use crate::keyspace::Slot;

/// Fields ordered by (hash of field, field): see the module docs of [`super`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(from = "Vec<(Bytes, Bytes)>")]
pub struct Hash {
    fields: BTreeMap<Slot, Bytes>,
    bytes: usize,
}

impl Hash {
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn get(&self, field: &Bytes) -> Option<&Bytes> {
        self.fields.get(&Slot::new(field.clone()))
    }

    /// Sets a field; `true` if it is new.
    pub fn insert(&mut self, field: Bytes, value: Bytes) -> bool {
        self.bytes += value.len();
        let flen = field.len();
        match self.fields.insert(Slot::new(field), value) {
            Some(old) => {
                self.bytes -= old.len();
                false
            }
            None => {
                self.bytes += flen + ELEMENT_OVERHEAD;
                true
            }
        }
    }

    /// Removes a field; `true` if it was there.
    pub fn remove(&mut self, field: &Bytes) -> bool {
        match self.fields.remove(&Slot::new(field.clone())) {
            Some(old) => {
                self.bytes -= field.len() + old.len() + ELEMENT_OVERHEAD;
                true
            }
            None => false,
        }
    }

    /// Fields and values in hash order.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Bytes)> {
        self.fields.iter().map(|(slot, v)| (slot.key(), v))
    }

    pub fn slots(&self) -> &BTreeMap<Slot, Bytes> {
        &self.fields
    }

    pub fn memory(&self) -> usize {
        self.bytes
    }
}

impl From<Vec<(Bytes, Bytes)>> for Hash {
    fn from(pairs: Vec<(Bytes, Bytes)>) -> Self {
        let mut hash = Hash::default();
        for (field, value) in pairs {
            hash.insert(field, value);
        }
        hash
    }
}

/// On disk and in `DUMP`: the list of (field, value) pairs; the order is rebuilt on load.
impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_memory() {
        let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        let mut h = Hash::default();
        assert!(h.insert(b("f"), b("v")));
        assert!(!h.insert(b("f"), b("vv")));
        assert_eq!(h.get(&b("f")), Some(&b("vv")));
        assert_eq!(h.memory(), 3 + ELEMENT_OVERHEAD);
        assert!(h.remove(&b("f")));
        assert_eq!((h.len(), h.memory()), (0, 0));
    }
}

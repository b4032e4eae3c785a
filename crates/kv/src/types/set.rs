//! A Redis set: unique members inside one key.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize, Serializer};

use super::ELEMENT_OVERHEAD;
use crate::keyspace::Slot;

/// Members ordered by (hash of member, member): see the module docs of [`super`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(from = "Vec<Bytes>")]
pub struct Set {
    members: BTreeMap<Slot, ()>,
    bytes: usize,
}

impl Set {
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn contains(&self, member: &Bytes) -> bool {
        self.members.contains_key(&Slot::new(member.clone()))
    }

    /// `true` if the member is new.
    pub fn insert(&mut self, member: Bytes) -> bool {
        let len = member.len();
        let new = self.members.insert(Slot::new(member), ()).is_none();
        if new {
            self.bytes += len + ELEMENT_OVERHEAD;
        }
        new
    }

    /// `true` if the member was there.
    pub fn remove(&mut self, member: &Bytes) -> bool {
        let gone = self.members.remove(&Slot::new(member.clone())).is_some();
        if gone {
            self.bytes -= member.len() + ELEMENT_OVERHEAD;
        }
        gone
    }

    pub fn iter(&self) -> impl Iterator<Item = &Bytes> {
        self.members.keys().map(Slot::key)
    }

    pub fn slots(&self) -> &BTreeMap<Slot, ()> {
        &self.members
    }

    pub fn memory(&self) -> usize {
        self.bytes
    }
}

impl From<Vec<Bytes>> for Set {
    fn from(members: Vec<Bytes>) -> Self {
        let mut set = Set::default();
        for m in members {
            set.insert(m);
        }
        set
    }
}

impl FromIterator<Bytes> for Set {
    fn from_iter<I: IntoIterator<Item = Bytes>>(iter: I) -> Self {
        let mut set = Set::default();
        for m in iter {
            set.insert(m);
        }
        set
    }
}

/// On disk and in `DUMP`: the list of members.
impl Serialize for Set {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

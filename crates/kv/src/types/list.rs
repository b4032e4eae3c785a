//! A Redis list: a sequence of values, pushed and popped at both ends.

use std::collections::VecDeque;

use bytes::Bytes;
use serde::{Deserialize, Serialize, Serializer};

use super::ELEMENT_OVERHEAD;

/// A ring buffer: O(1) at both ends and for `LINDEX`; `LINSERT`/`LREM` are O(n), as in
/// Redis.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(from = "VecDeque<Bytes>")]
pub struct List {
    items: VecDeque<Bytes>,
    bytes: usize,
}

impl List {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn push(&mut self, value: Bytes, left: bool) {
        self.bytes += value.len() + ELEMENT_OVERHEAD;
        if left {
            self.items.push_front(value);
        } else {
            self.items.push_back(value);
        }
    }

    pub fn pop(&mut self, left: bool) -> Option<Bytes> {
        let v = if left {
            self.items.pop_front()
        } else {
            self.items.pop_back()
        }?;
        self.bytes -= v.len() + ELEMENT_OVERHEAD;
        Some(v)
    }

    pub fn get(&self, index: usize) -> Option<&Bytes> {
        self.items.get(index)
    }

    /// Replaces the value at `index` (which must exist).
    pub fn set(&mut self, index: usize, value: Bytes) {
        if let Some(slot) = self.items.get_mut(index) {
            self.bytes = self.bytes + value.len() - slot.len();
            *slot = value;
        }
    }

    pub fn insert(&mut self, index: usize, value: Bytes) {
        self.bytes += value.len() + ELEMENT_OVERHEAD;
        self.items.insert(index, value);
    }

    pub fn remove(&mut self, index: usize) -> Option<Bytes> {
        let v = self.items.remove(index)?;
        self.bytes -= v.len() + ELEMENT_OVERHEAD;
        Some(v)
    }

    /// Keeps only `range` (`LTRIM`).
    pub fn keep(&mut self, start: usize, end: usize) {
        let end = end.min(self.items.len());
        let start = start.min(end);
        let cost = |v: Bytes| v.len() + ELEMENT_OVERHEAD;
        let tail: usize = self.items.drain(end..).map(cost).sum();
        let head: usize = self.items.drain(..start).map(cost).sum();
        self.bytes -= tail + head;
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Bytes> + ExactSizeIterator {
        self.items.iter()
    }

    pub fn range(&self, start: usize, end: usize) -> impl Iterator<Item = &Bytes> {
        self.items.range(start..end)
    }

    pub fn memory(&self) -> usize {
        self.bytes
    }
}

impl From<VecDeque<Bytes>> for List {
    fn from(items: VecDeque<Bytes>) -> Self {
        let bytes = items.iter().map(|v| v.len() + ELEMENT_OVERHEAD).sum();
        List { items, bytes }
    }
}

impl Serialize for List {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.items.iter())
    }
}

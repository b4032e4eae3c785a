//! Table storage: each row a chain of versions, and B-tree indexes from key to row.
//!
//! ```text
//!  row 7:  [xmin=12 xmax=15 (id=7, balance=100)] -> [xmin=15 xmax=0 (id=7, balance=90)]
//!           ^ replaced by tx 15                      ^ current since tx 15 committed
//! ```
//!
//! A row id names the row across its versions; the newest version is last. An UPDATE
//! sets `xmax` on the newest version and appends a new one; a DELETE only sets `xmax`.
//! Old versions stay until no snapshot can see them (`vacuum`).
//!
//! Indexes are ordered sets of `(key, row id)`: a key maps to every row that has *some*
//! version with that key, and the reader checks which version it can see. That is why
//! an index lookup rechecks the key on the visible version, as PostgreSQL's heap recheck.
//!
//! Everything is in memory; durability comes from the write-ahead log and checkpoints.
//! Tables larger than memory are not supported.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use crate::mvcc::{CommitLog, Snapshot, TxId};
use crate::types::Value;

pub type RowId = u64;

#[derive(Debug, Clone)]
pub struct Version {
    pub xmin: TxId,
    pub xmax: TxId,
    pub values: Vec<Value>,
}

/// One index's entries.
pub type IndexTree = BTreeSet<(IndexKey, RowId)>;

/// An index entry's key. Most indexes are over one column (every pgbench key), and
/// that key is kept inline in the B-tree node: a lookup then compares the keys of a node
/// where they lie, instead of following a pointer to a separate allocation for each
/// comparison — a cache miss each, twenty or so per lookup in a million-row index.
/// Ordered as the list of values it holds, whichever form it has.
#[derive(Debug, Clone)]
pub enum IndexKey {
    One(Value),
    Many(Vec<Value>),
}

impl IndexKey {
    pub fn new(mut values: Vec<Value>) -> IndexKey {
        match values.len() {
            1 => IndexKey::One(values.pop().unwrap_or(Value::Null)),
            _ => IndexKey::Many(values),
        }
    }

    pub fn as_slice(&self) -> &[Value] {
        match self {
            IndexKey::One(v) => std::slice::from_ref(v),
            IndexKey::Many(v) => v,
        }
    }
}

impl PartialEq for IndexKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for IndexKey {}

impl PartialOrd for IndexKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for IndexKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self, other) {
            (IndexKey::One(a), IndexKey::One(b)) => a.cmp(b),
            _ => self.as_slice().cmp(other.as_slice()),
        }
    }
}

#[derive(Debug, Default)]
pub struct Heap {
    pub rows: BTreeMap<RowId, Vec<Version>>,
    pub next_row: RowId,
    /// Parallel to `TableDef::indexes`.
    pub indexes: Vec<IndexTree>,
    /// The last value handed out by each SERIAL column's sequence (by column index).
    pub sequences: BTreeMap<usize, i64>,
    /// Rows with a version some transaction deleted or replaced (`xmax` set): the only
    /// rows vacuum has anything to do in. PostgreSQL's visibility map serves the same
    /// purpose — skip the pages whose every tuple is visible to all — so a sweep costs
    /// what was written since the last one, not the size of the table.
    pub to_vacuum: BTreeSet<RowId>,
}

/// The key of `values` for an index over `columns`.
pub fn key_of(values: &[Value], columns: &[usize]) -> Vec<Value> {
    columns
        .iter()
        .map(|&i| values.get(i).cloned().unwrap_or(Value::Null))
        .collect()
}

impl Heap {
    pub fn new(index_count: usize) -> Self {
        Heap {
            rows: BTreeMap::new(),
            next_row: 1,
            indexes: vec![IndexTree::new(); index_count],
            sequences: BTreeMap::new(),
            to_vacuum: BTreeSet::new(),
        }
    }

    /// The version of `row` that `snapshot` sees, if any.
    pub fn visible<'a>(
        &'a self,
        row: RowId,
        snapshot: &Snapshot,
        clog: &CommitLog,
    ) -> Option<&'a Version> {
        self.rows
            .get(&row)?
            .iter()
            .rev()
            .find(|v| snapshot.visible(v.xmin, v.xmax, clog))
    }

    /// Every row visible to `snapshot`, in row id order (a sequential scan).
    pub fn scan<'a>(
        &'a self,
        snapshot: &'a Snapshot,
        clog: &'a CommitLog,
    ) -> impl Iterator<Item = (RowId, &'a Version)> + 'a {
        self.rows.iter().filter_map(move |(&id, chain)| {
            chain
                .iter()
                .rev()
                .find(|v| snapshot.visible(v.xmin, v.xmax, clog))
                .map(|v| (id, v))
        })
    }

    /// Row ids with some version whose key in index `index` equals `key`.
    pub fn lookup(&self, index: usize, key: &[Value]) -> Vec<RowId> {
        let Some(tree) = self.indexes.get(index) else {
            return Vec::new();
        };
        let start = (IndexKey::new(key.to_vec()), 0);
        tree.range((Bound::Included(start), Bound::Unbounded))
            .take_while(|(k, _)| k.as_slice() == key)
            .map(|(_, r)| *r)
            .collect()
    }

    pub fn newest(&self, row: RowId) -> Option<&Version> {
        self.rows.get(&row).and_then(|c| c.last())
    }

    /// Appends a version to `row` (a new row if it has none) and indexes it.
    pub fn push_version(&mut self, row: RowId, version: Version, index_columns: &[Vec<usize>]) {
        for (tree, cols) in self.indexes.iter_mut().zip(index_columns) {
            tree.insert((IndexKey::new(key_of(&version.values, cols)), row));
        }
        self.next_row = self.next_row.max(row + 1);
        self.rows.entry(row).or_default().push(version);
    }

    /// Removes the newest version of `row` (undo of an insert or update), and the index
    /// entries no remaining version needs.
    pub fn pop_version(&mut self, row: RowId, index_columns: &[Vec<usize>]) {
        let Some(chain) = self.rows.get_mut(&row) else {
            return;
        };
        let Some(gone) = chain.pop() else { return };
        for (tree, cols) in self.indexes.iter_mut().zip(index_columns) {
            let key = key_of(&gone.values, cols);
            if !chain.iter().any(|v| key_of(&v.values, cols) == key) {
                tree.remove(&(IndexKey::new(key), row));
            }
        }
        if chain.is_empty() {
            self.rows.remove(&row);
        }
    }

    /// Marks the newest version of `row` deleted by `xmax` (0 takes the mark back).
    pub fn set_xmax(&mut self, row: RowId, xmax: TxId) {
        if let Some(v) = self.rows.get_mut(&row).and_then(|c| c.last_mut()) {
            v.xmax = xmax;
            if xmax != 0 {
                self.to_vacuum.insert(row);
            }
        }
    }

    /// Builds the entries of a new index over every version: collected, then built
    /// bottom-up from the sorted entries (`BTreeSet::from_iter` sorts and bulk-loads),
    /// rather than inserted one at a time from the root.
    pub fn build_index(&mut self, columns: &[usize]) -> IndexTree {
        let mut entries = Vec::with_capacity(self.rows.values().map(Vec::len).sum());
        entries.extend(self.rows.iter().flat_map(|(&row, chain)| {
            chain
                .iter()
                .map(move |v| (IndexKey::new(key_of(&v.values, columns)), row))
        }));
        entries.into_iter().collect()
    }
}

//! Staging: what a chunk of journal changes leaves on disk, gathered in memory first.
//!
//! The fold applies changes in order. A chunk of them stages what they leave — each touched
//! key's record and each touched element, the last write winning — and writes it as one
//! sled transaction over the trees it touches and the `meta` tree, so a header and its
//! elements never disagree on disk, and the same transaction moves the checkpoint's
//! position in the journal (the parent module's "Exactly once"). A hot key changed
//! thousands of times in a chunk has its record read once and written once. A `Put` or `Remove` of a collection first drops its old
//! elements (a prefix scan); an `Edit` touches only its elements and the header.

use std::collections::{BTreeMap, HashMap, btree_map};
use std::ops::Range;

use bytes::Bytes;
use tracing::warn;
use xxhash_rust::xxh3::Xxh3DefaultBuilder;

use super::{Files, Position};
use crate::codec::{self, Body, Record};
use crate::keyspace::{Change, DATABASES};
use crate::types::edit::Edit;
use crate::value::{Entry, Value};

/// What a stretch of changes leaves on disk, gathered before it is written: the record of
/// each key they touched and each element they wrote or deleted (`None`: delete), the
/// last change winning.
#[derive(Default)]
pub(super) struct Stage {
    /// Hashed with xxh3, not std's SipHash: the fold stages every change it reads, and
    /// SipHash (built to resist hash flooding, which a journal we wrote cannot do) was a
    /// third of the folder's time under `MSET`.
    /// One map per database, so a lookup borrows the key instead of cloning it.
    pub(super) records: [HashMap<Bytes, Option<Record>, Xxh3DefaultBuilder>; DATABASES],
    pub(super) elements: BTreeMap<(usize, Vec<u8>), Staged>,
}

/// What the fold will write to one element key.
pub(super) enum Staged {
    Delete,
    Value(Vec<u8>),
    /// A list page, decoded, so that the changes of a chunk edit it in place and it is
    /// encoded once when the chunk is written.
    Page(Page),
}

/// A page of a [`Body::PagedList`]: the element at each of its positions, if any.
pub(super) struct Page {
    slots: Vec<Option<Bytes>>,
}

impl Page {
    fn empty() -> Page {
        Page {
            slots: vec![None; codec::LIST_PAGE_SLOTS],
        }
    }

    fn decode(bytes: &[u8]) -> Option<Page> {
        let (first, elements) = codec::decode_page(bytes)?;
        let mut page = Page::empty();
        for (slot, element) in page.slots[first..].iter_mut().zip(elements) {
            *slot = Some(element);
        }
        Some(page)
    }

    /// The page's record, or `None` if it holds nothing (the record is deleted).
    pub(super) fn encode(&self) -> Option<Vec<u8>> {
        let first = self.slots.iter().position(Option::is_some)?;
        let elements = self.slots[first..].iter().map_while(Option::as_deref);
        Some(codec::encode_page(first, elements))
    }
}

/// A key's record and element prefix while a change is applied to it.
struct Target {
    db: usize,
    prefix: Vec<u8>,
}

impl Target {
    fn new(db: usize, key: &[u8]) -> Target {
        Target {
            db,
            prefix: codec::element_prefix(key),
        }
    }

    fn put(&self, stage: &mut Stage, element: &[u8], value: Vec<u8>) {
        let key = codec::element_key(&self.prefix, element);
        stage.elements.insert((self.db, key), Staged::Value(value));
    }

    fn delete(&self, stage: &mut Stage, element: &[u8]) {
        let key = codec::element_key(&self.prefix, element);
        stage.elements.insert((self.db, key), Staged::Delete);
    }
}

impl Files {
    /// A key's record as the changes so far leave it.
    fn record(&self, stage: &Stage, db: usize, key: &Bytes) -> Result<Option<Record>, sled::Error> {
        if let Some(record) = stage.records[db].get(&key[..]) {
            return Ok(record.clone());
        }
        Ok(self.records[db]
            .get(key)?
            .and_then(|bytes| codec::decode_record(&bytes).ok()))
    }

    /// Deletes every element of `key`: those on disk and those staged.
    fn drop_elements(&self, stage: &mut Stage, db: usize, key: &[u8]) -> Result<(), sled::Error> {
        let prefix = codec::element_prefix(key);
        for item in self.elements[db].scan_prefix(&prefix) {
            stage
                .elements
                .insert((db, item?.0.to_vec()), Staged::Delete);
        }
        let staged = stage
            .elements
            .range_mut((db, prefix.clone())..)
            .take_while(|((n, k), _)| *n == db && k.starts_with(&prefix));
        for (_, value) in staged {
            *value = Staged::Delete;
        }
        Ok(())
    }

    /// The key now holds `entry`: its old elements go, the new ones are written.
    fn put(
        &self,
        stage: &mut Stage,
        db: usize,
        key: Bytes,
        entry: Entry,
    ) -> Result<(), sled::Error> {
        if self
            .record(stage, db, &key)?
            .is_some_and(|r| r.body.is_collection())
        {
            self.drop_elements(stage, db, &key)?;
        }
        let t = Target::new(db, &key);
        let body = match entry.value {
            Value::String(s) => Body::String(s),
            Value::Hash(h) => {
                for (field, value) in h.iter() {
                    t.put(stage, field, value.to_vec());
                }
                Body::Hash
            }
            Value::List(l) => {
                let mut tail = codec::LIST_ORIGIN;
                for value in l.iter() {
                    *self.slot(stage, &t, tail)? = Some(Bytes::copy_from_slice(value));
                    tail += 1;
                }
                Body::PagedList {
                    head: codec::LIST_ORIGIN,
                    tail,
                }
            }
            Value::Set(set) => {
                for member in set.iter() {
                    t.put(stage, member, Vec::new());
                }
                Body::Set
            }
            Value::ZSet(z) => {
                for (slot, &score) in z.slots() {
                    t.put(stage, slot.key(), codec::encode_score(score).to_vec());
                }
                Body::ZSet
            }
        };
        let record = Record {
            expires_at: entry.expires_at,
            body,
        };
        stage.records[db].insert(key, Some(record));
        Ok(())
    }

    /// The element at list position `position`, in its page as the changes so far leave
    /// it: the staged page, else the page on disk, else (none yet, or the list was
    /// dropped in this chunk) an empty one.
    fn slot<'s>(
        &self,
        stage: &'s mut Stage,
        t: &Target,
        position: u64,
    ) -> Result<&'s mut Option<Bytes>, sled::Error> {
        let key = codec::element_key(&t.prefix, &codec::list_page(position));
        let staged = match stage.elements.entry((t.db, key)) {
            btree_map::Entry::Occupied(entry) => entry.into_mut(),
            btree_map::Entry::Vacant(entry) => {
                let stored = self.elements[t.db].get(&entry.key().1)?;
                let page = stored.and_then(|bytes| Page::decode(&bytes));
                entry.insert(Staged::Page(page.unwrap_or_else(Page::empty)))
            }
        };
        if !matches!(staged, Staged::Page(_)) {
            *staged = Staged::Page(Page::empty());
        }
        let Staged::Page(page) = staged else {
            unreachable!("made a page just above")
        };
        Ok(&mut page.slots[(position % codec::LIST_PAGE_SLOTS as u64) as usize])
    }

    /// Writes (`Some`) or deletes (`None`) the element at a list position: in its page for
    /// a paged list, as a record of its own for a format-2 list.
    fn set_position(
        &self,
        stage: &mut Stage,
        t: &Target,
        paged: bool,
        position: u64,
        value: Option<Bytes>,
    ) -> Result<(), sled::Error> {
        if paged {
            *self.slot(stage, t, position)? = value;
        } else {
            let at = codec::list_position(position);
            match value {
                Some(value) => t.put(stage, &at, value.to_vec()),
                None => t.delete(stage, &at),
            }
        }
        Ok(())
    }

    fn remove(&self, stage: &mut Stage, db: usize, key: Bytes) -> Result<(), sled::Error> {
        if self
            .record(stage, db, &key)?
            .is_some_and(|r| r.body.is_collection())
        {
            self.drop_elements(stage, db, &key)?;
        }
        stage.records[db].insert(key, None);
        Ok(())
    }

    /// Applies an edit to the elements it names and the header (created, with no TTL, if
    /// the edit created the key).
    fn edit(
        &self,
        stage: &mut Stage,
        db: usize,
        key: Bytes,
        edit: Edit,
    ) -> Result<(), sled::Error> {
        let mut record = match self.record(stage, db, &key)? {
            Some(record) => record,
            None => Record {
                expires_at: None,
                body: match edit.empty_value() {
                    Value::Hash(_) => Body::Hash,
                    Value::List(_) => Body::PagedList {
                        head: codec::LIST_ORIGIN,
                        tail: codec::LIST_ORIGIN,
                    },
                    Value::Set(_) => Body::Set,
                    _ => Body::ZSet,
                },
            },
        };
        let t = Target::new(db, &key);
        let paged = matches!(record.body, Body::PagedList { .. });
        match (&mut record.body, edit) {
            (
                Body::List { head, tail } | Body::PagedList { head, tail },
                Edit::ListPush { left, values },
            ) => {
                for value in values {
                    let position = if left {
                        *head -= 1;
                        *head
                    } else {
                        *tail += 1;
                        *tail - 1
                    };
                    self.set_position(stage, &t, paged, position, Some(value))?;
                }
            }
            (
                Body::List { head, tail } | Body::PagedList { head, tail },
                Edit::ListPop { left, count },
            ) => {
                for position in pop_positions(head, tail, left, count) {
                    self.set_position(stage, &t, paged, position, None)?;
                }
            }
            (
                Body::List { head, tail } | Body::PagedList { head, tail },
                Edit::ListTrim { front, back },
            ) => {
                let front = pop_positions(head, tail, true, front);
                let back = pop_positions(head, tail, false, back);
                for position in front.chain(back) {
                    self.set_position(stage, &t, paged, position, None)?;
                }
            }
            (
                Body::List { head, tail } | Body::PagedList { head, tail },
                Edit::ListSet { index, value },
            ) => {
                let position = *head + index as u64;
                if position < *tail {
                    self.set_position(stage, &t, paged, position, Some(value))?;
                }
            }
            (Body::Hash, Edit::HashPut(pairs)) => {
                for (field, value) in pairs {
                    t.put(stage, &field, value.to_vec());
                }
            }
            (Body::Set, Edit::SetAdd(members)) => {
                for member in members {
                    t.put(stage, &member, Vec::new());
                }
            }
            (Body::ZSet, Edit::ZAdd(pairs)) => {
                for (member, score) in pairs {
                    t.put(stage, &member, codec::encode_score(score).to_vec());
                }
            }
            (Body::Hash, Edit::HashRemove(gone))
            | (Body::Set, Edit::SetRemove(gone))
            | (Body::ZSet, Edit::ZRemove(gone)) => {
                for element in gone {
                    t.delete(stage, &element);
                }
            }
            (body, edit) => {
                warn!("db{db}: cannot apply {edit:?} to a {body:?} record");
                return Ok(());
            }
        }
        stage.records[db].insert(key, Some(record));
        Ok(())
    }

    /// Stages one change read from the journal between `before` and `after`.
    /// Whole-database changes are barriers: what came before is written first (at
    /// `before`), then the change itself moves the position to `after`.
    pub(super) fn apply(
        &mut self,
        change: Change,
        stage: &mut Stage,
        before: Position,
        after: Position,
    ) -> Result<(), sled::Error> {
        match change {
            Change::Put { db, key, entry } if db < DATABASES => self.put(stage, db, key, entry),
            Change::Remove { db, key } if db < DATABASES => self.remove(stage, db, key),
            Change::Edit { db, key, edit } if db < DATABASES => self.edit(stage, db, key, edit),
            Change::Expire { db, key, at } if db < DATABASES => {
                if let Some(mut record) = self.record(stage, db, &key)? {
                    record.expires_at = at;
                    stage.records[db].insert(key, Some(record));
                }
                Ok(())
            }
            Change::FlushDb { db } if db < DATABASES => {
                self.write(stage, before)?;
                self.flush_dbs(&[db], after)
            }
            Change::FlushAll => {
                self.write(stage, before)?;
                let all: Vec<usize> = (0..DATABASES).collect();
                self.flush_dbs(&all, after)
            }
            Change::SwapDb { a, b } if a < DATABASES && b < DATABASES => {
                self.write(stage, before)?;
                self.swap_db(a, b, after)
            }
            // A database number this build does not have.
            _ => Ok(()),
        }
    }
}

/// Takes `count` positions from one end of the list at `head..tail`, moving that end, and
/// returns them (the elements there are to be deleted).
fn pop_positions(head: &mut u64, tail: &mut u64, left: bool, count: usize) -> Range<u64> {
    let count = (count as u64).min(*tail - *head);
    if left {
        *head += count;
        *head - count..*head
    } else {
        *tail -= count;
        *tail..*tail + count
    }
}

//! A collection write described as data: what the journal carries instead of the whole
//! collection.
//!
//! `LPUSH big x` changes one element of a list that may hold millions. Journaling the
//! key's new record (as strings do) would make every write O(collection size) three
//! times over: cloned into the journal, re-encoded onto the disk, shipped to every
//! replica. Redis's AOF logs the command instead; we log its *effect*, an [`Edit`]: "push
//! `x` on the left", "remove these members", "this member now has this score". An effect,
//! not a command, because a command can depend on things a replay does not share: `SPOP`
//! picks at random, `HINCRBYFLOAT` rounds, `ZINCRBY` adds to a score the replica might
//! see differently. The edit records the members actually popped and the values actually
//! written, so replaying it anywhere gives the same collection.
//!
//! Each op in [`super::ops`] reports what it did as a [`Delta`]: nothing, an edit, or
//! "replace the whole record" for the writes that are O(n) in Redis anyway (`LINSERT`,
//! `LREM`, `ZREMRANGEBYSCORE` may keep it simple that way).

use bytes::Bytes;
use proto::CommandError;
use serde::{Deserialize, Serialize};

use crate::value::Value;

/// The effect of one write on one collection. Applying it to the collection it was
/// recorded against gives the collection the write left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Edit {
    /// Push `values` one by one at the left or right end (so `LPUSH k a b` leaves `b a`).
    ListPush {
        left: bool,
        values: Vec<Bytes>,
    },
    /// Pop `count` elements from one end.
    ListPop {
        left: bool,
        count: usize,
    },
    /// Replace the element at `index` (counted from the left, never negative).
    ListSet {
        index: usize,
        value: Bytes,
    },
    /// Drop `front` elements from the left end and `back` from the right (`LTRIM`).
    ListTrim {
        front: usize,
        back: usize,
    },
    /// Set these fields (new or not) to these values.
    HashPut(Vec<(Bytes, Bytes)>),
    HashRemove(Vec<Bytes>),
    SetAdd(Vec<Bytes>),
    SetRemove(Vec<Bytes>),
    /// Set these members' scores (the final scores: `ZINCRBY`'s result, not its increment).
    ZAdd(Vec<(Bytes, f64)>),
    ZRemove(Vec<Bytes>),
}

impl Edit {
    /// An empty collection of the type this edit writes: what a replay starts from when
    /// the edit created the key.
    pub fn empty_value(&self) -> Value {
        match self {
            Edit::ListPush { .. }
            | Edit::ListPop { .. }
            | Edit::ListSet { .. }
            | Edit::ListTrim { .. } => Value::List(Box::default()),
            Edit::HashPut(_) | Edit::HashRemove(_) => Value::Hash(Default::default()),
            Edit::SetAdd(_) | Edit::SetRemove(_) => Value::Set(Default::default()),
            Edit::ZAdd(_) | Edit::ZRemove(_) => Value::ZSet(Box::default()),
        }
    }

    /// Applies the edit to `value`: `WRONGTYPE` if it is not the collection the edit is
    /// for (a replay against data that drifted: the caller logs it).
    pub fn apply(&self, value: &mut Value) -> Result<(), CommandError> {
        match self {
            Edit::ListPush { left, values } => {
                let l = value.as_list_mut()?;
                for v in values {
                    l.push(v, *left);
                }
            }
            Edit::ListPop { left, count } => {
                let l = value.as_list_mut()?;
                for _ in 0..*count {
                    l.pop(*left);
                }
            }
            Edit::ListSet { index, value: v } => value.as_list_mut()?.set(*index, v),
            Edit::ListTrim { front, back } => {
                let l = value.as_list_mut()?;
                let len = l.len();
                l.keep(*front, len.saturating_sub(*back));
            }
            Edit::HashPut(pairs) => {
                let h = value.as_hash_mut()?;
                for (f, v) in pairs {
                    h.insert(f, v);
                }
            }
            Edit::HashRemove(fields) => {
                let h = value.as_hash_mut()?;
                for f in fields {
                    h.remove(f);
                }
            }
            Edit::SetAdd(members) => {
                let s = value.as_set_mut()?;
                for m in members {
                    s.insert(m);
                }
            }
            Edit::SetRemove(members) => {
                let s = value.as_set_mut()?;
                for m in members {
                    s.remove(m);
                }
            }
            Edit::ZAdd(pairs) => {
                let z = value.as_zset_mut()?;
                for (m, score) in pairs {
                    z.insert(m.clone(), *score);
                }
            }
            Edit::ZRemove(members) => {
                let z = value.as_zset_mut()?;
                for m in members {
                    z.remove(m);
                }
            }
        }
        Ok(())
    }

    /// Approximate bytes it carries (the storage writer's backpressure counts them).
    pub fn bytes(&self) -> usize {
        let sum = |items: &[Bytes]| items.iter().map(|b| b.len() + 16).sum::<usize>();
        match self {
            Edit::ListPush { values, .. } => sum(values),
            Edit::ListSet { value, .. } => value.len(),
            Edit::ListPop { .. } | Edit::ListTrim { .. } => 16,
            Edit::HashPut(pairs) => pairs.iter().map(|(f, v)| f.len() + v.len() + 32).sum(),
            Edit::ZAdd(pairs) => pairs.iter().map(|(m, _)| m.len() + 24).sum(),
            Edit::HashRemove(items)
            | Edit::SetAdd(items)
            | Edit::SetRemove(items)
            | Edit::ZRemove(items) => sum(items),
        }
    }
}

/// What a collection write did, as the journal needs it: the answer to
/// [`crate::keyspace::Keyspace::update`]'s closure.
#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    /// Nothing changed: nothing is journaled.
    Unchanged,
    /// These elements changed.
    Edit(Edit),
    /// Something changed and is journaled as the key's whole new record: for the writes
    /// that are O(n) in Redis too, and for every write while the journal is off (nothing
    /// is journaled then, so no edit is built).
    Whole,
}

impl Delta {
    /// An edit built by `make`, only if someone will read it (`journal`): with no `--dir`
    /// and no replica, a write allocates nothing for the journal.
    pub fn edit(journal: bool, make: impl FnOnce() -> Edit) -> Delta {
        if journal {
            Delta::Edit(make())
        } else {
            Delta::Whole
        }
    }

    /// [`Delta::edit`] if `changed`, else [`Delta::Unchanged`].
    pub fn edit_if(changed: bool, journal: bool, make: impl FnOnce() -> Edit) -> Delta {
        if changed {
            Delta::edit(journal, make)
        } else {
            Delta::Unchanged
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn edits_rebuild_the_collection_they_describe() {
        let mut v = Edit::ListPush {
            left: true,
            values: vec![],
        }
        .empty_value();
        let edits = [
            Edit::ListPush {
                left: true,
                values: vec![b("a"), b("b"), b("c")],
            },
            Edit::ListPush {
                left: false,
                values: vec![b("z")],
            },
            Edit::ListSet {
                index: 1,
                value: b("B"),
            },
            Edit::ListPop {
                left: true,
                count: 1,
            },
            Edit::ListTrim { front: 0, back: 1 },
        ];
        for e in &edits {
            e.apply(&mut v).unwrap();
        }
        let items: Vec<&[u8]> = v.as_list().unwrap().iter().collect();
        assert_eq!(items, vec![&b"B"[..], &b"a"[..]]);
        let wrong = Edit::SetAdd(vec![b("x")]).apply(&mut v);
        assert_eq!(wrong, Err(CommandError::WrongType));
    }
}

//! Loading the checkpoint into memory at startup: every record back into a value.
//!
//! Memory is the primary copy, so this is the only time the checkpoint is read whole. A
//! collection comes back from its header and one prefix scan of its elements (see the
//! layout in the parent module's docs); a key that expired while the server was down is
//! deleted rather than loaded.

use std::collections::VecDeque;

use bytes::Bytes;
use tracing::warn;

use super::Files;
use crate::codec::{self, Body};
use crate::keyspace::{DATABASES, Keyspace};
use crate::types::{hash::Hash, list::List, zset::ZSet};
use crate::value::{Entry, Value};

impl Files {
    /// Loads every live key into `keyspace`: a collection from its header and the prefix
    /// scan of its elements (in list order, for lists). Keys that expired while the server
    /// was down are deleted with their elements. Returns (loaded, expired).
    pub fn load(&self, keyspace: &mut Keyspace, now: u64) -> Result<(usize, usize), sled::Error> {
        let (mut loaded, mut expired) = (0, 0);
        for n in 0..DATABASES {
            for item in self.records[n].iter() {
                let (key, bytes) = item?;
                let record = match codec::decode_record(&bytes) {
                    Ok(record) => record,
                    Err(e) => {
                        warn!("db{n}: skipping undecodable record ({e:?})");
                        continue;
                    }
                };
                let key = Bytes::copy_from_slice(&key);
                let value = if record.expires_at.is_some_and(|at| at <= now) {
                    None
                } else {
                    self.read_value(n, &key, record.body)?
                };
                match value {
                    Some(value) => {
                        keyspace.load(n, key, Entry::new(value, record.expires_at), now);
                        loaded += 1;
                    }
                    None => {
                        self.records[n].remove(&key)?;
                        for element in self.elements[n].scan_prefix(codec::element_prefix(&key)) {
                            self.elements[n].remove(element?.0)?;
                        }
                        expired += 1;
                    }
                }
            }
        }
        Ok((loaded, expired))
    }

    /// A key's value from its record's body and, for a collection, its elements (`None`
    /// for a collection with none: nothing to load).
    fn read_value(&self, n: usize, key: &[u8], body: Body) -> Result<Option<Value>, sled::Error> {
        let prefix = codec::element_prefix(key);
        let mut elements = Vec::new();
        if body.is_collection() {
            for item in self.elements[n].scan_prefix(&prefix) {
                let (k, v) = item?;
                let element = Bytes::copy_from_slice(&k[prefix.len()..]);
                elements.push((element, v));
            }
            if elements.is_empty() {
                return Ok(None);
            }
        }
        let bytes = |v: sled::IVec| Bytes::copy_from_slice(&v);
        let items = elements.into_iter();
        Ok(Some(match body {
            Body::String(s) => Value::String(s),
            Body::Hash => Value::Hash(Hash::from(
                items.map(|(f, v)| (f, bytes(v))).collect::<Vec<_>>(),
            )),
            Body::List { .. } => Value::List(Box::new(List::from(
                items.map(|(_, v)| bytes(v)).collect::<VecDeque<_>>(),
            ))),
            Body::PagedList { .. } => {
                let mut list = VecDeque::new();
                for (page, v) in items {
                    let Some((_, elements)) = codec::decode_page(&v) else {
                        warn!("db{n}: skipping an undecodable list page of {key:?} ({page:?})");
                        continue;
                    };
                    list.extend(elements);
                }
                Value::List(Box::new(List::from(list)))
            }
            Body::Set => Value::Set(items.map(|(m, _)| m).collect()),
            Body::ZSet => Value::ZSet(Box::new(ZSet::from(
                items
                    .map(|(m, v)| (m, codec::decode_score(&v).unwrap_or(f64::NAN)))
                    .collect::<Vec<_>>(),
            ))),
        }))
    }
}

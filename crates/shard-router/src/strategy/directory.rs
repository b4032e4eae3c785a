//! Directory sharding: a lookup table says where each key lives.
//!
//! Instead of computing the shard, the router *asks*: the table maps a key (or its hash
//! tag — use tags so one entry covers a whole group such as `{tenant:42}`) to a shard
//! name, and keys without an entry go to the default shard. The table is itself data,
//! stored here in a kv (or Redis) instance as one hash: `HSET router:directory
//! tenant:42 s2`.
//!
//! What it buys: total freedom. A big tenant can get a shard of its own, a hot key can be
//! moved alone, and rebalancing is "copy the data, then flip one entry" — no strategy
//! decides for you how much moves. What it costs: one more lookup per request (the router
//! here asks on every request, so the extra hop is visible in `ROUTER STATS` and in the
//! latency), and the directory is a component that must be highly available itself —
//! which is why real systems cache it and replicate it.

use std::collections::HashMap;

use bytes::Bytes;

/// The parts of a directory that need no network: where the table is, which shard is the
/// default, and shard names to indexes.
#[derive(Debug, Clone)]
pub struct Directory {
    /// The hash holding the table.
    pub table: Bytes,
    /// The shard for keys the table does not mention.
    pub default: usize,
    names: HashMap<String, usize>,
}

impl Directory {
    pub fn new<'a>(
        table: &str,
        default: &str,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, String> {
        let names: HashMap<String, usize> = names
            .into_iter()
            .enumerate()
            .map(|(i, name)| (name.to_string(), i))
            .collect();
        let Some(&default) = names.get(default) else {
            return Err(format!(
                "directory default shard '{default}' is not a shard"
            ));
        };
        Ok(Directory {
            table: Bytes::copy_from_slice(table.as_bytes()),
            default,
            names,
        })
    }

    /// The request that looks a key's tag up: `HGET <table> <tag>`.
    pub fn lookup(&self, tag: &[u8]) -> [Bytes; 3] {
        [
            Bytes::from_static(b"HGET"),
            self.table.clone(),
            Bytes::copy_from_slice(tag),
        ]
    }

    /// The shard for the table's answer: the named shard, or the default when the key has
    /// no entry. An entry naming an unknown shard is an error, not a silent default.
    pub fn resolve(&self, entry: Option<&[u8]>) -> Result<usize, String> {
        match entry {
            None => Ok(self.default),
            Some(name) => {
                let name = String::from_utf8_lossy(name);
                self.names
                    .get(name.as_ref())
                    .copied()
                    .ok_or_else(|| format!("directory names unknown shard '{name}'"))
            }
        }
    }
}

//! Set algebra: the members of several sets intersected, united or subtracted.
//!
//! Read by `SINTER`/`SUNION`/`SDIFF`, written by their `STORE` forms ([`super::Op::SStore`])
//! and, with scores, by the sorted-set algebra (`ZUNION`...), which counts a set as a
//! sorted set of scores 1.

use bytes::Bytes;
use proto::CommandError;

use crate::keyspace::Keyspace;
use crate::types::set::Set;

/// Which set-algebra operation (`SINTER`, `SUNION`, `SDIFF` and their `STORE` forms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algebra {
    Inter,
    Union,
    Diff,
}

/// The members of several sets combined (`SINTER`, `SUNION`, `SDIFF`). A missing key is
/// an empty set; any non-set is `WRONGTYPE`.
pub fn combine(
    ks: &mut Keyspace,
    db: usize,
    keys: &[Bytes],
    algebra: Algebra,
    now: u64,
) -> Result<Vec<Bytes>, CommandError> {
    let mut sets: Vec<Option<&Set>> = Vec::with_capacity(keys.len());
    // Type-check every key first (Redis answers WRONGTYPE even if an earlier set is
    // empty), then borrow them all.
    for key in keys {
        if let Some(v) = ks.value(db, key, now) {
            v.as_set()?;
        }
    }
    let ks = &*ks;
    for key in keys {
        sets.push(ks.peek(db, key, now).and_then(|v| v.as_set().ok()));
    }
    let Some((first, rest)) = sets.split_first() else {
        return Ok(Vec::new());
    };
    let out = match algebra {
        Algebra::Inter => {
            if sets.iter().any(Option::is_none) {
                return Ok(Vec::new());
            }
            let mut all: Vec<&Set> = sets.iter().flatten().copied().collect();
            all.sort_by_key(|s| s.len());
            let (smallest, others) = all
                .split_first()
                .map_or((None, &[][..]), |(a, b)| (Some(*a), b));
            smallest
                .into_iter()
                .flat_map(|s| s.iter())
                .filter(|m| others.iter().all(|o| o.contains(m)))
                .map(Bytes::copy_from_slice)
                .collect()
        }
        Algebra::Union => {
            let mut union = Set::default();
            for s in sets.iter().flatten() {
                for m in s.iter() {
                    union.insert(m);
                }
            }
            union.iter().map(Bytes::copy_from_slice).collect()
        }
        Algebra::Diff => match first {
            None => Vec::new(),
            Some(first) => first
                .iter()
                .filter(|m| !rest.iter().flatten().any(|o| o.contains(m)))
                .map(Bytes::copy_from_slice)
                .collect(),
        },
    };
    Ok(out)
}

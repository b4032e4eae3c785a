//! Moving one key between nodes, safely against concurrent writers.
//!
//! A move is `DUMP` + `PTTL` at the source, `RESTORE` (without `REPLACE`) at the
//! destination, then `DEL` at the source. Leaving out `REPLACE` is the whole trick: while a
//! reshard runs, the router sends every write to the key's *new* shard, so if the
//! destination already holds the key, that value was written after the migration began
//! and is newer than the dump — `RESTORE` answers `BUSYKEY` and the stale copy is simply
//! deleted. That makes a move idempotent and safe to race with itself, which is what lets
//! the router *pull* a key on access while `infralab reshard` pushes keys in bulk:
//!
//! - reads and writes during migration: before a command touches a key whose shard
//!   changes, the router moves that key (a no-op if it has moved already), then sends the
//!   command to the new shard — so a read finds the value, an `INCR` increments it, a `SET`
//!   is never overwritten by an older copy;
//! - the bulk mover does the same for every remaining key.

use bytes::Bytes;
use proto::Frame;

use crate::backend::Node;
use crate::server::Layout;

/// Moves `key` from `from` to `to` if `from` still has it. Returns whether a value was
/// restored at `to` (false: absent at the source, or a newer value already at `to`).
pub async fn move_key(from: &Node, to: &Node, key: &Bytes, lane: u64) -> Result<bool, String> {
    let call = |node, words| call(node, words, lane);
    let payload = match call(from, vec!["DUMP".into(), key.clone()]).await? {
        Frame::Bulk(payload) => payload,
        Frame::Null => return Ok(false),
        other => return Err(format!("DUMP at {}: {other:?}", from.addr)),
    };
    let ttl = match call(from, vec!["PTTL".into(), key.clone()]).await? {
        Frame::Integer(-2) => return Ok(false),
        Frame::Integer(ms) if ms > 0 => ms,
        Frame::Integer(_) => 0,
        other => return Err(format!("PTTL at {}: {other:?}", from.addr)),
    };
    let restore = vec![
        "RESTORE".into(),
        key.clone(),
        Bytes::from(ttl.to_string()),
        payload,
    ];
    let restored = match call(to, restore).await? {
        Frame::Simple(_) => true,
        Frame::Error(e) if e.starts_with(b"BUSYKEY") => false,
        other => return Err(format!("RESTORE at {}: {other:?}", to.addr)),
    };
    match call(from, vec!["DEL".into(), key.clone()]).await? {
        Frame::Integer(_) => Ok(restored),
        other => Err(format!("DEL at {}: {other:?}", from.addr)),
    }
}

async fn call(node: &Node, words: Vec<Bytes>, lane: u64) -> Result<Frame, String> {
    node.call(lane, Frame::bulk_array(words))
        .await
        .map_err(|e| e.to_string())
}

/// While `layout` migrates from a previous one, moves each of `keys` whose primary
/// changes to its new home before the command that touches it runs.
pub async fn pull_keys(layout: &Layout, keys: &[&[u8]], lane: u64) -> Result<(), Frame> {
    let Some(previous) = &layout.previous else {
        return Ok(());
    };
    for key in keys {
        let old = &previous.shards[previous.shard_of(key, lane).await?].primary;
        let new = &layout.shards[layout.shard_of(key, lane).await?].primary;
        if old.addr != new.addr {
            move_key(old, new, &Bytes::copy_from_slice(key), lane)
                .await
                .map_err(|e| Frame::error(format!("ERR migrating key: {e}")))?;
        }
    }
    Ok(())
}

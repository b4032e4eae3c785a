//! The cache's own commands: WARM (proactive population), DBSIZE, FLUSHALL/FLUSHDB.

use proto::{Args, CommandError, Frame};

use super::CommandResult;
use crate::layer::CacheLayer;

/// WARM key [key ...]: load keys from the origin before anyone asks for them (the
/// celebrity's new post, pushed to the cache the moment it is published). Replies with
/// how many of the keys the origin had.
pub async fn warm(server: &CacheLayer, args: &mut Args) -> CommandResult {
    let keys = args.rest();
    Ok(Frame::Integer(server.warm(keys).await?))
}

pub fn dbsize(server: &CacheLayer, args: &mut Args) -> CommandResult {
    args.finish()?;
    Ok(Frame::Integer(server.store().len() as i64))
}

/// FLUSHALL [ASYNC|SYNC]: empties the cache. Never forwarded: the origin is the system
/// of record and the cache has no business wiping it.
pub fn flushall(server: &CacheLayer, args: &mut Args) -> CommandResult {
    if let Some(mode) = args.next_keyword()
        && mode != "ASYNC"
        && mode != "SYNC"
    {
        return Err(CommandError::Syntax);
    }
    args.finish().map_err(|_| CommandError::Syntax)?;
    server.note_delete();
    server.store().clear();
    Ok(Frame::ok())
}

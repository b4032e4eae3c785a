//! Where the posts live: in this process's memory (one web server alone), or in kv behind
//! the remote cache (several web servers sharing them — the levels below the origin).
//!
//! With `--kv` (a kv server or the router in front of the shards) and `--cache` (the cache
//! server), reads are **cache-aside**: ask the cache; on a miss read kv and put the post in
//! the cache for `CACHE_TTL`. Writes go to kv, then delete the cache's copy (invalidate,
//! not update: a racing reader can then only re-fill it from kv, never with an older value
//! than the one a writer just replaced). Both are reached over RESP, as any application
//! would: the web server links no other server's code.

use std::collections::HashMap;
use std::io;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proto::Frame;
use service::RespClient;

/// How long a post stays in the remote cache.
const CACHE_TTL: &str = "60";
/// Deadline for one call to kv or the cache.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Most posts kept in memory: edits of new ids past this are refused.
const MAX_POSTS: usize = 10_000;

/// One post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    pub title: String,
    pub body: String,
    pub version: u64,
    /// Whole seconds (HTTP dates have no more).
    pub modified: SystemTime,
}

impl Post {
    /// `version\nmodified\ntitle\nbody`: the record stored in kv and the cache.
    fn encode(&self) -> String {
        let secs = self
            .modified
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        format!("{}\n{secs}\n{}\n{}", self.version, self.title, self.body)
    }

    fn decode(record: &[u8]) -> Option<Post> {
        let text = String::from_utf8_lossy(record);
        let mut parts = text.splitn(4, '\n');
        let version = parts.next()?.parse().ok()?;
        let secs: u64 = parts.next()?.parse().ok()?;
        Some(Post {
            version,
            modified: UNIX_EPOCH + Duration::from_secs(secs),
            title: parts.next()?.to_owned(),
            body: parts.next().unwrap_or("").to_owned(),
        })
    }
}

/// The current time in whole seconds.
pub fn now_whole() -> SystemTime {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Connections to one RESP server, reused between requests.
pub struct Pool {
    addr: String,
    idle: Mutex<Vec<RespClient>>,
}

impl Pool {
    fn new(addr: &str) -> Pool {
        Pool {
            addr: addr.to_owned(),
            idle: Mutex::new(Vec::new()),
        }
    }

    async fn call(&self, words: &[&str]) -> io::Result<Frame> {
        let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
        let attempt = async {
            let mut client = match idle {
                Some(client) => client,
                None => RespClient::connect(&self.addr).await?,
            };
            let reply = client.call(words.iter().map(|w| (*w).to_owned())).await?;
            Ok::<_, io::Error>((client, reply))
        };
        let (client, reply) =
            tokio::time::timeout(CALL_TIMEOUT, attempt)
                .await
                .map_err(|_| {
                    io::Error::new(io::ErrorKind::TimedOut, format!("{}: no reply", self.addr))
                })??;
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < 16
        {
            idle.push(client);
        }
        match reply {
            Frame::Error(e) => Err(io::Error::other(format!(
                "{}: {}",
                self.addr,
                String::from_utf8_lossy(&e)
            ))),
            other => Ok(other),
        }
    }
}

/// The posts' home.
pub enum PostStore {
    Memory(Mutex<HashMap<u64, Post>>),
    Resp { kv: Pool, cache: Option<Pool> },
}

/// Where a read was served from (the web server reports it in `X-Data-Source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Memory,
    Cache,
    Kv,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Memory => "memory",
            Source::Cache => "cache",
            Source::Kv => "kv",
        }
    }
}

fn seed(id: u64, modified: SystemTime) -> Post {
    Post {
        title: format!("Post {id}"),
        body: format!("The text of post {id}."),
        version: 1,
        modified,
    }
}

impl PostStore {
    /// In memory, with posts 1 to 3 last modified a day ago.
    pub fn memory() -> PostStore {
        let day_ago = now_whole() - Duration::from_secs(86_400);
        PostStore::Memory(Mutex::new(
            (1..=3).map(|id| (id, seed(id, day_ago))).collect(),
        ))
    }

    /// In kv (behind the cache, if any); posts 1 to 3 are created if absent.
    pub async fn resp(kv: &str, cache: Option<&str>) -> io::Result<PostStore> {
        let store = PostStore::Resp {
            kv: Pool::new(kv),
            cache: cache.map(Pool::new),
        };
        if let PostStore::Resp { kv, .. } = &store {
            let day_ago = now_whole() - Duration::from_secs(86_400);
            for id in 1..=3 {
                let record = seed(id, day_ago).encode();
                kv.call(&["SET", &format!("post:{id}"), &record, "NX"])
                    .await?;
                kv.call(&["SET", &format!("post:{id}:version"), "1", "NX"])
                    .await?;
            }
        }
        Ok(store)
    }

    fn memory_map(
        map: &Mutex<HashMap<u64, Post>>,
    ) -> std::sync::MutexGuard<'_, HashMap<u64, Post>> {
        map.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Post `id`, and where it came from.
    pub async fn load(&self, id: u64) -> io::Result<Option<(Post, Source)>> {
        match self {
            PostStore::Memory(map) => Ok(Self::memory_map(map)
                .get(&id)
                .cloned()
                .map(|p| (p, Source::Memory))),
            PostStore::Resp { kv, cache } => {
                let key = format!("post:{id}");
                if let Some(cache) = cache {
                    // A cache that fails is skipped, not fatal: kv has the truth.
                    if let Ok(frame) = cache.call(&["GET", &key]).await
                        && let Some(post) = frame.as_bytes().and_then(|b| Post::decode(b))
                    {
                        return Ok(Some((post, Source::Cache)));
                    }
                }
                let Some(record) = kv.call(&["GET", &key]).await?.as_bytes().cloned() else {
                    return Ok(None);
                };
                let Some(post) = Post::decode(&record) else {
                    return Err(io::Error::other(format!("{key}: not a post record")));
                };
                if let Some(cache) = cache {
                    let value = String::from_utf8_lossy(&record).into_owned();
                    let _ = cache.call(&["SET", &key, &value, "EX", CACHE_TTL]).await;
                }
                Ok(Some((post, Source::Kv)))
            }
        }
    }

    /// Replaces post `id`'s text (creating it), bumping its version; returns the new post.
    pub async fn save(&self, id: u64, body: String) -> io::Result<Post> {
        match self {
            PostStore::Memory(map) => {
                let mut posts = Self::memory_map(map);
                if !posts.contains_key(&id) && posts.len() >= MAX_POSTS {
                    return Err(io::Error::other("too many posts"));
                }
                let post = posts.entry(id).or_insert_with(|| Post {
                    version: 0,
                    modified: UNIX_EPOCH,
                    ..seed(id, UNIX_EPOCH)
                });
                post.body = body;
                post.version += 1;
                // Strictly later than before, at HTTP-date resolution.
                post.modified = now_whole().max(post.modified + Duration::from_secs(1));
                Ok(post.clone())
            }
            PostStore::Resp { kv, cache } => {
                let key = format!("post:{id}");
                // One counter per post in kv: two web servers editing never reuse a version.
                let version = match kv.call(&["INCR", &format!("{key}:version")]).await? {
                    Frame::Integer(n) => n.max(1) as u64,
                    other => return Err(io::Error::other(format!("INCR: {other:?}"))),
                };
                let previous = kv
                    .call(&["GET", &key])
                    .await?
                    .as_bytes()
                    .and_then(|b| Post::decode(b));
                let modified = match &previous {
                    Some(p) => now_whole().max(p.modified + Duration::from_secs(1)),
                    None => now_whole(),
                };
                let post = Post {
                    title: previous
                        .map(|p| p.title)
                        .unwrap_or_else(|| format!("Post {id}")),
                    body,
                    version,
                    modified,
                };
                kv.call(&["SET", &key, &post.encode()]).await?;
                if let Some(cache) = cache {
                    cache.call(&["DEL", &key]).await?;
                }
                Ok(post)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_with_newlines_in_the_body() {
        let post = Post {
            title: "T".into(),
            body: "line 1\nline 2".into(),
            version: 3,
            modified: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        };
        assert_eq!(Post::decode(post.encode().as_bytes()), Some(post));
        assert_eq!(Post::decode(b"junk"), None);
    }
}

//! `client-cache`: the first caching level is the application's own memory. A reader keeps
//! the posts it read in a local map, so its repeated reads make no network request at all;
//! kv's `CLIENT TRACKING` remembers what it read and, when an editor updates a post, pushes
//! an invalidation (`invalidate [post]`, a RESP3 push) so the reader drops its copy and
//! fetches the new version on its next read.

use std::collections::HashMap;
use std::fmt;
use std::time::Instant;

use bytes::Bytes;
use proto::Frame;
use service::{BoxError, RespClient};

use super::reply::{check, info_field, words};
use super::{Against, Endpoints, Lab, Trace, lab};

/// Reads of the post before and after the update.
const READS: usize = 100;

/// What the client-cache demo observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCacheOutcome {
    /// Reads answered from the reader's own memory.
    pub local_hits: usize,
    /// Reads that went to kv.
    pub network_reads: usize,
    /// Commands kv processed while the reader served its local hits (other than the
    /// `INFO` that measures it).
    pub server_commands_during_hits: u64,
    /// The keys of the invalidation pushed after the update.
    pub invalidated: Vec<String>,
    /// The reader's last read returned the updated post.
    pub saw_update: bool,
}

impl fmt::Display for ClientCacheOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "client-cache: {} reads → {} from local memory, {} over the network ({} server \
             commands during the local hits); update → invalidate {:?}; fresh after: {}",
            2 * READS,
            self.local_hits,
            self.network_reads,
            self.server_commands_during_hits,
            self.invalidated,
            self.saw_update
        )
    }
}

/// Runs the scenario.
pub async fn run(against: Against, trace: &mut Trace) -> Result<ClientCacheOutcome, BoxError> {
    let setup = async |lab: &mut Lab, trace: &mut Trace| {
        trace.section("Starting one kv");
        let kv = lab.kv(&[]).await?;
        Ok(Endpoints {
            kv_shards: vec![kv],
            ..Endpoints::from_env()
        })
    };
    lab::run_against(against, "client-cache", trace, setup, scenario).await
}

/// An application's client-side cache: a map in its memory, kept fresh by kv's pushes.
struct Reader {
    conn: RespClient,
    local: HashMap<Bytes, Frame>,
    local_hits: usize,
    network_reads: usize,
}

impl Reader {
    /// Applies an invalidation push: drops the keys it names (all of them for a null).
    fn invalidate(&mut self, push: &Frame) -> Vec<String> {
        let Frame::Push(parts) = push else {
            return Vec::new();
        };
        match parts.get(1) {
            Some(Frame::Array(keys)) => keys
                .iter()
                .filter_map(|k| k.as_bytes())
                .map(|k| {
                    self.local.remove(k.as_ref());
                    String::from_utf8_lossy(k).into_owned()
                })
                .collect(),
            _ => {
                self.local.clear();
                vec!["*".into()]
            }
        }
    }

    /// A read: from local memory if cached, otherwise from kv (pushes that arrive first
    /// are applied on the way).
    async fn get(&mut self, key: &str) -> Result<Frame, BoxError> {
        if let Some(value) = self.local.get(key.as_bytes()) {
            self.local_hits += 1;
            return Ok(value.clone());
        }
        self.network_reads += 1;
        let mut reply = self.conn.call(words(&["GET", key])).await?;
        while matches!(reply, Frame::Push(_)) {
            self.invalidate(&reply);
            reply = self.conn.read_reply().await?;
        }
        self.local
            .insert(Bytes::copy_from_slice(key.as_bytes()), reply.clone());
        Ok(reply)
    }
}

async fn commands(admin: &mut RespClient) -> Result<f64, BoxError> {
    let info = check(admin.call(["INFO", "stats"]).await?, "INFO stats")?;
    info_field(&info, "total_commands_processed").ok_or_else(|| "no command count".into())
}

async fn scenario(ends: &Endpoints, trace: &mut Trace) -> Result<ClientCacheOutcome, BoxError> {
    let kv = ends.kv_shards.first().ok_or("no kv address")?;
    let key = format!("post:{}", lab::run_id());
    let mut editor = RespClient::connect(kv).await?;
    let mut admin = RespClient::connect(kv).await?;
    let mut reader = Reader {
        conn: RespClient::connect(kv).await?,
        local: HashMap::new(),
        local_hits: 0,
        network_reads: 0,
    };

    trace.section("1. The reader turns tracking on: kv will remember what it reads");
    trace
        .call(&mut reader.conn, "reader", "kv", &["HELLO", "3"])
        .await?;
    check(
        trace
            .call(
                &mut reader.conn,
                "reader",
                "kv",
                &["CLIENT", "TRACKING", "on"],
            )
            .await?,
        "CLIENT TRACKING on",
    )?;
    trace
        .call(
            &mut editor,
            "editor",
            "kv",
            &["SET", &key, "v1: first draft"],
        )
        .await?;

    trace.section(&format!(
        "2. {READS} reads: the first goes to kv, the rest are local"
    ));
    let before = commands(&mut admin).await?;
    let start = Instant::now();
    for _ in 0..READS {
        reader.get(&key).await?;
    }
    let after = commands(&mut admin).await?;
    let server_commands_during_hits = (after - before - 2.0).max(0.0) as u64;
    trace.step(
        start.elapsed(),
        "reader",
        "its memory",
        &format!("GET {key}  ×{READS}"),
        &format!(
            "{} local, {} network; kv processed {server_commands_during_hits} command(s) meanwhile",
            reader.local_hits, reader.network_reads
        ),
    );

    trace.section("3. The editor updates the post: kv pushes an invalidation to the reader");
    trace
        .call(&mut editor, "editor", "kv", &["SET", &key, "v2: corrected"])
        .await?;
    let start = Instant::now();
    let push = reader.conn.read_reply().await?;
    let invalidated = reader.invalidate(&push);
    trace.step(
        start.elapsed(),
        "kv",
        "reader",
        "(push)",
        &super::show(&push),
    );
    trace.note("the reader dropped its copy; its next read goes to kv once, then is local again");

    trace.section(&format!("4. {READS} more reads"));
    let mut last = Frame::Null;
    for _ in 0..READS {
        last = reader.get(&key).await?;
    }
    let saw_update = last.as_bytes().map(|b| b.as_ref()) == Some(b"v2: corrected".as_ref());
    trace.note(format!(
        "{} local hits and {} network reads in all; the last read: {}",
        reader.local_hits,
        reader.network_reads,
        super::show(&last)
    ));
    Ok(ClientCacheOutcome {
        local_hits: reader.local_hits,
        network_reads: reader.network_reads,
        server_commands_during_hits,
        invalidated,
        saw_update,
    })
}

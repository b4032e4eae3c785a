//! `infralab reshard --from old.toml --to new.toml`: move exactly the keys whose shard
//! changes.
//!
//! For every primary of the old layout, the mover walks the keyspace with `SCAN`, asks the
//! *new* layout where each key belongs, and moves the keys whose new primary is another
//! node (see [`crate::migrate`]: DUMP + PTTL, RESTORE without REPLACE, DEL). Keys that stay
//! are never touched, so the fraction printed at the end is the strategy's real cost: about
//! 1/4 of the keys going from 3 to 4 shards with ketama, jump or rendezvous, about 3/4 with
//! modulo.
//!
//! **Writes during the move are not lost.** Run the router on the new layout with
//! `migrating_from = "old.toml"` in its config (then `ROUTER RELOAD`) before starting the
//! mover: the router sends every command to the new shard, first pulling the key from its
//! old shard if it is still there. A key is therefore always read and written at its new
//! home, and the mover's `RESTORE` never overwrites a newer value. When the mover is done,
//! remove `migrating_from` and reload again.
//!
//! **Resumable.** After each batch the SCAN cursor of the node being drained is saved to
//! the state file; run the same command again after an interruption and it carries on
//! from there (SCAN cursors are stateless on the server, and moving a key twice is a
//! no-op). A cursor is a position in the node's hash table, valid while that node keeps
//! running, as Redis's: if a source node restarted in between, delete the state file
//! and start over (the keys already moved are no longer on it). The state file is removed
//! when the reshard completes.

use std::io::Write;
use std::path::PathBuf;

use bytes::Bytes;
use proto::Frame;
use service::BoxError;

use crate::config::Config;
use crate::migrate::move_key;
use crate::server::{Layout, NodeRegistry};

/// Lane (connection choice) the mover uses on every node.
const LANE: u64 = 0;

#[derive(clap::Args, Debug, Clone)]
pub struct ReshardArgs {
    /// The layout the data is in now.
    #[arg(long)]
    pub from: PathBuf,
    /// The layout to move it to.
    #[arg(long)]
    pub to: PathBuf,
    /// Keys asked of SCAN per batch.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Progress file for resuming (default: `<to>.reshard-state`).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Stop after this many batches, as if interrupted (for testing resumption).
    #[arg(long, hide = true)]
    pub max_batches: Option<u64>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub scanned: u64,
    pub moved: u64,
    /// False if stopped by `--max-batches`.
    pub complete: bool,
    /// True if it continued from a state file.
    pub resumed: bool,
}

/// Per source node: `addr cursor scanned moved done`.
#[derive(Debug, Clone)]
struct Progress {
    addr: String,
    cursor: u64,
    scanned: u64,
    moved: u64,
    done: bool,
}

pub async fn run(args: ReshardArgs) -> Result<Report, BoxError> {
    let mut old = Config::load(&args.from)?;
    let mut new = Config::load(&args.to)?;
    old.migrating_from = None;
    new.migrating_from = None;
    let nodes = NodeRegistry::default();
    let old = Layout::build(old, &nodes)?;
    let new = Layout::build(new, &nodes)?;
    let state_path = args.state.clone().unwrap_or_else(|| {
        let mut p = args.to.clone().into_os_string();
        p.push(".reshard-state");
        PathBuf::from(p)
    });
    let (mut progress, resumed) = match std::fs::read_to_string(&state_path) {
        Ok(text) => (parse_state(&text)?, true),
        Err(_) => (Vec::new(), false),
    };
    for node in old.primaries() {
        if !progress.iter().any(|p| p.addr == node.addr) {
            progress.push(Progress {
                addr: node.addr.clone(),
                cursor: 0,
                scanned: 0,
                moved: 0,
                done: false,
            });
        }
    }
    let mut total = 0u64;
    for node in old.primaries() {
        if let Ok(Frame::Integer(n)) = node.call(LANE, Frame::bulk_array(["DBSIZE"])).await {
            total += n.max(0) as u64;
        }
    }
    total += progress.iter().map(|p| p.moved).sum::<u64>();
    let mut batches = 0u64;
    for i in 0..progress.len() {
        let Some(source) = old
            .primaries()
            .into_iter()
            .find(|n| n.addr == progress[i].addr)
        else {
            continue;
        };
        while !progress[i].done {
            if args.max_batches.is_some_and(|max| batches >= max) {
                save_state(&state_path, &progress)?;
                return Ok(report(&progress, false, resumed));
            }
            let scan = Frame::bulk_array([
                Bytes::from_static(b"SCAN"),
                Bytes::from(progress[i].cursor.to_string()),
                Bytes::from_static(b"COUNT"),
                Bytes::from(args.batch.to_string()),
            ]);
            let (cursor, keys) = parse_scan(source.call(LANE, scan).await?)?;
            for key in keys {
                progress[i].scanned += 1;
                let owner = &new.shards[new.shard_of(&key, LANE).await.map_err(frame_error)?];
                if owner.primary.addr != source.addr
                    && move_key(&source, &owner.primary, &key, LANE).await?
                {
                    progress[i].moved += 1;
                }
            }
            progress[i].cursor = cursor;
            progress[i].done = cursor == 0;
            batches += 1;
            save_state(&state_path, &progress)?;
            if !args.quiet {
                draw(&progress, total);
            }
        }
    }
    let _ = std::fs::remove_file(&state_path);
    let done = report(&progress, true, resumed);
    if !args.quiet {
        eprintln!();
        println!(
            "reshard complete: moved {} of {} keys ({:.1}%)",
            done.moved,
            done.scanned,
            100.0 * done.moved as f64 / done.scanned.max(1) as f64
        );
    }
    Ok(done)
}

fn report(progress: &[Progress], complete: bool, resumed: bool) -> Report {
    Report {
        scanned: progress.iter().map(|p| p.scanned).sum(),
        moved: progress.iter().map(|p| p.moved).sum(),
        complete,
        resumed,
    }
}

fn frame_error(f: Frame) -> String {
    f.as_bytes()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_else(|| format!("{f:?}"))
}

fn parse_scan(reply: Frame) -> Result<(u64, Vec<Bytes>), String> {
    let Frame::Array(mut parts) = reply else {
        return Err(format!("SCAN: unexpected reply {reply:?}"));
    };
    if parts.len() != 2 {
        return Err("SCAN: expected [cursor, keys]".into());
    }
    let keys = match parts.pop() {
        Some(Frame::Array(keys)) => keys
            .into_iter()
            .filter_map(|k| k.as_bytes().cloned())
            .collect(),
        other => return Err(format!("SCAN: unexpected keys {other:?}")),
    };
    let cursor = parts
        .pop()
        .and_then(|c| {
            c.as_bytes()
                .and_then(|b| std::str::from_utf8(b).ok()?.parse().ok())
        })
        .ok_or("SCAN: bad cursor")?;
    Ok((cursor, keys))
}

fn save_state(path: &PathBuf, progress: &[Progress]) -> Result<(), String> {
    let text: String = progress
        .iter()
        .map(|p| {
            format!(
                "{} {} {} {} {}\n",
                p.addr, p.cursor, p.scanned, p.moved, p.done as u8
            )
        })
        .collect();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot save {}: {e}", path.display()))
}

fn parse_state(text: &str) -> Result<Vec<Progress>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let num = |i: usize| -> Result<u64, String> {
                f.get(i)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| format!("bad state line: {line}"))
            };
            Ok(Progress {
                addr: f.first().ok_or("empty state line")?.to_string(),
                cursor: num(1)?,
                scanned: num(2)?,
                moved: num(3)?,
                done: num(4)? == 1,
            })
        })
        .collect()
}

fn draw(progress: &[Progress], total: u64) {
    let scanned: u64 = progress.iter().map(|p| p.scanned).sum();
    let moved: u64 = progress.iter().map(|p| p.moved).sum();
    let fraction = (scanned as f64 / total.max(1) as f64).min(1.0);
    let filled = (fraction * 30.0) as usize;
    eprint!(
        "\r[{}{}] {:>3.0}%  scanned {scanned}/{total}  moved {moved}",
        "#".repeat(filled),
        " ".repeat(30 - filled),
        fraction * 100.0
    );
    let _ = std::io::stderr().flush();
}

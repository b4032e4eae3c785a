//! `GROUP.*`: consumer groups — join, heartbeat, leave, commit, and what a group looks like.

use proto::{Args, CommandError, Frame};

use super::{int, map, next_name, next_u64, partition, text, topic_error};
use crate::group::{Assignment, GroupError, JoinRequest, Strategy};
use crate::offsets::Commit;
use crate::server::StreamServer;

/// Longest group or member id.
const MAX_ID_LEN: usize = 249;

fn group_error(e: GroupError) -> CommandError {
    CommandError::coded(e.code(), e)
}

fn next_id(args: &mut Args, what: &str) -> Result<String, CommandError> {
    let id = next_name(args)?;
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(CommandError::err(format!(
            "{what} must be 1 to {MAX_ID_LEN} bytes"
        )));
    }
    Ok(id)
}

fn next_generation(args: &mut Args) -> Result<i32, CommandError> {
    i32::try_from(args.next_int()?).map_err(|_| CommandError::NotInteger)
}

fn assignment_frame(a: &Assignment) -> Frame {
    Frame::Map(
        a.iter()
            .map(|(t, ps)| (text(t), Frame::Array(ps.iter().map(|&p| int(p)).collect())))
            .collect(),
    )
}

/// `GROUP.JOIN group member [STRATEGY range|roundrobin] [SESSIONTIMEOUT ms] TOPICS t...`
/// → `{generation, assignment: {topic: [partitions]}}`.
pub fn join(s: &StreamServer, args: &mut Args) -> Result<Frame, CommandError> {
    let group = next_id(args, "the group id")?;
    let member = next_id(args, "the member id")?;
    let mut strategy = Strategy::Range;
    let mut session_timeout_ms = s.default_session_timeout_ms;
    let topics = loop {
        match args.next_keyword().as_deref() {
            Some("STRATEGY") => {
                strategy = Strategy::parse(&args.next_str()?)
                    .ok_or_else(|| CommandError::err("STRATEGY must be range or roundrobin"))?
            }
            Some("SESSIONTIMEOUT") => {
                session_timeout_ms = next_u64(args, "SESSIONTIMEOUT", 3_600_000)?.max(1) as i64
            }
            Some("TOPICS") => {
                let mut topics = Vec::new();
                while !args.is_empty() {
                    topics.push(next_name(args)?);
                }
                break topics;
            }
            Some(_) => return Err(CommandError::Syntax),
            None => return Err(args.wrong_arity()),
        }
    };
    if topics.is_empty() {
        return Err(args.wrong_arity());
    }
    for t in &topics {
        s.topics.require(t).map_err(topic_error)?;
    }
    let now = s.now_ms();
    let counts = s.partition_counts();
    let joined = s
        .coordinator()
        .join(
            JoinRequest {
                group: &group,
                member: &member,
                topics,
                strategy,
                session_timeout_ms,
            },
            now,
            &counts,
        )
        .map_err(group_error)?;
    Ok(map(vec![
        ("generation", Frame::Integer(i64::from(joined.generation))),
        ("assignment", assignment_frame(&joined.assignment)),
    ]))
}

/// `GROUP.HEARTBEAT group member generation` → OK, or an error meaning "join again".
pub fn heartbeat(s: &StreamServer, args: &mut Args) -> Result<Frame, CommandError> {
    let group = next_name(args)?;
    let member = next_name(args)?;
    let generation = next_generation(args)?;
    args.finish()?;
    let now = s.now_ms();
    s.coordinator()
        .heartbeat(&group, &member, generation, now)
        .map_err(group_error)?;
    Ok(Frame::ok())
}

/// `GROUP.LEAVE group member`
pub fn leave(s: &StreamServer, args: &mut Args) -> Result<Frame, CommandError> {
    let group = next_name(args)?;
    let member = next_name(args)?;
    args.finish()?;
    let counts = s.partition_counts();
    s.coordinator()
        .leave(&group, &member, &counts)
        .map_err(group_error)?;
    Ok(Frame::ok())
}

/// `GROUP.COMMIT group member generation topic partition offset [partition offset ...]`.
/// The offset is the next one to read. `member` and `generation -1` commit for a group
/// with no members (a standalone consumer).
pub async fn commit(s: &StreamServer, args: &mut Args) -> Result<Frame, CommandError> {
    let group = next_id(args, "the group id")?;
    let member = next_name(args)?;
    let generation = next_generation(args)?;
    let topic_name = next_name(args)?;
    let pairs = args.rest();
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return Err(args.wrong_arity());
    }
    let topic = s.topics.require(&topic_name).map_err(topic_error)?;
    let mut commits = Vec::with_capacity(pairs.len() / 2);
    for pair in pairs.chunks_exact(2) {
        let mut words = Args::new(vec![
            "group.commit".into(),
            pair[0].clone(),
            pair[1].clone(),
        ]);
        let p = partition(
            &topic,
            next_u64(&mut words, "the partition", u32::MAX.into())?,
        )?;
        let offset = next_u64(&mut words, "the offset", i64::MAX as u64)?;
        commits.push(Commit {
            group: group.clone(),
            topic: topic_name.clone(),
            partition: p.id,
            offset,
        });
    }
    s.commit_offsets(&member, generation, &commits).await?;
    Ok(Frame::ok())
}

/// `GROUP.COMMITTED group topic [partition ...]` → one offset (or nil) per partition.
pub fn committed(s: &StreamServer, args: &mut Args) -> Result<Frame, CommandError> {
    let group = next_name(args)?;
    let topic_name = next_name(args)?;
    let topic = s.topics.require(&topic_name).map_err(topic_error)?;
    let mut ids = Vec::new();
    while !args.is_empty() {
        ids.push(partition(&topic, next_u64(args, "the partition", u32::MAX.into())?)?.id);
    }
    if ids.is_empty() {
        ids = (0..topic.partition_count()).collect();
    }
    let coordinator = s.coordinator();
    Ok(Frame::Array(
        ids.iter()
            .map(|&p| {
                coordinator
                    .committed(&group, &topic_name, p)
                    .map_or(Frame::Null, int)
            })
            .collect(),
    ))
}

/// `GROUP.DESCRIBE group` → state, generation, strategy, members (with assignment and
/// whether idle) and, per partition of the group's topics, committed offset, end offset
/// and lag.
pub fn describe(s: &StreamServer, args: &mut Args) -> Result<Frame, CommandError> {
    let name = next_name(args)?;
    args.finish()?;
    let coordinator = s.coordinator();
    let group = coordinator.group(&name);
    let committed = coordinator.committed_all(&name);
    if group.is_none() && committed.is_empty() {
        return Err(CommandError::coded(
            "GROUP_ID_NOT_FOUND",
            format!("group '{name}' does not exist"),
        ));
    }
    let mut topics: Vec<String> = group.map(|g| g.topics()).unwrap_or_default();
    topics.extend(committed.iter().map(|(t, _, _)| t.clone()));
    topics.sort();
    topics.dedup();
    let members = group
        .map(|g| {
            g.members
                .values()
                .map(|m| {
                    map(vec![
                        ("member", text(&m.id)),
                        (
                            "topics",
                            Frame::Array(m.topics.iter().map(|t| text(t)).collect()),
                        ),
                        ("assignment", assignment_frame(&m.assignment)),
                        // A yes/no: `#t`/`#f` in RESP3, `:1`/`:0` in RESP2.
                        ("idle", Frame::Boolean(m.is_idle())),
                    ])
                })
                .collect()
        })
        .unwrap_or_default();
    let mut partitions = Vec::new();
    for t in &topics {
        let Some(topic) = s.topics.get(t) else {
            continue;
        };
        for p in topic.partitions() {
            let end = p.end_offset();
            let done = coordinator.committed(&name, t, p.id);
            let owner = group.and_then(|g| g.owner(t, p.id));
            partitions.push(map(vec![
                ("topic", text(t)),
                ("partition", int(p.id)),
                ("owner", owner.map_or(Frame::Null, text)),
                ("committed", done.map_or(Frame::Null, int)),
                ("end", int(end)),
                (
                    "lag",
                    done.map_or(Frame::Null, |c| int(end.saturating_sub(c))),
                ),
            ]));
        }
    }
    Ok(map(vec![
        ("group", text(&name)),
        ("state", text(group.map_or("Empty", |g| g.state()))),
        (
            "generation",
            Frame::Integer(group.map_or(0, |g| i64::from(g.generation))),
        ),
        (
            "strategy",
            text(group.map_or("range", |g| g.strategy.name())),
        ),
        ("members", Frame::Array(members)),
        ("partitions", Frame::Array(partitions)),
    ]))
}

/// `GROUP.LIST`
pub fn list(s: &StreamServer, args: &mut Args) -> Result<Frame, CommandError> {
    args.finish()?;
    Ok(Frame::Array(
        s.coordinator()
            .group_names()
            .iter()
            .map(|n| text(n))
            .collect(),
    ))
}

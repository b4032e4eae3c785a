//! `TOPIC.*`: create, describe, list, delete, grow, reconfigure.

use proto::{Args, CommandError, Frame};

use super::{int, map, next_name, next_u64, text, topic_error};
use crate::server::StreamServer;
use crate::topic::{MAX_PARTITIONS, TopicConfig};

/// `TOPIC.CREATE topic [PARTITIONS n] [<config> value]...`
pub fn create(s: &StreamServer, args: &mut Args) -> Result<Frame, CommandError> {
    let name = next_name(args)?;
    let mut config = s.defaults;
    while let Some(option) = args.next_keyword() {
        let value = args.next_str()?;
        config
            .set(&option, &value)
            .map_err(|e| CommandError::coded("INVALID_CONFIG", e))?;
    }
    s.topics
        .create(&name, config, s.now_ms())
        .map_err(topic_error)?;
    Ok(Frame::ok())
}

/// `TOPIC.DESCRIBE topic`: partitions (start, end, size, segments) and configs.
pub fn describe(s: &StreamServer, args: &mut Args) -> Result<Frame, CommandError> {
    let name = next_name(args)?;
    args.finish()?;
    let topic = s.topics.require(&name).map_err(topic_error)?;
    let partitions = topic
        .partitions()
        .iter()
        .map(|p| {
            let i = p.info();
            map(vec![
                ("partition", int(i.id)),
                ("start", int(i.start_offset)),
                ("end", int(i.end_offset)),
                ("size", int(i.size)),
                ("segments", int(i.segments)),
            ])
        })
        .collect();
    let config = topic
        .config()
        .entries()
        .into_iter()
        .map(|(k, v)| (text(k), text(&v)))
        .collect();
    Ok(map(vec![
        ("topic", text(&name)),
        ("partitions", Frame::Array(partitions)),
        ("config", Frame::Map(config)),
    ]))
}

/// `TOPIC.LIST`
pub fn list(s: &StreamServer, args: &mut Args) -> Result<Frame, CommandError> {
    args.finish()?;
    Ok(Frame::Array(
        s.topics.names().iter().map(|n| text(n)).collect(),
    ))
}

/// `TOPIC.DELETE topic` → 1 if it existed. Its committed offsets go too.
pub fn delete(s: &StreamServer, args: &mut Args) -> Result<Frame, CommandError> {
    let name = next_name(args)?;
    args.finish()?;
    let existed = s.topics.delete(&name).map_err(topic_error)?;
    if existed {
        let counts = s.partition_counts();
        let mut coordinator = s.coordinator();
        coordinator.forget_topic(&name);
        coordinator.topic_changed(&name, &counts);
    }
    Ok(Frame::Integer(i64::from(existed)))
}

/// `TOPIC.ADDPARTITIONS topic total`
pub fn add_partitions(s: &StreamServer, args: &mut Args) -> Result<Frame, CommandError> {
    let name = next_name(args)?;
    let total = next_u64(args, "the partition count", u64::from(MAX_PARTITIONS))?;
    args.finish()?;
    s.topics
        .add_partitions(&name, total as u32, s.now_ms())
        .map_err(topic_error)?;
    let counts = s.partition_counts();
    s.coordinator().topic_changed(&name, &counts);
    Ok(Frame::ok())
}

/// `TOPIC.ALTER topic name value [name value ...]`
pub fn alter(s: &StreamServer, args: &mut Args) -> Result<Frame, CommandError> {
    let name = next_name(args)?;
    let mut changes = Vec::new();
    while !args.is_empty() {
        changes.push((args.next_str()?, args.next_str()?));
    }
    if changes.is_empty() {
        return Err(args.wrong_arity());
    }
    let _: TopicConfig = s.topics.alter(&name, &changes).map_err(topic_error)?;
    Ok(Frame::ok())
}

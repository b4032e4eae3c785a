//! The RESP commands: arguments → engine → reply. One module per family.
//!
//! | family | commands | Kafka API it mirrors |
//! |---|---|---|
//! | [`topic`] | `TOPIC.CREATE` `TOPIC.DESCRIBE` `TOPIC.LIST` `TOPIC.DELETE` `TOPIC.ADDPARTITIONS` `TOPIC.ALTER` | CreateTopics, Metadata, DeleteTopics, CreatePartitions, AlterConfigs |
//! | [`produce`] | `PRODUCE` `PRODUCE.BATCH` `PRODUCER.INIT` | Produce, InitProducerId |
//! | [`fetch`] | `FETCH` `LISTOFFSETS` | Fetch, ListOffsets |
//! | [`group`] | `GROUP.JOIN` `GROUP.HEARTBEAT` `GROUP.LEAVE` `GROUP.COMMIT` `GROUP.COMMITTED` `GROUP.DESCRIBE` `GROUP.LIST` | JoinGroup+SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups, ListGroups |
//!
//! Errors carry Kafka's error name as their code (`-OFFSET_OUT_OF_RANGE ...`), so what a
//! learner sees here is what a Kafka client would report.

pub mod fetch;
pub mod group;
pub mod produce;
pub mod topic;

use bytes::{BufMut, Bytes, BytesMut};
use proto::{Args, CommandError, Frame};
use service::{CommandSpec, Reply};

use crate::log::LogError;
use crate::producer_state::SequenceError;
use crate::server::StreamServer;
use crate::topic::{Partition, Topic, TopicError};

const W: &[&str] = &["write"];
const WF: &[&str] = &["write", "fast"];
const R: &[&str] = &["readonly"];
const RF: &[&str] = &["readonly", "fast"];
const RB: &[&str] = &["readonly", "blocking"];

/// The command table (arity counts the command name; negative: at least).
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("topic.create", -2, W, "stream", "Create a topic with a partition count and configs (retention.ms, retention.bytes, segment.bytes, segment.ms)")
        .keys(1, 1, 1)
        .syntax("topic [PARTITIONS n] [RETENTION.MS ms] [RETENTION.BYTES bytes] [SEGMENT.BYTES bytes] [SEGMENT.MS ms]"),
    CommandSpec::new("topic.describe", 2, R, "stream", "Partitions of a topic with start and end offsets, size and segments, and its configs")
        .keys(1, 1, 1)
        .syntax("topic"),
    CommandSpec::new("topic.list", 1, R, "stream", "Names of all topics"),
    CommandSpec::new("topic.delete", 2, W, "stream", "Delete a topic and its data; 1 if it existed")
        .keys(1, 1, 1)
        .syntax("topic"),
    CommandSpec::new("topic.addpartitions", 3, W, "stream", "Grow a topic to a new total partition count (keys may move partition)")
        .keys(1, 1, 1)
        .syntax("topic total"),
    CommandSpec::new("topic.alter", -4, W, "stream", "Change topic configs: retention.ms, retention.bytes, segment.bytes, segment.ms")
        .keys(1, 1, 1)
        .syntax("topic name value [name value ...]"),
    CommandSpec::new("produce", -3, WF, "stream", "Append one message; the key picks the partition (Kafka's murmur2), no key: round-robin. Replies partition and offset")
        .keys(1, 1, 1)
        .syntax("topic value [KEY key] [PARTITION p] [TIMESTAMP ms] [HEADER name value ...] [PRODUCER id epoch sequence]"),
    CommandSpec::new("producer.init", 1, W, "stream", "A new idempotent producer id and epoch (Kafka's InitProducerId), for PRODUCE ... PRODUCER id epoch sequence"),
    CommandSpec::new("produce.batch", -4, W, "stream", "Append many messages, one record batch per partition. Replies [partition, base offset, count] per partition written, in partition order")
        .keys(1, 1, 1)
        .syntax("topic [PARTITION p] VALUES value [value ...] | PAIRS key value [key value ...]"),
    CommandSpec::new("fetch", -4, RB, "stream", "Read records of a partition from an offset; BLOCK waits for new ones (long poll)")
        .keys(1, 1, 1)
        .syntax("topic partition offset [COUNT n] [MAXBYTES bytes] [BLOCK ms]"),
    CommandSpec::new("listoffsets", 4, RF, "stream", "The earliest or latest offset of a partition, or the first offset at or after a timestamp")
        .keys(1, 1, 1)
        .syntax("topic partition EARLIEST|LATEST|timestamp-ms"),
    CommandSpec::new("group.join", -5, W, "stream", "Join a consumer group; replies the generation and this member's partitions")
        .syntax("group member [STRATEGY range|roundrobin] [SESSIONTIMEOUT ms] TOPICS topic [topic ...]"),
    CommandSpec::new("group.heartbeat", 4, WF, "stream", "Keep a group membership alive; an error means rebalanced: join again")
        .syntax("group member generation"),
    CommandSpec::new("group.leave", 3, W, "stream", "Leave a consumer group; its partitions move to the others at once")
        .syntax("group member"),
    CommandSpec::new("group.commit", -7, W, "stream", "Commit the next offset to read per partition; refused from a stale generation")
        .syntax("group member generation topic partition offset [partition offset ...]"),
    CommandSpec::new("group.committed", -3, R, "stream", "Committed offsets of a group for a topic's partitions (nil: none)")
        .syntax("group topic [partition ...]"),
    CommandSpec::new("group.describe", 2, R, "stream", "A group's members and assignments (idle members marked) and per-partition committed offset, end offset and lag")
        .syntax("group"),
    CommandSpec::new("group.list", 1, R, "stream", "Names of groups with members or committed offsets"),
];

/// Runs one command.
pub async fn execute(s: &StreamServer, mut args: Args) -> Reply {
    let result = match args.name() {
        "topic.create" => topic::create(s, &mut args),
        "topic.describe" => topic::describe(s, &mut args),
        "topic.list" => topic::list(s, &mut args),
        "topic.delete" => topic::delete(s, &mut args),
        "topic.addpartitions" => topic::add_partitions(s, &mut args),
        "topic.alter" => topic::alter(s, &mut args),
        "produce" => return reply(produce::produce(s, &mut args).await),
        "produce.batch" => return reply(produce::produce_batch(s, &mut args).await),
        "producer.init" => return reply(produce::producer_init(s, &mut args).await),
        "fetch" => return reply(fetch::fetch(s, &mut args).await),
        "listoffsets" => fetch::list_offsets(s, &mut args),
        "group.join" => group::join(s, &mut args),
        "group.heartbeat" => group::heartbeat(s, &mut args),
        "group.leave" => group::leave(s, &mut args),
        "group.commit" => group::commit(s, &mut args).await,
        "group.committed" => group::committed(s, &mut args),
        "group.describe" => group::describe(s, &mut args),
        "group.list" => group::list(s, &mut args),
        _ => return Reply::Unhandled(args),
    };
    match result {
        Ok(frame) => Reply::One(frame),
        Err(e) => Reply::One(e.to_frame()),
    }
}

fn reply(result: Result<Reply, CommandError>) -> Reply {
    result.unwrap_or_else(|e| Reply::One(e.to_frame()))
}

fn topic_error(e: TopicError) -> CommandError {
    CommandError::coded(e.code(), e)
}

fn log_error(e: LogError) -> CommandError {
    let code = match e {
        LogError::InvalidBatch(_) => "CORRUPT_MESSAGE",
        LogError::TooLarge { .. } => "MESSAGE_TOO_LARGE",
        LogError::OffsetOutOfRange { .. } => "OFFSET_OUT_OF_RANGE",
        LogError::Sequence(SequenceError::OutOfOrder { .. }) => "OUT_OF_ORDER_SEQUENCE_NUMBER",
        LogError::Sequence(SequenceError::StaleEpoch { .. }) => "INVALID_PRODUCER_EPOCH",
        LogError::Io(_) => "KAFKA_STORAGE_ERROR",
    };
    CommandError::coded(code, e)
}

/// A topic name argument (UTF-8; validity is checked where topics are created).
fn next_name(args: &mut Args) -> Result<String, CommandError> {
    let name = args.next_bytes()?;
    String::from_utf8(name.to_vec()).map_err(|_| CommandError::err("names must be UTF-8"))
}

/// A non-negative integer argument of at most `max`.
fn next_u64(args: &mut Args, what: &str, max: u64) -> Result<u64, CommandError> {
    let n = args.next_int()?;
    u64::try_from(n)
        .ok()
        .filter(|&n| n <= max)
        .ok_or_else(|| CommandError::err(format!("{what} must be between 0 and {max}")))
}

/// A partition of a topic, or Kafka's error naming the valid range.
fn partition(topic: &Topic, id: u64) -> Result<std::sync::Arc<Partition>, CommandError> {
    u32::try_from(id)
        .ok()
        .and_then(|id| topic.partition(id))
        .ok_or_else(|| {
            CommandError::coded(
                "UNKNOWN_TOPIC_OR_PARTITION",
                format!(
                    "topic '{}' has {} partition(s): 0 to {}",
                    topic.name,
                    topic.partition_count(),
                    topic.partition_count().saturating_sub(1)
                ),
            )
        })
}

/// `<kind><n>\r\n` in RESP2: an integer (`:`) or an aggregate's length (`*`, `$`), for
/// replies encoded by hand (`FETCH`, `PRODUCE`).
fn line(out: &mut impl bytes::BufMut, kind: u8, n: i64) {
    out.put_u8(kind);
    proto::frame::put_decimal(out, n);
    out.put_slice(b"\r\n");
}

/// One RESP line of a number (`:n\r\n`, `$n\r\n`), kept formatted for the next record,
/// which usually has the same number or, for offsets, the next one: formatting decimals
/// was a fifth of a fetch's instructions.
pub(crate) struct Line {
    kind: u8,
    n: Option<i64>,
    bytes: Vec<u8>,
}

impl Line {
    pub(crate) fn new(kind: u8) -> Line {
        Line {
            kind,
            n: None,
            bytes: Vec::with_capacity(24),
        }
    }

    /// Appends the line of `n`, formatting it only if it is not the last one's.
    pub(crate) fn put(&mut self, out: &mut BytesMut, n: i64) {
        if self.n != Some(n) {
            self.n = Some(n);
            self.bytes.clear();
            line(&mut self.bytes, self.kind, n);
        }
        out.put_slice(&self.bytes);
    }

    /// Like [`Line::put`] for an offset: one past the last is the last's digits counted
    /// up in place (the decimal increment a person does: 9s roll over to 0s).
    pub(crate) fn put_next(&mut self, out: &mut BytesMut, offset: u64) {
        let n = offset as i64;
        if n > 0 && self.n == Some(n - 1) && self.increment() {
            self.n = Some(n);
            out.put_slice(&self.bytes);
        } else {
            self.put(out, n);
        }
    }

    /// Adds one to the digits between the kind byte and `\r\n` in place, as a person
    /// counts: trailing 9s roll over to 0s, the digit before them goes up. `false` when
    /// they are all 9s (the number gets a digit longer: format it afresh).
    fn increment(&mut self) -> bool {
        let digits = self.bytes.len().saturating_sub(2);
        for d in self.bytes[1..digits].iter_mut().rev() {
            match *d {
                b'9' => *d = b'0',
                b'0'..=b'8' => {
                    *d += 1;
                    return true;
                }
                _ => return false,
            }
        }
        false
    }
}

fn int(n: impl TryInto<i64>) -> Frame {
    Frame::Integer(n.try_into().unwrap_or(i64::MAX))
}

fn text(s: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

/// A map reply with fixed field names (a flat `[name, value, ...]` array in RESP2).
fn map(pairs: Vec<(&'static str, Frame)>) -> Frame {
    Frame::Map(
        pairs
            .into_iter()
            .map(|(k, v)| (Frame::Bulk(Bytes::from_static(k.as_bytes())), v))
            .collect(),
    )
}

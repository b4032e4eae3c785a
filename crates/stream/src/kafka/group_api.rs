//! The group APIs: JoinGroup and SyncGroup (waiting at the barrier of `groups.rs`),
//! Heartbeat, LeaveGroup, OffsetCommit and OffsetFetch (the engine's durable committed
//! offsets, shared with `GROUP.COMMIT` / `GROUP.COMMITTED`), DescribeGroups, ListGroups.

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::{
    DescribeGroupsRequest, DescribeGroupsResponse, GroupId, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    ListGroupsResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest,
    OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};

use super::groups::{Join, JoinResult, State};
use super::{Kafka, Request, name, str_bytes};
use crate::group::Strategy;
use crate::offsets::Commit;

/// Session timeouts a member may ask for (Kafka's `group.min/max.session.timeout.ms`).
const SESSION_TIMEOUT_MS: std::ops::RangeInclusive<i32> = 1_000..=1_800_000;

/// Waits until `poll` has an answer; group changes wake it. Shutdown answers `REBALANCE_IN_PROGRESS`.
async fn wait_for<T>(
    kafka: &Kafka,
    mut poll: impl FnMut(&mut super::groups::KafkaGroups) -> Option<Result<T, i16>>,
) -> Result<T, i16> {
    let mut changes = kafka.group_changes.subscribe();
    loop {
        if let Some(answer) = poll(&mut kafka.groups()) {
            return answer;
        }
        tokio::select! {
            _ = kafka.server.shutdown.cancelled() => {
                return Err(ResponseError::RebalanceInProgress.code());
            }
            _ = changes.changed() => {}
        }
    }
}

pub async fn join_group(
    kafka: &Kafka,
    req: JoinGroupRequest,
    request: &Request,
) -> Option<JoinGroupResponse> {
    let group = name(&req.group_id.0);
    let member_id = name(&req.member_id);
    let protocol_type = name(&req.protocol_type);
    let failed = |code: i16| {
        JoinGroupResponse::default()
            .with_error_code(code)
            .with_generation_id(-1)
            .with_member_id(str_bytes(&member_id))
            .with_protocol_name(Some(str_bytes("")))
    };
    if group.is_empty() {
        return Some(failed(ResponseError::InvalidGroupId.code()));
    }
    if !SESSION_TIMEOUT_MS.contains(&req.session_timeout_ms) {
        return Some(failed(ResponseError::InvalidSessionTimeout.code()));
    }
    // A group that RESP clients run (server-side assignment) cannot take Kafka members.
    let resp_run = kafka
        .server
        .coordinator()
        .group(&group)
        .is_some_and(|g| g.strategy != Strategy::Client && !g.members.is_empty());
    if resp_run {
        return Some(failed(ResponseError::InconsistentGroupProtocol.code()));
    }
    let rebalance_timeout = if request.version == 0 {
        req.session_timeout_ms
    } else {
        req.rebalance_timeout_ms
    };
    let join = Join {
        group: group.clone(),
        member_id: member_id.clone(),
        client_id: request.client_id.clone(),
        client_host: request.client_host.clone(),
        protocol_type: protocol_type.clone(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (name(&p.name), p.metadata.clone()))
            .collect(),
        session_timeout_ms: i64::from(req.session_timeout_ms),
        rebalance_timeout_ms: i64::from(rebalance_timeout.max(0)),
    };
    let id = {
        let mut groups = kafka.groups();
        let joined = groups.join(join, kafka.server.now_ms());
        kafka.group_changed(&groups, &group);
        match joined {
            Ok(id) => id,
            Err(code) => return Some(failed(code)),
        }
    };
    let result: Result<JoinResult, i16> = wait_for(kafka, |g| g.join_result(&group, &id)).await;
    Some(match result {
        Err(code) => failed(code),
        Ok(r) => JoinGroupResponse::default()
            .with_generation_id(r.generation)
            .with_protocol_type(Some(str_bytes(protocol_type)))
            .with_protocol_name(Some(str_bytes(r.protocol)))
            .with_leader(str_bytes(r.leader))
            .with_member_id(str_bytes(r.member_id))
            .with_members(
                r.members
                    .into_iter()
                    .map(|(id, metadata)| {
                        JoinGroupResponseMember::default()
                            .with_member_id(str_bytes(id))
                            .with_metadata(metadata)
                    })
                    .collect(),
            ),
    })
}

pub async fn sync_group(
    kafka: &Kafka,
    req: SyncGroupRequest,
    _: &Request,
) -> Option<SyncGroupResponse> {
    let group = name(&req.group_id.0);
    let member = name(&req.member_id);
    let assignments = req
        .assignments
        .iter()
        .map(|a| (name(&a.member_id), a.assignment.clone()))
        .collect();
    let immediate = {
        let mut groups = kafka.groups();
        let r = groups.sync(
            &group,
            &member,
            req.generation_id,
            assignments,
            kafka.server.now_ms(),
        );
        kafka.group_changed(&groups, &group);
        r
    };
    let result: Result<Bytes, i16> = match immediate {
        Ok(Some(assignment)) => Ok(assignment),
        Ok(None) => wait_for(kafka, |g| g.sync_result(&group, &member)).await,
        Err(code) => Err(code),
    };
    let response = SyncGroupResponse::default()
        .with_protocol_type(req.protocol_type)
        .with_protocol_name(req.protocol_name);
    Some(match result {
        Ok(assignment) => response.with_assignment(assignment),
        Err(code) => response.with_error_code(code),
    })
}

pub async fn heartbeat(
    kafka: &Kafka,
    req: HeartbeatRequest,
    _: &Request,
) -> Option<HeartbeatResponse> {
    let result = kafka.groups().heartbeat(
        &name(&req.group_id.0),
        &name(&req.member_id),
        req.generation_id,
        kafka.server.now_ms(),
    );
    Some(HeartbeatResponse::default().with_error_code(result.err().unwrap_or(0)))
}

pub async fn leave_group(
    kafka: &Kafka,
    req: LeaveGroupRequest,
    request: &Request,
) -> Option<LeaveGroupResponse> {
    let group = name(&req.group_id.0);
    let members: Vec<String> = if request.version >= 3 {
        req.members.iter().map(|m| name(&m.member_id)).collect()
    } else {
        vec![name(&req.member_id)]
    };
    let mut groups = kafka.groups();
    let now = kafka.server.now_ms();
    let results: Vec<(String, i16)> = members
        .into_iter()
        .map(|m| {
            let code = groups.leave(&group, &m, now).err().unwrap_or(0);
            (m, code)
        })
        .collect();
    kafka.group_changed(&groups, &group);
    let response = LeaveGroupResponse::default();
    Some(if request.version >= 3 {
        response.with_members(
            results
                .into_iter()
                .map(|(m, code)| {
                    MemberResponse::default()
                        .with_member_id(str_bytes(m))
                        .with_error_code(code)
                })
                .collect(),
        )
    } else {
        response.with_error_code(results.first().map(|r| r.1).unwrap_or(0))
    })
}

/// Kafka's code for an error from `StreamServer::commit_offsets` (its RESP error code).
fn commit_error_code(e: &proto::CommandError) -> i16 {
    let text = e.to_string();
    if text.starts_with("ILLEGAL_GENERATION") {
        ResponseError::IllegalGeneration.code()
    } else if text.starts_with("UNKNOWN_MEMBER_ID") {
        ResponseError::UnknownMemberId.code()
    } else {
        ResponseError::KafkaStorageError.code()
    }
}

pub async fn offset_commit(
    kafka: &Kafka,
    req: OffsetCommitRequest,
    _: &Request,
) -> Option<OffsetCommitResponse> {
    let group = name(&req.group_id.0);
    let member = name(&req.member_id);
    let generation = req.generation_id_or_member_epoch;
    // A rebalance between join and sync: the member's partitions are about to change.
    let group_error = {
        let groups = kafka.groups();
        groups.group(&group).and_then(|g| {
            (g.state == State::CompletingRebalance && generation == g.generation)
                .then_some(ResponseError::RebalanceInProgress.code())
        })
    };
    let mut commits = Vec::new();
    let mut codes: Vec<Vec<(i32, i16)>> = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let topic = name(&t.name.0);
        let count = kafka.server.topics.partition_count(&topic);
        codes.push(
            t.partitions
                .iter()
                .map(|p| {
                    let valid = count
                        .is_some_and(|n| (0..n as i64).contains(&i64::from(p.partition_index)));
                    let code = match (group_error, valid, u64::try_from(p.committed_offset)) {
                        (Some(code), _, _) => code,
                        (None, false, _) => ResponseError::UnknownTopicOrPartition.code(),
                        (None, true, Err(_)) => ResponseError::InvalidCommitOffsetSize.code(),
                        (None, true, Ok(offset)) => {
                            commits.push(Commit {
                                group: group.clone(),
                                topic: topic.clone(),
                                partition: p.partition_index as u32,
                                offset,
                            });
                            0
                        }
                    };
                    (p.partition_index, code)
                })
                .collect(),
        );
    }
    let committed = if commits.is_empty() {
        Ok(())
    } else {
        kafka
            .server
            .commit_offsets(&member, generation, &commits)
            .await
    };
    if let Err(e) = committed {
        let code = commit_error_code(&e);
        for c in codes.iter_mut().flatten().filter(|c| c.1 == 0) {
            c.1 = code;
        }
    }
    let topics = req
        .topics
        .into_iter()
        .zip(codes)
        .map(|(t, codes)| {
            OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(
                    codes
                        .into_iter()
                        .map(|(p, code)| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    Some(OffsetCommitResponse::default().with_topics(topics))
}

pub async fn offset_fetch(
    kafka: &Kafka,
    req: OffsetFetchRequest,
    _: &Request,
) -> Option<OffsetFetchResponse> {
    let group = name(&req.group_id.0);
    let coordinator = kafka.server.coordinator();
    // Which partitions: those asked for, or (null) every committed one.
    let wanted: Vec<(String, Vec<i32>)> = match req.topics {
        Some(topics) => topics
            .iter()
            .map(|t| (name(&t.name.0), t.partition_indexes.clone()))
            .collect(),
        None => {
            let mut all: Vec<(String, Vec<i32>)> = Vec::new();
            for (topic, partition, _) in coordinator.committed_all(&group) {
                match all.last_mut() {
                    Some((t, ps)) if *t == topic => ps.push(partition as i32),
                    _ => all.push((topic, vec![partition as i32])),
                }
            }
            all
        }
    };
    let topics = wanted
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|p| {
                    let committed = u32::try_from(p)
                        .ok()
                        .and_then(|p| coordinator.committed(&group, &topic, p))
                        .map_or(-1, |o| o as i64);
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(committed)
                        .with_committed_leader_epoch(-1)
                        .with_metadata(Some(str_bytes("")))
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(str_bytes(topic)))
                .with_partitions(partitions)
        })
        .collect();
    Some(OffsetFetchResponse::default().with_topics(topics))
}

pub async fn describe_groups(
    kafka: &Kafka,
    req: DescribeGroupsRequest,
    _: &Request,
) -> Option<DescribeGroupsResponse> {
    let groups = kafka.groups();
    let coordinator = kafka.server.coordinator();
    let described = req
        .groups
        .into_iter()
        .map(|id| {
            let group = name(&id.0);
            let response = DescribedGroup::default()
                .with_group_id(id)
                .with_authorized_operations(i32::MIN);
            if let Some(g) = groups.group(&group) {
                let protocol = g.protocol.clone().unwrap_or_default();
                let members = g
                    .members
                    .values()
                    .map(|m| {
                        let metadata = m
                            .protocols
                            .iter()
                            .find(|(n, _)| *n == protocol)
                            .map(|(_, b)| b.clone())
                            .unwrap_or_default();
                        DescribedGroupMember::default()
                            .with_member_id(str_bytes(&m.id))
                            .with_client_id(str_bytes(&m.client_id))
                            .with_client_host(str_bytes(&m.client_host))
                            .with_member_metadata(metadata)
                            .with_member_assignment(m.assignment.clone())
                    })
                    .collect();
                response
                    .with_group_state(str_bytes(g.state.name()))
                    .with_protocol_type(str_bytes(&g.protocol_type))
                    .with_protocol_data(str_bytes(protocol))
                    .with_members(members)
            } else if let Some(g) = coordinator.group(&group) {
                // Run by RESP clients: members and the server-side strategy.
                let members = g
                    .members
                    .keys()
                    .map(|m| DescribedGroupMember::default().with_member_id(str_bytes(m)))
                    .collect();
                response
                    .with_group_state(str_bytes(g.state()))
                    .with_protocol_type(str_bytes("consumer"))
                    .with_protocol_data(str_bytes(g.strategy.name()))
                    .with_members(members)
            } else if coordinator.group_names().contains(&group) {
                response.with_group_state(str_bytes("Empty"))
            } else {
                response.with_group_state(str_bytes("Dead"))
            }
        })
        .collect();
    Some(DescribeGroupsResponse::default().with_groups(described))
}

/// Every group either front-end knows, with Kafka's state names.
pub async fn list_groups(
    kafka: &Kafka,
    req: ListGroupsRequest,
    _: &Request,
) -> Option<ListGroupsResponse> {
    let groups = kafka.groups();
    let coordinator = kafka.server.coordinator();
    let mut names = coordinator.group_names();
    names.extend(groups.names());
    names.sort();
    names.dedup();
    let filter: Vec<String> = req.states_filter.iter().map(|s| s.to_string()).collect();
    let listed = names
        .into_iter()
        .filter_map(|group| {
            let state = match (groups.group(&group), coordinator.group(&group)) {
                (Some(g), _) => g.state.name(),
                (None, Some(g)) => g.state(),
                (None, None) => "Empty",
            };
            if !filter.is_empty() && !filter.iter().any(|f| f.eq_ignore_ascii_case(state)) {
                return None;
            }
            Some(
                ListedGroup::default()
                    .with_group_id(GroupId(str_bytes(&group)))
                    .with_protocol_type(str_bytes("consumer"))
                    .with_group_state(str_bytes(state)),
            )
        })
        .collect();
    Some(ListGroupsResponse::default().with_groups(listed))
}

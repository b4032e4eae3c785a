//! Kafka's group membership protocol: the JoinGroup / SyncGroup barrier.
//!
//! The RESP front-end's coordinator assigns partitions itself. Kafka clients expect the
//! *classic* protocol instead, where the broker only runs a barrier and one client — the
//! *leader* — computes the assignment:
//!
//! ```text
//!  Empty ──join──▶ PreparingRebalance ──all known members joined, or──▶ CompletingRebalance
//!                    ▲   (rebalance timeout: the rest are dropped)          │ leader's SyncGroup
//!                    │                                                      ▼
//!                    └──── a member joins, leaves or times out ◀──────── Stable
//! ```
//!
//! 1. **JoinGroup.** Every member sends its subscription (opaque *metadata*, one per
//!    assignment protocol it supports, e.g. `range`, `cooperative-sticky`). The broker holds
//!    each JoinGroup until every member it knows has rejoined, or the rebalance timeout
//!    passes (members that did not rejoin are dropped). Then the generation goes up, the
//!    broker picks a protocol all members support, and answers everyone: the leader gets
//!    every member's metadata, the followers only the generation.
//! 2. **SyncGroup.** The leader runs the assignor and sends each member's assignment; the
//!    followers' SyncGroups wait for it. Everyone gets its own assignment; `Stable`.
//! 3. **Heartbeat.** `REBALANCE_IN_PROGRESS` tells a member to rejoin; a heartbeat missing
//!    for `session.timeout.ms` removes the member and starts a rebalance.
//!
//! This state machine is synchronous and takes the time as an argument; the async layer
//! (`group_api.rs`) waits for a barrier by watching [`KafkaGroups::changes`]. After every
//! change the group is published to the shared [`Coordinator`], so `GROUP.DESCRIBE`, offset
//! commits and the generation check see one set of groups.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::Decodable;

use crate::group::{Assignment, Coordinator, Member};

/// Kafka's group states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::PreparingRebalance => "PreparingRebalance",
            State::CompletingRebalance => "CompletingRebalance",
            State::Stable => "Stable",
        }
    }
}

/// What a member's JoinGroup is answered with once the barrier completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResult {
    pub error: i16,
    pub generation: i32,
    pub protocol: String,
    pub leader: String,
    pub member_id: String,
    /// Every member's metadata for the chosen protocol: only in the leader's answer.
    pub members: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone)]
pub struct KafkaMember {
    pub id: String,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i64,
    pub rebalance_timeout_ms: i64,
    /// (protocol name, subscription metadata), in the client's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub last_heartbeat_ms: i64,
    /// Rejoined in the current rebalance.
    joined: bool,
    /// The answer to a JoinGroup waiting at the barrier.
    join_result: Option<JoinResult>,
    /// Waiting in SyncGroup for the leader; the answer once it came.
    sync_waiting: bool,
    sync_result: Option<Result<Bytes, i16>>,
}

impl KafkaMember {
    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
pub struct KafkaGroup {
    pub name: String,
    pub state: State,
    pub generation: i32,
    pub protocol_type: String,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, KafkaMember>,
    /// When a rebalance in progress gives up on members that have not (re)joined or
    /// (for the leader) synced.
    deadline_ms: i64,
}

impl KafkaGroup {
    fn new(name: &str, protocol_type: &str) -> KafkaGroup {
        KafkaGroup {
            name: name.to_string(),
            state: State::Empty,
            generation: 0,
            protocol_type: protocol_type.to_string(),
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            deadline_ms: 0,
        }
    }

    /// Starts a rebalance: everyone must rejoin before `now + max rebalance timeout`.
    fn prepare_rebalance(&mut self, now_ms: i64) {
        if self.state == State::CompletingRebalance {
            // Followers waiting for an assignment that will never come: rejoin.
            for m in self.members.values_mut() {
                if m.sync_waiting {
                    m.sync_waiting = false;
                    m.sync_result = Some(Err(ResponseError::RebalanceInProgress.code()));
                }
            }
        }
        if self.state != State::PreparingRebalance {
            for m in self.members.values_mut() {
                m.joined = false;
            }
        }
        self.state = State::PreparingRebalance;
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0);
        self.deadline_ms = now_ms + timeout;
    }

    /// Completes the join barrier if every member rejoined, or the deadline passed.
    fn try_complete_join(&mut self, now_ms: i64) -> bool {
        if self.state != State::PreparingRebalance {
            return false;
        }
        let all_joined = self.members.values().all(|m| m.joined);
        if !all_joined && now_ms < self.deadline_ms {
            return false;
        }
        self.members.retain(|_, m| m.joined);
        self.generation += 1;
        if self.members.is_empty() {
            self.state = State::Empty;
            self.protocol = None;
            self.leader = None;
            return true;
        }
        self.protocol = self.choose_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let everyone: Vec<(String, Bytes)> = self
            .members
            .values()
            .map(|m| (m.id.clone(), m.metadata(&protocol)))
            .collect();
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            m.last_heartbeat_ms = now_ms;
            m.join_result = Some(JoinResult {
                error: 0,
                generation: self.generation,
                protocol: protocol.clone(),
                leader: leader.clone(),
                member_id: m.id.clone(),
                members: if m.id == leader {
                    everyone.clone()
                } else {
                    Vec::new()
                },
            });
        }
        self.state = State::CompletingRebalance;
        self.deadline_ms = now_ms
            + self
                .members
                .values()
                .map(|m| m.rebalance_timeout_ms)
                .max()
                .unwrap_or(0);
        true
    }

    /// The first protocol, in the leader's (else the first member's) order of preference,
    /// that every member supports (Kafka votes; with one client library it is the same).
    fn choose_protocol(&self) -> Option<String> {
        let first = self
            .leader
            .as_ref()
            .and_then(|l| self.members.get(l))
            .or_else(|| self.members.values().next())?;
        first
            .protocols
            .iter()
            .map(|(name, _)| name)
            .find(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == *name))
            })
            .cloned()
    }

    /// Whether a new member's protocols fit the group's.
    fn accepts(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocols.is_empty();
        }
        protocol_type == self.protocol_type
            && protocols.iter().any(|(name, _)| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
    }

    fn check_member(&self, member: &str, generation: i32) -> Result<(), i16> {
        if !self.members.contains_key(member) {
            return Err(ResponseError::UnknownMemberId.code());
        }
        if generation != self.generation {
            return Err(ResponseError::IllegalGeneration.code());
        }
        Ok(())
    }
}

/// A JoinGroup request.
#[derive(Debug, Clone)]
pub struct Join {
    pub group: String,
    /// Empty: a new member (the broker names it).
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub session_timeout_ms: i64,
    pub rebalance_timeout_ms: i64,
}

/// Every group run by the Kafka front-end.
#[derive(Debug, Default)]
pub struct KafkaGroups {
    groups: BTreeMap<String, KafkaGroup>,
    next_member: u64,
    /// Bumped at every change; waiters re-check their barrier when it moves.
    version: u64,
}

impl KafkaGroups {
    pub fn group(&self, name: &str) -> Option<&KafkaGroup> {
        self.groups.get(name)
    }

    pub fn changes(&self) -> u64 {
        self.version
    }

    /// Joins (or rejoins) a member. Returns the member id; the answer arrives through
    /// [`KafkaGroups::join_result`] once the barrier completes (maybe at once).
    pub fn join(&mut self, req: Join, now_ms: i64) -> Result<String, i16> {
        self.version += 1;
        let group = self
            .groups
            .entry(req.group.clone())
            .or_insert_with(|| KafkaGroup::new(&req.group, &req.protocol_type));
        let known = group.members.contains_key(&req.member_id);
        if !req.member_id.is_empty() && !known {
            return Err(ResponseError::UnknownMemberId.code());
        }
        if !known && !group.accepts(&req.protocol_type, &req.protocols) {
            return Err(ResponseError::InconsistentGroupProtocol.code());
        }
        if group.members.is_empty() {
            group.protocol_type = req.protocol_type.clone();
        }
        let id = if known {
            req.member_id.clone()
        } else {
            self.next_member += 1;
            let prefix = if req.client_id.is_empty() {
                "consumer"
            } else {
                &req.client_id
            };
            format!("{prefix}-{:016x}", self.next_member)
        };
        let member = group
            .members
            .entry(id.clone())
            .or_insert_with(|| KafkaMember {
                id: id.clone(),
                client_id: req.client_id.clone(),
                client_host: req.client_host.clone(),
                session_timeout_ms: req.session_timeout_ms,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                protocols: Vec::new(),
                assignment: Bytes::new(),
                last_heartbeat_ms: now_ms,
                joined: false,
                join_result: None,
                sync_waiting: false,
                sync_result: None,
            });
        let unchanged = known && member.protocols == req.protocols;
        member.protocols = req.protocols;
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.last_heartbeat_ms = now_ms;
        member.join_result = None;
        let is_leader = group.leader.as_deref() == Some(id.as_str());
        match group.state {
            // A follower rejoining with nothing new (it lost our answer): answer again.
            State::Stable | State::CompletingRebalance if unchanged && !is_leader => {
                let protocol = group.protocol.clone().unwrap_or_default();
                if let Some(m) = group.members.get_mut(&id) {
                    m.join_result = Some(JoinResult {
                        error: 0,
                        generation: group.generation,
                        protocol,
                        leader: group.leader.clone().unwrap_or_default(),
                        member_id: id.clone(),
                        members: Vec::new(),
                    });
                }
            }
            _ => {
                group.prepare_rebalance(now_ms);
                if let Some(m) = group.members.get_mut(&id) {
                    m.joined = true;
                }
                group.try_complete_join(now_ms);
            }
        }
        Ok(id)
    }

    /// The answer to `member`'s JoinGroup, once the barrier has completed; `Some(Err)` if
    /// the member was dropped meanwhile.
    pub fn join_result(&mut self, group: &str, member: &str) -> Option<Result<JoinResult, i16>> {
        let Some(m) = self
            .groups
            .get_mut(group)
            .and_then(|g| g.members.get_mut(member))
        else {
            return Some(Err(ResponseError::UnknownMemberId.code()));
        };
        m.join_result.take().map(Ok)
    }

    /// SyncGroup. The leader's carries everyone's assignment and completes the rebalance.
    /// `Ok(Some(bytes))`: the member's assignment; `Ok(None)`: wait for the leader and
    /// ask [`KafkaGroups::sync_result`].
    pub fn sync(
        &mut self,
        group: &str,
        member: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
        now_ms: i64,
    ) -> Result<Option<Bytes>, i16> {
        self.version += 1;
        let g = self
            .groups
            .get_mut(group)
            .ok_or(ResponseError::UnknownMemberId.code())?;
        g.check_member(member, generation)?;
        if let Some(m) = g.members.get_mut(member) {
            m.last_heartbeat_ms = now_ms;
        }
        match g.state {
            State::Empty | State::PreparingRebalance => {
                Err(ResponseError::RebalanceInProgress.code())
            }
            State::Stable => Ok(g.members.get(member).map(|m| m.assignment.clone())),
            State::CompletingRebalance => {
                if g.leader.as_deref() != Some(member) {
                    if let Some(m) = g.members.get_mut(member) {
                        m.sync_waiting = true;
                        m.sync_result = None;
                    }
                    return Ok(None);
                }
                let mut assignments: BTreeMap<String, Bytes> = assignments.into_iter().collect();
                for m in g.members.values_mut() {
                    m.assignment = assignments.remove(&m.id).unwrap_or_default();
                    if m.sync_waiting {
                        m.sync_waiting = false;
                        m.sync_result = Some(Ok(m.assignment.clone()));
                    }
                }
                g.state = State::Stable;
                Ok(g.members.get(member).map(|m| m.assignment.clone()))
            }
        }
    }

    /// The answer to a follower's waiting SyncGroup, once the leader sent assignments.
    pub fn sync_result(&mut self, group: &str, member: &str) -> Option<Result<Bytes, i16>> {
        let Some(m) = self
            .groups
            .get_mut(group)
            .and_then(|g| g.members.get_mut(member))
        else {
            return Some(Err(ResponseError::UnknownMemberId.code()));
        };
        m.sync_result.take()
    }

    /// TxnOffsetCommit v3+ (KIP-447): a transactional producer may name the consumer whose
    /// offsets it commits (its member id and generation, from the consumer's group
    /// metadata). If it does, that consumer must be a member of the group's current
    /// generation — a zombie processor that missed a rebalance cannot commit offsets for
    /// partitions that moved away from it. Without a name (generation -1, no member id),
    /// anyone may, as before KIP-447.
    pub fn check_txn_commit(
        &self,
        group: &str,
        member: &str,
        generation: i32,
        named: bool,
    ) -> Result<(), i16> {
        if !named && member.is_empty() && generation < 0 {
            return Ok(());
        }
        self.groups
            .get(group)
            .ok_or(ResponseError::UnknownMemberId.code())?
            .check_member(member, generation)
    }

    pub fn heartbeat(
        &mut self,
        group: &str,
        member: &str,
        generation: i32,
        now_ms: i64,
    ) -> Result<(), i16> {
        let g = self
            .groups
            .get_mut(group)
            .ok_or(ResponseError::UnknownMemberId.code())?;
        if let Some(m) = g.members.get_mut(member) {
            m.last_heartbeat_ms = now_ms;
        }
        if g.state == State::PreparingRebalance && g.members.contains_key(member) {
            return Err(ResponseError::RebalanceInProgress.code());
        }
        g.check_member(member, generation)
    }

    /// A member leaves on purpose: the others rebalance at once.
    pub fn leave(&mut self, group: &str, member: &str, now_ms: i64) -> Result<(), i16> {
        self.version += 1;
        let g = self
            .groups
            .get_mut(group)
            .ok_or(ResponseError::UnknownMemberId.code())?;
        g.members
            .remove(member)
            .ok_or(ResponseError::UnknownMemberId.code())?;
        if g.leader.as_deref() == Some(member) {
            g.leader = None;
        }
        g.prepare_rebalance(now_ms);
        g.try_complete_join(now_ms);
        Ok(())
    }

    /// Time passes: members silent for their session timeout are removed (a rebalance
    /// follows), and barriers past their deadline complete without the stragglers.
    /// Returns the names of the groups that changed.
    pub fn tick(&mut self, now_ms: i64) -> Vec<String> {
        let mut changed = Vec::new();
        for g in self.groups.values_mut() {
            let before = g.members.len();
            let waiting_join = g.state == State::PreparingRebalance;
            g.members.retain(|_, m| {
                // A member waiting at the join barrier is bounded by the rebalance timeout.
                (waiting_join && m.joined) || now_ms - m.last_heartbeat_ms <= m.session_timeout_ms
            });
            let mut moved = g.members.len() != before;
            if moved {
                if g.leader
                    .as_ref()
                    .is_some_and(|l| !g.members.contains_key(l))
                {
                    g.leader = None;
                }
                g.prepare_rebalance(now_ms);
            } else if g.state == State::CompletingRebalance && now_ms >= g.deadline_ms {
                // The leader never sent the assignment: start over.
                g.prepare_rebalance(now_ms);
                moved = true;
            }
            if g.try_complete_join(now_ms) {
                moved = true;
            }
            if moved {
                changed.push(g.name.clone());
            }
        }
        if !changed.is_empty() {
            self.version += 1;
        }
        changed
    }

    /// A topic gained partitions: every group with a member subscribed to it rebalances
    /// (the members learn it from their next heartbeat, and the leader, assigning, finds
    /// the new partitions in its metadata — Kafka leaves this to the leader's periodic
    /// metadata refresh, up to `metadata.max.age.ms` later). Returns the groups.
    pub fn topic_grew(&mut self, topic: &str, now_ms: i64) -> Vec<String> {
        let mut changed = Vec::new();
        for g in self.groups.values_mut() {
            let protocol = g.protocol.clone().unwrap_or_default();
            let subscribed = g.state == State::Stable
                && g.members.values().any(|m| {
                    subscribed_topics(&m.metadata(&protocol))
                        .iter()
                        .any(|t| t == topic)
                });
            if subscribed {
                g.prepare_rebalance(now_ms);
                changed.push(g.name.clone());
            }
        }
        if !changed.is_empty() {
            self.version += 1;
        }
        changed
    }

    /// Publishes a group to the shared coordinator: generation, members, subscriptions and
    /// assignments decoded from the consumer protocol's metadata.
    pub fn publish(&self, name: &str, coordinator: &mut Coordinator) {
        let Some(g) = self.groups.get(name) else {
            return;
        };
        let protocol = g.protocol.clone().unwrap_or_default();
        let members = g
            .members
            .values()
            .map(|m| Member {
                id: m.id.clone(),
                topics: subscribed_topics(&m.metadata(&protocol)),
                session_timeout_ms: m.session_timeout_ms,
                last_heartbeat_ms: m.last_heartbeat_ms,
                assignment: if g.state == State::Stable {
                    assigned_partitions(&m.assignment)
                } else {
                    Assignment::new()
                },
            })
            .collect();
        coordinator.publish_client_group(name, g.generation, members);
    }

    /// Names of every Kafka-run group.
    pub fn names(&self) -> Vec<String> {
        self.groups.keys().cloned().collect()
    }
}

/// The topics in a consumer-protocol subscription (empty if it is not one).
pub fn subscribed_topics(metadata: &[u8]) -> Vec<String> {
    decode_versioned::<ConsumerProtocolSubscription>(metadata)
        .map(|s| s.topics.iter().map(|t| t.to_string()).collect())
        .unwrap_or_default()
}

/// The partitions in a consumer-protocol assignment.
pub fn assigned_partitions(assignment: &[u8]) -> Assignment {
    let mut out = Assignment::new();
    if let Some(a) = decode_versioned::<ConsumerProtocolAssignment>(assignment) {
        for tp in a.assigned_partitions {
            let partitions = tp
                .partitions
                .iter()
                .filter_map(|p| u32::try_from(*p).ok())
                .collect();
            out.insert(tp.topic.to_string(), partitions);
        }
    }
    out
}

/// The consumer protocol's embedded messages start with their own version (i16).
fn decode_versioned<T: Decodable>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < 2 {
        return None;
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]);
    let mut rest = Bytes::copy_from_slice(&bytes[2..]);
    // Newer versions only add fields at the end: read them as the newest we know.
    T::decode(&mut rest, version.min(3)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(groups: &mut KafkaGroups, member: &str, now: i64) -> String {
        groups
            .join(
                Join {
                    group: "g".into(),
                    member_id: member.into(),
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    protocol_type: "consumer".into(),
                    protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
                    session_timeout_ms: 10_000,
                    rebalance_timeout_ms: 5_000,
                },
                now,
            )
            .unwrap()
    }

    #[test]
    fn a_lone_member_leads_and_assigns() {
        let mut groups = KafkaGroups::default();
        let a = join(&mut groups, "", 0);
        let r = groups.join_result("g", &a).unwrap().unwrap();
        assert_eq!((r.generation, r.leader.as_str()), (1, a.as_str()));
        assert_eq!(r.members.len(), 1);
        let mine = groups
            .sync("g", &a, 1, vec![(a.clone(), Bytes::from_static(b"all"))], 1)
            .unwrap();
        assert_eq!(mine.as_deref(), Some(&b"all"[..]));
        assert_eq!(groups.group("g").unwrap().state, State::Stable);
    }

    #[test]
    fn the_barrier_waits_for_known_members_then_the_leader_assigns() {
        let mut groups = KafkaGroups::default();
        let a = join(&mut groups, "", 0);
        groups.join_result("g", &a).unwrap().unwrap();
        groups.sync("g", &a, 1, vec![], 1).unwrap();
        // b joins: a must rejoin before anyone is answered.
        let b = join(&mut groups, "", 2);
        assert!(groups.join_result("g", &b).is_none());
        assert_eq!(
            groups.heartbeat("g", &a, 1, 3),
            Err(ResponseError::RebalanceInProgress.code())
        );
        join(&mut groups, &a, 4);
        let ra = groups.join_result("g", &a).unwrap().unwrap();
        let rb = groups.join_result("g", &b).unwrap().unwrap();
        assert_eq!((ra.generation, rb.generation), (2, 2));
        assert_eq!(ra.members.len(), 2, "the leader sees everyone");
        assert!(rb.members.is_empty());
        // The follower's sync waits for the leader's.
        assert_eq!(groups.sync("g", &b, 2, vec![], 5), Ok(None));
        let assignments = vec![
            (a.clone(), Bytes::from_static(b"A")),
            (b.clone(), Bytes::from_static(b"B")),
        ];
        assert_eq!(
            groups.sync("g", &a, 2, assignments, 6).unwrap().as_deref(),
            Some(&b"A"[..])
        );
        assert_eq!(
            groups.sync_result("g", &b).unwrap().unwrap(),
            Bytes::from_static(b"B")
        );
        assert_eq!(
            groups.heartbeat("g", &b, 1, 7),
            Err(ResponseError::IllegalGeneration.code())
        );
        assert_eq!(groups.heartbeat("g", &b, 2, 7), Ok(()));
    }

    #[test]
    fn stragglers_are_dropped_at_the_rebalance_timeout_and_silent_members_expire() {
        let mut groups = KafkaGroups::default();
        let a = join(&mut groups, "", 0);
        groups.join_result("g", &a).unwrap().unwrap();
        groups.sync("g", &a, 1, vec![], 0).unwrap();
        let b = join(&mut groups, "", 1_000);
        assert!(groups.tick(5_999).is_empty());
        assert_eq!(groups.tick(6_000), vec!["g".to_string()]);
        let rb = groups.join_result("g", &b).unwrap().unwrap();
        assert_eq!((rb.generation, rb.leader.as_str()), (2, b.as_str()));
        assert!(!groups.group("g").unwrap().members.contains_key(&a));
        groups.sync("g", &b, 2, vec![], 6_000).unwrap();
        // b falls silent for its session timeout: the group empties.
        groups.tick(16_001);
        let g = groups.group("g").unwrap();
        assert_eq!((g.state, g.generation), (State::Empty, 3));
    }

    #[test]
    fn leaving_rebalances_the_rest_and_unknown_members_are_refused() {
        let mut groups = KafkaGroups::default();
        let a = join(&mut groups, "", 0);
        groups.join_result("g", &a).unwrap().unwrap();
        let b = join(&mut groups, "", 0);
        join(&mut groups, &a, 0);
        groups.join_result("g", &a).unwrap().unwrap();
        groups.leave("g", &b, 1).unwrap();
        // a is the only one left and has not rejoined yet.
        assert_eq!(groups.group("g").unwrap().state, State::PreparingRebalance);
        join(&mut groups, &a, 2);
        assert_eq!(groups.join_result("g", &a).unwrap().unwrap().generation, 3);
        assert_eq!(
            groups.sync("g", "nobody", 3, vec![], 3),
            Err(ResponseError::UnknownMemberId.code())
        );
    }
}

//! The consumer group coordinator: who in a group reads which partition.
//!
//! Every group reads the whole topic independently (each group has its own committed
//! offsets), and *within* a group each partition belongs to exactly one member at a time.
//! That is how a stream scales out: add consumers to a group and the partitions are
//! shared among them — up to the partition count; a member beyond it gets nothing and
//! sits idle, ready to take over.
//!
//! The rules, as in Kafka:
//! - A *generation* numbers each version of the group's membership. Any change — a member
//!   joins, leaves, misses its heartbeats for `session timeout`, or a subscribed topic
//!   gains partitions — starts a new generation with a new assignment. Within one
//!   generation the assignment is a partition of the topic's partitions: no partition has
//!   two owners.
//! - Members send heartbeats; a heartbeat with an old generation is told to rejoin, which
//!   hands it the new assignment.
//! - A member commits the offset it has *processed up to* (the next offset to read) with
//!   its generation. A commit from an old generation is rejected: that member may have
//!   lost the partition, and its commit would overwrite the new owner's progress.
//!   Committing after processing gives at-least-once delivery: after a rebalance the new
//!   owner resumes from the last commit, so records processed but not yet committed are
//!   delivered again (duplicates), and none are skipped.
//!
//! This coordinator assigns partitions itself when a member joins (*range* or
//! *round-robin*, Kafka's two classic assignors), so a RESP client needs one command to
//! join. It is synchronous and takes the time as an argument.

use std::collections::BTreeMap;

/// How partitions are spread over a group's members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Per topic, consecutive runs of partitions (Kafka's `RangeAssignor`).
    Range,
    /// All partitions of all topics dealt out in turn (Kafka's `RoundRobinAssignor`).
    RoundRobin,
    /// Chosen by the group's leader member, as Kafka clients do: the Kafka front-end
    /// runs these groups (join/sync barrier, `kafka/groups.rs`) and publishes them here.
    Client,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Range => "range",
            Strategy::RoundRobin => "roundrobin",
            Strategy::Client => "client",
        }
    }

    pub fn parse(s: &str) -> Option<Strategy> {
        match s.to_ascii_lowercase().as_str() {
            "range" => Some(Strategy::Range),
            "roundrobin" | "round-robin" => Some(Strategy::RoundRobin),
            _ => None,
        }
    }
}

/// A member's share: topic → partitions.
pub type Assignment = BTreeMap<String, Vec<u32>>;

#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub topics: Vec<String>,
    pub session_timeout_ms: i64,
    pub last_heartbeat_ms: i64,
    pub assignment: Assignment,
}

impl Member {
    /// A member with nothing to read: the group has more members than partitions.
    pub fn is_idle(&self) -> bool {
        self.assignment.values().all(Vec::is_empty)
    }
}

#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    /// 0 before anyone joined; +1 at every membership change.
    pub generation: i32,
    pub strategy: Strategy,
    /// By member id, so iteration (and the assignors) see them sorted.
    pub members: BTreeMap<String, Member>,
}

impl Group {
    /// Kafka's state names: `Stable` with members, `Empty` without.
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else {
            "Stable"
        }
    }

    /// Who owns `(topic, partition)` in the current generation.
    pub fn owner(&self, topic: &str, partition: u32) -> Option<&str> {
        self.members
            .values()
            .find(|m| {
                m.assignment
                    .get(topic)
                    .is_some_and(|p| p.contains(&partition))
            })
            .map(|m| m.id.as_str())
    }

    /// Every topic some member subscribes to.
    pub fn topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self
            .members
            .values()
            .flat_map(|m| m.topics.iter().cloned())
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }
}

/// Why a group operation was refused. `code()` is Kafka's error name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupError {
    UnknownMember {
        group: String,
        member: String,
    },
    /// The member's generation is not the group's: it must rejoin.
    IllegalGeneration {
        group: String,
        given: i32,
        current: i32,
    },
    /// A member asked for another assignment strategy than the group uses.
    InconsistentStrategy {
        group: String,
        strategy: Strategy,
    },
}

impl GroupError {
    pub fn code(&self) -> &'static str {
        match self {
            GroupError::UnknownMember { .. } => "UNKNOWN_MEMBER_ID",
            GroupError::IllegalGeneration { .. } => "ILLEGAL_GENERATION",
            GroupError::InconsistentStrategy { .. } => "INCONSISTENT_GROUP_PROTOCOL",
        }
    }
}

impl std::fmt::Display for GroupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupError::UnknownMember { group, member } => write!(
                f,
                "member '{member}' is not in group '{group}' (it left or its session timed out); join again"
            ),
            GroupError::IllegalGeneration {
                group,
                given,
                current,
            } => write!(
                f,
                "generation {given} is stale: group '{group}' rebalanced to generation {current}; join again for the new assignment"
            ),
            GroupError::InconsistentStrategy { group, strategy } => {
                write!(f, "group '{group}' uses the {} strategy", strategy.name())
            }
        }
    }
}

impl std::error::Error for GroupError {}

/// What a join returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub generation: i32,
    pub assignment: Assignment,
}

/// All groups and their committed offsets.
#[derive(Debug, Default)]
pub struct Coordinator {
    groups: BTreeMap<String, Group>,
    /// group → (topic, partition) → next offset to read.
    committed: BTreeMap<String, BTreeMap<(String, u32), u64>>,
}

/// A join request.
#[derive(Debug, Clone)]
pub struct JoinRequest<'a> {
    pub group: &'a str,
    pub member: &'a str,
    pub topics: Vec<String>,
    pub strategy: Strategy,
    pub session_timeout_ms: i64,
}

impl Coordinator {
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.get(name)
    }

    /// Names of groups with members or committed offsets.
    pub fn group_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .groups
            .keys()
            .chain(self.committed.keys())
            .cloned()
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Joins (or rejoins) a member. Joining with the same topics as before is just a
    /// heartbeat that also returns the current assignment — what a member told to rejoin
    /// does. Anything else starts a new generation. `partitions` gives a topic's
    /// partition count (`None`: no such topic, so nothing to assign from it).
    pub fn join(
        &mut self,
        req: JoinRequest<'_>,
        now_ms: i64,
        partitions: &dyn Fn(&str) -> Option<u32>,
    ) -> Result<Joined, GroupError> {
        let group = self
            .groups
            .entry(req.group.to_string())
            .or_insert_with(|| Group {
                name: req.group.to_string(),
                generation: 0,
                strategy: req.strategy,
                members: BTreeMap::new(),
            });
        if group.members.is_empty() {
            group.strategy = req.strategy;
        } else if group.strategy != req.strategy {
            return Err(GroupError::InconsistentStrategy {
                group: req.group.to_string(),
                strategy: group.strategy,
            });
        }
        let mut topics = req.topics;
        topics.sort();
        topics.dedup();
        let unchanged = group
            .members
            .get(req.member)
            .is_some_and(|m| m.topics == topics && m.session_timeout_ms == req.session_timeout_ms);
        let member = group
            .members
            .entry(req.member.to_string())
            .or_insert_with(|| Member {
                id: req.member.to_string(),
                topics: Vec::new(),
                session_timeout_ms: req.session_timeout_ms,
                last_heartbeat_ms: now_ms,
                assignment: Assignment::new(),
            });
        member.topics = topics;
        member.session_timeout_ms = req.session_timeout_ms;
        member.last_heartbeat_ms = now_ms;
        if !unchanged {
            rebalance(group, partitions);
        }
        let assignment = group
            .members
            .get(req.member)
            .map(|m| m.assignment.clone())
            .unwrap_or_default();
        Ok(Joined {
            generation: group.generation,
            assignment,
        })
    }

    /// Records that a member is alive. A stale generation means "rejoin".
    pub fn heartbeat(
        &mut self,
        group: &str,
        member: &str,
        generation: i32,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        let g = self.live_member(group, member, generation)?;
        if let Some(m) = g.members.get_mut(member) {
            m.last_heartbeat_ms = now_ms;
        }
        Ok(())
    }

    /// A member leaves on purpose (a clean shutdown): its partitions move at once
    /// instead of after the session timeout.
    pub fn leave(
        &mut self,
        group: &str,
        member: &str,
        partitions: &dyn Fn(&str) -> Option<u32>,
    ) -> Result<(), GroupError> {
        let unknown = || GroupError::UnknownMember {
            group: group.to_string(),
            member: member.to_string(),
        };
        let g = self.groups.get_mut(group).ok_or_else(unknown)?;
        g.members.remove(member).ok_or_else(unknown)?;
        rebalance(g, partitions);
        Ok(())
    }

    /// Removes members whose last heartbeat is older than their session timeout and
    /// rebalances their groups. Returns `(group, member)` for each one removed.
    pub fn expire(
        &mut self,
        now_ms: i64,
        partitions: &dyn Fn(&str) -> Option<u32>,
    ) -> Vec<(String, String)> {
        let mut expired = Vec::new();
        for group in self.groups.values_mut() {
            if group.strategy == Strategy::Client {
                continue; // the Kafka front-end expires its own members
            }
            let before = group.members.len();
            group.members.retain(|id, m| {
                let alive = now_ms - m.last_heartbeat_ms <= m.session_timeout_ms;
                if !alive {
                    expired.push((group.name.clone(), id.clone()));
                }
                alive
            });
            if group.members.len() != before {
                rebalance(group, partitions);
            }
        }
        expired
    }

    /// A topic's partition count changed (or it was deleted): groups reading it rebalance.
    pub fn topic_changed(&mut self, topic: &str, partitions: &dyn Fn(&str) -> Option<u32>) {
        for group in self.groups.values_mut() {
            if group
                .members
                .values()
                .any(|m| m.topics.iter().any(|t| t == topic))
            {
                rebalance(group, partitions);
            }
        }
    }

    /// Checks that a commit may be made: by a current member with the current generation,
    /// or — for a group with no members — by a standalone consumer with generation -1.
    pub fn check_commit(
        &self,
        group: &str,
        member: &str,
        generation: i32,
    ) -> Result<(), GroupError> {
        let has_members = self
            .groups
            .get(group)
            .is_some_and(|g| !g.members.is_empty());
        if !has_members && generation < 0 {
            return Ok(());
        }
        let g = self
            .groups
            .get(group)
            .ok_or_else(|| GroupError::UnknownMember {
                group: group.to_string(),
                member: member.to_string(),
            })?;
        check_member(g, group, member, generation)
    }

    /// Stores a committed offset (after it is durable, or when replaying the log).
    pub fn set_committed(&mut self, group: &str, topic: &str, partition: u32, offset: u64) {
        self.committed
            .entry(group.to_string())
            .or_default()
            .insert((topic.to_string(), partition), offset);
    }

    pub fn committed(&self, group: &str, topic: &str, partition: u32) -> Option<u64> {
        self.committed
            .get(group)?
            .get(&(topic.to_string(), partition))
            .copied()
    }

    /// Forgets a committed offset (OffsetDelete).
    pub fn delete_committed(&mut self, group: &str, topic: &str, partition: u32) {
        if let Some(offsets) = self.committed.get_mut(group) {
            offsets.remove(&(topic.to_string(), partition));
            if offsets.is_empty() {
                self.committed.remove(group);
            }
        }
    }

    /// All committed offsets of a group.
    pub fn committed_all(&self, group: &str) -> Vec<(String, u32, u64)> {
        self.committed
            .get(group)
            .map(|m| m.iter().map(|((t, p), o)| (t.clone(), *p, *o)).collect())
            .unwrap_or_default()
    }

    /// Publishes a group run by the Kafka front-end (its generation, members and the
    /// assignments its leader chose), so RESP's `GROUP.*` and offset commits see it.
    pub fn publish_client_group(&mut self, name: &str, generation: i32, members: Vec<Member>) {
        let group = self
            .groups
            .entry(name.to_string())
            .or_insert_with(|| Group {
                name: name.to_string(),
                generation,
                strategy: Strategy::Client,
                members: BTreeMap::new(),
            });
        group.generation = generation;
        group.strategy = Strategy::Client;
        group.members = members.into_iter().map(|m| (m.id.clone(), m)).collect();
    }

    /// Forgets a deleted topic's committed offsets.
    pub fn forget_topic(&mut self, topic: &str) {
        for offsets in self.committed.values_mut() {
            offsets.retain(|(t, _), _| t != topic);
        }
    }

    fn live_member(
        &mut self,
        group: &str,
        member: &str,
        generation: i32,
    ) -> Result<&mut Group, GroupError> {
        let g = self
            .groups
            .get_mut(group)
            .ok_or_else(|| GroupError::UnknownMember {
                group: group.to_string(),
                member: member.to_string(),
            })?;
        check_member(g, group, member, generation)?;
        Ok(g)
    }
}

fn check_member(g: &Group, group: &str, member: &str, generation: i32) -> Result<(), GroupError> {
    if !g.members.contains_key(member) {
        return Err(GroupError::UnknownMember {
            group: group.to_string(),
            member: member.to_string(),
        });
    }
    if generation != g.generation {
        return Err(GroupError::IllegalGeneration {
            group: group.to_string(),
            given: generation,
            current: g.generation,
        });
    }
    Ok(())
}

/// Starts a new generation and recomputes every member's assignment.
fn rebalance(group: &mut Group, partitions: &dyn Fn(&str) -> Option<u32>) {
    if group.strategy == Strategy::Client {
        return; // the Kafka front-end rebalances these (its members rejoin)
    }
    group.generation += 1;
    let subscriptions: BTreeMap<String, Vec<String>> = group
        .members
        .values()
        .map(|m| (m.id.clone(), m.topics.clone()))
        .collect();
    let mut assignments = match group.strategy {
        Strategy::Range | Strategy::Client => assign_range(&subscriptions, partitions),
        Strategy::RoundRobin => assign_round_robin(&subscriptions, partitions),
    };
    for (id, member) in group.members.iter_mut() {
        member.assignment = assignments.remove(id).unwrap_or_default();
    }
}

/// Kafka's range assignor: for each topic, its subscribers sorted by id; with `n`
/// partitions and `c` consumers each gets `n / c`, and the first `n % c` one more.
pub fn assign_range(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partitions: &dyn Fn(&str) -> Option<u32>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = subscriptions
        .keys()
        .map(|id| (id.clone(), Assignment::new()))
        .collect();
    let mut topics: Vec<&String> = subscriptions.values().flatten().collect();
    topics.sort();
    topics.dedup();
    for topic in topics {
        let count = partitions(topic).unwrap_or(0);
        let consumers: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, t)| t.contains(topic))
            .map(|(id, _)| id)
            .collect();
        let c = consumers.len() as u32;
        let (per, extra) = (count / c.max(1), count % c.max(1));
        for (i, id) in consumers.into_iter().enumerate() {
            let i = i as u32;
            let start = per * i + i.min(extra);
            let len = per + u32::from(i < extra);
            if let Some(a) = out.get_mut(id) {
                a.insert(topic.clone(), (start..start + len).collect());
            }
        }
    }
    out
}

/// Kafka's round-robin assignor: every (topic, partition) in order, dealt to the members
/// in turn, skipping members not subscribed to that topic.
pub fn assign_round_robin(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partitions: &dyn Fn(&str) -> Option<u32>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = subscriptions
        .iter()
        .map(|(id, topics)| {
            let a = topics.iter().map(|t| (t.clone(), Vec::new())).collect();
            (id.clone(), a)
        })
        .collect();
    let members: Vec<&String> = subscriptions.keys().collect();
    let mut topics: Vec<&String> = subscriptions.values().flatten().collect();
    topics.sort();
    topics.dedup();
    let mut turn = 0;
    for topic in topics {
        for partition in 0..partitions(topic).unwrap_or(0) {
            for _ in 0..members.len() {
                let id = members[turn % members.len()];
                turn += 1;
                if subscriptions[id].contains(topic) {
                    if let Some(list) = out.get_mut(id).and_then(|a| a.get_mut(topic)) {
                        list.push(partition);
                    }
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn four(_: &str) -> Option<u32> {
        Some(4)
    }

    fn join(c: &mut Coordinator, member: &str, now: i64) -> Joined {
        c.join(
            JoinRequest {
                group: "g",
                member,
                topics: vec!["t".into()],
                strategy: Strategy::Range,
                session_timeout_ms: 1000,
            },
            now,
            &four,
        )
        .unwrap()
    }

    fn owned(c: &Coordinator) -> Vec<(String, Vec<u32>)> {
        c.group("g")
            .unwrap()
            .members
            .values()
            .map(|m| {
                (
                    m.id.clone(),
                    m.assignment.get("t").cloned().unwrap_or_default(),
                )
            })
            .collect()
    }

    #[test]
    fn range_assignment_matches_kafka() {
        let subs: BTreeMap<String, Vec<String>> = [("a", 0), ("b", 0), ("c", 0)]
            .iter()
            .map(|(id, _)| (id.to_string(), vec!["t".to_string()]))
            .collect();
        let got = assign_range(&subs, &|_| Some(7));
        assert_eq!(got["a"]["t"], [0, 1, 2]);
        assert_eq!(got["b"]["t"], [3, 4]);
        assert_eq!(got["c"]["t"], [5, 6]);
    }

    #[test]
    fn round_robin_spreads_across_topics() {
        let subs: BTreeMap<String, Vec<String>> = [
            ("a".to_string(), vec!["t1".to_string(), "t2".to_string()]),
            ("b".to_string(), vec!["t1".to_string(), "t2".to_string()]),
        ]
        .into_iter()
        .collect();
        let got = assign_round_robin(&subs, &|t| Some(if t == "t1" { 3 } else { 2 }));
        assert_eq!(got["a"]["t1"], [0, 2]);
        assert_eq!(got["b"]["t1"], [1]);
        assert_eq!(got["a"]["t2"], [1]);
        assert_eq!(got["b"]["t2"], [0]);
    }

    #[test]
    fn joins_bump_the_generation_and_rejoin_is_idempotent() {
        let mut c = Coordinator::default();
        assert_eq!(join(&mut c, "a", 0).generation, 1);
        assert_eq!(join(&mut c, "a", 0).assignment["t"], [0, 1, 2, 3]);
        let b = join(&mut c, "b", 0);
        assert_eq!(b.generation, 2);
        assert_eq!(b.assignment["t"], [2, 3]);
        // a's heartbeat at generation 1 is now stale: it must rejoin.
        assert_eq!(
            c.heartbeat("g", "a", 1, 10).unwrap_err().code(),
            "ILLEGAL_GENERATION"
        );
        let a = join(&mut c, "a", 10);
        assert_eq!((a.generation, a.assignment["t"].clone()), (2, vec![0, 1]));
        c.heartbeat("g", "a", 2, 20).unwrap();
    }

    #[test]
    fn a_member_beyond_the_partition_count_is_idle() {
        let mut c = Coordinator::default();
        for m in ["a", "b", "c", "d", "e"] {
            join(&mut c, m, 0);
        }
        let g = c.group("g").unwrap();
        let idle: Vec<&str> = g
            .members
            .values()
            .filter(|m| m.is_idle())
            .map(|m| m.id.as_str())
            .collect();
        assert_eq!(idle, ["e"]);
        for p in 0..4 {
            assert!(g.owner("t", p).is_some());
        }
    }

    #[test]
    fn expired_members_hand_their_partitions_over() {
        let mut c = Coordinator::default();
        for m in ["a", "b", "c"] {
            join(&mut c, m, 0);
        }
        let generation = c.group("g").unwrap().generation;
        // a and b heartbeat; c has gone quiet.
        c.heartbeat("g", "a", generation, 900).unwrap();
        c.heartbeat("g", "b", generation, 900).unwrap();
        assert!(
            c.expire(1000, &four).is_empty(),
            "exactly at the timeout: alive"
        );
        assert_eq!(c.expire(1001, &four), [("g".to_string(), "c".to_string())]);
        let g = c.group("g").unwrap();
        assert_eq!(g.generation, generation + 1);
        assert_eq!(
            owned(&c),
            [("a".into(), vec![0, 1]), ("b".into(), vec![2, 3])]
        );
        // c's commit with the old generation is refused.
        assert_eq!(
            c.check_commit("g", "c", generation).unwrap_err().code(),
            "UNKNOWN_MEMBER_ID"
        );
        assert_eq!(
            c.check_commit("g", "a", generation).unwrap_err().code(),
            "ILLEGAL_GENERATION"
        );
        c.check_commit("g", "a", generation + 1).unwrap();
    }

    #[test]
    fn leave_rebalances_at_once_and_empty_groups_accept_standalone_commits() {
        let mut c = Coordinator::default();
        join(&mut c, "a", 0);
        join(&mut c, "b", 0);
        c.leave("g", "b", &four).unwrap();
        assert_eq!(owned(&c), [("a".into(), vec![0, 1, 2, 3])]);
        c.leave("g", "a", &four).unwrap();
        assert_eq!(c.group("g").unwrap().state(), "Empty");
        c.check_commit("g", "anyone", -1).unwrap();
        c.set_committed("g", "t", 0, 42);
        assert_eq!(c.committed("g", "t", 0), Some(42));
        assert_eq!(c.group_names(), ["g"]);
    }

    #[test]
    fn strategies_must_agree() {
        let mut c = Coordinator::default();
        join(&mut c, "a", 0);
        let err = c
            .join(
                JoinRequest {
                    group: "g",
                    member: "b",
                    topics: vec!["t".into()],
                    strategy: Strategy::RoundRobin,
                    session_timeout_ms: 1000,
                },
                0,
                &four,
            )
            .unwrap_err();
        assert_eq!(err.code(), "INCONSISTENT_GROUP_PROTOCOL");
    }
}

//! KIP-848 consumer groups (ConsumerGroupHeartbeat): the pure state machine.
//!
//! One `ConsumerGroup` per group id, owned by the shard that owns the group's
//! `__consumer_offsets` partition (a field of that shard's `GroupEntry`), touched only
//! on that shard's thread. No sockets, no clock: time comes in as `now_ms`, topic
//! metadata through a lookup function.
//!
//! Epochs and invariants (Kafka's model):
//! - `group_epoch` grows whenever membership, a subscription or a subscribed topic's
//!   partition count changes; `assignment_epoch` is the group epoch the target
//!   assignment (`target`) was computed for, so `assignment_epoch <= group_epoch`, and
//!   the target is recomputed before any member is reconciled when they differ.
//! - A member's `member_epoch` is the assignment epoch it last converged to; it never
//!   exceeds `assignment_epoch`.
//! - Revoke before assign: a partition is in at most one member's
//!   `assigned ∪ pending_revocation`. A partition a member must give up moves to its
//!   `pending_revocation` and is handed to its new owner only after the old owner's
//!   heartbeat reports owned partitions without it (or the old owner is removed).
//! - A member that misses `session_timeout_ms` of heartbeats, or does not revoke within
//!   its rebalance timeout, is removed (fenced); its next heartbeat gets
//!   UNKNOWN_MEMBER_ID and it rejoins with epoch 0.
//! - Static members (`instance_id`) leaving with epoch -2 keep their assignment until
//!   the session times out or a member with the same instance id takes their place.
//!
//! Group state lives in memory only: a broker restart empties consumer groups (their
//! members rejoin with epoch 0); committed offsets persist as for classic groups.

pub mod assignor;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

pub use assignor::Assignment;

use super::error::GroupError;

/// Epoch a member sends to leave the group.
pub const LEAVE_EPOCH: i32 = -1;
/// Epoch a static member sends to leave temporarily (it keeps its assignment).
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// Broker-side timing of consumer groups (`group.consumer.*`).
#[derive(Clone, Copy, Debug)]
pub struct ConsumerLimits {
    pub session_timeout_ms: i64,
    pub heartbeat_interval_ms: i32,
    /// Most members a group takes (`group.consumer.max.size`).
    pub members_max: usize,
}

impl Default for ConsumerLimits {
    fn default() -> ConsumerLimits {
        ConsumerLimits {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            members_max: i32::MAX as usize,
        }
    }
}

/// A heartbeat after the api layer's checks; `None` fields were not sent (unchanged).
#[derive(Clone, Debug, Default)]
pub struct Heartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub server_assignor: Option<String>,
    /// Partitions the member owns now, by topic id.
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatResponse {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's whole assignment, when it changed or the request was a full one.
    pub assignment: Option<Assignment>,
}

/// A refused heartbeat (or describe): the error and the message Kafka sends with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatError {
    pub error: GroupError,
    pub message: Option<String>,
}

impl HeartbeatError {
    pub fn new(error: GroupError, message: impl Into<Option<String>>) -> HeartbeatError {
        HeartbeatError {
            error,
            message: message.into(),
        }
    }
}

/// An error without a message.
impl From<GroupError> for HeartbeatError {
    fn from(error: GroupError) -> HeartbeatError {
        HeartbeatError::new(error, None)
    }
}

/// Where a member is in converging to its target assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    /// Owns its target (as far as other members released it).
    Stable,
    /// Must acknowledge revoking `pending_revocation` before it gets anything new.
    UnrevokedPartitions,
    /// At the target epoch, waiting for other members to release partitions.
    UnreleasedPartitions,
}

#[derive(Clone, Debug)]
pub struct Member {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed: BTreeSet<String>,
    pub server_assignor: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: MemberState,
    /// Partitions given to the member (it may consume them).
    pub assigned: Assignment,
    /// Partitions the member must give up; nobody else gets them meanwhile.
    pub pending_revocation: Assignment,
    session_deadline_ms: i64,
    revocation_deadline_ms: Option<i64>,
}

/// ConsumerGroupDescribe's view of a group.
#[derive(Clone, Debug)]
pub struct Description {
    pub state: &'static str,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor_name: String,
    /// (member, its target assignment).
    pub members: Vec<(Member, Assignment)>,
}

pub struct ConsumerGroup {
    pub group_id: String,
    limits: ConsumerLimits,
    group_epoch: i32,
    assignment_epoch: i32,
    members: BTreeMap<String, Member>,
    target: BTreeMap<String, Assignment>,
    /// Subscribed topics' (id, partition count) the current group epoch was computed with.
    metadata: BTreeMap<String, (Uuid, i32)>,
}

/// Looks a topic up by name: its id and partition count.
pub type TopicLookup<'a> = &'a dyn Fn(&str) -> Option<(Uuid, i32)>;

fn count(a: &Assignment) -> usize {
    a.values().map(|s| s.len()).sum()
}

fn minus(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (t, ps) in a {
        let rest: BTreeSet<i32> = match b.get(t) {
            Some(other) => ps.difference(other).copied().collect(),
            None => ps.clone(),
        };
        if !rest.is_empty() {
            out.insert(*t, rest);
        }
    }
    out
}

fn intersect(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (t, ps) in a {
        if let Some(other) = b.get(t) {
            let both: BTreeSet<i32> = ps.intersection(other).copied().collect();
            if !both.is_empty() {
                out.insert(*t, both);
            }
        }
    }
    out
}

fn add(a: &mut Assignment, t: Uuid, p: i32) {
    a.entry(t).or_default().insert(p);
}

impl ConsumerGroup {
    pub fn new(group_id: &str, limits: ConsumerLimits) -> ConsumerGroup {
        ConsumerGroup {
            group_id: group_id.to_string(),
            limits,
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            metadata: BTreeMap::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn group_epoch(&self) -> i32 {
        self.group_epoch
    }

    pub fn member(&self, member_id: &str) -> Option<&Member> {
        self.members.get(member_id)
    }

    /// Kafka's state names: Empty, Assigning (target behind the group epoch),
    /// Reconciling (some member not yet at the target), Stable.
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch < self.group_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.member_epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// Topics some member subscribes to.
    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.subscribed.iter().cloned())
            .collect()
    }

    /// The assignor the group runs: the one most members ask for, else `uniform`.
    pub fn assignor(&self) -> &str {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = m.server_assignor.as_deref() {
                *votes.entry(a).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
            .map(|(a, _)| a)
            .unwrap_or(assignor::UNIFORM)
    }

    /// OffsetCommit/TxnOffsetCommit check: an empty member id with a negative epoch is
    /// an admin commit; otherwise the member must exist at exactly that epoch.
    pub fn validate_offset_commit(
        &self,
        member_id: &str,
        member_epoch: i32,
    ) -> Result<(), GroupError> {
        if member_id.is_empty() && member_epoch < 0 {
            return Ok(());
        }
        let m = self
            .members
            .get(member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if member_epoch != m.member_epoch {
            return Err(GroupError::StaleMemberEpoch);
        }
        Ok(())
    }

    /// The earliest session or revocation deadline.
    pub fn next_deadline(&self) -> Option<i64> {
        self.members
            .values()
            .flat_map(|m| [Some(m.session_deadline_ms), m.revocation_deadline_ms])
            .flatten()
            .min()
    }

    /// Removes members whose session expired or who did not revoke in time.
    pub fn tick(&mut self, now_ms: i64) {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.session_deadline_ms <= now_ms
                    || m.revocation_deadline_ms.is_some_and(|d| d <= now_ms)
            })
            .map(|m| m.member_id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.group_id, member = %id, "consumer group member fenced");
            self.remove_member(&id);
        }
    }

    fn remove_member(&mut self, member_id: &str) {
        if self.members.remove(member_id).is_some() {
            self.target.remove(member_id);
            self.group_epoch += 1;
        }
    }

    /// One ConsumerGroupHeartbeat. `topics` resolves subscribed topic names.
    pub fn heartbeat(
        &mut self,
        req: Heartbeat,
        topics: TopicLookup<'_>,
        now_ms: i64,
    ) -> Result<HeartbeatResponse, HeartbeatError> {
        if let Some(a) = req.server_assignor.as_deref() {
            if !assignor::is_supported(a) {
                return Err(HeartbeatError::new(
                    GroupError::UnsupportedAssignor,
                    format!(
                        "ServerAssignor {a} is not supported. Supported assignors: uniform, range."
                    ),
                ));
            }
        }
        // One group epoch bump for whatever this heartbeat changes.
        let mut bump = match req.member_epoch {
            LEAVE_EPOCH | STATIC_LEAVE_EPOCH => return self.leave(&req),
            0 => self.join(&req, now_ms)?,
            e if e > 0 => {
                self.check_epoch(&req)?;
                false
            }
            _ => {
                return Err(HeartbeatError::new(
                    GroupError::InvalidRequest,
                    format!("MemberEpoch {} is not valid.", req.member_epoch),
                ))
            }
        };
        let full = req.member_epoch == 0
            || (req.rebalance_timeout_ms != -1
                && req.subscribed_topic_names.is_some()
                && req.owned.is_some());
        let session_timeout_ms = self.limits.session_timeout_ms;
        let Some(m) = self.members.get_mut(&req.member_id) else {
            return Err(HeartbeatError::new(GroupError::UnknownMemberId, None));
        };
        m.session_deadline_ms = now_ms + session_timeout_ms;
        m.client_id = req.client_id;
        m.client_host = req.client_host;
        if req.rebalance_timeout_ms != -1 {
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        }
        if req.rack_id.is_some() {
            m.rack_id = req.rack_id;
        }
        if req.server_assignor.is_some() && req.server_assignor != m.server_assignor {
            m.server_assignor = req.server_assignor;
            bump = true;
        }
        if let Some(names) = req.subscribed_topic_names {
            let names: BTreeSet<String> = names.into_iter().collect();
            if names != m.subscribed {
                m.subscribed = names;
                bump = true;
            }
        }
        if self.refresh_metadata(topics) || bump {
            self.group_epoch += 1;
        }
        self.refresh_target();
        let before = self
            .members
            .get(&req.member_id)
            .map(|m| (m.assigned.clone(), m.member_epoch));
        self.reconcile(&req.member_id, req.owned.as_ref(), now_ms);
        let m = self
            .members
            .get(&req.member_id)
            .ok_or_else(|| HeartbeatError::new(GroupError::UnknownMemberId, None))?;
        let changed = before != Some((m.assigned.clone(), m.member_epoch));
        Ok(HeartbeatResponse {
            member_id: m.member_id.clone(),
            member_epoch: m.member_epoch,
            heartbeat_interval_ms: self.limits.heartbeat_interval_ms,
            assignment: (changed || full).then(|| m.assigned.clone()),
        })
    }

    /// Epoch 0: a new member, a member rejoining, or a static member replacing its
    /// previous incarnation. True when the membership changed.
    fn join(&mut self, req: &Heartbeat, now_ms: i64) -> Result<bool, HeartbeatError> {
        if let Some(instance) = req.instance_id.as_deref() {
            let previous = self
                .members
                .values()
                .find(|m| m.instance_id.as_deref() == Some(instance))
                .map(|m| (m.member_id.clone(), m.member_epoch));
            if let Some((old_id, old_epoch)) = previous {
                if old_id != req.member_id {
                    if old_epoch != STATIC_LEAVE_EPOCH {
                        return Err(HeartbeatError::new(
                            GroupError::UnreleasedInstanceId,
                            format!(
                                "Static member {} with instance id {instance} cannot join the group because the instance id is owned by {old_id} member.",
                                req.member_id
                            ),
                        ));
                    }
                    // The new incarnation takes the old one's place and assignment.
                    if let Some(mut m) = self.members.remove(&old_id) {
                        let target = self.target.remove(&old_id).unwrap_or_default();
                        m.member_id = req.member_id.clone();
                        m.member_epoch = m.previous_member_epoch.max(0);
                        self.target.insert(req.member_id.clone(), target);
                        self.members.insert(req.member_id.clone(), m);
                    }
                    return Ok(false);
                }
            }
        }
        if let Some(m) = self.members.get_mut(&req.member_id) {
            if m.member_epoch == STATIC_LEAVE_EPOCH {
                m.member_epoch = m.previous_member_epoch.max(0);
            }
            return Ok(false);
        }
        if self.members.len() >= self.limits.members_max {
            return Err(HeartbeatError::new(
                GroupError::GroupMaxSizeReached,
                format!(
                    "The consumer group has reached its maximum capacity of {} members.",
                    self.limits.members_max
                ),
            ));
        }
        self.members.insert(
            req.member_id.clone(),
            Member {
                member_id: req.member_id.clone(),
                instance_id: req.instance_id.clone(),
                rack_id: None,
                client_id: String::new(),
                client_host: String::new(),
                subscribed: BTreeSet::new(),
                server_assignor: None,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                member_epoch: 0,
                previous_member_epoch: 0,
                state: MemberState::Stable,
                assigned: Assignment::new(),
                pending_revocation: Assignment::new(),
                session_deadline_ms: now_ms + self.limits.session_timeout_ms,
                revocation_deadline_ms: None,
            },
        );
        Ok(true)
    }

    /// A heartbeat with epoch > 0: the member must exist, and the epoch must be its
    /// current one, or its previous one when the member reports owning only partitions
    /// it still has (the response that moved it on was lost).
    fn check_epoch(&self, req: &Heartbeat) -> Result<(), HeartbeatError> {
        let m = self.members.get(&req.member_id).ok_or_else(|| {
            HeartbeatError::new(
                GroupError::UnknownMemberId,
                format!(
                    "Member {} is not a member of group {}.",
                    req.member_id, self.group_id
                ),
            )
        })?;
        let fenced = || {
            HeartbeatError::new(
                GroupError::FencedMemberEpoch,
                format!(
                    "The consumer group member has a smaller member epoch ({}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                    req.member_epoch, m.member_epoch
                ),
            )
        };
        if req.member_epoch == m.member_epoch {
            return Ok(());
        }
        let owns_only_assigned = req
            .owned
            .as_ref()
            .is_some_and(|o| minus(o, &m.assigned).is_empty());
        if req.member_epoch == m.previous_member_epoch && owns_only_assigned {
            return Ok(());
        }
        Err(fenced())
    }

    fn leave(&mut self, req: &Heartbeat) -> Result<HeartbeatResponse, HeartbeatError> {
        let id = match req.instance_id.as_deref() {
            Some(instance) => self
                .members
                .values()
                .find(|m| m.instance_id.as_deref() == Some(instance))
                .map(|m| m.member_id.clone()),
            None => self
                .members
                .contains_key(&req.member_id)
                .then(|| req.member_id.clone()),
        };
        let Some(id) = id else {
            return Err(HeartbeatError::new(
                GroupError::UnknownMemberId,
                format!(
                    "Member {} is not a member of group {}.",
                    req.member_id, self.group_id
                ),
            ));
        };
        if id != req.member_id {
            return Err(HeartbeatError::new(
                GroupError::FencedInstanceId,
                format!(
                    "Static member {} with instance id {:?} was fenced by member {id}.",
                    req.member_id, req.instance_id
                ),
            ));
        }
        if req.member_epoch == STATIC_LEAVE_EPOCH && req.instance_id.is_some() {
            // Keeps its assignment (and nobody gets it) until the session expires or
            // the instance comes back.
            if let Some(m) = self.members.get_mut(&id) {
                if m.member_epoch != STATIC_LEAVE_EPOCH {
                    m.previous_member_epoch = m.member_epoch;
                }
                m.member_epoch = STATIC_LEAVE_EPOCH;
            }
        } else {
            self.remove_member(&id);
        }
        Ok(HeartbeatResponse {
            member_id: req.member_id.clone(),
            member_epoch: req.member_epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        })
    }

    /// Refreshes the subscribed topics' metadata; true when a topic appeared,
    /// vanished or grew (the group epoch must move).
    fn refresh_metadata(&mut self, topics: TopicLookup<'_>) -> bool {
        let now: BTreeMap<String, (Uuid, i32)> = self
            .subscribed_topics()
            .into_iter()
            .filter_map(|t| topics(&t).map(|m| (t, m)))
            .collect();
        if now == self.metadata {
            return false;
        }
        self.metadata = now;
        true
    }

    /// Recomputes the target when it is behind the group epoch.
    fn refresh_target(&mut self) {
        if self.assignment_epoch == self.group_epoch {
            return;
        }
        let partitions: BTreeMap<Uuid, i32> = self.metadata.values().copied().collect();
        let specs: Vec<assignor::MemberSpec<'_>> = self
            .members
            .values()
            .map(|m| assignor::MemberSpec {
                member_id: &m.member_id,
                topics: m
                    .subscribed
                    .iter()
                    .filter_map(|t| self.metadata.get(t).map(|(id, _)| *id))
                    .collect(),
                previous: self.target.get(&m.member_id),
            })
            .collect();
        let target = assignor::assign(self.assignor(), &specs, &partitions);
        self.target = target;
        self.assignment_epoch = self.group_epoch;
    }

    /// Partitions held (assigned or pending revocation) by members other than `id`.
    fn held_by_others(&self, id: &str) -> Assignment {
        let mut out = Assignment::new();
        for m in self.members.values().filter(|m| m.member_id != id) {
            for a in [&m.assigned, &m.pending_revocation] {
                for (t, ps) in a {
                    out.entry(*t).or_default().extend(ps.iter().copied());
                }
            }
        }
        out
    }

    /// Moves member `id` one step towards its target (Kafka's CurrentAssignmentBuilder).
    fn reconcile(&mut self, id: &str, owned: Option<&Assignment>, now_ms: i64) {
        let target = self.target.get(id).cloned().unwrap_or_default();
        let held = self.held_by_others(id);
        let assignment_epoch = self.assignment_epoch;
        let Some(m) = self.members.get_mut(id) else {
            return;
        };
        if m.member_epoch == STATIC_LEAVE_EPOCH {
            return;
        }
        if m.state == MemberState::UnrevokedPartitions {
            // The member must say, in this very heartbeat, that it no longer owns them.
            let acknowledged =
                owned.is_some_and(|o| intersect(o, &m.pending_revocation).is_empty());
            if !acknowledged {
                return;
            }
            m.pending_revocation.clear();
            m.revocation_deadline_ms = None;
            m.state = MemberState::Stable;
        }
        if m.member_epoch == assignment_epoch && m.state == MemberState::Stable {
            return;
        }
        let keep = intersect(&m.assigned, &target);
        let revoke = minus(&m.assigned, &target);
        if count(&revoke) > 0 {
            m.assigned = keep;
            m.pending_revocation = revoke;
            m.state = MemberState::UnrevokedPartitions;
            m.revocation_deadline_ms = Some(now_ms + i64::from(m.rebalance_timeout_ms.max(0)));
            return;
        }
        let mut assigned = keep;
        let mut unreleased = false;
        for (t, ps) in &minus(&target, &m.assigned) {
            for p in ps {
                if held.get(t).is_some_and(|h| h.contains(p)) {
                    unreleased = true;
                } else {
                    add(&mut assigned, *t, *p);
                }
            }
        }
        m.assigned = assigned;
        if m.member_epoch != assignment_epoch {
            m.previous_member_epoch = m.member_epoch;
            m.member_epoch = assignment_epoch;
        }
        m.state = if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
    }

    /// ConsumerGroupDescribe: the members with their current and target assignments.
    pub fn describe(&self) -> Description {
        Description {
            state: self.state(),
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            assignor_name: self.assignor().to_string(),
            members: self
                .members
                .values()
                .map(|m| {
                    (
                        m.clone(),
                        self.target.get(&m.member_id).cloned().unwrap_or_default(),
                    )
                })
                .collect(),
        }
    }
}

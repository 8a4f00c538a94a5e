//! The classic group protocol (JoinGroup/SyncGroup/Heartbeat/LeaveGroup) as a pure
//! state machine, following Apache Kafka 4.1's `ClassicGroup` and
//! `GroupMetadataManager`.
//!
//! Exists on the shard that owns the group's `__consumer_offsets` partition only.
//! No I/O and no clock: every call takes `now_ms` (monotonic milliseconds) and queues
//! [`Effect`]s — replies to parked JoinGroup/SyncGroup requests (identified by opaque
//! [`Waiter`] ids) and records to write — which the coordinator drains with
//! [`ClassicGroup::take_effects`]. Deadlines are plain fields; the coordinator sleeps
//! until [`ClassicGroup::next_deadline`] and calls [`ClassicGroup::tick`].
//!
//! Invariants:
//! - `leader` is a member id of `members`, or None exactly when `members` is empty;
//! - `static_members` maps each group.instance.id to the member id currently holding
//!   it, and every static member appears there;
//! - a member has at most one parked JoinGroup and one parked SyncGroup, and every
//!   parked request is answered exactly once (reply, error, or member removal);
//! - in PreparingRebalance `join_deadline` is set; `generation` only grows.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;

use super::error::GroupError;
use super::records::{subscription_topics, GroupMetadataValue, MemberMetadata};

/// Identifies a parked request; allocated by the coordinator.
pub type Waiter = u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// Kafka's names (ListGroups, DescribeGroups).
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// Broker settings the state machine needs.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `group.min.session.timeout.ms`.
    pub session_timeout_ms_min: i32,
    /// `group.max.session.timeout.ms`.
    pub session_timeout_ms_max: i32,
    /// `group.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay_ms: i64,
    /// How long a new member may wait in JoinGroup before being dropped (Kafka: 5 min).
    pub new_member_join_timeout_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            session_timeout_ms_min: 6_000,
            session_timeout_ms_max: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            new_member_join_timeout_ms: 300_000,
        }
    }
}

/// One JoinGroup request, decoded and versioned by the api layer.
#[derive(Clone, Debug)]
pub struct JoinRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// v4+ without group.instance.id: answer MEMBER_ID_REQUIRED first.
    pub require_known_member_id: bool,
    /// The id given if this request creates a member (`client_id-uuid`).
    pub fresh_member_id: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct JoinResponse {
    pub error: Option<GroupError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub skip_assignment: bool,
    pub member_id: String,
    pub members: Vec<JoinedMember>,
}

impl JoinResponse {
    pub fn error(e: GroupError, member_id: &str) -> JoinResponse {
        JoinResponse {
            error: Some(e),
            generation_id: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncResponse {
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    pub fn error(e: GroupError) -> SyncResponse {
        SyncResponse {
            error: Some(e),
            ..Default::default()
        }
    }
}

/// What the coordinator must do after a call.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    Join(Waiter, JoinResponse),
    Sync(Waiter, SyncResponse),
    /// Persist the leader's assignment for `generation` (the record is `value`), then
    /// call [`ClassicGroup::assignment_written`].
    WriteAssignment {
        generation: i32,
        value: GroupMetadataValue,
    },
    /// Persist the group's current metadata (no answer expected).
    WriteGroup(GroupMetadataValue),
}

#[derive(Clone, Debug)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    awaiting_join: Option<Waiter>,
    awaiting_sync: Option<Waiter>,
    /// Joined for the first time and not yet answered: expires after the new-member
    /// join timeout even while waiting.
    is_new: bool,
    heartbeat_deadline_ms: i64,
}

impl Member {
    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// Same protocols with the same metadata, in the same order.
    fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    fn is_alive_while_waiting(&self) -> bool {
        (self.awaiting_join.is_some() && !self.is_new) || self.awaiting_sync.is_some()
    }
}

/// The join phase's timer: the initial delay of a new group, or the rebalance timeout.
#[derive(Clone, Copy, Debug)]
enum JoinTimer {
    Initial {
        deadline_ms: i64,
        delay_ms: i64,
        remaining_ms: i64,
    },
    Rebalance {
        deadline_ms: i64,
    },
}

impl JoinTimer {
    fn deadline(self) -> i64 {
        match self {
            JoinTimer::Initial { deadline_ms, .. } | JoinTimer::Rebalance { deadline_ms } => {
                deadline_ms
            }
        }
    }
}

/// A classic group. See the module doc for ownership and invariants.
#[derive(Debug)]
pub struct ClassicGroup {
    pub group_id: String,
    state: GroupState,
    previous_state: GroupState,
    /// `now_ms` of the last state change (stored in the group record; the coordinator
    /// passes wall-clock milliseconds).
    state_timestamp_ms: i64,
    generation: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// MEMBER_ID_REQUIRED members → their deadline to rejoin.
    pending_members: HashMap<String, i64>,
    static_members: HashMap<String, String>,
    /// Members of this generation that have not sent SyncGroup yet.
    pending_sync: BTreeSet<String>,
    sync_deadline_ms: Option<i64>,
    join_timer: Option<JoinTimer>,
    new_member_added: bool,
    limits: Limits,
    effects: Vec<Effect>,
}

mod ops;
#[cfg(test)]
mod tests;

impl ClassicGroup {
    pub fn new(group_id: &str, limits: Limits) -> ClassicGroup {
        ClassicGroup {
            group_id: group_id.to_string(),
            state: GroupState::Empty,
            previous_state: GroupState::Empty,
            state_timestamp_ms: -1,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            pending_members: HashMap::new(),
            static_members: HashMap::new(),
            pending_sync: BTreeSet::new(),
            sync_deadline_ms: None,
            join_timer: None,
            new_member_added: false,
            limits,
            effects: Vec::new(),
        }
    }

    /// Rebuilds a group from its record: Stable with its members (who must heartbeat
    /// within their session timeout from `now_ms`), or Empty.
    pub fn from_record(
        group_id: &str,
        v: &GroupMetadataValue,
        limits: Limits,
        now_ms: i64,
    ) -> ClassicGroup {
        let mut g = ClassicGroup::new(group_id, limits);
        g.generation = v.generation;
        g.protocol_type = (!v.protocol_type.is_empty()).then(|| v.protocol_type.clone());
        g.protocol_name = v.protocol.clone();
        g.state_timestamp_ms = v.current_state_timestamp_ms;
        for m in &v.members {
            let protocols = match &v.protocol {
                Some(p) => vec![(p.clone(), m.subscription.clone())],
                None => vec![],
            };
            if let Some(id) = &m.group_instance_id {
                g.static_members.insert(id.clone(), m.member_id.clone());
            }
            g.members.insert(
                m.member_id.clone(),
                Member {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    protocol_type: v.protocol_type.clone(),
                    protocols,
                    assignment: m.assignment.clone(),
                    awaiting_join: None,
                    awaiting_sync: None,
                    is_new: false,
                    heartbeat_deadline_ms: now_ms + m.session_timeout_ms as i64,
                },
            );
        }
        if !g.members.is_empty() {
            g.leader = v
                .leader
                .clone()
                .filter(|l| g.members.contains_key(l))
                .or_else(|| g.members.keys().next().cloned());
            g.state = GroupState::Stable;
        }
        g
    }

    pub fn state(&self) -> GroupState {
        self.state
    }

    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// When the group entered its current state (-1: unknown).
    pub fn state_timestamp_ms(&self) -> i64 {
        self.state_timestamp_ms
    }

    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }

    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    pub fn has_member(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.pending_members.is_empty()
    }

    /// The queued effects, oldest first.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// Topics the members subscribe to (consumer protocol only); None when unknown.
    pub fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = BTreeSet::new();
        for m in self.members.values() {
            topics.extend(subscription_topics(&m.metadata(protocol)).ok()?);
        }
        Some(topics)
    }

    /// The earliest deadline at which [`ClassicGroup::tick`] has work, if any.
    pub fn next_deadline(&self) -> Option<i64> {
        let members = self
            .members
            .values()
            .filter(|m| !m.is_alive_while_waiting())
            .map(|m| m.heartbeat_deadline_ms);
        let pending = self.pending_members.values().copied();
        members
            .chain(pending)
            .chain(self.join_timer.map(JoinTimer::deadline))
            .chain(self.sync_deadline_ms)
            .min()
    }

    /// The group's record: members with their subscription for the selected protocol
    /// and `assignment(member)`.
    fn metadata_value(&self, assignment: &dyn Fn(&Member) -> Bytes) -> GroupMetadataValue {
        let protocol = self.protocol_name.clone();
        GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp_ms: self.state_timestamp_ms,
            members: self
                .members
                .values()
                .map(|m| MemberMetadata {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: protocol
                        .as_deref()
                        .map(|p| m.metadata(p))
                        .unwrap_or_default(),
                    assignment: assignment(m),
                })
                .collect(),
        }
    }

    /// The current record (for a store outside a rebalance, e.g. a static rejoin).
    pub fn current_value(&self) -> GroupMetadataValue {
        self.metadata_value(&|m| m.assignment.clone())
    }

    fn transition(&mut self, to: GroupState, now_ms: i64) {
        self.previous_state = self.state;
        self.state = to;
        self.state_timestamp_ms = now_ms;
    }

    /// Marks the group deleted: parked requests get COORDINATOR_NOT_AVAILABLE (their
    /// clients look the coordinator up again).
    pub fn mark_dead(&mut self) {
        let e = GroupError::CoordinatorNotAvailable;
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            if let Some(m) = self.members.get_mut(&id) {
                if let Some(w) = m.awaiting_join.take() {
                    self.effects
                        .push(Effect::Join(w, JoinResponse::error(e, &id)));
                }
                if let Some(w) = m.awaiting_sync.take() {
                    self.effects.push(Effect::Sync(w, SyncResponse::error(e)));
                }
            }
        }
        self.members.clear();
        self.pending_members.clear();
        self.static_members.clear();
        self.pending_sync.clear();
        self.join_timer = None;
        self.sync_deadline_ms = None;
        self.leader = None;
        self.state = GroupState::Dead;
    }
}

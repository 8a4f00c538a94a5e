//! The classic group's operations: JoinGroup, SyncGroup, Heartbeat, LeaveGroup, the
//! write acknowledgement of an assignment, and deadlines ([`ClassicGroup::tick`]).

use bytes::Bytes;

use super::{
    ClassicGroup, Effect, GroupState, JoinRequest, JoinResponse, JoinTimer, JoinedMember, Member,
    SyncResponse, Waiter,
};
use crate::group::error::GroupError;

impl ClassicGroup {
    /// JoinGroup. The answer arrives as an [`Effect::Join`] for `waiter`, now or when
    /// the join phase completes.
    pub fn join(&mut self, req: JoinRequest, waiter: Waiter, now_ms: i64) {
        if self.state == GroupState::Dead {
            let e = GroupError::CoordinatorNotAvailable;
            self.reply_join(waiter, JoinResponse::error(e, &req.member_id));
        } else if req.member_id.is_empty() {
            self.join_new_member(req, waiter, now_ms);
        } else {
            self.join_existing_member(req, waiter, now_ms);
        }
    }

    fn reply_join(&mut self, waiter: Waiter, resp: JoinResponse) {
        self.effects.push(Effect::Join(waiter, resp));
    }

    /// Kafka's `supportsProtocols`: an empty group takes any non-empty protocol list;
    /// otherwise the type must match and one protocol must be shared by all members.
    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(name, _)| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
    }

    fn join_new_member(&mut self, req: JoinRequest, waiter: Waiter, now_ms: i64) {
        if !self.supports_protocols(&req.protocol_type, &req.protocols) {
            let e = GroupError::InconsistentGroupProtocol;
            return self.reply_join(waiter, JoinResponse::error(e, ""));
        }
        let new_id = req.fresh_member_id.clone();
        if let Some(instance) = req.group_instance_id.clone() {
            if let Some(old_id) = self.static_members.get(&instance).cloned() {
                return self.replace_static_member(req, &old_id, waiter, now_ms);
            }
            return self.add_member_and_rebalance(new_id, req, waiter, now_ms);
        }
        if req.require_known_member_id {
            let deadline = now_ms + req.session_timeout_ms as i64;
            self.pending_members.insert(new_id.clone(), deadline);
            let e = GroupError::MemberIdRequired;
            return self.reply_join(waiter, JoinResponse::error(e, &new_id));
        }
        self.add_member_and_rebalance(new_id, req, waiter, now_ms);
    }

    fn join_existing_member(&mut self, req: JoinRequest, waiter: Waiter, now_ms: i64) {
        let member_id = req.member_id.clone();
        if self.pending_members.remove(&member_id).is_some() {
            return self.add_member_and_rebalance(member_id, req, waiter, now_ms);
        }
        if let Err(e) = self.validate_member(&member_id, req.group_instance_id.as_deref()) {
            return self.reply_join(waiter, JoinResponse::error(e, &member_id));
        }
        if !self.supports_protocols(&req.protocol_type, &req.protocols) {
            let e = GroupError::InconsistentGroupProtocol;
            return self.reply_join(waiter, JoinResponse::error(e, &member_id));
        }
        let (is_leader, matches) = match self.members.get(&member_id) {
            Some(m) => (
                self.leader.as_deref() == Some(member_id.as_str()),
                m.matches(&req.protocols),
            ),
            None => return,
        };
        match self.state {
            GroupState::PreparingRebalance => self.update_member_and_rebalance(req, waiter, now_ms),
            GroupState::CompletingRebalance if matches => {
                // A retry of a join whose answer was lost: same generation again.
                let resp = self.current_join_response(&member_id, is_leader, false);
                self.reply_join(waiter, resp);
            }
            GroupState::Stable if !is_leader && matches => {
                let resp = self.current_join_response(&member_id, false, false);
                self.reply_join(waiter, resp);
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(req, waiter, now_ms)
            }
            GroupState::Empty | GroupState::Dead => {
                let e = GroupError::UnknownMemberId;
                self.reply_join(waiter, JoinResponse::error(e, &member_id));
            }
        }
    }

    /// Kafka's `validateMember`: a static member must present the member id currently
    /// holding its instance id (else FENCED_INSTANCE_ID); the member must exist.
    pub fn validate_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        if let Some(instance) = instance_id {
            match self.static_members.get(instance) {
                None => return Err(GroupError::UnknownMemberId),
                Some(holder) if holder != member_id => return Err(GroupError::FencedInstanceId),
                Some(_) => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        Ok(())
    }

    /// The answer describing the current generation (members only for the leader).
    fn current_join_response(
        &self,
        member_id: &str,
        with_members: bool,
        skip: bool,
    ) -> JoinResponse {
        JoinResponse {
            error: None,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            skip_assignment: skip,
            member_id: member_id.to_string(),
            members: if with_members {
                self.joined_members()
            } else {
                Vec::new()
            },
        }
    }

    fn joined_members(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata(&protocol),
            })
            .collect()
    }

    fn add_member_and_rebalance(
        &mut self,
        member_id: String,
        req: JoinRequest,
        waiter: Waiter,
        now_ms: i64,
    ) {
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(member_id.clone());
        }
        if let Some(instance) = &req.group_instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        self.members.insert(
            member_id.clone(),
            Member {
                member_id,
                group_instance_id: req.group_instance_id,
                client_id: req.client_id,
                client_host: req.client_host,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                session_timeout_ms: req.session_timeout_ms,
                protocol_type: req.protocol_type,
                protocols: req.protocols,
                assignment: Bytes::new(),
                awaiting_join: Some(waiter),
                awaiting_sync: None,
                is_new: true,
                heartbeat_deadline_ms: now_ms + self.limits.new_member_join_timeout_ms,
            },
        );
        self.new_member_added = true;
        self.maybe_prepare_rebalance_or_complete_join(now_ms);
    }

    fn update_member_and_rebalance(&mut self, req: JoinRequest, waiter: Waiter, now_ms: i64) {
        let Some(m) = self.members.get_mut(&req.member_id) else {
            return;
        };
        m.protocols = req.protocols;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.session_timeout_ms = req.session_timeout_ms;
        m.client_id = req.client_id;
        m.client_host = req.client_host;
        if let Some(old) = m.awaiting_join.replace(waiter) {
            // A duplicate JoinGroup: the older one is superseded.
            let e = GroupError::RebalanceInProgress;
            self.reply_join(old, JoinResponse::error(e, &req.member_id));
        }
        self.maybe_prepare_rebalance_or_complete_join(now_ms);
    }

    /// A static member rejoining with an unknown member id takes over its instance id:
    /// the old member id is fenced and the member keeps its assignment.
    fn replace_static_member(
        &mut self,
        req: JoinRequest,
        old_id: &str,
        waiter: Waiter,
        now_ms: i64,
    ) {
        let Some(mut m) = self.members.remove(old_id) else {
            return;
        };
        let new_id = req.fresh_member_id.clone();
        let fenced = GroupError::FencedInstanceId;
        if let Some(w) = m.awaiting_join.take() {
            self.reply_join(w, JoinResponse::error(fenced, old_id));
        }
        if let Some(w) = m.awaiting_sync.take() {
            self.effects
                .push(Effect::Sync(w, SyncResponse::error(fenced)));
        }
        let previous_leader = self.leader.clone().unwrap_or_default();
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.clone());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.clone());
        }
        m.member_id = new_id.clone();
        m.protocols = req.protocols;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.session_timeout_ms = req.session_timeout_ms;
        m.client_id = req.client_id;
        m.client_host = req.client_host;
        m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms as i64;
        if let Some(instance) = &req.group_instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        self.members.insert(new_id.clone(), m);
        match self.state {
            GroupState::Stable if self.select_protocol() == self.protocol_name => {
                let is_leader = self.leader.as_deref() == Some(new_id.as_str());
                let mut resp = self.current_join_response(&new_id, is_leader, is_leader);
                // The previous leader id, so an old-version leader does not reassign.
                resp.leader = previous_leader;
                self.reply_join(waiter, resp);
                let value = self.current_value();
                self.effects.push(Effect::WriteGroup(value));
            }
            _ => {
                if let Some(m) = self.members.get_mut(&new_id) {
                    m.awaiting_join = Some(waiter);
                }
                self.maybe_prepare_rebalance_or_complete_join(now_ms);
            }
        }
    }

    fn maybe_prepare_rebalance_or_complete_join(&mut self, now_ms: i64) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty => {
                self.prepare_rebalance(now_ms)
            }
            _ => self.maybe_complete_join_phase(now_ms),
        }
    }

    /// The largest rebalance timeout of the members (the join phase's bound).
    fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms as i64)
            .max()
            .unwrap_or(0)
    }

    pub(crate) fn prepare_rebalance(&mut self, now_ms: i64) {
        if self.state == GroupState::CompletingRebalance {
            self.reset_assignments_with_error(GroupError::RebalanceInProgress);
        }
        self.pending_sync.clear();
        self.sync_deadline_ms = None;
        let initial = self.state == GroupState::Empty;
        let timeout = self.rebalance_timeout_ms();
        self.join_timer = Some(if initial {
            let delay = self.limits.initial_rebalance_delay_ms.min(timeout);
            JoinTimer::Initial {
                deadline_ms: now_ms + delay,
                delay_ms: delay,
                remaining_ms: (timeout - self.limits.initial_rebalance_delay_ms).max(0),
            }
        } else {
            JoinTimer::Rebalance {
                deadline_ms: now_ms + timeout,
            }
        });
        self.transition(GroupState::PreparingRebalance, now_ms);
        if !initial {
            self.maybe_complete_join_phase(now_ms);
        }
    }

    fn reset_assignments_with_error(&mut self, error: GroupError) {
        let mut out = Vec::new();
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            if let Some(w) = m.awaiting_sync.take() {
                out.push(Effect::Sync(w, SyncResponse::error(error)));
            }
        }
        self.effects.extend(out);
    }

    fn has_all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    /// Completes the join phase early when everyone rejoined, except in a group's
    /// first rebalance, which always waits for its (initial-delay) timer.
    fn maybe_complete_join_phase(&mut self, now_ms: i64) {
        if self.state == GroupState::PreparingRebalance
            && self.previous_state != GroupState::Empty
            && self.has_all_members_joined()
        {
            self.complete_join(now_ms);
        }
    }

    /// Ends the join phase: members that did not rejoin are removed; the survivors
    /// start a new generation (or the group becomes Empty).
    pub(crate) fn complete_join(&mut self, now_ms: i64) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        self.join_timer = None;
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id);
        }
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.protocol_type = None;
            self.transition(GroupState::Empty, now_ms);
            let value = self.current_value();
            self.effects.push(Effect::WriteGroup(value));
            return;
        }
        self.protocol_name = self.select_protocol();
        self.transition(GroupState::CompletingRebalance, now_ms);
        let leader = self.leader.clone().unwrap_or_default();
        let all = self.joined_members();
        let mut out = Vec::new();
        for m in self.members.values_mut() {
            m.is_new = false;
            m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms as i64;
            if let Some(w) = m.awaiting_join.take() {
                let is_leader = m.member_id == leader;
                out.push(Effect::Join(
                    w,
                    JoinResponse {
                        error: None,
                        generation_id: self.generation,
                        protocol_type: self.protocol_type.clone(),
                        protocol_name: self.protocol_name.clone(),
                        leader: leader.clone(),
                        skip_assignment: false,
                        member_id: m.member_id.clone(),
                        members: if is_leader { all.clone() } else { Vec::new() },
                    },
                ));
            }
        }
        self.effects.extend(out);
        self.new_member_added = false;
        self.pending_sync = self.members.keys().cloned().collect();
        self.sync_deadline_ms = Some(now_ms + self.rebalance_timeout_ms());
    }

    /// Kafka's `selectProtocol`: among protocols every member supports, each member
    /// votes for its most preferred; the most votes wins (ties: earliest candidate in
    /// the leader's preference order).
    pub(crate) fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == *n))
            })
            .collect();
        let mut votes: Vec<(&String, usize)> = candidates.iter().map(|c| (*c, 0)).collect();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(p, _)| candidates.contains(&p)) {
                if let Some(v) = votes.iter_mut().find(|(c, _)| *c == name) {
                    v.1 += 1;
                }
            }
        }
        let best = votes.iter().map(|(_, n)| *n).max()?;
        votes
            .into_iter()
            .find(|(_, n)| *n == best)
            .map(|(c, _)| c.clone())
    }

    /// Removes a member; its parked JoinGroup is answered UNKNOWN_MEMBER_ID (so a live
    /// client rejoins) and a new leader is chosen if it led.
    fn remove_member(&mut self, member_id: &str) {
        let Some(mut m) = self.members.remove(member_id) else {
            return;
        };
        let e = GroupError::UnknownMemberId;
        if let Some(w) = m.awaiting_join.take() {
            self.reply_join(w, JoinResponse::error(e, ""));
        }
        if let Some(w) = m.awaiting_sync.take() {
            self.effects.push(Effect::Sync(w, SyncResponse::error(e)));
        }
        if let Some(instance) = &m.group_instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        self.pending_sync.remove(member_id);
        if self.leader.as_deref() == Some(member_id) {
            // Prefer a member already waiting in the join phase.
            self.leader = self
                .members
                .values()
                .find(|m| m.awaiting_join.is_some())
                .or_else(|| self.members.values().next())
                .map(|m| m.member_id.clone());
        }
    }

    /// Removes a member and moves the group on (Kafka's
    /// `removeMemberAndUpdateClassicGroup`).
    fn remove_member_and_update(&mut self, member_id: &str, now_ms: i64) {
        self.remove_member(member_id);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(now_ms),
            GroupState::PreparingRebalance if self.has_all_members_joined() => {
                self.complete_join(now_ms)
            }
            _ => {}
        }
    }

    /// SyncGroup. The answer arrives as an [`Effect::Sync`] for `waiter`.
    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        waiter: Waiter,
        now_ms: i64,
    ) {
        let fail = |g: &mut Self, e: GroupError| {
            g.effects.push(Effect::Sync(waiter, SyncResponse::error(e)))
        };
        if self.state == GroupState::Dead {
            return fail(self, GroupError::CoordinatorNotAvailable);
        }
        if let Err(e) = self.validate_member(member_id, instance_id) {
            return fail(self, e);
        }
        if generation_id != self.generation {
            return fail(self, GroupError::IllegalGeneration);
        }
        if protocol_type.is_some_and(|t| Some(t) != self.protocol_type.as_deref())
            || protocol_name.is_some_and(|n| Some(n) != self.protocol_name.as_deref())
        {
            return fail(self, GroupError::InconsistentGroupProtocol);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => fail(self, GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => fail(self, GroupError::RebalanceInProgress),
            GroupState::CompletingRebalance => {
                self.pending_sync.remove(member_id);
                let is_leader = self.leader.as_deref() == Some(member_id);
                let Some(m) = self.members.get_mut(member_id) else {
                    return;
                };
                m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms as i64;
                if let Some(old) = m.awaiting_sync.replace(waiter) {
                    // A duplicate SyncGroup: the older one is superseded.
                    let e = GroupError::RebalanceInProgress;
                    self.effects.push(Effect::Sync(old, SyncResponse::error(e)));
                }
                if is_leader {
                    let map: std::collections::HashMap<String, Bytes> =
                        assignments.into_iter().collect();
                    let value = self
                        .metadata_value(&|m| map.get(&m.member_id).cloned().unwrap_or_default());
                    let generation = self.generation;
                    self.effects
                        .push(Effect::WriteAssignment { generation, value });
                }
            }
            GroupState::Stable => {
                self.pending_sync.remove(member_id);
                let Some(m) = self.members.get_mut(member_id) else {
                    return;
                };
                m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms as i64;
                let resp = SyncResponse {
                    error: None,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment: m.assignment.clone(),
                };
                self.effects.push(Effect::Sync(waiter, resp));
            }
        }
    }

    /// The leader's assignment for `generation` was written (`ok`) or not: on success
    /// the group becomes Stable and parked SyncGroups get their assignment; on failure
    /// the group rebalances.
    pub fn assignment_written(
        &mut self,
        generation: i32,
        value: &super::GroupMetadataValue,
        ok: bool,
        now_ms: i64,
    ) {
        if self.state != GroupState::CompletingRebalance || generation != self.generation {
            return;
        }
        if !ok {
            self.reset_assignments_with_error(GroupError::CoordinatorNotAvailable);
            return self.prepare_rebalance(now_ms);
        }
        for mm in &value.members {
            if let Some(m) = self.members.get_mut(&mm.member_id) {
                m.assignment = mm.assignment.clone();
            }
        }
        let mut out = Vec::new();
        for m in self.members.values_mut() {
            if let Some(w) = m.awaiting_sync.take() {
                out.push(Effect::Sync(
                    w,
                    SyncResponse {
                        error: None,
                        protocol_type: self.protocol_type.clone(),
                        protocol_name: self.protocol_name.clone(),
                        assignment: m.assignment.clone(),
                    },
                ));
            }
        }
        self.effects.extend(out);
        self.transition(GroupState::Stable, now_ms);
    }

    /// Heartbeat: Err is the error to answer.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        self.validate_member(member_id, instance_id)?;
        if generation_id != self.generation {
            return Err(GroupError::IllegalGeneration);
        }
        let state = self.state;
        let Some(m) = self.members.get_mut(member_id) else {
            return Err(GroupError::UnknownMemberId);
        };
        match state {
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => {
                m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms as i64;
                Err(GroupError::RebalanceInProgress)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms as i64;
                Ok(())
            }
        }
    }

    /// LeaveGroup for one member (by member id, or by instance id alone when the
    /// member id is empty): Err is the member's error.
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if member_id.is_empty() {
            let Some(holder) = instance_id
                .and_then(|i| self.static_members.get(i))
                .cloned()
            else {
                return Err(GroupError::UnknownMemberId);
            };
            self.remove_member_and_update(&holder, now_ms);
            return Ok(());
        }
        if self.pending_members.remove(member_id).is_some() {
            self.maybe_complete_join_phase(now_ms);
            return Ok(());
        }
        self.validate_member(member_id, instance_id)?;
        self.remove_member_and_update(member_id, now_ms);
        Ok(())
    }

    /// Runs every deadline that has passed: session expiry, the end of the join phase
    /// (with the initial delay extended while new members keep arriving), and members
    /// that never sent SyncGroup.
    pub fn tick(&mut self, now_ms: i64) {
        if self.state == GroupState::Dead {
            return;
        }
        let expired_pending: Vec<String> = self
            .pending_members
            .iter()
            .filter(|(_, d)| **d <= now_ms)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired_pending {
            self.pending_members.remove(&id);
            self.maybe_complete_join_phase(now_ms);
        }
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.heartbeat_deadline_ms <= now_ms && !m.is_alive_while_waiting())
            .map(|m| m.member_id.clone())
            .collect();
        for id in expired {
            self.remove_member_and_update(&id, now_ms);
        }
        if let Some(timer) = self.join_timer {
            if timer.deadline() <= now_ms {
                self.on_join_timer(timer, now_ms);
            }
        }
        if self.sync_deadline_ms.is_some_and(|d| d <= now_ms) {
            self.sync_deadline_ms = None;
            if matches!(
                self.state,
                GroupState::CompletingRebalance | GroupState::Stable
            ) && !self.pending_sync.is_empty()
            {
                let laggards: Vec<String> =
                    std::mem::take(&mut self.pending_sync).into_iter().collect();
                for id in laggards {
                    self.remove_member(&id);
                }
                self.prepare_rebalance(now_ms);
            }
        }
    }

    fn on_join_timer(&mut self, timer: JoinTimer, now_ms: i64) {
        match timer {
            JoinTimer::Initial {
                delay_ms,
                remaining_ms,
                ..
            } if self.new_member_added && remaining_ms > 0 => {
                self.new_member_added = false;
                let delay = self.limits.initial_rebalance_delay_ms.min(remaining_ms);
                self.join_timer = Some(JoinTimer::Initial {
                    deadline_ms: now_ms + delay,
                    delay_ms: delay,
                    remaining_ms: (remaining_ms - delay_ms).max(0),
                });
            }
            _ => self.complete_join(now_ms),
        }
    }
}

impl ClassicGroup {
    /// Kafka's `ClassicGroup.validateOffsetCommit`: generation -1 commits (admin or
    /// manual assignment) need an Empty group; members must be known and current, and
    /// may not commit between JoinGroup and the assignment.
    pub fn validate_offset_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if generation_id < 0 && self.state == GroupState::Empty {
            return Ok(());
        }
        if generation_id >= 0 || !member_id.is_empty() || instance_id.is_some() {
            self.validate_member(member_id, instance_id)?;
            if generation_id != self.generation {
                return Err(GroupError::IllegalGeneration);
            }
        } else if self.state != GroupState::Empty {
            return Err(GroupError::UnknownMemberId);
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }
}

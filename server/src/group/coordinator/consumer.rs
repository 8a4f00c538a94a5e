//! ConsumerGroupHeartbeat and ConsumerGroupDescribe (KIP-848) on the owner shard, and
//! the id-namespace rule shared with classic groups.
//!
//! Consumer-group state is kept in memory only (Kafka persists it as
//! ConsumerGroupMetadata/TargetAssignment records; Fjord does not yet): after a restart
//! members get UNKNOWN_MEMBER_ID and rejoin with epoch 0, and committed offsets,
//! which are persisted, carry the group on.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::{Coordinator, GroupEntry, Loc};
use crate::group::classic::ClassicGroup;
use crate::group::consumer::{
    ConsumerGroup, Description, Heartbeat, HeartbeatError, HeartbeatResponse,
};
use crate::group::error::GroupError;
use crate::partition::now_ms;

impl Coordinator {
    /// Before a classic JoinGroup: a consumer group with members keeps its id
    /// (INCONSISTENT_GROUP_PROTOCOL); an empty one turns back into a classic group.
    pub(super) fn claim_for_classic(&self, group_id: &str) -> Result<(), GroupError> {
        let mut groups = self.groups.borrow_mut();
        let Some(entry) = groups.get_mut(group_id) else {
            return Ok(());
        };
        match &entry.consumer {
            Some(g) if !g.is_empty() => Err(GroupError::InconsistentGroupProtocol),
            Some(_) => {
                entry.consumer = None;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// One ConsumerGroupHeartbeat. A classic group with members keeps its id
    /// (GROUP_ID_NOT_FOUND); an unknown group is created only by a joining member.
    pub async fn consumer_heartbeat(
        self: &Rc<Self>,
        loc: Loc,
        group_id: &str,
        req: Heartbeat,
    ) -> Result<HeartbeatResponse, HeartbeatError> {
        let c = self;
        c.ensure_loaded(loc).await?;
        let image = self.partitions.view().image();
        let lookup = |name: &str| image.topic(name).map(|t| (t.id, t.partitions.len() as i32));
        let now = now_ms();
        let result = {
            let mut groups = c.groups.borrow_mut();
            let entry =
                match groups.get_mut(group_id) {
                    Some(e) => e,
                    None if req.member_epoch == 0 => groups
                        .entry(group_id.to_string())
                        .or_insert_with(|| GroupEntry {
                            group: ClassicGroup::new(group_id, c.limits),
                            consumer: None,
                            offsets: BTreeMap::new(),
                            loc,
                        }),
                    None => {
                        return Err(HeartbeatError::new(
                            GroupError::GroupIdNotFound,
                            format!("Group {group_id} not found."),
                        ))
                    }
                };
            if entry.consumer.is_none() {
                if !entry.group.is_empty() {
                    return Err(HeartbeatError::new(
                        GroupError::GroupIdNotFound,
                        format!("Group {group_id} is not a consumer group."),
                    ));
                }
                entry.consumer = Some(ConsumerGroup::new(group_id, c.consumer_limits));
            }
            match entry.consumer.as_mut() {
                Some(g) => g.heartbeat(req, &lookup, now),
                None => Err(GroupError::CoordinatorNotAvailable.into()),
            }
        };
        c.arm(group_id);
        result
    }

    /// ConsumerGroupDescribe of one group: GROUP_ID_NOT_FOUND for an unknown or a
    /// classic group.
    pub async fn consumer_describe(
        self: &Rc<Self>,
        loc: Loc,
        group_id: &str,
    ) -> Result<Description, HeartbeatError> {
        let c = self;
        c.ensure_loaded(loc).await?;
        c.with_group(group_id, |e| e.consumer.as_ref().map(|g| g.describe()))
            .flatten()
            .ok_or_else(|| {
                HeartbeatError::new(
                    GroupError::GroupIdNotFound,
                    format!("Group {group_id} not found."),
                )
            })
    }
}

//! DescribeGroups, ListGroups and DeleteGroups on the owner shard.

use std::rc::Rc;

use bytes::Bytes;
use uuid::Uuid;

use super::{Coordinator, Loc};
use crate::group::classic::GroupState;
use crate::group::error::GroupError;
use crate::group::records::RecordKey;
use crate::group::store;

#[derive(Clone, Debug, Default)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// DescribeGroups' view of one group; `found` is false for an unknown group.
#[derive(Clone, Debug, Default)]
pub struct GroupDescription {
    pub found: bool,
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

#[derive(Clone, Debug)]
pub struct GroupSummary {
    pub group_id: String,
    pub protocol_type: String,
    pub state: &'static str,
    /// Kafka's group type (ListGroups v5): "consumer" for a KIP-848 group, else
    /// "classic".
    pub group_type: &'static str,
}

impl Coordinator {
    /// Kafka's classic describe: members always; protocol, metadata and assignment
    /// only when the group is Stable.
    pub async fn describe(
        self: &Rc<Self>,
        loc: Loc,
        group_id: &str,
    ) -> Result<GroupDescription, GroupError> {
        let c = self;
        c.ensure_loaded(loc).await?;
        let d = c.with_group(group_id, |e| {
            let g = &e.group;
            let stable = g.state() == GroupState::Stable;
            let protocol = g.protocol_name().unwrap_or_default().to_string();
            GroupDescription {
                found: g.state() != GroupState::Dead,
                state: g.state().name(),
                protocol_type: g.protocol_type().unwrap_or_default().to_string(),
                protocol: if stable {
                    protocol.clone()
                } else {
                    String::new()
                },
                members: g
                    .members()
                    .map(|m| MemberDescription {
                        member_id: m.member_id.clone(),
                        group_instance_id: m.group_instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        metadata: if stable {
                            m.protocols
                                .iter()
                                .find(|(n, _)| *n == protocol)
                                .map(|(_, b)| b.clone())
                                .unwrap_or_default()
                        } else {
                            Bytes::new()
                        },
                        assignment: if stable {
                            m.assignment.clone()
                        } else {
                            Bytes::new()
                        },
                    })
                    .collect(),
            }
        });
        Ok(d.unwrap_or(GroupDescription {
            state: GroupState::Dead.name(),
            ..Default::default()
        }))
    }

    /// Every live group of the offsets partitions this shard owns (loading them).
    pub async fn list(
        self: &Rc<Self>,
        topic_id: Uuid,
        partitions: usize,
    ) -> Result<Vec<GroupSummary>, GroupError> {
        let c = self;
        for p in 0..partitions as i32 {
            if c.partitions.owns(&topic_id, p) {
                c.ensure_loaded(Loc {
                    topic_id,
                    partition: p,
                })
                .await?;
            }
        }
        let groups = c.groups.borrow();
        let mut out: Vec<GroupSummary> = groups
            .values()
            .filter(|e| e.group.state() != GroupState::Dead)
            .map(|e| match &e.consumer {
                Some(g) => GroupSummary {
                    group_id: g.group_id.clone(),
                    protocol_type: "consumer".to_string(),
                    state: g.state(),
                    group_type: "consumer",
                },
                None => GroupSummary {
                    group_id: e.group.group_id.clone(),
                    protocol_type: e.group.protocol_type().unwrap_or_default().to_string(),
                    state: e.group.state().name(),
                    group_type: "classic",
                },
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(out)
    }

    /// DeleteGroups for one group: only an Empty group can go; its offsets and its
    /// record are tombstoned.
    pub async fn delete_group(self: &Rc<Self>, loc: Loc, group_id: &str) -> Result<(), GroupError> {
        let c = self;
        c.ensure_loaded(loc).await?;
        let keys = c.with_group(group_id, |e| match e.group.state() {
            GroupState::Dead => Err(GroupError::GroupIdNotFound),
            _ if e.consumer.as_ref().is_some_and(|g| !g.is_empty()) => {
                Err(GroupError::NonEmptyGroup)
            }
            GroupState::Empty if e.group.is_empty() => {
                e.group.mark_dead();
                Ok(e.offsets.keys().cloned().collect::<Vec<_>>())
            }
            _ => Err(GroupError::NonEmptyGroup),
        });
        let keys = keys.unwrap_or(Err(GroupError::GroupIdNotFound))?;
        c.drain(group_id);
        let mut records: Vec<store::KeyValue> = keys
            .into_iter()
            .map(|(topic, partition)| {
                let key = RecordKey::OffsetCommit {
                    group: group_id.to_string(),
                    topic,
                    partition,
                };
                (key.encode(), None)
            })
            .collect();
        let group_key = RecordKey::GroupMetadata {
            group: group_id.to_string(),
        };
        records.push((group_key.encode(), None));
        let written = store::append(&self.partitions, &loc.topic_id, loc.partition, records).await;
        c.remove_group(group_id);
        match written {
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::error!(group = group_id, error = %e, "cannot write group tombstones");
                Err(GroupError::CoordinatorNotAvailable)
            }
        }
    }
}

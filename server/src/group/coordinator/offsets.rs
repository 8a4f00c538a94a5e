//! OffsetCommit, OffsetFetch and OffsetDelete on the owner shard.

use std::rc::Rc;

use super::{Committed, Coordinator, Loc};
use crate::group::classic::GroupState;
use crate::group::error::GroupError;
use crate::group::records::{OffsetCommitValue, RecordKey};
use crate::group::store;

/// One OffsetCommit request after the api layer's per-partition checks.
pub struct CommitRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    pub version: i16,
    pub offsets: Vec<(String, i32, OffsetCommitValue)>,
}

/// Committed offsets by topic: (partition, value or None when nothing is committed).
pub type FetchedOffsets = Vec<(String, Vec<(i32, Option<OffsetCommitValue>)>)>;

fn offset_key(group: &str, topic: &str, partition: i32) -> bytes::Bytes {
    RecordKey::OffsetCommit {
        group: group.to_string(),
        topic: topic.to_string(),
        partition,
    }
    .encode()
}

impl Coordinator {
    /// Validates the committer against the group, writes the offsets as one batch
    /// (durable before it returns) and then makes them visible. Err: the error of
    /// every partition.
    pub async fn commit_offsets(
        self: &Rc<Self>,
        loc: Loc,
        group_id: &str,
        req: CommitRequest,
    ) -> Result<(), GroupError> {
        let c = self;
        c.ensure_loaded(loc).await?;
        let exists = c.groups.borrow().contains_key(group_id);
        if !exists {
            if req.generation_id >= 0 {
                return Err(if req.version >= 9 {
                    GroupError::GroupIdNotFound
                } else {
                    GroupError::IllegalGeneration
                });
            }
        } else {
            c.with_group(group_id, |e| match e.consumer.as_ref() {
                Some(g) if !g.is_empty() || !req.member_id.is_empty() => {
                    g.validate_offset_commit(&req.member_id, req.generation_id)
                }
                _ => e.group.validate_offset_commit(
                    &req.member_id,
                    req.group_instance_id.as_deref(),
                    req.generation_id,
                ),
            })
            .unwrap_or(Ok(()))?;
        }
        if req.offsets.is_empty() {
            return Ok(());
        }
        let records = req
            .offsets
            .iter()
            .map(|(t, p, v)| (offset_key(group_id, t, *p), Some(v.encode())))
            .collect();
        let base = store::append(&self.partitions, &loc.topic_id, loc.partition, records)
            .await
            .map_err(|e| {
                tracing::error!(group = group_id, error = %e, "cannot write offsets");
                GroupError::CoordinatorNotAvailable
            })?;
        c.with_group_or_create(group_id, loc, |e| {
            for (i, (t, p, v)) in req.offsets.into_iter().enumerate() {
                let log_offset = base + i as i64;
                let newer = e
                    .offsets
                    .get(&(t.clone(), p))
                    .is_none_or(|old| old.log_offset < log_offset);
                if newer {
                    e.offsets.insert(
                        (t, p),
                        Committed {
                            value: v,
                            log_offset,
                        },
                    );
                }
            }
        });
        Ok(())
    }

    /// Committed offsets of `topics` (None: every committed partition).
    pub async fn fetch_offsets(
        self: &Rc<Self>,
        loc: Loc,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<FetchedOffsets, GroupError> {
        let c = self;
        c.ensure_loaded(loc).await?;
        let groups = c.groups.borrow();
        let entry = groups.get(group_id);
        let Some(topics) = topics else {
            let mut out: FetchedOffsets = Vec::new();
            for ((t, p), v) in entry.iter().flat_map(|e| e.offsets.iter()) {
                match out.last_mut() {
                    Some((last, parts)) if last == t => parts.push((*p, Some(v.value.clone()))),
                    _ => out.push((t.clone(), vec![(*p, Some(v.value.clone()))])),
                }
            }
            return Ok(out);
        };
        Ok(topics
            .into_iter()
            .map(|(t, parts)| {
                let values = parts
                    .into_iter()
                    .map(|p| {
                        let v = entry
                            .and_then(|e| e.offsets.get(&(t.clone(), p)))
                            .map(|c| c.value.clone());
                        (p, v)
                    })
                    .collect();
                (t, values)
            })
            .collect())
    }

    /// OffsetDelete: per-partition errors, or a group-level error.
    pub async fn delete_offsets(
        self: &Rc<Self>,
        loc: Loc,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<(String, i32, Option<GroupError>)>, GroupError> {
        let c = self;
        c.ensure_loaded(loc).await?;
        let plan = c.with_group(group_id, |e| {
            let state = e.group.state();
            if state == GroupState::Dead {
                return Err(GroupError::GroupIdNotFound);
            }
            let active = state != GroupState::Empty;
            if active && e.group.protocol_type() != Some("consumer") {
                return Err(GroupError::NonEmptyGroup);
            }
            let subscribed = if active {
                e.group.subscribed_topics()
            } else {
                None
            };
            Ok(partitions
                .into_iter()
                .map(|(t, p)| {
                    let is_subscribed =
                        active && subscribed.as_ref().is_none_or(|s| s.contains(&t));
                    let error = is_subscribed.then_some(GroupError::GroupSubscribedToTopic);
                    let present = e.offsets.contains_key(&(t.clone(), p));
                    (t, p, error, present)
                })
                .collect::<Vec<_>>())
        });
        let plan = plan.ok_or(GroupError::GroupIdNotFound)??;
        let tombstones: Vec<_> = plan
            .iter()
            .filter(|(_, _, error, present)| error.is_none() && *present)
            .map(|(t, p, _, _)| (offset_key(group_id, t, *p), None))
            .collect();
        if !tombstones.is_empty() {
            let base = store::append(&self.partitions, &loc.topic_id, loc.partition, tombstones)
                .await
                .map_err(|e| {
                    tracing::error!(group = group_id, error = %e, "cannot delete offsets");
                    GroupError::CoordinatorNotAvailable
                })?;
            c.with_group(group_id, |e| {
                for (t, p, error, present) in &plan {
                    let key = (t.clone(), *p);
                    if error.is_none()
                        && *present
                        && e.offsets.get(&key).is_some_and(|o| o.log_offset < base)
                    {
                        e.offsets.remove(&key);
                    }
                }
            });
        }
        Ok(plan
            .into_iter()
            .map(|(t, p, error, _)| (t, p, error))
            .collect())
    }
}

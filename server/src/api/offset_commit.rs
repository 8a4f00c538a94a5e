//! OffsetCommit (key 8), versions 2–9. Partitions of unknown topics and oversized
//! metadata are refused here; the rest are validated against the group and written to
//! `__consumer_offsets` on the coordinator shard as one durable batch (metadata kept).
//! v10 (topic ids) is unstable in kafka-protocol 0.18 and not served.

use std::rc::Rc;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use kafka_protocol::ResponseError;

use super::find_coordinator::{group_code, locate};
use crate::group::coordinator::offsets::CommitRequest;
use crate::group::records::OffsetCommitValue;
use crate::partition::now_ms;
use crate::shard::Shard;

/// Kafka's `offset.metadata.max.bytes` default.
pub const OFFSET_METADATA_BYTES_MAX: usize = 4096;

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    req: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let image = shard.cluster.image();
    let now = now_ms();
    let expire = if version <= 4 && req.retention_time_ms >= 0 {
        now + req.retention_time_ms
    } else {
        -1
    };
    // Per partition: an early error, or the value to commit.
    let mut slots: Vec<(usize, i32, Option<i16>)> = Vec::new();
    let mut commits = Vec::new();
    for (t, topic) in req.topics.iter().enumerate() {
        let name = topic.name.0.to_string();
        let found = image.topic(&name);
        for p in &topic.partitions {
            let metadata = p.committed_metadata.as_ref().map(|m| m.to_string());
            let early = match found {
                None => Some(ResponseError::UnknownTopicOrPartition.code()),
                Some(tp)
                    if p.partition_index < 0
                        || p.partition_index as usize >= tp.partitions.len() =>
                {
                    Some(ResponseError::UnknownTopicOrPartition.code())
                }
                _ if metadata
                    .as_ref()
                    .is_some_and(|m| m.len() > OFFSET_METADATA_BYTES_MAX) =>
                {
                    Some(ResponseError::OffsetMetadataTooLarge.code())
                }
                _ => None,
            };
            if early.is_none() {
                commits.push((
                    name.clone(),
                    p.partition_index,
                    OffsetCommitValue {
                        offset: p.committed_offset,
                        leader_epoch: if version >= 6 {
                            p.committed_leader_epoch
                        } else {
                            -1
                        },
                        metadata: metadata.unwrap_or_default(),
                        commit_timestamp_ms: now,
                        expire_timestamp_ms: expire,
                    },
                ));
            }
            slots.push((t, p.partition_index, early));
        }
    }
    let group_id = req.group_id.0.to_string();
    let group_error = if group_id.is_empty() {
        Err(ResponseError::InvalidGroupId.code())
    } else {
        let commit = CommitRequest {
            member_id: req.member_id.to_string(),
            group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
            generation_id: req.generation_id_or_member_epoch,
            version,
            offsets: commits,
        };
        match locate(shard, &group_id).await {
            Err(code) => Err(code),
            Ok((loc, owner)) => shard
                .invoke_on(owner, move |s| async move {
                    s.groups
                        .commit_offsets(loc, &group_id, commit)
                        .await
                        .map_err(group_code)
                })
                .await
                .unwrap_or(Err(ResponseError::CoordinatorNotAvailable.code())),
        }
    };
    let late = group_error.err().unwrap_or(0);
    let mut topics: Vec<OffsetCommitResponseTopic> = req
        .topics
        .iter()
        .map(|t| OffsetCommitResponseTopic::default().with_name(t.name.clone()))
        .collect();
    for (t, partition, early) in slots {
        let code = early.unwrap_or(late);
        super::count_error("OffsetCommit", code);
        topics[t].partitions.push(
            OffsetCommitResponsePartition::default()
                .with_partition_index(partition)
                .with_error_code(code),
        );
    }
    OffsetCommitResponse::default().with_topics(topics)
}

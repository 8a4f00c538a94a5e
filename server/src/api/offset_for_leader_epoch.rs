//! OffsetForLeaderEpoch (key 23), versions 2–4: for each partition, the end offset of
//! the requested leader epoch from the partition's leader-epoch cache. Consumers use
//! it to detect log truncation after a leader change; followers will use it to
//! truncate. The current-epoch check fences stale and too-new callers as Kafka does.

use std::rc::Rc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use crate::partition::Partition;
use crate::shard::Shard;

/// (error code, leader epoch, end offset)
type Answer = (i16, i32, i64);

/// A request partition: (topic position, partition, (topic id, current, epoch) or an error).
type Slot = (usize, i32, Result<(Uuid, i32, i32), i16>);

/// Runs on the partition's owner shard.
fn answer_on_owner(p: &Partition, current: i32, requested: i32) -> Answer {
    if current >= 0 && current < p.leader_epoch() {
        return (ResponseError::FencedLeaderEpoch.code(), -1, -1);
    }
    if current > p.leader_epoch() {
        return (ResponseError::UnknownLeaderEpoch.code(), -1, -1);
    }
    let (epoch, end) = p.end_offset_for_epoch(requested);
    (0, epoch, end)
}

pub async fn handle(
    shard: &Rc<Shard>,
    _version: i16,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let image = shard.cluster.image();
    let mut slots: Vec<Slot> = Vec::new();
    for (t, topic) in req.topics.iter().enumerate() {
        let found = image.topic(topic.topic.0.as_str());
        for p in &topic.partitions {
            let slot = match found {
                Some(tp) if p.partition >= 0 && (p.partition as usize) < tp.partitions.len() => {
                    if shard.cluster.leads(tp, p.partition) {
                        Ok((tp.id, p.current_leader_epoch, p.leader_epoch))
                    } else {
                        Err(ResponseError::NotLeaderOrFollower.code())
                    }
                }
                _ => Err(ResponseError::UnknownTopicOrPartition.code()),
            };
            slots.push((t, p.partition, slot));
        }
    }
    let targets = slots
        .iter()
        .map(|(_, index, s)| s.map(|(id, cur, req)| (id, *index, (cur, req))))
        .collect();
    let answers = super::route::on_owners(shard, targets, |p, (cur, req)| {
        Ok(answer_on_owner(p, cur, req))
    })
    .await;
    let mut topics: Vec<OffsetForLeaderTopicResult> = req
        .topics
        .iter()
        .map(|t| OffsetForLeaderTopicResult::default().with_topic(t.topic.clone()))
        .collect();
    for ((t, index, _), answer) in slots.into_iter().zip(answers) {
        let (code, epoch, end) = answer.unwrap_or_else(|code| (code, -1, -1));
        super::count_error("OffsetForLeaderEpoch", code);
        topics[t].partitions.push(
            EpochEndOffset::default()
                .with_partition(index)
                .with_error_code(code)
                .with_leader_epoch(epoch)
                .with_end_offset(end),
        );
    }
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

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

use crate::shard::Shard;

/// (error code, leader epoch, end offset)
type Answer = (i16, i32, i64);

const UNKNOWN: Answer = (0, -1, -1);

/// A partition to answer on its owner: (slot, topic id, partition, current epoch, epoch).
type Work = (usize, Uuid, i32, i32, i32);

/// A request partition: (topic position, partition, (topic id, current, epoch) or an error).
type Slot = (usize, i32, Result<(Uuid, i32, i32), i16>);

fn answer_on_owner(shard: &Shard, id: Uuid, index: i32, current: i32, requested: i32) -> Answer {
    let p = match shard.partition(&id, index) {
        Ok(Some(p)) => p,
        Ok(None) => return (ResponseError::UnknownTopicOrPartition.code(), -1, -1),
        Err(_) => return (ResponseError::KafkaStorageError.code(), -1, -1),
    };
    if current >= 0 && current < p.leader_epoch {
        return (ResponseError::FencedLeaderEpoch.code(), -1, -1);
    }
    if current > p.leader_epoch {
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
    let image = shard.image();
    let mut slots: Vec<Slot> = Vec::new();
    for (t, topic) in req.topics.iter().enumerate() {
        let found = image.topic(topic.topic.0.as_str());
        for p in &topic.partitions {
            let slot = match found {
                Some(tp) if p.partition >= 0 && (p.partition as usize) < tp.partitions.len() => {
                    if shard.leads(tp, p.partition) {
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
    let work: Vec<(usize, Work)> = slots
        .iter()
        .enumerate()
        .filter_map(|(i, (_, index, s))| {
            s.as_ref()
                .ok()
                .map(|&(id, cur, req)| (shard.owner(&id, *index), (i, id, *index, cur, req)))
        })
        .collect();
    let results = shard
        .scatter(
            work,
            |s: Rc<Shard>, (i, id, index, cur, req): Work| async move {
                (i, answer_on_owner(&s, id, index, cur, req))
            },
            || {
                (
                    usize::MAX,
                    (ResponseError::NotLeaderOrFollower.code(), -1, -1),
                )
            },
        )
        .await;
    let mut answers: Vec<Option<Answer>> = vec![None; slots.len()];
    for (i, a) in results {
        if let Some(slot) = answers.get_mut(i) {
            *slot = Some(a);
        }
    }
    let mut topics: Vec<OffsetForLeaderTopicResult> = req
        .topics
        .iter()
        .map(|t| OffsetForLeaderTopicResult::default().with_topic(t.topic.clone()))
        .collect();
    for ((t, index, slot), answer) in slots.into_iter().zip(answers) {
        let (code, epoch, end) = match slot {
            Err(code) => (code, -1, -1),
            Ok(_) => answer.unwrap_or(UNKNOWN),
        };
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

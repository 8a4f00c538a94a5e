//! DescribeProducers (key 61), version 0: the idempotent producers each partition's
//! producer-state table knows, read on the owning shard. No transactions yet, so
//! `coordinator_epoch` and `current_txn_start_offset` are always -1.

use std::rc::Rc;

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use crate::partition::producer_state::ProducerSummary;
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    _version: i16,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let image = shard.image();
    let mut topics: Vec<TopicResponse> = Vec::with_capacity(req.topics.len());
    let mut work = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        let found = image.topic(t.name.0.as_str());
        let mut result = TopicResponse::default().with_name(t.name.clone());
        for (pi, &index) in t.partition_indexes.iter().enumerate() {
            let mut r = PartitionResponse::default().with_partition_index(index);
            match found {
                Some(topic) if index >= 0 && (index as usize) < topic.partitions.len() => {
                    work.push((shard.owner(&topic.id, index), (ti, pi, topic.id, index)));
                }
                _ => r.error_code = ResponseError::UnknownTopicOrPartition.code(),
            }
            result.partitions.push(r);
        }
        topics.push(result);
    }
    let done = shard
        .scatter(
            work,
            |s: Rc<Shard>, (ti, pi, id, index): (usize, usize, Uuid, i32)| async move {
                let outcome = match s.partition(&id, index) {
                    Ok(Some(p)) => Ok(p.producers()),
                    Ok(None) => Err(ResponseError::UnknownTopicOrPartition.code()),
                    Err(_) => Err(ResponseError::KafkaStorageError.code()),
                };
                (ti, pi, outcome)
            },
            || {
                (
                    usize::MAX,
                    0,
                    Err(ResponseError::NotLeaderOrFollower.code()),
                )
            },
        )
        .await;
    for (ti, pi, outcome) in done {
        let Some(r) = topics.get_mut(ti).and_then(|t| t.partitions.get_mut(pi)) else {
            continue;
        };
        match outcome {
            Ok(producers) => r.active_producers = producers.into_iter().map(state).collect(),
            Err(code) => r.error_code = code,
        }
        super::count_error("DescribeProducers", r.error_code);
    }
    DescribeProducersResponse::default().with_topics(topics)
}

fn state(p: ProducerSummary) -> ProducerState {
    ProducerState::default()
        .with_producer_id(ProducerId(p.producer_id))
        .with_producer_epoch(p.epoch as i32)
        .with_last_sequence(p.last_sequence)
        .with_last_timestamp(p.last_timestamp)
        .with_coordinator_epoch(-1)
        .with_current_txn_start_offset(-1)
}

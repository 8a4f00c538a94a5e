//! DescribeProducers (key 61), version 0: the idempotent producers each partition's
//! producer-state table knows, read on the owning shard. No transactions yet, so
//! `coordinator_epoch` and `current_txn_start_offset` are always -1.

use std::rc::Rc;

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use kafka_protocol::ResponseError;

use crate::partition::producer_state::ProducerSummary;
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    _version: i16,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let image = shard.cluster.image();
    let mut targets = Vec::new();
    for t in &req.topics {
        let found = image.topic(t.name.0.as_str());
        for &index in &t.partition_indexes {
            targets.push(match found {
                Some(topic) if index >= 0 && (index as usize) < topic.partitions.len() => {
                    Ok((topic.id, index, ()))
                }
                _ => Err(ResponseError::UnknownTopicOrPartition.code()),
            });
        }
    }
    let mut answers = super::route::on_owners(shard, targets, |p, ()| Ok(p.producers()))
        .await
        .into_iter();
    let mut topics: Vec<TopicResponse> = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let mut result = TopicResponse::default().with_name(t.name.clone());
        for (&index, answer) in t.partition_indexes.iter().zip(answers.by_ref()) {
            let mut r = PartitionResponse::default().with_partition_index(index);
            match answer {
                Ok(producers) => r.active_producers = producers.into_iter().map(state).collect(),
                Err(code) => r.error_code = code,
            }
            super::count_error("DescribeProducers", r.error_code);
            result.partitions.push(r);
        }
        topics.push(result);
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

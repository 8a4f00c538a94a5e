//! ListPartitionReassignments (key 46), version 0: the partitions being reassigned,
//! with their replicas (targets first, then the replicas being removed) and the
//! replicas being added and removed. Null topics lists every reassignment; topics or
//! partitions that do not exist, or are not moving, are left out, as Kafka does.

use std::rc::Rc;

use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::metadata::ids;
use crate::metadata::{ClusterImage, TopicImage};
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    _version: i16,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let image = shard.cluster.image();
    ListPartitionReassignmentsResponse::default().with_topics(ongoing(&image, &req))
}

/// The reassignments in progress that the request asks about. Pure.
fn ongoing(
    image: &ClusterImage,
    req: &ListPartitionReassignmentsRequest,
) -> Vec<OngoingTopicReassignment> {
    let wanted: Vec<(&TopicImage, Vec<i32>)> = match &req.topics {
        None => image
            .topics
            .values()
            .map(|t| (t.as_ref(), (0..t.partitions.len() as i32).collect()))
            .collect(),
        Some(topics) => topics
            .iter()
            .filter_map(|t| {
                image
                    .topic(&t.name)
                    .map(|img| (img.as_ref(), t.partition_indexes.clone()))
            })
            .collect(),
    };
    wanted
        .into_iter()
        .filter_map(|(topic, indexes)| {
            let partitions: Vec<OngoingPartitionReassignment> = indexes
                .into_iter()
                .filter_map(|i| {
                    let p = topic.partitions.get(usize::try_from(i).ok()?)?;
                    p.is_reassigning().then(|| {
                        OngoingPartitionReassignment::default()
                            .with_partition_index(i)
                            .with_replicas(ids(&p.replicas))
                            .with_adding_replicas(ids(&p.adding))
                            .with_removing_replicas(ids(&p.removing))
                    })
                })
                .collect();
            (!partitions.is_empty()).then(|| {
                OngoingTopicReassignment::default()
                    .with_name(TopicName(StrBytes::from_string(topic.name.clone())))
                    .with_partitions(partitions)
            })
        })
        .collect()
}

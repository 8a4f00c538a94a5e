//! Metadata (key 3), versions 0–13: brokers, topics and partition leaders, with
//! auto topic creation when allowed by the request and `auto.create.topics.enable`.
//! Only live (registered, unfenced) brokers are listed; a partition whose leader is
//! fenced has leader -1 and LEADER_NOT_AVAILABLE, so clients wait and retry. The
//! controller is the Raft leader.

use std::rc::Rc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::create_topics::{auto_create, topic_error_code};
use crate::metadata::{ClusterImage, PartitionImage, TopicImage};
use crate::shard::Shard;

pub async fn handle(shard: &Rc<Shard>, version: i16, req: MetadataRequest) -> MetadataResponse {
    // v0: an empty list means all topics; v1+: null means all topics.
    let all = match &req.topics {
        None => true,
        Some(t) => version == 0 && t.is_empty(),
    };
    let auto_create_allowed =
        (version < 4 || req.allow_auto_topic_creation) && shard.config.auto_create_topics_enable;
    let mut topics = Vec::new();
    if all {
        let image = shard.cluster.image();
        topics.extend(image.topics.values().map(|t| topic_response(&image, t)));
    } else {
        for wanted in req.topics.unwrap_or_default() {
            let image = shard.cluster.image();
            let found = match &wanted.name {
                Some(name) => image.topic(name.0.as_str()).cloned(),
                None => image.topic_by_id(&wanted.topic_id).cloned(),
            };
            let response = match (found, wanted.name) {
                (Some(t), _) => topic_response(&image, &t),
                (None, Some(name)) if auto_create_allowed && !name.0.starts_with("__") => {
                    match auto_create(shard, name.0.as_str()).await {
                        Ok(t) => topic_response(&shard.cluster.image(), &t),
                        Err(e) => error_topic(Some(name), topic_error_code(&e)),
                    }
                }
                (None, Some(name)) => {
                    error_topic(Some(name), ResponseError::UnknownTopicOrPartition.code())
                }
                (None, None) => error_topic(None, ResponseError::UnknownTopicId.code())
                    .with_topic_id(wanted.topic_id),
            };
            super::count_error("Metadata", response.error_code);
            topics.push(response);
        }
    }
    let image = shard.cluster.image();
    let brokers = image
        .live_brokers()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(b.host.clone()))
                .with_port(b.port as i32)
                .with_rack(b.rack.clone().map(StrBytes::from_string))
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(shard.config.cluster_id.clone())))
        .with_controller_id(BrokerId(shard.metadata.controller_id().unwrap_or(-1)))
        .with_topics(topics)
}

fn error_topic(name: Option<TopicName>, code: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name)
        .with_error_code(code)
}

/// A partition as clients are shown it (Metadata, DescribeTopicPartitions): a leader
/// that is not live is -1 with LEADER_NOT_AVAILABLE; replicas not live are offline.
pub(super) struct PartitionState {
    pub leader: i32,
    pub error: i16,
    pub offline: Vec<i32>,
}

impl PartitionState {
    pub fn of(image: &ClusterImage, p: &PartitionImage) -> PartitionState {
        let (leader, error) = if image.is_live(p.leader) {
            (p.leader, 0)
        } else {
            (-1, ResponseError::LeaderNotAvailable.code())
        };
        let offline = p
            .replicas
            .iter()
            .copied()
            .filter(|r| !image.is_live(*r))
            .collect();
        PartitionState {
            leader,
            error,
            offline,
        }
    }
}

/// Broker ids as the protocol carries them.
pub(super) fn ids(v: &[i32]) -> Vec<BrokerId> {
    v.iter().copied().map(BrokerId).collect()
}

fn topic_response(image: &ClusterImage, t: &TopicImage) -> MetadataResponseTopic {
    let partitions = t
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let s = PartitionState::of(image, p);
            MetadataResponsePartition::default()
                .with_partition_index(i as i32)
                .with_error_code(s.error)
                .with_leader_id(BrokerId(s.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(ids(&p.replicas))
                .with_isr_nodes(ids(&p.isr))
                .with_offline_replicas(ids(&s.offline))
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
        .with_topic_id(t.id)
        .with_is_internal(t.is_internal())
        .with_partitions(partitions)
}

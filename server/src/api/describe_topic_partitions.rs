//! DescribeTopicPartitions (key 75), version 0 (KIP-966): topics and their partitions
//! as Metadata shows them, plus eligible leader replicas, in name order and paged.
//! An empty topic list means every topic. At most `response_partition_limit`
//! partitions are answered (capped by `max.request.partition.size.limit`); where the
//! answer stops early, `next_cursor` names the first partition left out, and a request
//! with that cursor goes on from there. Each partition lists its eligible leader
//! replicas and last known leader as the controller keeps them (empty when none), and,
//! as Kafka's KRaft metadata cache answers, its error code stays 0 even while it has
//! no leader (`leader_id` -1, the replicas that are down in `offline_replicas`).

use std::rc::Rc;

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::metadata::{ids, PartitionState};
use crate::metadata::{ClusterImage, TopicImage};
use crate::shard::Shard;

/// Kafka's bitfield of every topic operation (READ, WRITE, CREATE, DELETE, ALTER,
/// DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS): without an authorizer, every
/// operation is allowed.
const ALL_TOPIC_OPERATIONS: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);

pub async fn handle(
    shard: &Rc<Shard>,
    _version: i16,
    req: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let image = shard.cluster.image();
    let limit = req
        .response_partition_limit
        .min(shard.config.max_request_partition_size_limit)
        .max(1) as usize;
    describe(&image, &req, limit)
}

/// The answer to `req` under `image`, at most `limit` partitions. Pure.
fn describe(
    image: &ClusterImage,
    req: &DescribeTopicPartitionsRequest,
    limit: usize,
) -> DescribeTopicPartitionsResponse {
    let mut names: Vec<String> = if req.topics.is_empty() {
        image.topics.keys().cloned().collect()
    } else {
        req.topics.iter().map(|t| t.name.to_string()).collect()
    };
    names.sort();
    names.dedup();
    let mut resp = DescribeTopicPartitionsResponse::default();
    let start = match &req.cursor {
        Some(c) => {
            if !names.iter().any(|n| n == c.topic_name.as_str()) || c.partition_index < 0 {
                // Kafka: the cursor's topic must be one of those asked for.
                return resp.with_topics(vec![DescribeTopicPartitionsResponseTopic::default()
                    .with_name(Some(c.topic_name.clone()))
                    .with_error_code(ResponseError::InvalidRequest.code())]);
            }
            Some((c.topic_name.to_string(), c.partition_index))
        }
        None => None,
    };
    let mut left = limit;
    for name in names {
        let first = match &start {
            Some((t, p)) if name < *t => continue,
            Some((t, p)) if name == *t => *p as usize,
            _ => 0,
        };
        let Some(topic) = image.topic(&name) else {
            super::count_error(
                "DescribeTopicPartitions",
                ResponseError::UnknownTopicOrPartition.code(),
            );
            resp.topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_string(name))))
                    .with_error_code(ResponseError::UnknownTopicOrPartition.code()),
            );
            continue;
        };
        if left == 0 {
            resp.next_cursor = Some(
                Cursor::default()
                    .with_topic_name(TopicName(StrBytes::from_string(name)))
                    .with_partition_index(first as i32),
            );
            break;
        }
        let end = topic.partitions.len().min(first + left);
        resp.topics.push(topic_response(image, topic, first, end));
        left -= end.saturating_sub(first);
        if end < topic.partitions.len() {
            resp.next_cursor = Some(
                Cursor::default()
                    .with_topic_name(TopicName(StrBytes::from_string(name)))
                    .with_partition_index(end as i32),
            );
            break;
        }
    }
    resp
}

fn topic_response(
    image: &ClusterImage,
    t: &TopicImage,
    first: usize,
    end: usize,
) -> DescribeTopicPartitionsResponseTopic {
    let partitions = t
        .partitions
        .iter()
        .enumerate()
        .take(end)
        .skip(first)
        .map(|(i, p)| {
            let s = PartitionState::of(image, p);
            DescribeTopicPartitionsResponsePartition::default()
                .with_partition_index(i as i32)
                .with_leader_id(BrokerId(s.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(ids(&p.replicas))
                .with_isr_nodes(ids(&p.isr))
                .with_eligible_leader_replicas(Some(ids(&p.elr)))
                .with_last_known_elr(Some(ids(&p.last_known_elr)))
                .with_offline_replicas(ids(&s.offline))
        })
        .collect();
    DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
        .with_topic_id(t.id)
        .with_is_internal(t.is_internal())
        .with_partitions(partitions)
        .with_topic_authorized_operations(ALL_TOPIC_OPERATIONS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{BrokerInfo, Command};
    use kafka_protocol::messages::describe_topic_partitions_request::{
        Cursor as AskCursor, TopicRequest,
    };

    fn image() -> ClusterImage {
        let mut image = ClusterImage::default();
        let mut i = 0;
        let mut apply = |image: &mut ClusterImage, cmd: Command| {
            i += 1;
            image.apply(i, &cmd).expect("applies");
        };
        apply(
            &mut image,
            Command::RegisterBroker(BrokerInfo {
                id: 1,
                host: "h".into(),
                port: 1,
                rack: None,
            }),
        );
        for (name, n) in [("b", 3), ("a", 2)] {
            apply(
                &mut image,
                Command::CreateTopic {
                    name: name.into(),
                    id: uuid::Uuid::from_u128(n),
                    partitions: vec![vec![1, 2]; n as usize],
                    configs: Default::default(),
                },
            );
        }
        image
    }

    fn names(r: &DescribeTopicPartitionsResponse) -> Vec<(String, Vec<i32>)> {
        r.topics
            .iter()
            .map(|t| {
                (
                    t.name.as_ref().map(|n| n.to_string()).unwrap_or_default(),
                    t.partitions.iter().map(|p| p.partition_index).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn pages_through_every_topic_in_name_order() {
        let image = image();
        let req = DescribeTopicPartitionsRequest::default();
        let r = describe(&image, &req, 3);
        assert_eq!(
            names(&r),
            [("a".to_string(), vec![0, 1]), ("b".to_string(), vec![0])]
        );
        let c = r.next_cursor.expect("more");
        assert_eq!((c.topic_name.as_str(), c.partition_index), ("b", 1));
        let next = req.with_cursor(Some(
            AskCursor::default()
                .with_topic_name(c.topic_name)
                .with_partition_index(c.partition_index),
        ));
        let r = describe(&image, &next, 3);
        assert_eq!(names(&r), [("b".to_string(), vec![1, 2])]);
        assert!(r.next_cursor.is_none());
        let p = &r.topics[0].partitions[0];
        assert_eq!(
            p.offline_replicas,
            vec![BrokerId(2)],
            "broker 2 never registered"
        );
        assert_eq!(p.eligible_leader_replicas, Some(vec![]));
    }

    #[test]
    fn unknown_topics_and_bad_cursors() {
        let image = image();
        let ask =
            |n: &str| TopicRequest::default().with_name(TopicName(StrBytes::from_string(n.into())));
        let req = DescribeTopicPartitionsRequest::default().with_topics(vec![ask("zz"), ask("a")]);
        let r = describe(&image, &req, 100);
        assert_eq!(r.topics[1].error_code, 3);
        assert_eq!(r.topics[0].partitions.len(), 2);
        let bad = req.with_cursor(Some(
            AskCursor::default().with_topic_name(TopicName(StrBytes::from_static_str("b"))),
        ));
        assert_eq!(describe(&image, &bad, 100).topics[0].error_code, 42);
    }
}

//! DescribeQuorum (key 55), versions 0–2: the metadata quorum as its Raft leader
//! sees it, for `kafka-metadata-quorum --bootstrap-server … describe --status |
//! --replication`. As a Kafka broker forwards this request to the active
//! controller, any node asks the Raft leader (over the controller listener) and
//! relays its answer.
//!
//! As Kafka's Raft client answers: a request that is not exactly
//! `__cluster_metadata` partition 0 gets UNKNOWN_TOPIC_OR_PARTITION for each
//! partition asked; while no leader answers, the partition gets
//! NOT_LEADER_OR_FOLLOWER. Every voter is listed, the leader among them; v1 adds each
//! member's last fetch and last caught-up wall-clock times; v2 adds the voters'
//! controller endpoints (`Nodes`) under the CONTROLLER listener's name. Fjord keeps
//! no directory ids: `ReplicaDirectoryId` is zero, as Kafka sends when unknown.

use std::rc::Rc;

use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::metadata::{QuorumStatus, ReplicaStatus};
use crate::shard::Shard;

/// The one topic partition DescribeQuorum describes.
const METADATA_TOPIC: &str = "__cluster_metadata";

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    req: DescribeQuorumRequest,
) -> DescribeQuorumResponse {
    let asks_metadata_log = matches!(req.topics.as_slice(), [t]
        if t.topic_name.as_str() == METADATA_TOPIC
            && matches!(t.partitions.as_slice(), [p] if p.partition_index == 0));
    if !asks_metadata_log {
        return partition_errors(&req, ResponseError::UnknownTopicOrPartition);
    }
    let Some(status) = shard.metadata.describe_quorum().await else {
        return partition_errors(&req, ResponseError::NotLeaderOrFollower);
    };
    let listener = shard
        .config
        .controller_listener()
        .map_or_else(|| "CONTROLLER".to_string(), |l| l.name.to_uppercase());
    answer(version, &status, &listener)
}

/// The response for `status`; `listener` names the voters' endpoints (v2). Pure.
pub fn answer(version: i16, status: &QuorumStatus, listener: &str) -> DescribeQuorumResponse {
    let replica = |r: &ReplicaStatus| {
        ReplicaState::default()
            .with_replica_id(BrokerId(node_id(r.id)))
            .with_log_end_offset(r.log_end.map_or(-1, |e| e as i64))
            .with_last_fetch_timestamp(r.last_fetch_ms.unwrap_or(-1))
            .with_last_caught_up_timestamp(r.last_caught_up_ms.unwrap_or(-1))
    };
    let partition = PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(node_id(status.leader)))
        .with_leader_epoch(status.term.min(i32::MAX as u64) as i32)
        .with_high_watermark(status.high_watermark as i64)
        .with_current_voters(status.voters.iter().map(replica).collect())
        .with_observers(status.observers.iter().map(replica).collect());
    let mut resp = DescribeQuorumResponse::default().with_topics(vec![TopicData::default()
        .with_topic_name(StrBytes::from_static_str(METADATA_TOPIC).into())
        .with_partitions(vec![partition])]);
    if version >= 2 {
        resp.nodes = status
            .voters
            .iter()
            .map(|v| {
                let listeners = v
                    .addr
                    .rsplit_once(':')
                    .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
                    .map(|(host, port)| {
                        Listener::default()
                            .with_name(StrBytes::from_string(listener.to_string()))
                            .with_host(StrBytes::from_string(host.to_string()))
                            .with_port(port)
                    });
                Node::default()
                    .with_node_id(BrokerId(node_id(v.id)))
                    .with_listeners(listeners.into_iter().collect())
            })
            .collect();
    }
    resp
}

/// `code` on every partition asked, as Kafka's `getPartitionLevelErrorResponse`.
fn partition_errors(req: &DescribeQuorumRequest, code: ResponseError) -> DescribeQuorumResponse {
    super::count_error("DescribeQuorum", code.code());
    DescribeQuorumResponse::default().with_topics(
        req.topics
            .iter()
            .map(|t| {
                TopicData::default()
                    .with_topic_name(t.topic_name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                PartitionData::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code.code())
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

fn node_id(id: u64) -> i32 {
    id.min(i32::MAX as u64) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> QuorumStatus {
        let row = |id, addr: &str, end| ReplicaStatus {
            id,
            addr: addr.into(),
            log_end: end,
            last_fetch_ms: Some(1_000),
            last_caught_up_ms: Some(900),
        };
        QuorumStatus {
            leader: 2,
            term: 7,
            high_watermark: 41,
            voters: vec![
                row(1, "127.0.0.1:9093", Some(40)),
                row(2, "127.0.0.2:9093", Some(42)),
                row(3, "", None),
            ],
            observers: vec![],
        }
    }

    #[test]
    fn lists_every_voter_with_the_leader_and_its_endpoints() {
        let r = answer(2, &status(), "CONTROLLER");
        let p = &r.topics[0].partitions[0];
        assert_eq!(
            (p.leader_id.0, p.leader_epoch, p.high_watermark),
            (2, 7, 41)
        );
        let ends: Vec<_> = p
            .current_voters
            .iter()
            .map(|v| (v.replica_id.0, v.log_end_offset))
            .collect();
        assert_eq!(ends, vec![(1, 40), (2, 42), (3, -1)]);
        assert_eq!(r.nodes.len(), 3);
        let l = &r.nodes[1].listeners[0];
        assert_eq!(
            (l.name.as_str(), l.host.as_str(), l.port),
            ("CONTROLLER", "127.0.0.2", 9093)
        );
        assert!(r.nodes[2].listeners.is_empty());
    }

    #[test]
    fn every_version_encodes() {
        use kafka_protocol::protocol::Encodable;
        for v in 0..=2 {
            let mut buf = bytes::BytesMut::new();
            answer(v, &status(), "CONTROLLER")
                .encode(&mut buf, v)
                .unwrap_or_else(|e| panic!("v{v}: {e}"));
        }
    }
}

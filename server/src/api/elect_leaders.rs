//! ElectLeaders (key 43), versions 0–2. With one replica per partition the leader is
//! always the preferred replica and the only one, so no election is ever needed: every
//! existing partition gets ELECTION_NOT_NEEDED (for both PREFERRED and UNCLEAN), as a
//! single-node Kafka answers; null topic partitions means every partition.

use std::rc::Rc;

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::metadata::{ClusterImage, PartitionImage};
use crate::shard::Shard;

const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    req: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let election = if version >= 1 {
        req.election_type
    } else {
        PREFERRED
    };
    let image = shard.cluster.image();
    let mut resp = ElectLeadersResponse::default();
    if election != PREFERRED && election != UNCLEAN {
        resp.error_code = ResponseError::InvalidRequest.code();
        super::count_error("ElectLeaders", resp.error_code);
        return resp;
    }
    let wanted: Vec<(String, Vec<i32>)> = match &req.topic_partitions {
        Some(tps) => tps
            .iter()
            .map(|t| (t.topic.0.to_string(), t.partitions.clone()))
            .collect(),
        None => image
            .topics
            .values()
            .map(|t| (t.name.clone(), (0..t.partitions.len() as i32).collect()))
            .collect(),
    };
    resp.replica_election_results = wanted
        .into_iter()
        .map(|(topic, partitions)| {
            let partition_result = partitions
                .into_iter()
                .map(|p| {
                    let (code, message) = elect(&image, &topic, p, election);
                    super::count_error("ElectLeaders", code);
                    PartitionResult::default()
                        .with_partition_id(p)
                        .with_error_code(code)
                        .with_error_message(Some(StrBytes::from_string(message)))
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(TopicName(StrBytes::from_string(topic)))
                .with_partition_result(partition_result)
        })
        .collect();
    resp
}

/// The outcome for one partition. Pure.
fn elect(image: &ClusterImage, topic: &str, index: i32, election: i8) -> (i16, String) {
    let Some(t) = image.topic(topic) else {
        return (
            ResponseError::UnknownTopicOrPartition.code(),
            format!("No such topic as {topic}"),
        );
    };
    let Some(p) = usize::try_from(index)
        .ok()
        .and_then(|i| t.partitions.get(i))
    else {
        return (
            ResponseError::UnknownTopicOrPartition.code(),
            format!("No such partition as {topic}-{index}"),
        );
    };
    if needs_election(p, election) {
        // Unreachable with one replica per partition; kept honest should RF > 1 arrive
        // before elections do.
        return (
            ResponseError::PreferredLeaderNotAvailable.code(),
            "Fjord does not elect leaders yet".to_string(),
        );
    }
    (
        ResponseError::ElectionNotNeeded.code(),
        "Leader election not needed for topic partition.".to_string(),
    )
}

fn needs_election(p: &PartitionImage, election: i8) -> bool {
    match election {
        PREFERRED => p.replicas.first() != Some(&p.leader),
        _ => p.leader < 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::Command;

    #[test]
    fn single_replica_partitions_need_no_election() {
        let mut img = ClusterImage::default();
        let create = Command::CreateTopic {
            name: "t".into(),
            id: uuid::Uuid::from_u128(3),
            partitions: vec![vec![1]],
            configs: Default::default(),
        };
        img.apply(1, &create).expect("topic");
        assert_eq!(elect(&img, "t", 0, PREFERRED).0, 84);
        assert_eq!(elect(&img, "t", 0, UNCLEAN).0, 84);
        assert_eq!(
            elect(&img, "t", 1, PREFERRED),
            (3, "No such partition as t-1".into())
        );
        assert_eq!(
            elect(&img, "x", 0, PREFERRED),
            (3, "No such topic as x".into())
        );
    }
}

//! ElectLeaders (key 43), versions 0–2: preferred elections (the first replica leads
//! again if it is live and in sync) and unclean ones (a partition without a live
//! leader takes any live replica), run by the controller as one command; null topic
//! partitions means every partition. ELECTION_NOT_NEEDED where nothing changes, as
//! Kafka answers.

use std::rc::Rc;

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::metadata::partition_change::ElectionOutcome;
use crate::metadata::{Applied, ClusterImage, Command};
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
    // Known partitions go to the controller in one command; the rest are answered here.
    let mut asked: Vec<(uuid::Uuid, i32)> = Vec::new();
    let mut slots: Vec<(String, Vec<(i32, Slot)>)> = Vec::new();
    for (topic, partitions) in wanted {
        let results = partitions
            .into_iter()
            .map(|p| {
                let slot = match locate(&image, &topic, p) {
                    Ok(id) => {
                        asked.push((id, p));
                        Ok(asked.len() - 1)
                    }
                    Err(e) => Err(e),
                };
                (p, slot)
            })
            .collect();
        slots.push((topic, results));
    }
    let outcomes = if asked.is_empty() {
        Ok(Vec::new())
    } else {
        let cmd = Command::ElectLeaders {
            unclean: election == UNCLEAN,
            partitions: asked,
        };
        match shard.metadata.propose(cmd).await {
            Ok((Applied::Elections(o), image)) => {
                shard.cluster.update_image(image);
                Ok(o)
            }
            Ok(_) => Err("the controller answered something else".to_string()),
            Err(e) => Err(e.to_string()),
        }
    };
    resp.replica_election_results = slots
        .into_iter()
        .map(|(topic, results)| {
            let partition_result = results
                .into_iter()
                .map(|(p, slot)| {
                    let (code, message) = match slot {
                        Err(e) => e,
                        Ok(i) => match &outcomes {
                            Ok(o) => outcome_code(o.get(i).copied(), election),
                            Err(m) => (ResponseError::NotController.code(), m.clone()),
                        },
                    };
                    super::count_error("ElectLeaders", code);
                    PartitionResult::default()
                        .with_partition_id(p)
                        .with_error_code(code)
                        .with_error_message((code != 0).then(|| StrBytes::from_string(message)))
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(TopicName(StrBytes::from_string(topic)))
                .with_partition_result(partition_result)
        })
        .collect();
    resp
}

/// A request partition: its position in the command, or its error.
type Slot = Result<usize, (i16, String)>;

/// The topic id of an existing partition, or its error. Pure.
pub(super) fn locate(
    image: &ClusterImage,
    topic: &str,
    index: i32,
) -> Result<uuid::Uuid, (i16, String)> {
    let Some(t) = image.topic(topic) else {
        return Err((
            ResponseError::UnknownTopicOrPartition.code(),
            format!("No such topic as {topic}"),
        ));
    };
    if index < 0 || index as usize >= t.partitions.len() {
        return Err((
            ResponseError::UnknownTopicOrPartition.code(),
            format!("No such partition as {topic}-{index}"),
        ));
    }
    Ok(t.id)
}

/// Kafka's code and message for one election's outcome.
fn outcome_code(o: Option<ElectionOutcome>, election: i8) -> (i16, String) {
    match o {
        Some(ElectionOutcome::Elected) => (0, String::new()),
        Some(ElectionOutcome::NotNeeded) => (
            ResponseError::ElectionNotNeeded.code(),
            "Leader election not needed for topic partition.".to_string(),
        ),
        Some(ElectionOutcome::NotAvailable) if election == PREFERRED => (
            ResponseError::PreferredLeaderNotAvailable.code(),
            "The preferred leader is not live or not in sync.".to_string(),
        ),
        Some(ElectionOutcome::NotAvailable) => (
            ResponseError::EligibleLeadersNotAvailable.code(),
            "No replica of the partition is live.".to_string(),
        ),
        Some(ElectionOutcome::UnknownPartition) | None => (
            ResponseError::UnknownTopicOrPartition.code(),
            "No such partition.".to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_map_to_kafka_codes() {
        let code = |o, e| outcome_code(Some(o), e).0;
        assert_eq!(code(ElectionOutcome::Elected, PREFERRED), 0);
        assert_eq!(code(ElectionOutcome::NotNeeded, UNCLEAN), 84);
        assert_eq!(code(ElectionOutcome::NotAvailable, PREFERRED), 80);
        assert_eq!(code(ElectionOutcome::NotAvailable, UNCLEAN), 83);
        let img = ClusterImage::default();
        assert_eq!(locate(&img, "x", 0), Err((3, "No such topic as x".into())));
    }
}

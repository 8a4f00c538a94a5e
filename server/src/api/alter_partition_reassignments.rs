//! AlterPartitionReassignments (key 45), versions 0–1: moves partitions to new
//! replica sets, or cancels moves in progress (null replicas), run by the controller
//! as one command (`metadata::reassignment` has the rules). The replicas being added
//! catch up by fetching from the leader and join the ISR; when every target is in
//! sync the partition keeps only its targets. Version 1 (KIP-860) refuses a change of
//! the replication factor unless the request allows it.

use std::rc::Rc;

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::metadata::reassignment::ReassignError;
use crate::metadata::{Applied, Command};
use crate::shard::Shard;

/// A request partition: its position in the command, or its error.
type Slot = Result<usize, (i16, String)>;

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let image = shard.cluster.image();
    let allow_rf_change = version < 1 || req.allow_replication_factor_change;
    let mut asked: Vec<(uuid::Uuid, i32, Option<Vec<i32>>)> = Vec::new();
    let mut slots: Vec<(kafka_protocol::messages::TopicName, Vec<(i32, Slot)>)> = Vec::new();
    for topic in &req.topics {
        let results = topic
            .partitions
            .iter()
            .map(|p| {
                let target: Option<Vec<i32>> =
                    p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect());
                let slot = super::elect_leaders::locate(&image, &topic.name, p.partition_index)
                    .and_then(|id| {
                        let current = &image.topic_by_id(&id).expect("located").partitions
                            [p.partition_index as usize];
                        match &target {
                            Some(t)
                                if !allow_rf_change
                                    && t.len() != current.original_replicas().len() =>
                            {
                                Err((
                                    ResponseError::InvalidReplicationFactor.code(),
                                    format!(
                                        "The replication factor is changed from {} to {} but \
                                         allowReplicationFactorChange is false",
                                        current.original_replicas().len(),
                                        t.len()
                                    ),
                                ))
                            }
                            _ => Ok(id),
                        }
                    })
                    .map(|id| {
                        asked.push((id, p.partition_index, target));
                        asked.len() - 1
                    });
                (p.partition_index, slot)
            })
            .collect();
        slots.push((topic.name.clone(), results));
    }
    let outcomes = if asked.is_empty() {
        Ok(Vec::new())
    } else {
        match shard
            .metadata
            .propose(Command::AlterReassignments { partitions: asked })
            .await
        {
            Ok((Applied::Reassignments(o), image)) => {
                shard.cluster.update_image(image);
                Ok(o)
            }
            Ok(_) => Err("the controller answered something else".to_string()),
            Err(e) => Err(e.to_string()),
        }
    };
    let mut resp = AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(allow_rf_change);
    resp.responses = slots
        .into_iter()
        .map(|(name, results)| {
            let partitions = results
                .into_iter()
                .map(|(index, slot)| {
                    let (code, message) = match slot {
                        Err(e) => e,
                        Ok(i) => match &outcomes {
                            Ok(o) => outcome_code(o.get(i)),
                            Err(m) => (ResponseError::NotController.code(), m.clone()),
                        },
                    };
                    super::count_error("AlterPartitionReassignments", code);
                    ReassignablePartitionResponse::default()
                        .with_partition_index(index)
                        .with_error_code(code)
                        .with_error_message((code != 0).then(|| StrBytes::from_string(message)))
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(name)
                .with_partitions(partitions)
        })
        .collect();
    resp
}

/// Kafka's code and message for one partition's outcome.
fn outcome_code(o: Option<&Result<(), ReassignError>>) -> (i16, String) {
    match o {
        Some(Ok(())) => (0, String::new()),
        Some(Err(ReassignError::InvalidAssignment(m))) => {
            (ResponseError::InvalidReplicaAssignment.code(), m.clone())
        }
        Some(Err(ReassignError::NoReassignmentInProgress)) => (
            ResponseError::NoReassignmentInProgress.code(),
            "No ongoing reassignment for the partition.".to_string(),
        ),
        Some(Err(ReassignError::UnknownPartition)) | None => (
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
        assert_eq!(outcome_code(Some(&Ok(()))).0, 0);
        assert_eq!(
            outcome_code(Some(&Err(ReassignError::InvalidAssignment("x".into())))),
            (39, "x".to_string())
        );
        assert_eq!(
            outcome_code(Some(&Err(ReassignError::NoReassignmentInProgress))).0,
            85
        );
        assert_eq!(outcome_code(None).0, 3);
    }
}

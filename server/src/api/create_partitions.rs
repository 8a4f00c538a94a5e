//! CreatePartitions (key 37), versions 0–3: grows a topic. New partitions are placed
//! like a new topic's (`topics::place_replicas`) unless the request assigns them, and
//! are added by a `CreatePartitions` metadata command; every shard opens the ones it
//! owns when the image arrives. Errors and messages are Kafka's (KRaft controller).

use std::collections::HashSet;
use std::rc::Rc;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::metadata::topics::place_replicas;
use crate::metadata::{ClusterImage, Command, CommandError};
use crate::shard::Shard;

type Failure = (i16, Option<String>);

pub async fn handle(
    shard: &Rc<Shard>,
    _version: i16,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut seen = HashSet::new();
    let dup: HashSet<String> = req
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.0.as_str()))
        .map(|t| t.name.0.to_string())
        .collect();
    let mut results = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let outcome = if dup.contains(t.name.0.as_str()) {
            Err((
                ResponseError::InvalidRequest.code(),
                Some("Duplicate topic name.".to_string()),
            ))
        } else {
            grow(shard, t, req.validate_only).await
        };
        let (code, message) = outcome.err().unwrap_or((0, None));
        super::count_error("CreatePartitions", code);
        results.push(
            CreatePartitionsTopicResult::default()
                .with_name(t.name.clone())
                .with_error_code(code)
                .with_error_message(message.map(StrBytes::from_string)),
        );
    }
    CreatePartitionsResponse::default().with_results(results)
}

async fn grow(
    shard: &Rc<Shard>,
    t: &CreatePartitionsTopic,
    validate_only: bool,
) -> Result<(), Failure> {
    let cmd = plan(&shard.cluster.image(), t)?;
    if validate_only {
        return Ok(());
    }
    match shard.metadata.propose(cmd).await {
        Ok((_, image)) => {
            shard.cluster.update_image(image);
            Ok(())
        }
        Err(CommandError::UnknownTopicId(_)) => {
            Err((ResponseError::UnknownTopicOrPartition.code(), None))
        }
        Err(e) => Err((
            ResponseError::UnknownServerError.code(),
            Some(e.to_string()),
        )),
    }
}

/// Checks a request against the image and builds its command. Pure.
fn plan(image: &ClusterImage, t: &CreatePartitionsTopic) -> Result<Command, Failure> {
    let name = t.name.0.as_str();
    let topic = image
        .topic(name)
        .ok_or((ResponseError::UnknownTopicOrPartition.code(), None))?;
    let current = topic.partitions.len() as i32;
    let invalid_partitions = |m: String| Err((ResponseError::InvalidPartitions.code(), Some(m)));
    if t.count < current {
        return invalid_partitions(format!(
            "The topic {name} currently has {current} partition(s); {} would not be an increase.",
            t.count
        ));
    }
    if t.count == current {
        return invalid_partitions(format!("Topic already has {current} partition(s)."));
    }
    let added = (t.count - current) as usize;
    let brokers = image.placeable_brokers();
    let invalid_assignment =
        |m: String| Err((ResponseError::InvalidReplicaAssignment.code(), Some(m)));
    let partitions = match &t.assignments {
        Some(assignments) => {
            if assignments.len() != added {
                return invalid_assignment(format!(
                    "Attempted to add {added} additional partition(s), but only {} assignment(s) were specified.",
                    assignments.len()
                ));
            }
            let mut out = Vec::with_capacity(added);
            for a in assignments {
                let replicas: Vec<i32> = a.broker_ids.iter().map(|b| b.0).collect();
                if replicas.is_empty() {
                    return invalid_assignment(
                        "The manual partition assignment includes an empty replica list.".into(),
                    );
                }
                if let Some(b) = replicas.iter().find(|b| !brokers.contains(b)) {
                    return invalid_assignment(format!(
                        "The manual partition assignment includes broker {b}, but no such broker is registered."
                    ));
                }
                let distinct: HashSet<_> = replicas.iter().collect();
                if distinct.len() != replicas.len() {
                    return invalid_assignment(format!(
                        "The manual partition assignment includes the broker {} more than once.",
                        replicas[0]
                    ));
                }
                out.push(replicas);
            }
            out
        }
        None => {
            let rf = topic
                .partitions
                .first()
                .map_or(1, |p| p.replicas.len())
                .max(1);
            if brokers.len() < rf {
                return Err((
                    ResponseError::InvalidReplicationFactor.code(),
                    Some(format!(
                        "Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only {} broker(s) are registered.",
                        brokers.len()
                    )),
                ));
            }
            {
                let existing: Vec<Vec<i32>> = topic
                    .partitions
                    .iter()
                    .map(|p| p.replicas.clone())
                    .collect();
                place_replicas(&brokers, topic.id, &existing, added, rf)
            }
        }
    };
    Ok(Command::CreatePartitions {
        id: topic.id,
        partitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::BrokerInfo;
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsAssignment;
    use kafka_protocol::messages::{BrokerId, TopicName};

    fn image() -> ClusterImage {
        let mut img = ClusterImage::default();
        let broker = BrokerInfo {
            id: 1,
            host: "h".into(),
            port: 1,
            rack: None,
        };
        img.apply(1, &Command::RegisterBroker(broker))
            .expect("broker");
        let create = Command::CreateTopic {
            name: "t".into(),
            id: uuid::Uuid::from_u128(7),
            partitions: vec![vec![1], vec![1]],
            configs: Default::default(),
        };
        img.apply(2, &create).expect("topic");
        img
    }

    fn req(count: i32, assignments: Option<Vec<Vec<i32>>>) -> CreatePartitionsTopic {
        CreatePartitionsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_count(count)
            .with_assignments(assignments.map(|a| {
                a.into_iter()
                    .map(|r| {
                        CreatePartitionsAssignment::default()
                            .with_broker_ids(r.into_iter().map(BrokerId).collect())
                    })
                    .collect()
            }))
    }

    #[test]
    fn errors_and_placement_are_kafkas() {
        let img = image();
        let code = |r: Result<Command, Failure>| r.err().map(|e| e.0);
        assert_eq!(code(plan(&img, &req(2, None))), Some(37));
        assert_eq!(code(plan(&img, &req(1, None))), Some(37));
        assert_eq!(code(plan(&img, &req(4, Some(vec![vec![1]])))), Some(39));
        assert_eq!(code(plan(&img, &req(3, Some(vec![vec![2]])))), Some(39));
        let mut unknown = req(3, None);
        unknown.name = TopicName(StrBytes::from_static_str("nope"));
        assert_eq!(code(plan(&img, &unknown)), Some(3));
        match plan(&img, &req(4, None)) {
            Ok(Command::CreatePartitions { partitions, .. }) => {
                assert_eq!(partitions, vec![vec![1], vec![1]])
            }
            other => panic!("{other:?}"),
        }
        assert!(plan(&img, &req(3, Some(vec![vec![1]]))).is_ok());
    }
}

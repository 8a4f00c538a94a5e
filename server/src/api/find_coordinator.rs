//! FindCoordinator (key 10), versions 0–6 (batched keys from v4). Also where group
//! requests find their coordinator shard: [`locate`] creates `__consumer_offsets` on
//! first need and maps a group to its partition and that partition's owner shard, and
//! [`group_code`] turns the group layer's errors into Kafka's error codes.
//! Transaction coordinators do not exist yet: key type 1 answers UNSUPPORTED_VERSION,
//! a final error, so transactional clients fail at once instead of retrying forever.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::create_topics::create_topic;
use crate::group::coordinator::Loc;
use crate::group::{partition_for, GroupError, OFFSETS_TOPIC};
use crate::metadata::topics::{CreateTopic, TopicError};
use crate::metadata::TopicImage;
use crate::shard::Shard;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// Kafka's `offsets.topic.segment.bytes` default.
const OFFSETS_SEGMENT_BYTES: &str = "104857600";

/// The offsets topic, created with `offsets.topic.num.partitions` partitions,
/// `offsets.topic.replication.factor` replicas (at most one per live broker) and
/// `cleanup.policy=compact` (so no time or size retention applies: the cleaner keeps the
/// latest record per key) if it does not exist yet. Err: COORDINATOR_NOT_AVAILABLE.
pub async fn offsets_topic(shard: &Rc<Shard>) -> Result<Arc<TopicImage>, i16> {
    if let Some(t) = shard.cluster.image().topic(OFFSETS_TOPIC) {
        return Ok(t.clone());
    }
    let configs: BTreeMap<String, String> = [
        ("cleanup.policy", "compact"),
        ("segment.bytes", OFFSETS_SEGMENT_BYTES),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let live = shard.cluster.image().live_brokers().count().max(1) as i64;
    let req = CreateTopic {
        name: OFFSETS_TOPIC,
        num_partitions: shard.config.offsets_topic_num_partitions as i32,
        replication_factor: shard.config.offsets_topic_replication_factor.clamp(1, live) as i16,
        assignments: Vec::new(),
        configs,
    };
    match create_topic(shard, req, false).await {
        Ok(t) => Ok(t),
        // Another shard created it first.
        Err(TopicError::AlreadyExists(_)) => shard
            .cluster
            .image()
            .topic(OFFSETS_TOPIC)
            .cloned()
            .ok_or(ResponseError::CoordinatorNotAvailable.code()),
        Err(e) => {
            tracing::error!(error = e.message(), "cannot create __consumer_offsets");
            Err(ResponseError::CoordinatorNotAvailable.code())
        }
    }
}

/// Kafka's error code for a group error: the one place group errors become codes.
pub fn group_code(e: GroupError) -> i16 {
    let code = match e {
        GroupError::CoordinatorLoadInProgress => ResponseError::CoordinatorLoadInProgress,
        GroupError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
        GroupError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
        GroupError::MemberIdRequired => ResponseError::MemberIdRequired,
        GroupError::UnknownMemberId => ResponseError::UnknownMemberId,
        GroupError::FencedInstanceId => ResponseError::FencedInstanceId,
        GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress,
        GroupError::IllegalGeneration => ResponseError::IllegalGeneration,
        GroupError::StaleMemberEpoch => ResponseError::StaleMemberEpoch,
        GroupError::FencedMemberEpoch => ResponseError::FencedMemberEpoch,
        GroupError::UnsupportedAssignor => ResponseError::UnsupportedAssignor,
        GroupError::InvalidRequest => ResponseError::InvalidRequest,
        GroupError::UnreleasedInstanceId => ResponseError::UnreleasedInstanceId,
        GroupError::GroupMaxSizeReached => ResponseError::GroupMaxSizeReached,
        GroupError::GroupIdNotFound => ResponseError::GroupIdNotFound,
        GroupError::NonEmptyGroup => ResponseError::NonEmptyGroup,
        GroupError::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic,
    };
    code.code()
}

/// The group's offsets partition and the shard that owns it. NOT_COORDINATOR when
/// another broker leads that partition.
pub async fn locate(shard: &Rc<Shard>, group_id: &str) -> Result<(Loc, usize), i16> {
    let topic = offsets_topic(shard).await?;
    let partition = partition_for(group_id, topic.partitions.len());
    if !shard.cluster.leads(&topic, partition) {
        return Err(ResponseError::NotCoordinator.code());
    }
    let loc = Loc {
        topic_id: topic.id,
        partition,
    };
    Ok((loc, shard.owner(&topic.id, partition)))
}

/// The live broker leading the group's offsets partition, as (node id, host, port).
async fn group_coordinator(shard: &Rc<Shard>, group_id: &str) -> Result<(i32, String, i32), i16> {
    let topic = offsets_topic(shard).await?;
    let partition = partition_for(group_id, topic.partitions.len());
    let image = shard.cluster.image();
    let leader = topic
        .partitions
        .get(partition as usize)
        .map_or(-1, |p| p.leader);
    match image.brokers.get(&leader) {
        Some(b) if image.is_live(leader) => Ok((b.id, b.host.clone(), b.port as i32)),
        _ => Err(ResponseError::CoordinatorNotAvailable.code()),
    }
}

/// The coordinator for one key: Ok(node) or an error code.
async fn coordinator_for(
    shard: &Rc<Shard>,
    key_type: i8,
    key: &str,
) -> Result<(i32, String, i32), i16> {
    match key_type {
        KEY_TYPE_GROUP => group_coordinator(shard, key).await,
        KEY_TYPE_TRANSACTION => Err(ResponseError::UnsupportedVersion.code()),
        _ => Err(ResponseError::InvalidRequest.code()),
    }
}

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let key_type = if version >= 1 {
        req.key_type
    } else {
        KEY_TYPE_GROUP
    };
    if version < 4 {
        let resp = FindCoordinatorResponse::default();
        return match coordinator_for(shard, key_type, req.key.as_str()).await {
            Ok((id, host, port)) => resp
                .with_node_id(BrokerId(id))
                .with_host(StrBytes::from_string(host))
                .with_port(port),
            Err(code) => {
                super::count_error("FindCoordinator", code);
                resp.with_error_code(code)
                    .with_error_message((version >= 1).then(|| error_message(code)))
                    .with_node_id(BrokerId(-1))
                    .with_port(-1)
            }
        };
    }
    let mut coordinators = Vec::with_capacity(req.coordinator_keys.len());
    for key in req.coordinator_keys {
        let c = Coordinator::default().with_key(key.clone());
        coordinators.push(match coordinator_for(shard, key_type, key.as_str()).await {
            Ok((id, host, port)) => c
                .with_node_id(BrokerId(id))
                .with_host(StrBytes::from_string(host))
                .with_port(port),
            Err(code) => {
                super::count_error("FindCoordinator", code);
                c.with_error_code(code)
                    .with_error_message(Some(error_message(code)))
                    .with_node_id(BrokerId(-1))
                    .with_port(-1)
            }
        });
    }
    FindCoordinatorResponse::default().with_coordinators(coordinators)
}

fn error_message(code: i16) -> StrBytes {
    let text = match ResponseError::try_from_code(code) {
        Some(ResponseError::CoordinatorNotAvailable) => "The coordinator is not available.",
        Some(ResponseError::InvalidRequest) => "Unknown coordinator key type.",
        _ => "The coordinator cannot be found.",
    };
    StrBytes::from_static_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_errors_have_kafkas_codes() {
        // Numbers from Kafka's `Errors` table.
        let codes = [
            (GroupError::CoordinatorLoadInProgress, 14),
            (GroupError::CoordinatorNotAvailable, 15),
            (GroupError::IllegalGeneration, 22),
            (GroupError::InconsistentGroupProtocol, 23),
            (GroupError::UnknownMemberId, 25),
            (GroupError::RebalanceInProgress, 27),
            (GroupError::InvalidRequest, 42),
            (GroupError::NonEmptyGroup, 68),
            (GroupError::GroupIdNotFound, 69),
            (GroupError::MemberIdRequired, 79),
            (GroupError::GroupMaxSizeReached, 81),
            (GroupError::FencedInstanceId, 82),
            (GroupError::GroupSubscribedToTopic, 86),
            (GroupError::FencedMemberEpoch, 110),
            (GroupError::UnreleasedInstanceId, 111),
            (GroupError::UnsupportedAssignor, 112),
            (GroupError::StaleMemberEpoch, 113),
        ];
        for (e, code) in codes {
            assert_eq!(group_code(e), code, "{e:?}");
        }
    }
}

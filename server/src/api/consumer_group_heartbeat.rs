//! ConsumerGroupHeartbeat (key 68), versions 0–1 (KIP-848): joins, heartbeats, acks
//! revocations and leaves, all in one request. Validated here (Kafka's rules), run on
//! the group's coordinator shard by the pure state machine in `group::consumer`.
//! v1 (KIP-1082) requires the client to generate its member id; v0 lets the broker
//! make one on the first join. Regular-expression subscriptions are not supported
//! (INVALID_REQUEST).

use std::collections::BTreeSet;
use std::rc::Rc;

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::find_coordinator::{group_code, locate};
use crate::group::consumer::{self, Heartbeat, HeartbeatError, HeartbeatResponse, LEAVE_EPOCH};
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    client_id: Option<StrBytes>,
    req: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    match run(shard, version, client_id, req).await {
        Ok(r) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(StrBytes::from_string(r.member_id)))
            .with_member_epoch(r.member_epoch)
            .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
            .with_assignment(r.assignment.map(|a| {
                Assignment::default().with_topic_partitions(
                    a.into_iter()
                        .map(|(topic_id, ps)| {
                            TopicPartitions::default()
                                .with_topic_id(topic_id)
                                .with_partitions(ps.into_iter().collect())
                        })
                        .collect(),
                )
            })),
        Err((code, message)) => {
            super::count_error("ConsumerGroupHeartbeat", code);
            ConsumerGroupHeartbeatResponse::default()
                .with_error_code(code)
                .with_error_message(message.map(StrBytes::from_string))
                .with_member_epoch(-1)
        }
    }
}

/// A refused request: Kafka's error code and the message sent with it.
type Refusal = (i16, Option<String>);

fn invalid(message: &str) -> Refusal {
    (
        ResponseError::InvalidRequest.code(),
        Some(message.to_string()),
    )
}

/// Kafka's request checks, before the group is looked at.
fn validate(version: i16, req: &ConsumerGroupHeartbeatRequest) -> Result<(), Refusal> {
    let empty = |s: &Option<StrBytes>| s.as_ref().is_some_and(|s| s.is_empty());
    if (version >= 1 || req.member_epoch > 0 || req.member_epoch == LEAVE_EPOCH)
        && req.member_id.is_empty()
    {
        return Err(invalid("MemberId can't be empty."));
    }
    if req.group_id.0.is_empty() {
        return Err(invalid("GroupId can't be empty."));
    }
    if empty(&req.instance_id) {
        return Err(invalid("InstanceId can't be empty."));
    }
    if empty(&req.rack_id) {
        return Err(invalid("RackId can't be empty."));
    }
    if req.member_epoch == 0 {
        if req.rebalance_timeout_ms == -1 {
            return Err(invalid(
                "RebalanceTimeoutMs must be provided in first request.",
            ));
        }
        if req.topic_partitions.as_ref().is_none_or(|t| !t.is_empty()) {
            return Err(invalid("TopicPartitions must be empty when (re-)joining."));
        }
        if req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none() {
            return Err(invalid(
                "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
            ));
        }
    }
    if req.member_epoch == consumer::STATIC_LEAVE_EPOCH && req.instance_id.is_none() {
        return Err(invalid("InstanceId can't be null."));
    }
    if req
        .subscribed_topic_regex
        .as_ref()
        .is_some_and(|r| !r.is_empty())
    {
        return Err(invalid(
            "SubscribedTopicRegex is not supported by this broker; subscribe by topic names.",
        ));
    }
    Ok(())
}

async fn run(
    shard: &Rc<Shard>,
    version: i16,
    client_id: Option<StrBytes>,
    req: ConsumerGroupHeartbeatRequest,
) -> Result<HeartbeatResponse, Refusal> {
    validate(version, &req)?;
    let group_id = req.group_id.0.to_string();
    let (loc, owner) = locate(shard, &group_id)
        .await
        .map_err(|code| (code, None))?;
    let member_id = if req.member_id.is_empty() {
        uuid::Uuid::new_v4().to_string()
    } else {
        req.member_id.to_string()
    };
    let heartbeat = Heartbeat {
        member_id,
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.map(|s| s.to_string()),
        rack_id: req.rack_id.map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req
            .subscribed_topic_names
            .map(|ts| ts.into_iter().map(|t| t.0.to_string()).collect()),
        server_assignor: req.server_assignor.map(|s| s.to_string()),
        owned: req.topic_partitions.map(|ts| {
            let mut owned = consumer::Assignment::new();
            for t in ts {
                let ps: &mut BTreeSet<i32> = owned.entry(t.topic_id).or_default();
                ps.extend(t.partitions);
            }
            owned
        }),
        client_id: client_id.map(|c| c.to_string()).unwrap_or_default(),
        client_host: super::client_host(),
    };
    shard
        .invoke_on(owner, move |s| async move {
            s.groups
                .consumer_heartbeat(loc, &group_id, heartbeat)
                .await
                .map_err(|e: HeartbeatError| (group_code(e.error), e.message))
        })
        .await
        .unwrap_or(Err((ResponseError::CoordinatorNotAvailable.code(), None)))
}

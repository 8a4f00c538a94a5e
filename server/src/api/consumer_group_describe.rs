//! ConsumerGroupDescribe (key 69), versions 0–1 (KIP-848): epochs, assignor and each
//! member's current and target assignment, read on the group's coordinator shard. An
//! unknown or classic group is GROUP_ID_NOT_FOUND (the admin client then falls back to
//! DescribeGroups).

use std::rc::Rc;

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, GroupId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::find_coordinator::{group_code, locate};
use crate::group::consumer::{self, Description, HeartbeatError};
use crate::group::GROUP_OPERATIONS_ALL;
use crate::metadata::image::ClusterImage;
use crate::shard::Shard;

/// KIP-1099's member type of a member speaking ConsumerGroupHeartbeat.
const MEMBER_TYPE_CONSUMER: i8 = 1;

pub async fn handle(
    shard: &Rc<Shard>,
    _version: i16,
    req: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let mut groups = Vec::with_capacity(req.group_ids.len());
    for group_id in req.group_ids {
        let mut g = DescribedGroup::default()
            .with_group_id(group_id.clone())
            .with_authorized_operations(if req.include_authorized_operations {
                GROUP_OPERATIONS_ALL
            } else {
                i32::MIN
            });
        match describe(shard, &group_id).await {
            Ok(d) => g = described(g, d, &shard.cluster.image()),
            Err((code, message)) => {
                super::count_error("ConsumerGroupDescribe", code);
                g = g
                    .with_error_code(code)
                    .with_error_message(message.map(StrBytes::from_string))
                    .with_group_state(StrBytes::from_static_str("Dead"));
            }
        }
        groups.push(g);
    }
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}

/// The group's description, or Kafka's error code and the message sent with it.
async fn describe(
    shard: &Rc<Shard>,
    group_id: &GroupId,
) -> Result<Description, (i16, Option<String>)> {
    let group_id = group_id.0.to_string();
    if group_id.is_empty() {
        return Err((ResponseError::InvalidGroupId.code(), None));
    }
    let (loc, owner) = locate(shard, &group_id)
        .await
        .map_err(|code| (code, None))?;
    shard
        .invoke_on(owner, move |s| async move {
            s.groups
                .consumer_describe(loc, &group_id)
                .await
                .map_err(|e: HeartbeatError| (group_code(e.error), e.message))
        })
        .await
        .unwrap_or(Err((ResponseError::CoordinatorNotAvailable.code(), None)))
}

fn assignment(a: &consumer::Assignment, image: &ClusterImage) -> Assignment {
    Assignment::default().with_topic_partitions(
        a.iter()
            .map(|(id, ps)| {
                let name = image
                    .topic_by_id(id)
                    .map(|t| t.name.clone())
                    .unwrap_or_default();
                TopicPartitions::default()
                    .with_topic_id(*id)
                    .with_topic_name(TopicName(StrBytes::from_string(name)))
                    .with_partitions(ps.iter().copied().collect())
            })
            .collect(),
    )
}

fn described(g: DescribedGroup, d: Description, image: &ClusterImage) -> DescribedGroup {
    g.with_group_state(StrBytes::from_static_str(d.state))
        .with_group_epoch(d.group_epoch)
        .with_assignment_epoch(d.assignment_epoch)
        .with_assignor_name(StrBytes::from_string(d.assignor_name))
        .with_members(
            d.members
                .iter()
                .map(|(m, target)| {
                    Member::default()
                        .with_member_id(StrBytes::from_string(m.member_id.clone()))
                        .with_instance_id(m.instance_id.clone().map(StrBytes::from_string))
                        .with_rack_id(m.rack_id.clone().map(StrBytes::from_string))
                        .with_member_epoch(m.member_epoch)
                        .with_client_id(StrBytes::from_string(m.client_id.clone()))
                        .with_client_host(StrBytes::from_string(m.client_host.clone()))
                        .with_subscribed_topic_names(
                            m.subscribed
                                .iter()
                                .map(|t| TopicName(StrBytes::from_string(t.clone())))
                                .collect(),
                        )
                        .with_assignment(assignment(&m.assigned, image))
                        .with_target_assignment(assignment(target, image))
                        .with_member_type(MEMBER_TYPE_CONSUMER)
                })
                .collect(),
        )
}

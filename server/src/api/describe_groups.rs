//! DescribeGroups (key 15), versions 0–6: state, protocol and members of each group,
//! read on its coordinator shard. An unknown group is "Dead" (v0–5) or
//! GROUP_ID_NOT_FOUND (v6+), like Kafka.

use std::rc::Rc;

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, GroupId};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::find_coordinator::{group_code, locate};
use crate::group::coordinator::GroupDescription;
use crate::group::GROUP_OPERATIONS_ALL;
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let mut groups = Vec::with_capacity(req.groups.len());
    for group_id in req.groups {
        let described = describe(shard, &group_id).await;
        let mut g = DescribedGroup::default()
            .with_group_id(group_id.clone())
            .with_authorized_operations(if req.include_authorized_operations {
                GROUP_OPERATIONS_ALL
            } else {
                i32::MIN
            });
        match described {
            Err(code) => {
                g = g
                    .with_error_code(code)
                    .with_group_state(StrBytes::from_static_str("Dead"));
            }
            Ok(d) if !d.found && version >= 6 => {
                g = g
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(StrBytes::from_string(format!(
                        "Group {} not found.",
                        group_id.0
                    ))))
                    .with_group_state(StrBytes::from_static_str("Dead"));
            }
            Ok(d) => {
                g = g
                    .with_group_state(StrBytes::from_static_str(d.state))
                    .with_protocol_type(StrBytes::from_string(d.protocol_type))
                    .with_protocol_data(StrBytes::from_string(d.protocol))
                    .with_members(
                        d.members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(StrBytes::from_string(m.member_id))
                                    .with_group_instance_id(
                                        m.group_instance_id.map(StrBytes::from_string),
                                    )
                                    .with_client_id(StrBytes::from_string(m.client_id))
                                    .with_client_host(StrBytes::from_string(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    );
            }
        }
        super::count_error("DescribeGroups", g.error_code);
        groups.push(g);
    }
    DescribeGroupsResponse::default().with_groups(groups)
}

async fn describe(shard: &Rc<Shard>, group_id: &GroupId) -> Result<GroupDescription, i16> {
    let group_id = group_id.0.to_string();
    if group_id.is_empty() {
        return Err(ResponseError::InvalidGroupId.code());
    }
    let (loc, owner) = locate(shard, &group_id).await?;
    shard
        .invoke_on(owner, move |s| async move {
            s.groups.describe(loc, &group_id).await.map_err(group_code)
        })
        .await
        .unwrap_or(Err(ResponseError::CoordinatorNotAvailable.code()))
}

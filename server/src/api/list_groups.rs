//! ListGroups (key 16), versions 0–5: every group on every shard, filtered by state
//! (v4+, case-insensitive) and type (v5+: "classic", or "consumer" for a KIP-848 group).

use std::rc::Rc;

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::find_coordinator::group_code;
use crate::group::coordinator::GroupSummary;
use crate::group::OFFSETS_TOPIC;
use crate::shard::Shard;

pub async fn handle(shard: &Rc<Shard>, version: i16, req: ListGroupsRequest) -> ListGroupsResponse {
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|s| s.to_lowercase()).collect();
    // No offsets topic yet: no groups (listing does not create it).
    let Some(topic) = shard.cluster.image().topic(OFFSETS_TOPIC).cloned() else {
        return ListGroupsResponse::default();
    };
    let (topic_id, n) = (topic.id, topic.partitions.len());
    let items: Vec<(usize, ())> = (0..shard.count()).map(|i| (i, ())).collect();
    let per_shard = shard
        .scatter(
            items,
            move |s, ()| async move { s.groups.list(topic_id, n).await.map_err(group_code) },
            || Err(ResponseError::CoordinatorNotAvailable.code()),
        )
        .await;
    let mut all: Vec<GroupSummary> = Vec::new();
    let mut error = 0;
    for r in per_shard {
        match r {
            Ok(groups) => all.extend(groups),
            Err(code) => error = code,
        }
    }
    super::count_error("ListGroups", error);
    let groups = all
        .into_iter()
        .filter(|g| states.is_empty() || states.contains(&g.state.to_lowercase()))
        .filter(|g| version < 5 || types.is_empty() || types.iter().any(|t| t == g.group_type))
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(g.group_id)))
                .with_protocol_type(StrBytes::from_string(g.protocol_type))
                .with_group_state(StrBytes::from_static_str(g.state))
                .with_group_type(StrBytes::from_static_str(g.group_type))
        })
        .collect();
    ListGroupsResponse::default()
        .with_error_code(error)
        .with_groups(groups)
}

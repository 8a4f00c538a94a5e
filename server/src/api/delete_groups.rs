//! DeleteGroups (key 42), versions 0–2: deletes Empty groups with their committed
//! offsets (tombstones in `__consumer_offsets`).

use std::rc::Rc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use kafka_protocol::ResponseError;

use super::find_coordinator::{group_code, locate};
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    _version: i16,
    req: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for group_id in req.groups_names {
        let code = delete(shard, group_id.0.to_string()).await;
        super::count_error("DeleteGroups", code);
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group_id)
                .with_error_code(code),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

async fn delete(shard: &Rc<Shard>, group_id: String) -> i16 {
    if group_id.is_empty() {
        return ResponseError::InvalidGroupId.code();
    }
    let (loc, owner) = match locate(shard, &group_id).await {
        Ok(l) => l,
        Err(code) => return code,
    };
    shard
        .invoke_on(owner, move |s| async move {
            s.groups.delete_group(loc, &group_id).await
        })
        .await
        .map_or(ResponseError::CoordinatorNotAvailable.code(), |r| {
            r.err().map_or(0, group_code)
        })
}

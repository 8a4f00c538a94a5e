//! SyncGroup (key 14), versions 0–5: run on the group's coordinator shard, where a
//! follower's request is parked until the leader's assignment is durable.

use std::rc::Rc;

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::find_coordinator::locate;
use crate::group::classic::SyncResponse;
use crate::shard::Shard;

pub async fn handle(shard: &Rc<Shard>, version: i16, req: SyncGroupRequest) -> SyncGroupResponse {
    let r = run(shard, req).await;
    super::count_error("SyncGroup", r.error);
    let resp = SyncGroupResponse::default()
        .with_error_code(r.error)
        .with_assignment(r.assignment);
    if version >= 5 {
        resp.with_protocol_type(r.protocol_type.map(StrBytes::from_string))
            .with_protocol_name(r.protocol_name.map(StrBytes::from_string))
    } else {
        resp
    }
}

async fn run(shard: &Rc<Shard>, req: SyncGroupRequest) -> SyncResponse {
    let group_id = req.group_id.0.to_string();
    if group_id.is_empty() {
        return SyncResponse::error(ResponseError::InvalidGroupId.code());
    }
    let (loc, owner) = match locate(shard, &group_id).await {
        Ok(l) => l,
        Err(code) => return SyncResponse::error(code),
    };
    let member_id = req.member_id.to_string();
    let instance_id = req.group_instance_id.map(|s| s.to_string());
    let protocol_type = req.protocol_type.map(|s| s.to_string());
    let protocol_name = req.protocol_name.map(|s| s.to_string());
    let assignments: Vec<(String, bytes::Bytes)> = req
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let generation_id = req.generation_id;
    shard
        .invoke_on(owner, move |s| async move {
            s.groups
                .sync(
                    loc,
                    &group_id,
                    &member_id,
                    instance_id.as_deref(),
                    generation_id,
                    protocol_type.as_deref(),
                    protocol_name.as_deref(),
                    assignments,
                )
                .await
        })
        .await
        .unwrap_or_else(|_| SyncResponse::error(ResponseError::CoordinatorNotAvailable.code()))
}

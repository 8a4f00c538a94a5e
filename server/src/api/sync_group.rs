//! SyncGroup (key 14), versions 0–5: run on the group's coordinator shard, where a
//! follower's request is parked until the leader's assignment is durable.

use std::rc::Rc;

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::find_coordinator::{group_code, locate};
use crate::group::classic::SyncResponse;
use crate::shard::Shard;

pub async fn handle(shard: &Rc<Shard>, version: i16, req: SyncGroupRequest) -> SyncGroupResponse {
    let (code, r) = match run(shard, req).await {
        Ok(r) => (r.error.map_or(0, group_code), r),
        Err(code) => (code, SyncResponse::default()),
    };
    super::count_error("SyncGroup", code);
    let resp = SyncGroupResponse::default()
        .with_error_code(code)
        .with_assignment(r.assignment);
    if version >= 5 {
        resp.with_protocol_type(r.protocol_type.map(StrBytes::from_string))
            .with_protocol_name(r.protocol_name.map(StrBytes::from_string))
    } else {
        resp
    }
}

/// The group's answer, or the error code of a request refused before reaching it.
async fn run(shard: &Rc<Shard>, req: SyncGroupRequest) -> Result<SyncResponse, i16> {
    let group_id = req.group_id.0.to_string();
    if group_id.is_empty() {
        return Err(ResponseError::InvalidGroupId.code());
    }
    let (loc, owner) = locate(shard, &group_id).await?;
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
        .map_err(|_| ResponseError::CoordinatorNotAvailable.code())
}

//! Heartbeat (key 12), versions 0–4: keeps a member's session alive and tells it when
//! a rebalance is in progress.

use std::rc::Rc;

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use kafka_protocol::ResponseError;

use super::find_coordinator::{group_code, locate};
use crate::shard::Shard;

pub async fn handle(shard: &Rc<Shard>, _version: i16, req: HeartbeatRequest) -> HeartbeatResponse {
    let code = run(shard, req).await;
    super::count_error("Heartbeat", code);
    HeartbeatResponse::default().with_error_code(code)
}

async fn run(shard: &Rc<Shard>, req: HeartbeatRequest) -> i16 {
    let group_id = req.group_id.0.to_string();
    if group_id.is_empty() {
        return ResponseError::InvalidGroupId.code();
    }
    let (loc, owner) = match locate(shard, &group_id).await {
        Ok(l) => l,
        Err(code) => return code,
    };
    let member_id = req.member_id.to_string();
    let instance_id = req.group_instance_id.map(|s| s.to_string());
    let generation_id = req.generation_id;
    shard
        .invoke_on(owner, move |s| async move {
            s.groups
                .heartbeat(
                    loc,
                    &group_id,
                    &member_id,
                    instance_id.as_deref(),
                    generation_id,
                )
                .await
        })
        .await
        .map_or(ResponseError::CoordinatorNotAvailable.code(), |r| {
            r.err().map_or(0, group_code)
        })
}

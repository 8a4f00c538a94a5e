//! LeaveGroup (key 13), versions 0–5: one member by id (v0–2) or a batch of members by
//! member id and/or group.instance.id (v3+), each answered with its own error.

use std::rc::Rc;

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::find_coordinator::{group_code, locate};
use crate::group::GroupError;
use crate::shard::Shard;

pub async fn handle(shard: &Rc<Shard>, version: i16, req: LeaveGroupRequest) -> LeaveGroupResponse {
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let (top, codes) = run(shard, req.group_id.0.to_string(), members.clone()).await;
    let resp = LeaveGroupResponse::default();
    if version < 3 {
        let code = if top != 0 {
            top
        } else {
            codes.first().copied().unwrap_or(0)
        };
        super::count_error("LeaveGroup", code);
        return resp.with_error_code(code);
    }
    super::count_error("LeaveGroup", top);
    let members = if top != 0 {
        Vec::new()
    } else {
        members
            .into_iter()
            .zip(codes)
            .map(|((m, i), code)| {
                super::count_error("LeaveGroup", code);
                MemberResponse::default()
                    .with_member_id(StrBytes::from_string(m))
                    .with_group_instance_id(i.map(StrBytes::from_string))
                    .with_error_code(code)
            })
            .collect()
    };
    resp.with_error_code(top).with_members(members)
}

/// (group-level error, per-member errors).
async fn run(
    shard: &Rc<Shard>,
    group_id: String,
    members: Vec<(String, Option<String>)>,
) -> (i16, Vec<i16>) {
    if group_id.is_empty() {
        return (ResponseError::InvalidGroupId.code(), Vec::new());
    }
    let (loc, owner) = match locate(shard, &group_id).await {
        Ok(l) => l,
        Err(code) => return (code, Vec::new()),
    };
    let n = members.len();
    let result = shard
        .invoke_on(owner, move |s| async move {
            s.groups.leave(loc, &group_id, &members).await
        })
        .await;
    match result {
        Ok(Ok(results)) => (
            0,
            results
                .into_iter()
                .map(|r| r.err().map_or(0, group_code))
                .collect(),
        ),
        // An unknown group: every member is unknown.
        Ok(Err(e @ GroupError::UnknownMemberId)) => (0, vec![group_code(e); n]),
        Ok(Err(e)) => (group_code(e), Vec::new()),
        Err(_) => (ResponseError::CoordinatorNotAvailable.code(), Vec::new()),
    }
}

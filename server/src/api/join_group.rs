//! JoinGroup (key 11), versions 0–9: validated here, run on the group's coordinator
//! shard, where the request is parked (without blocking the shard) until the join
//! phase completes.

use std::rc::Rc;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::find_coordinator::{group_code, locate};
use crate::group::classic::{JoinRequest, JoinResponse};
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    client_id: Option<StrBytes>,
    req: JoinGroupRequest,
) -> JoinGroupResponse {
    let member_id = req.member_id.to_string();
    let (code, resp) = match run(shard, version, client_id, req).await {
        Ok(r) => (r.error.map_or(0, group_code), r),
        // Refused before the group saw it: no generation, the member id as sent.
        Err(code) => (
            code,
            JoinResponse {
                generation_id: -1,
                member_id,
                ..Default::default()
            },
        ),
    };
    super::count_error("JoinGroup", code);
    encode(version, code, resp)
}

/// The group's answer, or the error code of a request refused before reaching it.
async fn run(
    shard: &Rc<Shard>,
    version: i16,
    client_id: Option<StrBytes>,
    req: JoinGroupRequest,
) -> Result<JoinResponse, i16> {
    let group_id = req.group_id.0.to_string();
    if group_id.is_empty() {
        return Err(ResponseError::InvalidGroupId.code());
    }
    let limits = shard.groups.limits();
    if req.session_timeout_ms < limits.session_timeout_ms_min
        || req.session_timeout_ms > limits.session_timeout_ms_max
    {
        return Err(ResponseError::InvalidSessionTimeout.code());
    }
    let (loc, owner) = locate(shard, &group_id).await?;
    let client_id = client_id.map(|c| c.to_string()).unwrap_or_default();
    let instance_missing = req.group_instance_id.is_none();
    let join = JoinRequest {
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.map(|i| i.to_string()),
        fresh_member_id: format!("{client_id}-{}", uuid::Uuid::new_v4()),
        client_host: super::client_host(),
        client_id,
        // v0 has no rebalance timeout: the session timeout bounds the join phase.
        rebalance_timeout_ms: if version >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        session_timeout_ms: req.session_timeout_ms,
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4 && instance_missing,
    };
    shard
        .invoke_on(owner, move |s| async move {
            s.groups.join(loc, &group_id, join).await
        })
        .await
        .map_err(|_| ResponseError::CoordinatorNotAvailable.code())
}

fn encode(version: i16, code: i16, r: JoinResponse) -> JoinGroupResponse {
    let protocol_name = match r.protocol_name {
        Some(p) => Some(StrBytes::from_string(p)),
        // Before v7 the field is not nullable: Kafka sends "".
        None if version < 7 => Some(StrBytes::default()),
        None => None,
    };
    JoinGroupResponse::default()
        .with_error_code(code)
        .with_generation_id(r.generation_id)
        .with_protocol_type(r.protocol_type.map(StrBytes::from_string))
        .with_protocol_name(protocol_name)
        .with_leader(StrBytes::from_string(r.leader))
        .with_skip_assignment(r.skip_assignment)
        .with_member_id(StrBytes::from_string(r.member_id))
        .with_members(
            r.members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(StrBytes::from_string(m.member_id))
                        .with_group_instance_id(m.group_instance_id.map(StrBytes::from_string))
                        .with_metadata(m.metadata)
                })
                .collect(),
        )
}

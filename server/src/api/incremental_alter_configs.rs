//! IncrementalAlterConfigs (key 44), versions 0–1: SET, DELETE, and APPEND / SUBTRACT
//! on list configs, for topics and brokers (resource name "" = cluster default).
//! Validation and the metadata command are shared with AlterConfigs.

use std::rc::Rc;

use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::alter_configs::{duplicates, Failure, Target};
use super::describe_configs::invalid;
use crate::configs::{broker, list_items, topic, ConfigType};
use crate::shard::Shard;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

pub async fn handle(
    shard: &Rc<Shard>,
    _version: i16,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let dup = duplicates(
        req.resources
            .iter()
            .map(|r| (r.resource_type, r.resource_name.as_str())),
    );
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in &req.resources {
        let name = r.resource_name.as_str();
        let outcome = if dup.contains(&(r.resource_type, name.to_string())) {
            Err(invalid(format!("Duplicate resource in request: {name}")))
        } else {
            alter(shard, r, req.validate_only).await
        };
        let (code, message) = outcome.err().unwrap_or((0, None));
        super::count_error("IncrementalAlterConfigs", code);
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message.map(StrBytes::from_string))
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone()),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

async fn alter(
    shard: &Rc<Shard>,
    r: &AlterConfigsResource,
    validate_only: bool,
) -> Result<(), Failure> {
    let target = Target::resolve(shard, r.resource_type, r.resource_name.as_str())?;
    let before = target.current(shard);
    let mut after = before.clone();
    let mut seen = std::collections::HashSet::new();
    for c in &r.configs {
        let key = c.name.as_str();
        if !seen.insert(key) {
            return Err(invalid("Error due to duplicate config keys".into()));
        }
        let value = c.value.as_ref().map(|v| v.to_string());
        match c.config_operation {
            SET => {
                let v = value
                    .ok_or_else(|| invalid(format!("Null value not supported for : {key}")))?;
                after.insert(key.to_string(), v);
            }
            DELETE => {
                after.remove(key);
            }
            APPEND | SUBTRACT => {
                let (ty, default) = list_info(&target, key).ok_or_else(|| {
                    (
                        ResponseError::InvalidConfig.code(),
                        Some(format!("Unknown config name: {key}")),
                    )
                })?;
                if ty != ConfigType::List {
                    return Err((
                        ResponseError::InvalidConfig.code(),
                        Some(format!(
                            "Config value append is not allowed for config key: {key}"
                        )),
                    ));
                }
                let base = after
                    .get(key)
                    .cloned()
                    .unwrap_or_else(|| default.to_string());
                let mut items: Vec<String> =
                    list_items(&base).into_iter().map(str::to_string).collect();
                let given = value.unwrap_or_default();
                for item in list_items(&given) {
                    if c.config_operation == APPEND {
                        if !items.iter().any(|i| i == item) {
                            items.push(item.to_string());
                        }
                    } else {
                        items.retain(|i| i != item);
                    }
                }
                after.insert(key.to_string(), items.join(","));
            }
            other => return Err(invalid(format!("Unknown alter configs operation {other}"))),
        }
    }
    let after = target.validate(&before, &after)?;
    target.commit(shard, &before, after, validate_only).await
}

/// The type of `key` on the target, with the default a list operation starts from.
fn list_info(target: &Target, key: &str) -> Option<(ConfigType, &'static str)> {
    match target {
        Target::Topic(_) => topic::find(key).map(|t| (t.def.ty, t.def.default.unwrap_or(""))),
        Target::Broker(_) => broker::topic_of(key).map(|t| {
            let default = t.broker.and_then(|b| b.default).unwrap_or("");
            (t.def.ty, default)
        }),
    }
}

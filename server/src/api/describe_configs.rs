//! DescribeConfigs (key 32), versions 1–4: topic and broker configs with their
//! values, sources, synonyms, types, documentation and read-only flags, as Kafka's
//! `ConfigHelper` reports them. Answered from the connection shard's image.

use std::rc::Rc;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::configs::{broker, topic, Described};
use crate::metadata::topics::validate_name;
use crate::shard::Shard;

/// Kafka's `ConfigResource.Type` ids.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
pub const RESOURCE_BROKER_LOGGER: i8 = 8;

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let results = req
        .resources
        .iter()
        .map(|r| {
            let mut result = match describe(shard, r) {
                Ok(configs) => DescribeConfigsResult::default().with_configs(
                    configs
                        .into_iter()
                        .map(|d| {
                            entry(
                                d,
                                req.include_synonyms,
                                req.include_documentation && version >= 3,
                            )
                        })
                        .collect(),
                ),
                Err((code, message)) => DescribeConfigsResult::default()
                    .with_error_code(code)
                    .with_error_message(message.map(StrBytes::from_string)),
            };
            result.resource_type = r.resource_type;
            result.resource_name = r.resource_name.clone();
            super::count_error("DescribeConfigs", result.error_code);
            result
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// The configs of one resource, filtered by `configuration_keys` when given.
fn describe(
    shard: &Shard,
    r: &DescribeConfigsResource,
) -> Result<Vec<Described>, (i16, Option<String>)> {
    let image = shard.cluster.image();
    let layers = shard.cluster.config_layers(&image);
    let name = r.resource_name.as_str();
    let all = match r.resource_type {
        RESOURCE_TOPIC => {
            validate_name(name).map_err(|e| {
                (
                    ResponseError::InvalidTopicException.code(),
                    Some(e.message().to_string()),
                )
            })?;
            let topic_image = image
                .topic(name)
                .ok_or((ResponseError::UnknownTopicOrPartition.code(), None))?;
            topic::TOPIC_CONFIGS
                .iter()
                .map(|t| t.describe(&topic_image.configs, &layers))
                .collect()
        }
        RESOURCE_BROKER if name.is_empty() => broker::describe_cluster_default(&layers),
        RESOURCE_BROKER => {
            let id = broker_id(name)?;
            if id != shard.config.node_id {
                return Err(invalid(format!(
                    "Unexpected broker id, expected {} or empty string, but received {name}",
                    shard.config.node_id
                )));
            }
            broker::describe_broker(&layers, crate::config::default_of)
        }
        RESOURCE_BROKER_LOGGER => {
            return Err(invalid(
                "Fjord has no broker loggers to describe (it logs through tracing)".into(),
            ))
        }
        other => {
            return Err(invalid(format!(
                "Unsupported resource type: {}",
                resource_type_name(other)
            )))
        }
    };
    // Null or empty keys: every config (Kafka answers both alike).
    Ok(match &r.configuration_keys {
        Some(keys) if !keys.is_empty() => all
            .into_iter()
            .filter(|d| keys.iter().any(|k| k.as_str() == d.name))
            .collect(),
        _ => all,
    })
}

/// Kafka's broker resource names are broker ids.
pub fn broker_id(name: &str) -> Result<i32, (i16, Option<String>)> {
    name.parse()
        .map_err(|_| invalid(format!("Broker id must be an integer, but it is: {name}")))
}

pub fn invalid(message: String) -> (i16, Option<String>) {
    (ResponseError::InvalidRequest.code(), Some(message))
}

pub fn resource_type_name(t: i8) -> &'static str {
    match t {
        2 => "TOPIC",
        4 => "BROKER",
        8 => "BROKER_LOGGER",
        16 => "CLIENT_METRICS",
        32 => "GROUP",
        _ => "UNKNOWN",
    }
}

fn entry(d: Described, synonyms: bool, documentation: bool) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(d.name))
        .with_value(d.value.map(StrBytes::from_string))
        .with_read_only(d.read_only)
        .with_config_source(d.source as i8)
        .with_is_sensitive(d.sensitive)
        .with_config_type(d.ty as i8)
        .with_documentation(documentation.then(|| StrBytes::from_static_str(d.doc)))
        .with_synonyms(if synonyms {
            d.synonyms
                .into_iter()
                .map(|s| {
                    DescribeConfigsSynonym::default()
                        .with_name(StrBytes::from_string(s.name))
                        .with_value(s.value.map(StrBytes::from_string))
                        .with_source(s.source as i8)
                })
                .collect()
        } else {
            Vec::new()
        })
}

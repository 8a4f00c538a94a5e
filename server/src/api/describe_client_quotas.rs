//! DescribeClientQuotas (key 48), versions 0–1: the quotas of the entities a filter
//! selects, read from this broker's image as Kafka's brokers read theirs
//! (`metadata::client_quotas::describe`). A refused filter answers with the error and
//! no entries.

use std::rc::Rc;

use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::metadata::client_quotas::{describe, FilterError};
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    _version: i16,
    req: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let image = shard.cluster.image();
    let components: Vec<(String, i8, Option<String>)> = req
        .components
        .iter()
        .map(|c| {
            (
                c.entity_type.to_string(),
                c.match_type,
                c._match.as_ref().map(|m| m.to_string()),
            )
        })
        .collect();
    let found = match describe(&image.client_quotas, &components, req.strict) {
        Ok(found) => found,
        Err(e) => {
            let (code, message) = match e {
                FilterError::Invalid(m) => (ResponseError::InvalidRequest.code(), m),
                FilterError::Unsupported(m) => (ResponseError::UnsupportedVersion.code(), m),
            };
            super::count_error("DescribeClientQuotas", code);
            return DescribeClientQuotasResponse::default()
                .with_error_code(code)
                .with_error_message(Some(StrBytes::from_string(message)))
                .with_entries(None);
        }
    };
    let entries = found
        .into_iter()
        .map(|(entity, values)| {
            EntryData::default()
                .with_entity(
                    entity
                        .iter()
                        .map(|(t, n)| {
                            EntityData::default()
                                .with_entity_type(StrBytes::from_string(t.clone()))
                                .with_entity_name(n.clone().map(StrBytes::from_string))
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .iter()
                        .map(|(k, v)| {
                            ValueData::default()
                                .with_key(StrBytes::from_string(k.clone()))
                                .with_value(*v)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

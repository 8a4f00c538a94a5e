//! AlterClientQuotas (key 49), versions 0–1: sets and removes entities' quotas.
//! Each entity is checked as Kafka's controller checks it
//! (`metadata::client_quotas::check_alteration`) against this broker's image; the
//! accepted changes are one `AlterClientQuotas` metadata command, so every broker
//! enforces them once it has applied it. `validate_only` checks and writes nothing.
//!
//! As Kafka: one response entry per entity; an entity named twice is answered
//! "Ignoring duplicate entity" while its first change stands.

use std::rc::Rc;

use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::metadata::client_quotas::{check_alteration, entity_of, entity_text, QuotaEntity};
use crate::metadata::Command;
use crate::shard::Shard;

/// An entity's outcome: done, or an error code with its message.
type Outcome = Result<(), (i16, String)>;

pub async fn handle(
    shard: &Rc<Shard>,
    _version: i16,
    req: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let image = shard.cluster.image();
    let mut results: Vec<(QuotaEntity, Outcome)> = Vec::new();
    let mut alterations = Vec::new();
    for entry in &req.entries {
        let entity = entity_of(entry.entity.iter().map(|e| {
            (
                e.entity_type.to_string(),
                e.entity_name.as_ref().map(|n| n.to_string()),
            )
        }));
        let ops: Vec<(String, Option<f64>)> = entry
            .ops
            .iter()
            .map(|o| (o.key.to_string(), (!o.remove).then_some(o.value)))
            .collect();
        let invalid = |m: String| Err((ResponseError::InvalidRequest.code(), m));
        if let Some((_, r)) = results.iter_mut().find(|(e, _)| *e == entity) {
            *r = invalid(format!(
                "Ignoring duplicate entity {}",
                entity_text(&entity)
            ));
            continue;
        }
        let result = match check_alteration(&entity, &ops, image.client_quotas.get(&entity)) {
            Ok(a) => {
                if !a.is_empty() {
                    alterations.push(a);
                }
                Ok(())
            }
            Err(m) => invalid(m),
        };
        results.push((entity, result));
    }
    if !req.validate_only && !alterations.is_empty() {
        match shard
            .metadata
            .propose(Command::AlterClientQuotas { alterations })
            .await
        {
            Ok((_, image)) => shard.cluster.update_image(image),
            Err(e) => {
                for (_, r) in results.iter_mut().filter(|(_, r)| r.is_ok()) {
                    *r = Err((ResponseError::UnknownServerError.code(), e.to_string()));
                }
            }
        }
    }
    let entries = results
        .into_iter()
        .map(|(entity, result)| {
            let (code, message) = match result {
                Ok(()) => (0, None),
                Err((code, m)) => (code, Some(StrBytes::from_string(m))),
            };
            super::count_error("AlterClientQuotas", code);
            EntryData::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_entity(
                    entity
                        .into_iter()
                        .map(|(t, n)| {
                            EntityData::default()
                                .with_entity_type(StrBytes::from_string(t))
                                .with_entity_name(n.map(StrBytes::from_string))
                        })
                        .collect(),
                )
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}

//! InitProducerId (key 22), versions 0–5, for idempotent producers: every call gets a
//! fresh producer id at epoch 0, as Kafka does for a producer without a
//! transactional id. Transactional ids are refused until transactions exist.

use std::rc::Rc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    _version: i16,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if req.transactional_id.is_some() {
        // No transaction coordinator yet (FindCoordinator is not advertised either).
        return resp.with_error_code(ResponseError::UnsupportedVersion.code());
    }
    match shard.producer_ids.next().await {
        Ok(id) => resp.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "cannot allocate a producer id");
            super::count_error(
                "InitProducerId",
                ResponseError::CoordinatorNotAvailable.code(),
            );
            resp.with_error_code(ResponseError::CoordinatorNotAvailable.code())
        }
    }
}
